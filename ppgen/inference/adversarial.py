"""Adversarial inference: a critic (the "adversarial guide") against a generator.

The generator is any model that can draw *differentiable* samples — an implicit
``ImplicitModel`` (``x = g(z)``) or an explicit model with a reparameterised ``rsample(n)``
(a Gaussian ``loc + L eps``, a flow). The critic ``V`` scores real vs generated samples;
the players alternate on the two halves of one loss:

==================  ==========================================  ==================================
loss                critic minimises                            generator minimises
==================  ==========================================  ==================================
minimax             −E_P log σ(V) − E_Q log(1 − σ(V))           E_Q log(1 − σ(V))  (saturates)
non_saturating      same                                        −E_Q log σ(V)
wgan                E_Q V − E_P V, weights clipped              −E_Q V
wgan_gp             E_Q V − E_P V + λ E(‖∇V(x̂)‖ − 1)²           −E_Q V
hinge               E_P relu(1 − V) + E_Q relu(1 + V)           −E_Q V
f:<name>            −(E_P g_f(V) − E_Q f*(g_f(V)))              −E_Q f*(g_f(V))  (minimises D_f)
==================  ==========================================  ==================================

``pack=m`` lets the critic judge ``m`` samples at once (PacGAN), which penalises mode
collapse. Same conventions as :mod:`ppgen.inference.loop`: seeded minibatches, a tqdm bar,
a non-finite guard *before* each step (the players keep their last finite parameters),
Ctrl-C stops early and keeps the run so far. ``checkpoint=PATH`` saves the whole game at
the start, every ``checkpoint_every`` generator steps, at the end and at a Ctrl-C that lands
between steps (one that cuts a step short leaves the last complete save); ``resume=PATH``
continues from it, bit for bit.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ppgen import distributed, divergences
from ppgen.core import GenerativeModel
from ppgen.errors import DataError, MethodError, NonFiniteLossError, OptionError
from ppgen.inference.loop import Minibatches, check_checkpoint_options, read_checkpoint, write_checkpoint
from ppgen.results import Fit, check_options

__all__ = [
    "Adversarial",
    "AdversarialConfig",
    "LOSSES",
    "RECIPES",
    "TOY_2D",
    "TOY_2D_CRITIC",
    "toy_2d_recipe",
    "gradient_penalty",
    "player_losses",
    "log_density_ratio",
]

LOSSES = ("minimax", "non_saturating", "wgan", "wgan_gp", "hinge") + tuple(
    f"f:{n}" for n in divergences.names()
)

#: Published defaults: DCGAN (Radford et al. 2016) for the classifier losses, WGAN (Arjovsky
#: et al. 2017), WGAN-GP (Gulrajani et al. 2017, toy-data script), SNGAN hinge (Miyato et al. 2018).
RECIPES: dict[str, dict[str, Any]] = {
    "classifier": dict(n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    "wgan": dict(n_critic=5, lr_g=5e-5, lr_d=5e-5, betas=None, clip_value=0.01),
    "wgan_gp": dict(n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9), gp_weight=10.0),
    "hinge": dict(n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
}


#: The recipe measured best for 2-D toy mixtures (benchmarks/gan_modes.py, shared 2-CPU machine,
#: one thread): the published learning rates are too timid for a few thousand steps; a larger
#: rate annealed linearly to 0 sharpens the modes. Non-saturating loss, 3×256 MLPs, seed 0:
#: 25/25 grid modes at 94% high quality with 8,000 steps (22/25 at 73% with 4,000; 21/25 at 14%
#: with the DCGAN defaults) and 8/8 ring modes at 95% with 4,000 steps.
#: Use as ``ppgen.fit(g, x, method="adversarial", loss="non_saturating", **TOY_2D)``.
TOY_2D: dict[str, Any] = dict(
    steps=8000, batch_size=256, lr_g=1e-3, lr_d=1e-3, n_critic=1, lr_schedule="linear"
)

#: The same idea for the critic losses, measured on the ring (seed 0, 2,000 generator steps):
#: WGAN-GP and hinge need several critic steps per generator step (published n_critic = 5,
#: Adam betas (0.5, 0.9)) but TOY_2D's larger, annealed rate — WGAN-GP 8/8 modes at 85 % high
#: quality, hinge (spectral norm) 8/8 at 79 %; with TOY_2D's n_critic = 1 both cover almost no
#: mode, with the published rate 1e-4 WGAN-GP found none in those steps.
TOY_2D_CRITIC: dict[str, Any] = dict(
    steps=2000, batch_size=256, lr_g=1e-3, lr_d=1e-3, n_critic=5, betas=(0.5, 0.9), lr_schedule="linear"
)


def toy_2d_recipe(loss: str) -> dict[str, Any]:
    """The measured 2-D recipe for ``loss``: :data:`TOY_2D` for the classifier and f-GAN losses,
    :data:`TOY_2D_CRITIC` for ``wgan_gp`` and ``hinge`` (``wgan`` keeps its published recipe)."""
    if loss not in LOSSES:
        raise OptionError(f"Expected loss in {list(LOSSES)}, but got {loss!r}.")
    if loss in ("wgan_gp", "hinge"):
        return dict(TOY_2D_CRITIC)
    if loss == "wgan":
        return dict(RECIPES["wgan"], steps=TOY_2D["steps"], batch_size=TOY_2D["batch_size"])
    return dict(TOY_2D)


@dataclass
class AdversarialConfig:
    """Options of the two-player loop; ``None`` means "the loss's published default"."""

    loss: str = "non_saturating"
    steps: int = 5000
    batch_size: int = 256
    n_critic: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    betas: tuple[float, float] | None = None
    gp_weight: float | None = None
    clip_value: float | None = None
    pack: int = 1
    lr_schedule: str = "constant"
    eval_every: int = 500
    progress: bool = True
    checkpoint: str | os.PathLike | None = None  # write the two players' training state here
    checkpoint_every: int = 500
    resume: str | os.PathLike | None = None  # continue the run saved in this checkpoint

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise OptionError(f"Expected loss in {list(LOSSES)}, but got {self.loss!r}.")
        recipe = RECIPES.get(self.loss, RECIPES["classifier"])
        for key, value in recipe.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        self.gp_weight = 10.0 if self.gp_weight is None else self.gp_weight
        self.clip_value = 0.01 if self.clip_value is None else self.clip_value
        for key in ("steps", "batch_size", "n_critic", "pack", "eval_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"Expected {key} to be a positive integer, but got {value!r}.")
        if not self.lr_g >= 0:
            raise OptionError(f"Expected lr_g >= 0 (0 holds the generator fixed), but got {self.lr_g!r}.")
        for key in ("lr_d", "clip_value"):
            if not getattr(self, key) > 0:
                raise OptionError(f"Expected {key} > 0, but got {getattr(self, key)!r}.")
        if not self.gp_weight >= 0:
            raise OptionError(f"Expected gp_weight >= 0, but got {self.gp_weight!r}.")
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise OptionError(f"Expected betas as two numbers in [0, 1), but got {self.betas!r}.")
        if self.lr_schedule not in ("constant", "linear"):
            raise OptionError(
                f"Expected lr_schedule in ('constant', 'linear'), but got {self.lr_schedule!r}."
            )
        check_checkpoint_options(self.checkpoint, self.checkpoint_every, self.resume)
        if self.batch_size % self.pack:
            raise OptionError(
                f"Expected batch_size divisible by pack, but got batch_size={self.batch_size}, "
                f"pack={self.pack}; e.g. batch_size={self.pack * max(1, self.batch_size // self.pack)}."
            )


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


def _default_critic(loss: str) -> torch.nn.Module:
    """3×256 LeakyReLU MLP built on first use; spectral norm for the hinge loss (SNGAN)."""
    return _LazyMLP(spectral_norm=loss == "hinge")


class _LazyMLP(torch.nn.Module):
    def __init__(self, hidden=(256, 256, 256), spectral_norm=False):
        super().__init__()
        self.hidden, self.spectral_norm, self.net = hidden, spectral_norm, None

    def build(self, in_features: int, dtype: torch.dtype | None = None):
        sizes = (in_features, *self.hidden, 1)
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(a, b)
            layers.append(torch.nn.utils.parametrizations.spectral_norm(lin) if self.spectral_norm else lin)
            if i < len(sizes) - 2:
                layers.append(torch.nn.LeakyReLU(0.2))
        self.net = torch.nn.Sequential(*layers).to(dtype)
        return self

    def forward(self, x):
        return self.net(x)


def _optimizer(params, lr: float, betas) -> torch.optim.Optimizer:
    params = list(params)
    if betas is None:  # the original WGAN recipe: no momentum
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas))


class Adversarial:
    """``method="adversarial"``: fit a generator by a two-player game with a critic.

    Options: ``loss`` (see :data:`LOSSES`), ``critic`` (any ``nn.Module`` mapping
    ``(N, pack·D) -> (N, 1)``; default a 3×256 MLP), ``steps``, ``batch_size``, ``n_critic``,
    ``lr_g``, ``lr_d`` (``lr_g=0`` holds the generator fixed), ``betas`` (``None`` = RMSprop),
    ``lr_schedule`` (``"constant"`` or ``"linear"`` decay to 0), ``gp_weight``, ``clip_value``, ``pack``,
    ``evaluate`` (``generator -> {name: float}``, run every ``eval_every`` steps and shown on
    the progress bar), ``progress``, ``seed``, ``checkpoint``/``checkpoint_every``/``resume``
    (both players, both optimisers, schedules, random states and histories; a resumed run
    equals the uninterrupted one bit for bit). ``fit.history`` is the generator loss per step,
    ``fit.extras["critic_history"]`` the critic's; ``fit.critic`` is the trained critic.
    """

    #: Trains data-parallel under torchrun (see :class:`_TwoPlayerLoop`).
    data_parallel = True

    name = "adversarial"
    options = set(AdversarialConfig.__dataclass_fields__) | {"critic", "evaluate", "seed"}

    def check(self, model: GenerativeModel) -> None:
        if callable(getattr(model, "check_generator", None)):  # a program: its observed site is the sample
            if model.structure is not None:
                model.check_generator()
            return
        if not callable(getattr(model, "rsample", None)):
            raise MethodError(
                f"Expected a generator with a reparameterised rsample(n) for method='adversarial', but "
                f"{type(model).__name__} has none; use an ImplicitModel such as MLPGenerator or an explicit "
                "model whose samples are differentiable (e.g. Gaussian)."
            )
        if model.is_bayesian:
            raise MethodError(
                f"Expected point estimates for method='adversarial', but {type(model).__name__} has "
                f"priors on {model.prior_names}; use method='svi' or 'mcmc'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if callable(getattr(model, "training_rows", None)):  # a program: the critic sees its observed site
            x, covariates = model.training_rows(x, covariates), {}
        if covariates:
            raise OptionError(
                f"Expected data without covariates for method='adversarial', but got {sorted(covariates)}."
            )
        config = AdversarialConfig(
            **{k: v for k, v in options.items() if k in AdversarialConfig.__dataclass_fields__}
        )
        gen_params = [p for p in model.parameters() if p.requires_grad]
        if not gen_params and config.lr_g > 0:
            raise MethodError(
                f"Expected a generator with parameters to train, but {type(model).__name__} has none."
            )
        with torch.no_grad():
            probe = model.rsample(config.pack)
        if probe.shape[1:] != x.shape[1:]:
            raise DataError(
                f"Expected data rows of shape {tuple(probe.shape[1:])} (what the generator draws), but got "
                f"{tuple(x.shape[1:])}; build the generator for this data dimension."
            )
        x = x.to(probe.dtype)
        critic = (
            copy.deepcopy(options.get("critic"))
            if options.get("critic") is not None
            else _default_critic(config.loss)
        )
        if not isinstance(critic, torch.nn.Module):
            raise OptionError(f"Expected critic to be a torch.nn.Module, but got {type(critic).__name__}.")
        width = config.pack * int(math.prod(x.shape[1:]))
        if callable(getattr(critic, "build", None)):
            critic.build(width, x.dtype)
        critic.to(x.dtype)
        loop = _TwoPlayerLoop(model, critic, config, options.get("evaluate"))
        batches = Minibatches(x, {}, config.batch_size, options.get("seed"))
        start = time.perf_counter()
        error = None
        try:
            interrupted = loop.run(batches)
        except NonFiniteLossError as err:
            error, interrupted = err, True
        fit = Fit(
            model=model,
            method=self.name,
            params=model.point_estimates(),
            history=loop.g_history,
            converged=not interrupted,
            elapsed=time.perf_counter() - start,
            options={k: v for k, v in options.items() if k not in ("critic", "evaluate")},
            critic=critic,
            n_train=x.shape[0],
            extras={
                "critic_history": loop.d_history,
                "evaluations": loop.evaluations,
                "config": asdict(config),
            },
        )
        if error is not None:
            error.fit = fit
            raise error
        return fit


class _TwoPlayerLoop:
    """``n_critic`` critic steps, then one generator step; history of both losses."""

    def __init__(self, generator, critic, config: AdversarialConfig, evaluate: Callable | None):
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
        loss = self.critic_loss(self.critic(real_p).squeeze(-1), self.critic(fake_p).squeeze(-1))
        if cfg.loss == "wgan_gp":
            loss = loss + gradient_penalty(self.critic, real_p, fake_p, cfg.gp_weight)
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
        if (saved["opt_g"] is None) != (self.opt_g is None) or len(saved["schedules"]) != len(self.schedules):
            raise OptionError(
                f"Expected the options of the run saved in {str(path)!r} (lr_g, lr_schedule), but they "
                "differ."
            )
        if self.opt_g is not None:
            self.opt_g.load_state_dict(saved["opt_g"])
        self.opt_d.load_state_dict(saved["opt_d"])
        for schedule, state in zip(self.schedules, saved["schedules"]):
            schedule.load_state_dict(state)
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

    def _evaluate(self, step: int, bar) -> None:
        shown = {"d": f"{self.d_history[-1]:.3g}"}
        if self.g_history:
            shown["g"] = f"{self.g_history[-1]:.3g}"
        if self.evaluate is not None:
            with torch.no_grad():
                scores = {k: float(v) for k, v in dict(self.evaluate(self.generator)).items()}
            self.evaluations.append({"step": step + 1, **scores})
            shown.update({k: f"{v:.3g}" for k, v in scores.items()})
        bar.set_postfix(shown)


def log_density_ratio(fit: Fit, x: torch.Tensor) -> torch.Tensor:
    """The trained critic's estimate of ``log p_data(x) / p_θ(x)``, shape ``(N,)``.

    At the optimum a classifier critic's logit is the log ratio (``σ(V) = p/(p + p_θ)``);
    for ``f:kl`` the optimal ``T = 1 + log(p/p_θ)``. Needs ``pack=1``.
    """
    loss, pack = fit.extras["config"]["loss"], fit.extras["config"]["pack"]
    if pack != 1:
        raise OptionError(f"Expected a fit with pack=1 for a per-sample density ratio, but got pack={pack}.")
    ratio_losses = ("minimax", "non_saturating", "f:gan", "f:kl")
    if loss not in ratio_losses:
        raise OptionError(
            f"Expected a fit with loss in {ratio_losses} for a density ratio, but got {loss!r}."
        )
    with torch.no_grad():
        v = fit.critic(torch.as_tensor(x, dtype=fit.data.dtype)).squeeze(-1)
    return v - 1 if loss == "f:kl" else v
