"""Scoring continuous densities on discrete data: uniform dequantization and its bound.

Integer pixels ``x ∈ {0, ..., C-1}^D`` have a probability mass function ``P(x)``; a flow, a
Gaussian or a KDE has a probability *density* ``p(v)`` over ``v ∈ R^D``. A density is not a
probability: ``p`` has units of 1/volume and can exceed 1, so ``-log p(x)`` evaluated at the
integer points themselves is not a code length. A model that puts a very narrow bump on every
integer (a KDE with a small bandwidth, a Gaussian whose variance collapses on a pixel that is
almost always 0) makes ``-log p(x)`` arbitrarily *negative* — an absurdly "good" NLL that says
nothing about how well the model predicts new images.

The honest comparison gives the continuous model the mass of the unit cell of each integer:
``P(x) = ∫_{[0,1)^D} p(x + u) du``. Jensen's inequality then gives the bound used by
dequantized training (Theis et al. 2016; Ho et al. 2019)::

    -log P(x) ≤ E_{u ~ U[0,1)^D}[-log p(x + u)]

so a model trained on ``x + u`` and scored by this Monte Carlo average reports an *upper
bound* on a genuine discrete NLL, in the same units as a categorical model's exact NLL. With
data rescaled to ``y = s (x + u)`` the density of ``v = x + u`` is ``p_Y(s v) s^D``, so the
bound gains ``-D log s`` (``+D log 17`` for ``s = 1/17``).

References:
    Theis, van den Oord & Bethge, "A note on the evaluation of generative models", 2016,
    https://arxiv.org/abs/1511.01844; Ho et al., "Flow++", 2019, https://arxiv.org/abs/1902.00275.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ppgen.errors import DataError, OptionError

__all__ = ["dequantize", "discrete_nll_bound", "DequantizedNLL", "CellDensity", "check_levels"]


def check_levels(x: torch.Tensor, num_categories: int | None = None, *, name: str = "x") -> torch.Tensor:
    """Validate integer-valued data (``0..num_categories-1`` when given) and return it unchanged."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 2:
        raise DataError(
            f"Expected {name} as a 2-D floating tensor of integer levels, but got {_describe(x)}."
        )
    if not torch.isfinite(x).all():
        raise DataError(f"Expected finite {name}, but got NaN or inf; drop or impute those rows first.")
    if (x != x.round()).any():
        bad = float(x[x != x.round()][0])
        raise DataError(
            f"Expected integer levels in {name}, but got e.g. {bad}; quantise first (x.round()) — "
            "dequantization adds its own noise."
        )
    if num_categories is not None and ((x < 0) | (x >= num_categories)).any():
        raise DataError(
            f"Expected levels 0..{num_categories - 1} in {name}, but got values from {float(x.min())} to "
            f"{float(x.max())}; rescale the data or raise num_categories."
        )
    return x


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def _scale(scale: float) -> float:
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise OptionError(f"Expected scale > 0, but got {scale!r}.")
    return float(scale)


def dequantize(
    x: torch.Tensor, seed: int | torch.Generator | None = None, *, scale: float = 1.0, shift: float = 0.0
) -> torch.Tensor:
    """Uniform dequantization ``y = scale · (x + u) + shift``, ``u ~ U[0, 1)^D`` (one draw per entry).

    Arguments:
        x: integer levels, shape ``(N, D)`` (floating dtype).
        seed: an integer seed or a ``torch.Generator`` for reproducible noise (``None``: global RNG).
        scale: multiply after adding the noise, e.g. ``1 / 17`` to land in ``[0, 1)``.
        shift: add last (centring costs no log-Jacobian).

    Example:
        >>> y = dequantize(torch.tensor([[0.0, 16.0]]), seed=0)
        >>> bool(((y >= torch.tensor([0.0, 16.0])) & (y < torch.tensor([1.0, 17.0]))).all())
        True
    """
    check_levels(x)
    scale = _scale(scale)
    generator = seed if isinstance(seed, torch.Generator) else None
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return scale * (x + u) + float(shift)


@dataclass(frozen=True)
class DequantizedNLL:
    """A Monte Carlo estimate of ``E_u[-log p(x + u)]`` averaged over the rows of ``x``.

    ``nll`` (nats per row) is an *upper bound* on the discrete NLL ``-log P(x)`` up to its
    ``stderr`` (Monte Carlo standard error over ``u``); ``per_example`` holds each row's
    average over ``num_samples`` draws.
    """

    nll: float
    stderr: float
    per_example: torch.Tensor
    num_samples: int
    dim: int

    @property
    def bits_per_dim(self) -> float:
        return self.nll / (self.dim * math.log(2))


def discrete_nll_bound(
    model: Any,
    x: torch.Tensor,
    num_samples: int = 16,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
    seed: int = 0,
    chunk_size: int = 4096,
) -> DequantizedNLL:
    """Dequantized bound on the discrete NLL: ``E_u[-log p(s(x + u))] - D log s ≥ -log P(x)``.

    Arguments:
        model: anything with ``log_prob(y) -> (N,)`` over ``y = scale · (x + u) + shift`` (a model or a
            :class:`~ppgen.result.Fit`) — the space the model was trained in.
        x: integer levels, shape ``(N, D)``.
        num_samples: dequantization draws per row (≥ 2, for the standard error).
        scale: the rescaling used at training time; its log-Jacobian ``D log scale`` is added.
        shift: the offset used at training time (no Jacobian).
        seed: seed of the noise.
        chunk_size: rows scored per ``log_prob`` call.

    Example:
        >>> from ppgen.models import Gaussian
        >>> import ppgen
        >>> x = torch.randint(0, 3, (200, 2)).double()
        >>> fit = ppgen.fit(Gaussian(2), dequantize(x, seed=1), method="exact")
        >>> result = discrete_nll_bound(fit, x, num_samples=4)
        >>> result.nll > 0 and result.stderr >= 0
        True
    """
    check_levels(x)
    scale = _scale(scale)
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise OptionError(f"Expected num_samples >= 2 (for the standard error), but got {num_samples!r}.")
    if not callable(getattr(model, "log_prob", None)):
        raise OptionError(
            f"Expected a model or Fit with log_prob, but got {type(model).__name__}; an implicit model "
            "(GAN generator) has no density to dequantize — use sample-based metrics."
        )
    generator = torch.Generator().manual_seed(int(seed))
    n, d = x.shape
    draws = torch.empty(num_samples, n, dtype=torch.float64)
    with torch.no_grad():
        for j in range(num_samples):
            y = dequantize(x, generator, scale=scale, shift=shift)
            pieces = [model.log_prob(y[s : s + chunk_size]) for s in range(0, n, chunk_size)]
            draws[j] = -torch.cat(pieces).detach().double().cpu() - d * math.log(scale)
    if not torch.isfinite(draws).all():
        raise DataError(
            "Expected a finite log-density at every dequantized point, but got -inf or NaN; the model "
            "puts no mass on part of the unit cells (a bounded support narrower than [x, x + 1)?)."
        )
    per_example = draws.mean(0)  # (N,)
    stderr = math.sqrt(float(draws.var(0).sum()) / num_samples) / n
    return DequantizedNLL(float(per_example.mean()), stderr, per_example, num_samples, d)


class CellDensity:
    """A discrete model read as a piecewise-constant density on unit cells: ``p(v) = P(floor(v))``.

    The density integrates to one (each cell has volume 1) and is constant on every cell, so
    its dequantized bound equals the discrete NLL exactly for every ``u`` — a check of the
    bound and of its log-Jacobian.

    Arguments:
        discrete: an object with ``log_prob(x)`` over integer levels (a categorical model or fit).
    """

    def __init__(self, discrete: Any):
        self.discrete = discrete

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        return self.discrete.log_prob(torch.floor(v))
