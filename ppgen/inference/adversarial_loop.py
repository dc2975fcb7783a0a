"""The two-player game behind ``method="adversarial"``: the players' losses, the critic's
penalties and the loop that alternates ``n_critic`` critic steps with one generator step.

Penalties on the critic: WGAN-GP's ``λ E(‖∇V(x̂)‖ − 1)²`` at interpolates (Gulrajani et al.
2017) and R1's ``γ/2 E_P ‖∇V(x)‖²`` on real data (Mescheder et al. 2018), which keeps a
classifier critic from growing sharp where the data is and so damps the oscillation around the
equilibrium. The generator can be sampled from an exponential moving average of its weights
(``ema``; Yazıcı et al. 2019, Karras et al. 2018): the iterates of a GAN circle the
equilibrium, their average sits closer to it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import pyro
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ppgen.errors import NonFiniteLossError, OptionError
from ppgen.inference import distributed
from ppgen.inference.checkpoints import read_checkpoint, write_checkpoint
from ppgen.inference.minibatches import Minibatches
from ppgen.measures import divergences

__all__ = ["player_losses", "gradient_penalty", "r1_penalty", "ParameterAverage", "TwoPlayerLoop"]


def player_losses(loss: str) -> tuple[Callable, Callable]:
    """``(critic_loss(v_real, v_fake), generator_loss(v_fake))`` on raw critic outputs ``v``."""
    if loss in ("minimax", "non_saturating"):

        def critic_loss(v_real, v_fake):  # binary cross-entropy, real = 1
            return F.softplus(-v_real).mean() + F.softplus(v_fake).mean()

        if loss == "minimax":
            return critic_loss, lambda v_fake: -F.softplus(v_fake).mean()  # E log(1 − D)
        return critic_loss, lambda v_fake: F.softplus(-v_fake).mean()  # −E log D
    if loss in ("wgan", "wgan_gp"):
        return lambda v_real, v_fake: v_fake.mean() - v_real.mean(), lambda v_fake: -v_fake.mean()
    if loss == "hinge":
        return (
            lambda v_real, v_fake: F.relu(1 - v_real).mean() + F.relu(1 + v_fake).mean(),
            lambda v_fake: -v_fake.mean(),
        )
    div = divergences.get(loss[2:])

    def f_critic_loss(v_real, v_fake):
        t_real, conj_fake = div.bound_terms(v_real, v_fake)
        return conj_fake.mean() - t_real.mean()

    return f_critic_loss, lambda v_fake: -div.conjugate_at(v_fake).mean()


def gradient_penalty(critic: Callable, real: torch.Tensor, fake: torch.Tensor, weight: float = 10.0):
    """``λ E_x̂ (‖∇_x̂ V(x̂)‖₂ − 1)²`` at random interpolates ``x̂ = a·real + (1 − a)·fake`` (WGAN-GP)."""
    alpha = torch.rand(real.shape[0], 1, dtype=real.dtype, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return weight * ((grad.norm(dim=1) - 1) ** 2).mean()


def r1_penalty(v_real: torch.Tensor, real: torch.Tensor, weight: float) -> torch.Tensor:
    """``γ/2 · E_P ‖∇_x V(x)‖²`` on real samples (R1); ``real`` must require grad for ``v_real``."""
    (grad,) = torch.autograd.grad(v_real.sum(), real, create_graph=True)
    return 0.5 * weight * grad.pow(2).flatten(1).sum(1).mean()


class ParameterAverage:
    """Exponential moving average ``θ̄ ← β_t θ̄ + (1 − β_t) θ`` of a player's parameters.

    ``β_t = min(β, (1 + t) / (10 + t))`` after ``t`` updates (TensorFlow's warm-up rule), so a
    short run is not dominated by its random initial weights.
    """

    def __init__(self, params: list[torch.Tensor], decay: float):
        self.params, self.decay, self.updates = params, decay, 0
        self.shadow = [p.detach().clone() for p in params]

    def update(self) -> None:
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            for average, p in zip(self.shadow, self.params):
                average.lerp_(p.detach(), 1 - beta)

    @contextlib.contextmanager
    def applied(self):
        """The players' parameters hold the average inside the block, their own values after it."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to_params()
        try:
            yield
        finally:
            _copy(self.params, saved)

    def copy_to_params(self) -> None:
        _copy(self.params, self.shadow)

    def state_dict(self) -> dict:
        return {"shadow": [s.clone() for s in self.shadow], "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        _copy(self.shadow, state["shadow"])
        self.updates = state["updates"]


def _copy(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for target, source in zip(targets, sources):
            target.copy_(source)


def _optimizer(params, lr: float, betas) -> torch.optim.Optimizer:
    params = list(params)
    if betas is None:  # the original WGAN recipe: no momentum
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


class TwoPlayerLoop:
    """``n_critic`` critic steps, then one generator step; history of both losses.

    With ``config.ema`` the average of the generator's weights is kept beside them (and in the
    checkpoint); :meth:`finish` puts it in the generator at the end.
    """

    def __init__(self, generator, critic, config, evaluate: Callable | None):
        self.generator, self.critic, self.config, self.evaluate = generator, critic, config, evaluate
        self.critic_loss, self.generator_loss = player_losses(config.loss)
        self.g_params = [p for p in generator.parameters() if p.requires_grad]
        self.d_params = [p for p in critic.parameters() if p.requires_grad]
        self.opt_g = _optimizer(self.g_params, config.lr_g, config.betas) if config.lr_g > 0 else None
        self.opt_d = _optimizer(self.d_params, config.lr_d, config.betas)
        self.schedules = []
        if config.lr_schedule == "linear":  # anneal both learning rates linearly to 0 over the run
            decay = lambda step: max(0.0, 1.0 - step / config.steps)  # noqa: E731
            self.schedules = [
                torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (self.opt_g, self.opt_d) if o
            ]
        self.average = ParameterAverage(self.g_params, config.ema) if config.ema and self.opt_g else None
        self.g_history: list[float] = []
        self.d_history: list[float] = []
        self.evaluations: list[dict[str, float]] = []
        # Data-parallel (torchrun): both players start from rank 0's weights, every rank draws its
        # own noise, and each player's gradients are averaged over ranks before its step.
        self.data_parallel = distributed.is_distributed()
        if self.data_parallel:
            distributed.broadcast_parameters(self.g_params + self.d_params)
            torch.manual_seed(torch.initial_seed() + distributed.rank())

    def _synchronise(self, loss: torch.Tensor, params) -> float:
        value = float(loss.detach())
        if self.data_parallel:
            distributed.average_gradients(params)
            value = distributed.average_value(value)
        return value

    def _pack(self, x: torch.Tensor) -> torch.Tensor:
        m = self.config.pack
        rows = x.shape[0] - x.shape[0] % m
        return x[:rows].reshape(rows // m, -1)  # (B/m, m·D)

    def _guard(self, value: float, params, player: str, step: int) -> None:
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"Expected a finite {player} loss, but got {value} at step {step}; both players keep "
                "their last finite parameters (error.fit). Lower lr_g/lr_d or standardise the data."
            )
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not math.isfinite(float(torch.nn.utils.get_total_norm(grads))):
            raise NonFiniteLossError(
                f"Expected finite {player} gradients, but got NaN/inf at step {step}; both players "
                "keep their last finite parameters (error.fit). Lower lr_g/lr_d or standardise the data."
            )

    def _critic_step(self, real: torch.Tensor, step: int) -> None:
        cfg = self.config
        with torch.no_grad():
            fake = self.generator.rsample(real.shape[0])
        real_p, fake_p = self._pack(real), self._pack(fake)
        if cfg.r1_weight > 0:
            real_p = real_p.detach().requires_grad_(True)
        v_real = self.critic(real_p).squeeze(-1)
        loss = self.critic_loss(v_real, self.critic(fake_p).squeeze(-1))
        if cfg.loss == "wgan_gp":
            loss = loss + gradient_penalty(self.critic, real_p.detach(), fake_p, cfg.gp_weight)
        if cfg.r1_weight > 0:
            loss = loss + r1_penalty(v_real, real_p, cfg.r1_weight)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        value = self._synchronise(loss, self.d_params)
        self._guard(value, self.d_params, "critic", step)
        self.opt_d.step()
        if cfg.loss == "wgan":
            with torch.no_grad():
                for p in self.d_params:
                    p.clamp_(-cfg.clip_value, cfg.clip_value)
        self.d_history.append(value)

    def _generator_step(self, batch: int, step: int) -> None:
        self.critic.requires_grad_(False)
        try:
            loss = self.generator_loss(self.critic(self._pack(self.generator.rsample(batch))).squeeze(-1))
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
        finally:
            self.critic.requires_grad_(True)
        value = self._synchronise(loss, self.g_params)
        self._guard(value, self.g_params, "generator", step)
        self.opt_g.step()
        if self.average is not None:
            self.average.update()
        self.g_history.append(value)

    def state(self, step: int, batches: Minibatches) -> dict:
        """Everything the game's future depends on, after ``step`` complete generator steps."""
        return {
            "step": step,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "opt_g": self.opt_g.state_dict() if self.opt_g is not None else None,
            "opt_d": self.opt_d.state_dict(),
            "schedules": [schedule.state_dict() for schedule in self.schedules],
            "average": self.average.state_dict() if self.average is not None else None,
            "rng": pyro.util.get_rng_state(),
            "batches": batches.generator.get_state(),
            "g_history": self.g_history,
            "d_history": self.d_history,
            "evaluations": self.evaluations,
        }

    def restore(self, path, batches: Minibatches) -> int:
        saved = read_checkpoint(path, "adversarial")
        try:
            self.generator.load_state_dict(saved["generator"])
            self.critic.load_state_dict(saved["critic"])
        except RuntimeError as err:
            raise OptionError(
                f"Expected a checkpoint of this generator and critic, but {str(path)!r} holds others "
                f"({str(err).splitlines()[0]}); resume with the same model and options."
            ) from None
        if (
            (saved["opt_g"] is None) != (self.opt_g is None)
            or len(saved["schedules"]) != len(self.schedules)
            or (saved.get("average") is None) != (self.average is None)
        ):
            raise OptionError(
                f"Expected the options of the run saved in {str(path)!r} (lr_g, lr_schedule, ema), but "
                "they differ."
            )
        if self.opt_g is not None:
            self.opt_g.load_state_dict(saved["opt_g"])
        self.opt_d.load_state_dict(saved["opt_d"])
        for schedule, state in zip(self.schedules, saved["schedules"]):
            schedule.load_state_dict(state)
        if self.average is not None:
            self.average.load_state_dict(saved["average"])
        pyro.util.set_rng_state(saved["rng"])
        batches.generator.set_state(saved["batches"])
        self.g_history, self.d_history = list(saved["g_history"]), list(saved["d_history"])
        self.evaluations = list(saved["evaluations"])
        return saved["step"]

    def run(self, batches: Minibatches) -> bool:
        """Train for ``config.steps`` generator steps; return True when interrupted (Ctrl-C)."""
        cfg = self.config
        first = self.restore(cfg.resume, batches) if cfg.resume is not None else 0
        saving = cfg.checkpoint is not None and distributed.is_main()

        def save(step: int) -> None:
            write_checkpoint(cfg.checkpoint, "adversarial", self.state(step, batches))

        if saving and first == 0:
            save(0)  # so a run cut short before its first periodic save can still resume
        done, in_step = first, False  # generator steps completed; a step under way
        bar = tqdm(
            range(first, cfg.steps),
            desc=f"adversarial {cfg.loss}",
            disable=not cfg.progress,
            leave=False,
            initial=first,
            total=cfg.steps,
        )
        try:
            for step in bar:
                in_step = True
                for _ in range(cfg.n_critic):
                    real = batches.next()[0]
                    self._critic_step(real, step)
                if self.opt_g is not None:  # lr_g = 0: a fixed generator, the critic learns a density ratio
                    self._generator_step(real.shape[0], step)
                for schedule in self.schedules:
                    schedule.step()
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                    self._evaluate(step, bar)
                done, in_step = step + 1, False
                if saving and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                    save(done)
        except KeyboardInterrupt:
            if saving and not in_step:  # between steps: this state is complete
                save(done)
            return True
        finally:
            bar.close()
        return False

    def finish(self) -> dict[str, torch.Tensor] | None:
        """Put the averaged weights in the generator; return the last iterate's (``None`` without EMA)."""
        if self.average is None:
            return None
        names = {id(p): name for name, p in self.generator.named_parameters()}
        last = {names.get(id(p), str(i)): p.detach().clone() for i, p in enumerate(self.g_params)}
        self.average.copy_to_params()
        return last

    def _evaluate(self, step: int, bar) -> None:
        shown = {"d": f"{self.d_history[-1]:.3g}"}
        if self.g_history:
            shown["g"] = f"{self.g_history[-1]:.3g}"
        if self.evaluate is not None:
            averaged = self.average.applied() if self.average is not None else contextlib.nullcontext()
            with torch.no_grad(), averaged:  # judge the generator the fit will return
                scores = {k: float(v) for k, v in dict(self.evaluate(self.generator)).items()}
            self.evaluations.append({"step": step + 1, **scores})
            shown.update({k: f"{v:.3g}" for k, v in scores.items()})
        bar.set_postfix(shown)
