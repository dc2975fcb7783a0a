"""The one training loop behind every gradient backend (mle, svi, map; adversarial
builds its two-player step on the same pieces).

A torch optimiser over the given parameters, minibatches drawn with a seeded
generator, a progress bar, early stopping on a plateau of the smoothed loss, and a
guard that stops on a non-finite loss or gradient *before* the step, so the model
keeps its last finite parameters.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyro
import torch
from tqdm.auto import tqdm

from ppgen import distributed
from ppgen.core import ScaleData
from ppgen.errors import NonFiniteLossError, OptionError

__all__ = ["TrainConfig", "Minibatches", "train", "make_optimizer"]

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
    check_every: int = 50
    clip_norm: float = 10.0
    progress: bool = True

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


def make_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9)
    return torch.optim.Adam(params, lr=config.lr)


class Minibatches:
    """Random minibatches of ``x`` and its per-row covariates, drawn with a seeded generator.

    Yields ``(x_batch, covariates_batch, scale)`` where ``scale = N / batch`` is what the
    data plate's log-likelihood terms must be multiplied by.

    Under ``torch.distributed`` (see :mod:`ppgen.distributed`) each rank keeps only its
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

    def next(self) -> tuple[torch.Tensor, dict, float]:
        if self.batch_size is None:
            return self.x, self.covariates, self.weight
        idx = torch.randperm(self.n, generator=self.generator)[: self.batch_size].to(self.x.device)
        cov = _rows(self.covariates, idx, self.n)
        return self.x[idx], cov, self.n / self.batch_size * self.weight

    def scaled(self, scale: float):
        return ScaleData(scale) if scale != 1.0 else contextlib.nullcontext()


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
) -> tuple[list[float], bool]:
    """Minimise ``loss_fn()`` over ``params``; return ``(history, converged)``.

    ``converged`` is True when the smoothed loss stopped improving by more than ``tol``
    (relative) for ``patience`` checks. A non-finite loss or gradient raises
    :class:`NonFiniteLossError` without taking the step; Ctrl-C stops early and returns
    the run so far with ``converged=False``.

    Under ``torch.distributed`` the parameters start from rank 0's values, and after each
    ``backward()`` the gradients (and the loss) are averaged over ranks, so every rank
    takes the same step and stops at the same time.
    """
    if not params:
        raise OptionError("Expected a model with parameters to optimise, but it has none.")
    optimizer = make_optimizer(params, config)
    schedule = None
    if config.lr_decay < 1:
        gamma = config.lr_decay ** (1 / config.num_steps)
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    history: list[float] = []
    smoothed, best, stale, converged = None, math.inf, 0, False
    data_parallel = distributed.is_distributed()
    if data_parallel:
        distributed.broadcast_parameters(params)
    bar = tqdm(
        range(config.num_steps),
        desc=desc,
        disable=not config.progress or not distributed.is_main(),
        leave=False,
    )
    try:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            if step == 0:
                loss = loss_fn()  # the first step validates every distribution's arguments...
            else:
                with pyro.validation_enabled(False):  # ...later ones skip it (a third of a step's cost)
                    loss = loss_fn()
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
            grads = [p.grad for p in params if p.grad is not None]
            if grads and not bool(torch.stack([g.isfinite().all() for g in grads]).all()):
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
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            if (step + 1) % config.check_every == 0:
                bar.set_postfix(loss=f"{smoothed:.4g}")
                if not math.isfinite(best) or smoothed < best - config.tol * max(1.0, abs(best)):
                    best, stale = smoothed, 0
                else:
                    stale += 1
                    if stale >= config.patience:
                        converged = True
                        break
    except KeyboardInterrupt:
        converged = False
    finally:
        bar.close()
    return history, converged
