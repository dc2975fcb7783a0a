"""Early stopping on held-out rows for the gradient backends (``mle``, ``svi``).

``validation=`` takes a fraction in ``(0, 1)`` of the training rows to hold out (a seeded
random split: the same ``seed`` holds out the same rows), held-out data of its own (a tensor,
or ``{"x": ..., **covariates}`` like the training data), or ``None`` (no validation: the loop
runs exactly as without this module). Neural models (MADE, CharRNN, Flow, VAE,
ConditionalVAE) declare ``default_validation = 0.1``; every other model defaults to ``None``.

The loop scores the held-out loss (the training objective per row, without gradients,
dropout off, the same random draws at every evaluation) before training and every
``check_every`` steps, stops after ``patience`` evaluations without a relative improvement
of ``tol``, and restores the parameters of the best evaluation. The fit records
``extras["validation_history"]`` (one loss per evaluation), ``extras["validation_steps"]``
(the optimiser steps taken before each), ``extras["best_step"]`` and
``extras["best_validation_loss"]``; ``fit.history`` stays the training loss per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ppgen.core import is_program
from ppgen.data import as_data
from ppgen.errors import DataError, OptionError

__all__ = ["HeldOut", "Validation", "split_validation", "DEFAULT_FRACTION"]

#: the fraction neural models hold out by default (``default_validation`` on the model class).
DEFAULT_FRACTION = 0.1
#: below this many rows a model's *default* fraction is skipped (too few to hold any out).
MIN_ROWS_FOR_DEFAULT = 20
_UNSET = object()


@dataclass
class HeldOut:
    """The validation rows of a fit: data, covariates and where they came from."""

    x: torch.Tensor
    covariates: dict
    #: the rows of the given data held out (a fraction), or None (validation data given)
    index: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.x.shape[0]


def split_validation(
    model: Any, x: torch.Tensor, covariates: dict, options: dict
) -> tuple[torch.Tensor, dict, HeldOut | None]:
    """``(x_train, covariates_train, held_out)`` for the ``validation=`` option (see module doc).

    Raises:
        OptionError: a fraction outside ``(0, 1)``, a value of another type, or a model /
            program for which held-out rows have no meaning (global latents, bound programs).
        DataError: held-out data of another width or with NaN/inf, or too few rows to split.
    """
    value = options.get("validation", _UNSET)
    explicit = value is not _UNSET
    program = is_program(model)
    if not explicit:
        # the model's default, where held-out rows mean something (no priors, not a program)
        value = None if program or model.is_bayesian else getattr(model, "default_validation", None)
    if value is None:
        return x, covariates, None
    if program:
        raise OptionError(
            "Expected validation=None for a Pyro program (its arguments are not rows to hold out), but got "
            f"{_describe(value)}; score held-out data after the fit with fit.log_prob instead."
        )
    if model.is_bayesian:
        raise OptionError(
            f"Expected validation=None for a model with priors ({model.prior_names}): the ELBO of held-out "
            "rows also counts the global latents; hold out data yourself and score it with fit.log_prob."
        )
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return _split_fraction(value, x, covariates, options.get("seed"), explicit)
    if isinstance(value, (str, bytes)):
        raise OptionError(
            f"Expected validation as a fraction in (0, 1), held-out data or None, but got {value!r}."
        )
    return x, covariates, _given(value, x, covariates)


def _split_fraction(value, x, covariates, seed, explicit) -> tuple[torch.Tensor, dict, HeldOut | None]:
    if isinstance(value, bool) or not math.isfinite(value) or not 0 < value < 1:
        raise OptionError(
            f"Expected validation as a fraction in (0, 1) of the training rows, held-out data or None, "
            f"but got {value!r}."
        )
    n = x.shape[0]
    if not explicit and n < MIN_ROWS_FOR_DEFAULT:
        return x, covariates, None  # too few rows to hold any out: train on them all
    n_val = max(1, round(value * n))
    if n_val >= n:
        raise DataError(
            f"Expected at least 2 rows to hold out validation={value}, but got {n}; pass validation=None "
            "or more data."
        )
    generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    order = torch.randperm(n, generator=generator).to(x.device)
    held, kept = order[:n_val].sort().values, order[n_val:].sort().values
    return x[kept], _rows(covariates, kept, n), HeldOut(x[held], _rows(covariates, held, n), held)


def _given(value, x, covariates) -> HeldOut:
    try:
        x_val, cov_val = as_data(value, dtype=x.dtype)
    except DataError as err:
        raise DataError(f"Expected validation data like the training data, but: {err}") from None
    if tuple(x_val.shape[1:]) != tuple(x.shape[1:]):
        raise DataError(
            f"Expected validation data with rows of shape {tuple(x.shape[1:])} like the training data, "
            f"but got {tuple(x_val.shape[1:])}."
        )
    if set(cov_val) != set(covariates):
        raise DataError(
            f"Expected validation data with the training covariates {sorted(covariates)}, but got "
            f"{sorted(cov_val)}; pass {{'x': ..., **covariates}}."
        )
    moved = {k: v.to(x.device) if isinstance(v, torch.Tensor) else v for k, v in cov_val.items()}
    return HeldOut(x_val.to(x.device), moved)


def _rows(covariates: dict, idx: torch.Tensor, n: int) -> dict:
    return {
        k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
        for k, v in covariates.items()
    }


def _describe(value) -> str:
    return repr(value) if isinstance(value, (int, float, str)) else f"held-out data ({type(value).__name__})"


@dataclass
class Validation:
    """The loop's side of early stopping: scores ``loss()`` and remembers the best parameters.

    ``loss`` returns the held-out loss per row; it runs without gradients under a forked random
    state seeded with ``seed`` (the same draws at every evaluation, the training draws untouched),
    with ``modules`` in eval mode (dropout off).
    """

    loss: Callable[[], torch.Tensor]
    seed: int = 0
    modules: list = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    best: float = math.inf
    best_step: int = -1
    reference: float = math.inf  # the last value that counted as an improvement (by more than tol)
    stale: int = 0
    best_params: list[torch.Tensor] | None = None

    def evaluate(self, params: list[torch.Tensor], step: int, tol: float) -> float:
        """Score the held-out rows after ``step`` optimiser steps; keep the parameters if best."""
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        nets = [m for m in self.modules if isinstance(m, torch.nn.Module)]
        modes = [net.training for net in nets]
        try:
            for net in nets:
                net.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                value = float(self.loss())
        finally:
            for net, mode in zip(nets, modes):
                net.train(mode)
        if not math.isfinite(value):
            value = math.inf  # a non-finite held-out loss is never the best
        self.history.append(value)
        self.steps.append(step)
        if value < self.best:
            self.best, self.best_step = value, step
            self.best_params = [p.detach().clone() for p in params]
        if value < self.reference - tol * max(1.0, abs(self.reference)) or not math.isfinite(self.reference):
            self.reference, self.stale = value, 0
        else:
            self.stale += 1
        return value

    def restore(self, params: list[torch.Tensor]) -> None:
        """Put the best evaluation's parameters back."""
        if self.best_params is None:
            return
        with torch.no_grad():
            for p, value in zip(params, self.best_params):
                p.copy_(value)

    def state(self) -> dict:
        return {
            "history": list(self.history),
            "steps": list(self.steps),
            "best": self.best,
            "best_step": self.best_step,
            "reference": self.reference,
            "stale": self.stale,
            "best_params": self.best_params,
        }

    def load(self, saved: Mapping) -> None:
        self.history, self.steps = list(saved["history"]), list(saved["steps"])
        self.best, self.best_step = saved["best"], saved["best_step"]
        self.reference, self.stale = saved["reference"], saved["stale"]
        self.best_params = saved["best_params"]

    def extras(self, held: HeldOut) -> dict:
        """What the fit records (see the module doc)."""
        out = {
            "validation_history": list(self.history),
            "validation_steps": list(self.steps),
            "best_step": self.best_step,
            "best_validation_loss": self.best,
            "validation_rows": held.n,
        }
        if held.index is not None:
            out["validation_index"] = held.index.cpu()
        return out
