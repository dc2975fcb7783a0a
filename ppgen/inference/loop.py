"""The one training loop behind every gradient backend (mle, svi, map; adversarial
builds its two-player step on the same pieces).

A torch optimiser over the given parameters, minibatches drawn with a seeded
generator, a progress bar, early stopping on a plateau of the smoothed loss, and a
guard that stops on a non-finite loss or gradient *before* the step, so the model
keeps its last finite parameters. With a :class:`~ppgen.inference.validation.Validation`
the loop stops on the held-out loss instead and restores the best parameters.

Checkpoints: ``checkpoint=PATH`` writes the parameters, optimiser, learning-rate schedule,
random states (torch/numpy/python and the minibatch generator), step, history and
early-stopping state every ``checkpoint_every`` steps, at the end, and on Ctrl-C;
``resume=PATH`` continues such a run. Interrupted-then-resumed equals uninterrupted, bit for
bit, with the same seed.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyro
import torch
from tqdm.auto import tqdm

from ppgen.errors import NonFiniteLossError, OptionError
from ppgen.inference import distributed
from ppgen.inference.checkpoints import (
    check_checkpoint_options,
    check_shapes,
    read_checkpoint,
    write_checkpoint,
)
from ppgen.inference.minibatches import Minibatches
from ppgen.inference.validation import Validation

__all__ = [
    "TrainConfig",
    "train",
    "make_optimizer",
    "write_checkpoint",
    "read_checkpoint",
    "check_checkpoint_options",
    "training_mode",
    "outside_support",
]

OPTIMIZERS = ("adam", "clipped_adam", "sgd")


@dataclass
class TrainConfig:
    """Options shared by the gradient backends."""

    num_steps: int = 2000
    lr: float = 0.01
    lr_decay: float = 1.0  # the learning rate decays exponentially to lr * lr_decay by num_steps
    optimizer: str = "adam"
    batch_size: int | None = None
    patience: int = 10
    tol: float = 1e-4
    #: Stop on a plateau (of the smoothed loss, or of the held-out loss with validation). Off when the
    #: user names num_steps without patience= (see from_options): a step count means what it says.
    early_stopping: bool = True
    check_every: int = 50
    clip_norm: float = 10.0
    progress: bool = True
    checkpoint: str | os.PathLike | None = None  # write the training state here (see module doc)
    checkpoint_every: int = 100
    resume: str | os.PathLike | None = None  # continue the run saved in this checkpoint

    @classmethod
    def from_options(cls, options: dict, defaults: dict | None = None) -> TrainConfig:
        """The config of a fit's options: an explicit ``num_steps`` runs that many steps unless
        ``patience=`` (or ``early_stopping=True``) asks for early stopping; defaults may stop early."""
        given = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        if "early_stopping" not in given:
            given["early_stopping"] = "num_steps" not in given or "patience" in given
        return cls(**{**(defaults or {}), **given})

    def finished(self, history: list[float], converged: bool) -> bool:
        """The run reached its end (every step, or a plateau): not cut short by Ctrl-C."""
        return converged or len(history) >= self.num_steps

    def stopping(self, history: list[float]) -> dict:
        """What ``fit.extras`` records of the run's length: asked, run, and whether it stopped early."""
        return {
            "num_steps": self.num_steps,
            "steps_run": len(history),
            "early_stopping": self.early_stopping,
            "stopped_early": len(history) < self.num_steps,
        }

    def __post_init__(self):
        if not isinstance(self.early_stopping, bool):
            raise OptionError(
                f"Expected early_stopping to be True or False, but got {self.early_stopping!r}."
            )
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise OptionError(f"Expected num_steps to be a positive integer, but got {self.num_steps!r}.")
        if not self.lr > 0:
            raise OptionError(f"Expected lr > 0, but got {self.lr!r}.")
        if not 0 < self.lr_decay <= 1:
            raise OptionError(f"Expected 0 < lr_decay <= 1, but got {self.lr_decay!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise OptionError(f"Expected optimizer in {OPTIMIZERS}, but got {self.optimizer!r}.")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise OptionError(
                f"Expected batch_size to be a positive integer or None, but got {self.batch_size!r}."
            )
        check_checkpoint_options(self.checkpoint, self.checkpoint_every, self.resume)


@contextlib.contextmanager
def training_mode(*modules: object):
    """``train()`` mode for the ``torch.nn.Module`` among ``modules`` while fitting, ``eval()`` after.

    The fitted model then computes exactly with gradients on too (MADE's dropout is active only
    in train mode); a later fit of it switches train mode back on.
    """
    nets = [m for m in modules if isinstance(m, torch.nn.Module)]
    for net in nets:
        net.train()
    try:
        yield
    finally:
        for net in nets:
            net.eval()


def make_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9)
    # The fused kernel updates every parameter in one call: on a small model's step (a few
    # tensors, a 0.3 ms step) the per-tensor Adam's dozen dispatches each are a sixth of the time.
    fused = all(
        p.dtype in (torch.float32, torch.float64) and p.device.type in ("cpu", "cuda") for p in params
    )
    return torch.optim.Adam(params, lr=config.lr, fused=fused or None)


def train(
    loss_fn: Callable[[], torch.Tensor],
    params: list[torch.nn.Parameter],
    config: TrainConfig,
    *,
    desc: str = "fit",
    on_stop: Callable[[], object] | None = None,
    batches: Minibatches | None = None,
    validation: Validation | None = None,
) -> tuple[list[float], bool]:
    """Minimise ``loss_fn()`` over ``params``; return ``(history, converged)``.

    ``converged`` is True when the smoothed loss stopped improving by more than ``tol``
    (relative) for ``patience`` checks; with ``config.early_stopping`` the run then stops, without it
    every one of ``num_steps`` steps runs. A non-finite loss or gradient raises
    :class:`NonFiniteLossError` without taking the step; Ctrl-C stops early and returns
    the run so far with ``converged=False``.

    With ``config.checkpoint`` the training state is saved every ``checkpoint_every`` steps,
    at the end and on Ctrl-C; with ``config.resume`` the run continues from such a file
    (``batches``: the :class:`Minibatches` whose generator state is saved and restored).

    Under ``torch.distributed`` the parameters start from rank 0's values, and after each
    ``backward()`` the gradients (and the loss) are averaged over ranks, so every rank
    takes the same step and stops at the same time.

    With ``validation`` the held-out loss is scored before the first step and every
    ``check_every`` steps (and after the last); ``converged`` is then True when it stopped
    improving by more than ``tol`` for ``patience`` evaluations, and the parameters of the best
    evaluation are restored at the end (also on Ctrl-C).
    """
    if not params:
        raise OptionError("Expected a model with parameters to optimise, but it has none.")
    optimizer = make_optimizer(params, config)
    schedule = None
    if config.lr_decay < 1:
        gamma = config.lr_decay ** (1 / config.num_steps)
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    history: list[float] = []
    state = {"smoothed": None, "best": math.inf, "stale": 0, "converged": False}
    first = 0
    if config.resume is not None:
        saved = _load_checkpoint(config.resume, params)
        with torch.no_grad():
            for p, value in zip(params, saved["params"]):
                p.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        if schedule is not None and saved["scheduler"] is not None:
            schedule.load_state_dict(saved["scheduler"])
        pyro.util.set_rng_state(saved["rng"])
        if batches is not None and saved["batches"] is not None:
            batches.generator.set_state(saved["batches"])
        history = list(saved["history"])
        state.update(saved["state"])
        if validation is not None and saved.get("validation") is not None:
            validation.load(saved["validation"])
        first = saved["step"]
    data_parallel = distributed.is_distributed()
    if data_parallel:
        distributed.broadcast_parameters(params)
    saving = config.checkpoint is not None and distributed.is_main()
    snapshot = None

    def take_snapshot():  # random states before a step, so an interrupted step is redone exactly
        generator = batches.generator.get_state() if batches is not None else None
        return pyro.util.get_rng_state(), generator

    def save(rng, generator):
        _save_checkpoint(
            config.checkpoint, params, optimizer, schedule, (rng, generator), history, state, validation
        )

    def check_validation(step: int) -> bool:  # score the held-out rows; True when it is time to stop
        if validation is None:
            return False
        value = validation.evaluate(params, step, config.tol)
        smoothed = state["smoothed"]
        train_text = "-" if smoothed is None else f"{smoothed:.4g}"
        bar.set_postfix(loss=train_text, val=f"{value:.4g}", best=f"{validation.best:.4g}")
        return validation.stale >= config.patience

    bar = tqdm(
        range(first, config.num_steps),
        desc=desc,
        disable=not config.progress or not distributed.is_main(),
        leave=False,
        initial=first,
        total=config.num_steps,
    )
    unvalidated = contextlib.ExitStack()
    if first > 0:
        unvalidated.enter_context(pyro.validation_enabled(False))
    try:
        if state["converged"]:
            bar = iter(())  # a resumed run that had already converged: nothing left to do
        elif (
            validation is not None and _evaluation_due(validation, first, config) and check_validation(first)
        ):
            # the starting point is a candidate too (and a resumed run redoes an interrupted evaluation)
            state["converged"] = True
            bar = iter(())
        for step in bar:
            if saving:
                snapshot = take_snapshot()
            optimizer.zero_grad(set_to_none=True)
            loss = _first_loss(loss_fn) if step == 0 else loss_fn()
            if step == 0:
                # The first step validated every distribution's arguments; later ones skip it
                # (a third of a step's cost on small models).
                unvalidated.enter_context(pyro.validation_enabled(False))
            value = float(loss.detach())
            if data_parallel:
                value = distributed.average_value(value)  # same value, same stopping, on every rank
            if not math.isfinite(value):
                advice = (
                    "The starting values give the data zero density (Pyro's sir_hmc.py continuous model "
                    "from its prior median): pass init={site: value} where the data are possible."
                    if step == 0
                    else "Lower lr, standardise the data, or check the data for outliers."
                )
                raise NonFiniteLossError(
                    f"Expected a finite loss, but got {value} at step {step}; the model keeps its last "
                    f"finite parameters. {advice}"
                )
            _backward(loss)
            if data_parallel:
                distributed.average_gradients(params)  # gradient all-reduce (mean over ranks)
            if not _finite_gradients(params):
                raise NonFiniteLossError(
                    f"Expected finite gradients, but got NaN/inf at step {step}; the model keeps its last "
                    "finite parameters. Lower lr or standardise the data."
                )
            if config.optimizer == "clipped_adam":
                torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            history.append(value)
            smoothed = state["smoothed"]
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            state["smoothed"] = smoothed
            if validation is not None:
                last = step + 1 == config.num_steps
                if (step + 1) % config.check_every == 0 or last:
                    state["converged"] = check_validation(step + 1)
                    if state["converged"] and config.early_stopping:
                        break
            elif (step + 1) % config.check_every == 0:
                bar.set_postfix(loss=f"{smoothed:.4g}")
                best = state["best"]
                if not math.isfinite(best) or smoothed < best - config.tol * max(1.0, abs(best)):
                    state["best"], state["stale"] = smoothed, 0
                else:
                    state["stale"] += 1
                state["converged"] = state["stale"] >= config.patience
                if state["converged"] and config.early_stopping:
                    break
            if saving and (step + 1) % config.checkpoint_every == 0:
                save(*take_snapshot())
        if saving:
            save(*take_snapshot())
    except KeyboardInterrupt:
        state["converged"] = False
        if saving and snapshot is not None:
            # Parameters are those of the last completed step (the interrupted one never
            # reached optimizer.step()); its random draws are rewound so resume redoes it.
            if len(history) == step:
                save(*snapshot)
            else:  # interrupted after the step completed: the current state is that step's end
                save(*take_snapshot())
    finally:
        if validation is not None:
            validation.restore(params)
        unvalidated.close()
        if hasattr(bar, "close"):
            bar.close()
    return history, state["converged"]


def outside_support(error: ValueError) -> bool:
    """Pyro's validation refused a value outside its distribution's support (the start's fault when
    it happens before any step)."""
    return "support" in str(error)


def _first_loss(loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The first step's loss, run with Pyro's validation on: data outside the support at the starting
    values is the start's fault, said as such (not a raw ValueError from inside the program)."""
    try:
        return loss_fn()
    except ValueError as error:
        if not outside_support(error):
            raise
        site = next((line for line in str(error).splitlines() if "at site" in line), "").strip()
        raise NonFiniteLossError(
            "Expected a finite loss, but got -inf at step 0: the starting values put the data outside "
            f"their support ({site or error}). Pass init={{site: value}} where the data are possible."
        ) from error


def _backward(loss: torch.Tensor) -> None:
    # retain_graph: a program may cache a tensor built from a module's parameters at its first run and
    # reuse it (Pyro's ekf tutorial: NcvContinuous caches its process noise); freeing the graph at each
    # backward would leave the next step a dead graph, which Pyro's notebook answers with
    # Trace_ELBO(retain_graph=True). Keeping it costs nothing otherwise: the graph goes with ``loss``.
    loss.backward(retain_graph=True)


def _evaluation_due(validation: Validation, step: int, config: TrainConfig) -> bool:
    """Whether the held-out rows are to be scored after ``step`` steps and have not been yet."""
    scheduled = step == 0 or step % config.check_every == 0 or step == config.num_steps
    return scheduled and (not validation.steps or validation.steps[-1] < step)


def _finite_gradients(params: list[torch.Tensor]) -> bool:
    """True when every gradient is finite: one fused norm, exact check only if that overflows."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    if math.isfinite(float(torch.stack(torch._foreach_norm(grads)).sum())):
        return True
    return all(bool(g.isfinite().all()) for g in grads)  # the norm may overflow on finite values


def _save_checkpoint(
    path, params, optimizer, schedule, random_states, history, state, validation=None
) -> None:
    payload = {
        "step": len(history),
        "params": [p.detach().cpu().clone() for p in params],
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict() if schedule is not None else None,
        "rng": random_states[0],
        "batches": random_states[1],
        "history": list(history),
        "state": dict(state),
        "validation": validation.state() if validation is not None else None,
    }
    write_checkpoint(path, "loop", payload)


def _load_checkpoint(path, params) -> dict:
    saved = read_checkpoint(path, "loop")
    check_shapes(path, params, saved["params"])
    return saved
