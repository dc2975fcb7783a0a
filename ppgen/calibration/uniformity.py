"""Tests of SBC ranks and intervals: is ``rank ~ Uniform{0..L}``, and do central intervals cover?

- :func:`chi_square_p` — Pearson's χ² on the ranks binned in ``B`` bins (Talts et al. 2018, §4).
- :func:`gamma_statistic` / :func:`gamma_p` — the ECDF test of Säilynoja, Bürkner & Vehtari (2022),
  "Graphical test for discrete uniformity and its applications in goodness-of-fit evaluation and
  multiple sample comparison" (https://arxiv.org/abs/2103.10522): under uniformity the count of ranks
  ``<= r`` is ``Binomial(N, (r+1)/(L+1))``; ``γ = 2 min_r min(P(X <= count), P(X >= count))`` over ``K``
  evaluation points, and its p-value ``P(γ* <= γ)`` under uniform ranks, here by Monte Carlo with a
  fixed seed (so a table is reproducible). It sees a too narrow posterior (∪-shaped ranks), a too
  wide one (∩) and a biased one (a slope), which a coarse histogram can miss.
- :func:`coverage` — the fraction of central ``q``-intervals holding the truth, with its binomial
  standard error ``√(c(1-c)/n)``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["chi_square_p", "gamma_statistic", "gamma_p", "coverage", "evaluation_points"]

#: Uniform rank samples behind a γ p-value (its Monte Carlo error is about √(p/4000)).
GAMMA_REPLICATES = 4000


def _bins(n: int) -> int:
    return int(min(20, max(2, n // 5)))  # at least ~5 expected ranks per bin


def chi_square_p(ranks: np.ndarray, num_draws: int) -> float:
    """χ² p-value of ranks in ``0..num_draws`` against the uniform (bins of near-equal width)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size < 2:
        return float("nan")
    bins = min(_bins(ranks.size), num_draws + 1)
    which = ranks * bins // (num_draws + 1)
    counts = np.bincount(which, minlength=bins)
    widths = np.bincount(np.arange(num_draws + 1) * bins // (num_draws + 1), minlength=bins)
    expected = ranks.size * widths / widths.sum()
    return float(stats.chisquare(counts, expected).pvalue)


def evaluation_points(n: int, num_draws: int) -> np.ndarray:
    """The ranks ``r`` where the ECDF is evaluated: every rank, or ``n`` of them evenly when ``L+1 > n``."""
    points = np.unique(np.linspace(0, num_draws, min(n, num_draws + 1), endpoint=False).astype(np.int64))
    return points[points < num_draws]


def _gamma(counts: np.ndarray, n: int, probabilities: np.ndarray) -> np.ndarray:
    """γ for count rows ``(..., K)`` of ranks ``<= r`` at the evaluation points."""
    below = stats.binom.cdf(counts, n, probabilities)
    above = stats.binom.sf(counts - 1, n, probabilities)
    return 2 * np.minimum(below, above).min(-1)


def gamma_statistic(ranks: np.ndarray, num_draws: int) -> float:
    """Säilynoja et al.'s γ of ranks in ``0..num_draws`` (small γ: far from uniform)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    points = evaluation_points(ranks.size, num_draws)
    counts = (ranks[:, None] <= points[None, :]).sum(0)
    return float(_gamma(counts, ranks.size, (points + 1) / (num_draws + 1)))


def gamma_p(ranks: np.ndarray, num_draws: int, seed: int = 0) -> float:
    """P(γ* <= γ) for ``N`` uniform ranks (Monte Carlo, ``GAMMA_REPLICATES`` samples, seeded)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    n = ranks.size
    if n < 2:
        return float("nan")
    observed = gamma_statistic(ranks, num_draws)
    points = evaluation_points(n, num_draws)
    probabilities = (points + 1) / (num_draws + 1)
    rng = np.random.default_rng(seed)
    # the counts at successive evaluation points of N uniform ranks are one multinomial draw
    cells = np.diff(np.concatenate([[0.0], probabilities, [1.0]]))
    counts = rng.multinomial(n, cells, size=GAMMA_REPLICATES)[:, :-1].cumsum(1)
    null = _gamma(counts, n, probabilities)
    return float((1 + (null <= observed * (1 + 1e-12)).sum()) / (1 + GAMMA_REPLICATES))


def coverage(cdf: np.ndarray, level: float) -> tuple[float, float]:
    """``(c, se)``: the fraction of central ``level`` intervals holding the truth (``|F(θ) - ½| <= level/2``)
    and its binomial standard error."""
    cdf = np.asarray(cdf, dtype=np.float64)
    if not cdf.size:
        return float("nan"), float("nan")
    c = float((np.abs(cdf - 0.5) <= level / 2).mean())
    return c, float(np.sqrt(c * (1 - c) / cdf.size))
