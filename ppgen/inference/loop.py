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
from pyro import poutine
from tqdm.auto import tqdm

from ppgen.core import DATA_PLATE, in_data_plate
from ppgen.errors import NonFiniteLossError, OptionError
from ppgen.inference import distributed
from ppgen.inference.checkpoints import (
    check_checkpoint_options,
    check_shapes,
    read_checkpoint,
    write_checkpoint,
)
from ppgen.inference.validation import Validation

__all__ = [
    "TrainConfig",
    "Minibatches",
    "train",
    "make_optimizer",
    "write_checkpoint",
    "read_checkpoint",
    "check_checkpoint_options",
    "training_mode",
]

OPTIMIZERS = ("adam", "clipped_adam", "sgd")


class ScaleData(poutine.messenger.Messenger):
    """Scale every site inside the units' plate by ``factor`` (= N / batch size).

    Minibatching then gives an unbiased estimate of the full-data objective while the
    global sites (priors) are counted once — for any story, including users' programs.
    """

    def __init__(self, factor: float, plate: str | None = DATA_PLATE):
        super().__init__()
        self.factor = factor
        self.plate = plate

    def _process_message(self, msg):
        if in_data_plate(msg, self.plate):
            msg["scale"] = msg["scale"] * self.factor


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
    check_every: int = 50
    clip_norm: float = 10.0
    progress: bool = True
    checkpoint: str | os.PathLike | None = None  # write the training state here (see module doc)
    checkpoint_every: int = 100
    resume: str | os.PathLike | None = None  # continue the run saved in this checkpoint

    def __post_init__(self):
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


class Minibatches:
    """Random minibatches of ``x`` and its per-row covariates, drawn with a seeded generator.

    Yields ``(x_batch, covariates_batch, scale)`` where ``scale = N / batch`` is what the
    data plate's log-likelihood terms must be multiplied by.

    Under ``torch.distributed`` (see :mod:`ppgen.inference.distributed`) each rank keeps only its
    shard of the rows and ``scale = world_size * n_shard / batch``, so the average over
    ranks of the per-rank losses (and gradients) equals the single-process objective.
    """

    def __init__(self, x: torch.Tensor, covariates: dict, batch_size: int | None, seed: int | None):
        self.weight = 1.0
        seed = 0 if seed is None else seed
        if distributed.is_distributed():
            total, world = x.shape[0], distributed.world_size()
            idx = distributed.shard_indices(total, distributed.rank(), world).to(x.device)
            covariates = _rows(covariates, idx, total)
            x = x[idx]
            self.weight = float(world)  # (1/W) Σ_r W·sum_r = the full-data sum, any shard sizes
            seed += distributed.rank()
        self.x, self.covariates = x, covariates
        self.n = x.shape[0]
        self.batch_size = None if batch_size is None or batch_size >= self.n else batch_size
        self.generator = torch.Generator().manual_seed(seed)
        #: the rows of the last batch (None while batches are the whole data)
        self.indices: torch.Tensor | None = None

    def next(self) -> tuple[torch.Tensor, dict, float]:
        if self.batch_size is None:
            return self.x, self.covariates, self.weight
        idx = torch.randperm(self.n, generator=self.generator)[: self.batch_size].to(self.x.device)
        self.indices = idx
        cov = _rows(self.covariates, idx, self.n)
        return self.x[idx], cov, self.n / self.batch_size * self.weight

    def scaled(self, scale: float, plate: str | None = DATA_PLATE):
        """Scale the terms of the units' plate by ``scale`` (a no-op at 1)."""
        return ScaleData(scale, plate) if scale != 1.0 else contextlib.nullcontext()


def _rows(covariates: dict, idx: torch.Tensor, n: int) -> dict:
    """Per-row covariates (tensors with ``n`` rows) indexed by ``idx``; others unchanged."""
    return {
        k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
        for k, v in covariates.items()
    }


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
    (relative) for ``patience`` checks. A non-finite loss or gradient raises
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
            loss = loss_fn()
            if step == 0:
                # The first step validated every distribution's arguments; later ones skip it
                # (a third of a step's cost on small models).
                unvalidated.enter_context(pyro.validation_enabled(False))
            value = float(loss.detach())
            if data_parallel:
                value = distributed.average_value(value)  # same value, same stopping, on every rank
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"Expected a finite loss, but got {value} at step {step}; the model keeps its last "
                    "finite parameters. Lower lr, standardise the data, or check the data for outliers."
                )
            loss.backward()
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
                if ((step + 1) % config.check_every == 0 or last) and check_validation(step + 1):
                    state["converged"] = True
                    break
            elif (step + 1) % config.check_every == 0:
                bar.set_postfix(loss=f"{smoothed:.4g}")
                best = state["best"]
                if not math.isfinite(best) or smoothed < best - config.tol * max(1.0, abs(best)):
                    state["best"], state["stale"] = smoothed, 0
                else:
                    state["stale"] += 1
                    if state["stale"] >= config.patience:
                        state["converged"] = True
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
