"""Simulation-based calibration (Talts et al. 2018, https://arxiv.org/abs/1804.06788).

For the conjugate ``NormalKnownScale`` (loc ~ N(0, 2²), x_i ~ N(loc, 1), n = 8): draw loc
from the prior, data from the story, fit, and take the rank of the true loc among L = 19
posterior draws. If the fit is calibrated the rank is uniform on 0..19; we bin it in 10 bins
and apply a chi-square test at level 0.001 over R replicates. The exact posterior is the
control (it must pass), NUTS and SVI (AutoNormal: the true posterior is Normal, so the family
contains it) are the subjects.

Sizes: R = 100 replicates per method (NUTS 150 warmup + 190 draws thinned by 10; SVI 600
steps), a few minutes on 2 cores — hence ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.models import NormalKnownScale

pytestmark = pytest.mark.slow

REPLICATES, DRAWS, BINS, N, LEVEL = 100, 19, 10, 8, 1e-3


def _posterior_draws(method: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    model = NormalKnownScale(prior_scale=2.0)
    if method == "exact":
        fit = ppgen.fit(model, x, method="exact", seed=seed, num_draws=DRAWS)
        return fit.draws["loc"].reshape(-1)[:DRAWS]
    if method == "mcmc":
        fit = ppgen.fit(
            model,
            x,
            method="mcmc",
            num_samples=DRAWS * 10,
            warmup_steps=150,
            jit_compile=False,
            progress=False,
            seed=seed,
        )
        return fit.draws["loc"].reshape(-1)[::10][:DRAWS]  # thinned: near-independent draws
    fit = ppgen.fit(model, x, method="svi", guide="normal", num_steps=600, lr=0.05, progress=False, seed=seed)
    return fit.draws["loc"].reshape(-1)[:DRAWS]


def _ranks(method: str) -> np.ndarray:
    ranks = []
    for r in range(REPLICATES):
        g = torch.Generator().manual_seed(1000 + r)
        loc = torch.randn((), generator=g, dtype=torch.float64) * 2.0  # θ ~ prior
        x = loc + torch.randn(N, 1, generator=g, dtype=torch.float64)  # data ~ story
        draws = _posterior_draws(method, x, seed=r)
        assert draws.shape == (DRAWS,)
        ranks.append(int((draws < loc).sum()))
    return np.array(ranks)


@pytest.mark.parametrize("method", ["exact", "mcmc", "svi"])
def test_rank_statistics_are_uniform(method):
    ranks = _ranks(method)
    counts = np.bincount(ranks * BINS // (DRAWS + 1), minlength=BINS)
    result = stats.chisquare(counts)
    print(f"\nSBC {method}: bin counts {counts.tolist()}, chi2 p = {result.pvalue:.3g}")
    assert result.pvalue > LEVEL, (
        f"{method}: ranks not uniform, counts {counts.tolist()}, p={result.pvalue:.2g}"
    )
