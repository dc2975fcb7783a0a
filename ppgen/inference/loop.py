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

import torch
from tqdm.auto import tqdm

from ppgen.core import ScaleData
from ppgen.errors import NonFiniteLossError, OptionError

__all__ = ["TrainConfig", "Minibatches", "train", "make_optimizer"]

OPTIMIZERS = ("adam", "clipped_adam", "sgd")


@dataclass
class TrainConfig:
    """Options shared by the gradient backends."""

    num_steps: int = 2000
    lr: float = 0.01
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
    """

    def __init__(self, x: torch.Tensor, covariates: dict, batch_size: int | None, seed: int | None):
        self.x, self.covariates = x, covariates
        self.n = x.shape[0]
        self.batch_size = None if batch_size is None or batch_size >= self.n else batch_size
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)

    def next(self) -> tuple[torch.Tensor, dict, float]:
        if self.batch_size is None:
            return self.x, self.covariates, 1.0
        idx = torch.randperm(self.n, generator=self.generator)[: self.batch_size].to(self.x.device)
        cov = {
            k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == self.n else v
            for k, v in self.covariates.items()
        }
        return self.x[idx], cov, self.n / self.batch_size

    def scaled(self, scale: float):
        return ScaleData(scale) if scale != 1.0 else contextlib.nullcontext()


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
    """
    if not params:
        raise OptionError("Expected a model with parameters to optimise, but it has none.")
    optimizer = make_optimizer(params, config)
    history: list[float] = []
    smoothed, best, stale, converged = None, math.inf, 0, False
    bar = tqdm(range(config.num_steps), desc=desc, disable=not config.progress, leave=False)
    try:
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"Expected a finite loss, but got {value} at step {step}; the model keeps its last "
                    "finite parameters. Lower lr, standardise the data, or check the data for outliers."
                )
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            if grads and not all(torch.isfinite(g).all() for g in grads):
                raise NonFiniteLossError(
                    f"Expected finite gradients, but got NaN/inf at step {step}; the model keeps its last "
                    "finite parameters. Lower lr or standardise the data."
                )
            if config.optimizer == "clipped_adam":
                torch.nn.utils.clip_grad_norm_(params, config.clip_norm)
            optimizer.step()
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
