"""Probability building blocks used by the tutorials: CDFs, histograms, joint → marginal /
conditional, Monte Carlo estimates with standard errors, and unbiased minibatch gradients.

Every function is vectorised over the data and validates its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError

__all__ = [
    "ecdf",
    "quantile",
    "histogram",
    "marginal",
    "conditional",
    "gaussian_marginal",
    "gaussian_conditional",
    "MonteCarloEstimate",
    "monte_carlo",
    "minibatch_gradients",
]


def _sample_1d(x, name: str = "x") -> torch.Tensor:
    x = as_tensor(x, name=name, ndim=(1, 2))
    if x.ndim == 2:
        if x.shape[1] != 1:
            raise DataError(
                f"Expected one-dimensional {name} (shape (N,) or (N, 1)), but got {tuple(x.shape)}."
            )
        x = x[:, 0]
    return x


def ecdf(x, t) -> torch.Tensor:
    """Empirical CDF ``F̂(t) = (1/n) #{i : x_i ≤ t}`` at every ``t``."""
    x = _sample_1d(x)
    t = torch.as_tensor(t, dtype=x.dtype)
    return torch.searchsorted(x.sort().values, t, right=True).to(x.dtype) / x.numel()


def quantile(x, q) -> torch.Tensor:
    """Inverse empirical CDF ``F̂⁻¹(q) = min{x_(k) : k/n ≥ q}`` (numpy's ``"inverted_cdf"``)."""
    x = _sample_1d(x)
    q = torch.as_tensor(q, dtype=x.dtype)
    if ((q < 0) | (q > 1)).any():
        raise OptionError(f"Expected quantile levels in [0, 1], but got {q.tolist()}.")
    n = x.numel()
    k = torch.ceil(q * n - 1e-12 * n).long().clamp(1, n)  # guard against q·n = 3.0000000004
    return x.sort().values[k - 1]


def histogram(
    x, bins: int | Sequence[float] = 10, density: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts per bin as a PMF (``count/n``, sums to 1) or a density (``count/(n·width)``, integrates to 1).

    Returns ``(values, edges)``; values outside the edges are not counted (so the PMF then
    sums to less than 1).
    """
    x = _sample_1d(x)
    if isinstance(bins, int):
        if bins < 1:
            raise OptionError(f"Expected a positive number of bins, but got {bins}.")
        lo, hi = float(x.min()), float(x.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = torch.linspace(lo, hi, bins + 1, dtype=x.dtype)
    else:
        edges = torch.as_tensor(bins, dtype=x.dtype)
        if edges.ndim != 1 or edges.numel() < 2 or not (edges.diff() > 0).all():
            raise OptionError(f"Expected increasing bin edges, but got {edges.tolist()}.")
    which = torch.bucketize(x, edges, right=True) - 1  # bin i holds edges[i] <= x < edges[i+1]
    which[x == edges[-1]] = edges.numel() - 2  # the last bin is closed, as numpy's
    inside = (which >= 0) & (which < edges.numel() - 1)
    counts = torch.bincount(which[inside], minlength=edges.numel() - 1).to(x.dtype)
    values = counts / x.numel()
    return (values / edges.diff() if density else values), edges


def _check_table(joint) -> torch.Tensor:
    joint = torch.as_tensor(joint, dtype=torch.float64) if not torch.is_tensor(joint) else joint
    if joint.ndim < 2 or (joint < 0).any() or not torch.isfinite(joint).all():
        raise DataError(
            f"Expected a joint probability table with >= 2 axes and entries >= 0, but got {joint}."
        )
    if abs(float(joint.sum()) - 1) > 1e-8:
        raise DataError(
            f"Expected a joint table that sums to 1, but it sums to {float(joint.sum()):.6g}; divide by it."
        )
    return joint


def marginal(joint, axis: int) -> torch.Tensor:
    """``p(x_axis) = Σ_{other axes} p(x_0, x_1, ...)`` for a discrete joint table."""
    joint = _check_table(joint)
    others = [a for a in range(joint.ndim) if a != axis % joint.ndim]
    return joint.sum(dim=others)


def conditional(joint, given: int, value: int) -> torch.Tensor:
    """``p(rest | x_given = value) = p(rest, value) / p(value)`` for a discrete joint table."""
    joint = _check_table(joint)
    if not 0 <= value < joint.shape[given]:
        raise OptionError(f"Expected value in 0..{joint.shape[given] - 1} on axis {given}, but got {value}.")
    p_given = marginal(joint, given)[value]
    if p_given == 0:
        raise DataError(f"Expected p(x_{given} = {value}) > 0 to condition on it, but it is 0.")
    return joint.select(given, value) / p_given


def _check_gaussian(loc, cov) -> tuple[torch.Tensor, torch.Tensor]:
    loc, cov = torch.as_tensor(loc, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64)
    d = loc.numel()
    if loc.ndim != 1 or cov.shape != (d, d) or not torch.allclose(cov, cov.T):
        raise DataError(
            f"Expected loc (d,) and a symmetric cov (d, d), but got {tuple(loc.shape)}, {tuple(cov.shape)}."
        )
    return loc, cov


def gaussian_marginal(loc, cov, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Marginal of ``N(μ, Σ)`` on coordinates ``a = idx``: ``N(μ_a, Σ_aa)``."""
    loc, cov = _check_gaussian(loc, cov)
    idx = torch.as_tensor(idx).long()
    return loc[idx], cov[idx][:, idx]


def gaussian_conditional(loc, cov, idx: Sequence[int], value) -> tuple[torch.Tensor, torch.Tensor]:
    """``p(x_a | x_b = v) = N(μ_a + Σ_ab Σ_bb⁻¹ (v − μ_b), Σ_aa − Σ_ab Σ_bb⁻¹ Σ_ba)``, ``b = idx``."""
    loc, cov = _check_gaussian(loc, cov)
    b = torch.as_tensor(idx).long()
    a = torch.tensor([i for i in range(loc.numel()) if i not in set(b.tolist())], dtype=torch.long)
    value = torch.as_tensor(value, dtype=loc.dtype).reshape(-1)
    if value.numel() != b.numel():
        raise DataError(
            f"Expected {b.numel()} observed values for coordinates {b.tolist()}, but got {value.numel()}."
        )
    chol = torch.linalg.cholesky(cov[b][:, b])  # Σ_bb = L Lᵀ
    gain = torch.cholesky_solve(cov[b][:, a], chol).T  # Σ_ab Σ_bb⁻¹, shape (|a|, |b|)
    return loc[a] + gain @ (value - loc[b]), cov[a][:, a] - gain @ cov[b][:, a]


@dataclass
class MonteCarloEstimate:
    """``Ê[h] = (1/n) Σ h(x_i)`` with standard error ``sd(h)/√n``."""

    estimate: float
    stderr: float
    n: int

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Normal-approximation interval ``Ê ± z · se`` (95% for ``z = 1.96``)."""
        return self.estimate - z * self.stderr, self.estimate + z * self.stderr

    def __str__(self) -> str:
        return f"{self.estimate:.5g} ± {self.stderr:.2g} (n={self.n})"


def monte_carlo(h: Callable[[torch.Tensor], torch.Tensor], samples) -> MonteCarloEstimate:
    """Estimate ``E[h(X)]`` from draws ``x_i ~ P`` by the sample average, with its standard error."""
    x = as_tensor(samples, name="samples", ndim=None)
    values = torch.as_tensor(h(x), dtype=torch.float64).reshape(x.shape[0], -1)
    if values.shape[1] != 1:
        raise DataError(f"Expected h to return one number per sample, but got shape {tuple(values.shape)}.")
    if x.shape[0] < 2:
        raise DataError("Expected at least 2 samples for a standard error, but got 1.")
    values = values[:, 0]
    return MonteCarloEstimate(
        float(values.mean()), float(values.std() / math.sqrt(values.numel())), values.numel()
    )


def minibatch_gradients(
    loss: Callable[[torch.Tensor], torch.Tensor],
    params: Sequence[torch.Tensor],
    x,
    batch_size: int,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-data gradient of ``mean_i loss(x_i)`` and the gradients of a shuffled partition into minibatches.

    ``loss(x)`` returns per-example losses ``(N,)``. Each minibatch gradient is an unbiased
    estimate of the full one; over a partition into equal batches their mean equals it exactly.

    Returns:
        ``(full, batches)``: the flattened full gradient ``(P,)`` and one row per batch ``(B, P)``.
    """
    x = as_tensor(x, name="x", ndim=None)
    n = x.shape[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= n:
        raise OptionError(f"Expected an integer batch_size in 1..{n}, but got {batch_size!r}.")
    params = list(params)

    def grad(rows: torch.Tensor) -> torch.Tensor:
        values = loss(rows)
        if values.shape != (rows.shape[0],):
            raise DataError(
                f"Expected loss(x) to return one loss per row, but got shape {tuple(values.shape)}."
            )
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(values.mean(), params)])

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    batches = torch.stack(
        [grad(x[order[i : i + batch_size]]) for i in range(0, n - n % batch_size, batch_size)]
    )
    return grad(x), batches
