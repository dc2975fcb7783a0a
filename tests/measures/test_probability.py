"""Probability building blocks against numpy / scipy and closed forms.

References: numpy.quantile(method="inverted_cdf"), numpy.histogram, brute-force counting,
scipy.stats.multivariate_normal (conditional = joint / marginal at test points), exact
gradients of a full-data loss; Monte Carlo coverage with a binomial tolerance.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ppgen.errors import DataError, OptionError
from ppgen.measures.probability import (
    conditional,
    ecdf,
    gaussian_conditional,
    gaussian_marginal,
    histogram,
    marginal,
    minibatch_gradients,
    monte_carlo,
    quantile,
)
from tests.common import assert_close

X = torch.tensor([3.0, 1.0, 2.0, 2.0, 5.0, -1.0, 0.5], dtype=torch.float64)


def test_ecdf_counts_points_at_or_below():
    t = torch.tensor([-2.0, -1.0, 0.0, 2.0, 4.9, 5.0, 9.0], dtype=torch.float64)
    brute = torch.tensor([float((X <= v).sum()) / 7 for v in t], dtype=torch.float64)
    assert_close(ecdf(X, t), brute, atol=0)


def test_quantile_is_numpy_inverted_cdf():
    x = torch.randn(101, dtype=torch.float64)
    q = torch.tensor([0.0, 0.01, 0.25, 0.5, 0.731, 0.99, 1.0], dtype=torch.float64)
    assert_close(quantile(x, q), np.quantile(x.numpy(), q.numpy(), method="inverted_cdf"), atol=0)
    assert_close(quantile(X, [0.5]), [2.0], atol=0)


def test_histogram_pmf_vs_density_match_numpy():
    x = torch.randn(500, dtype=torch.float64)
    pmf, edges = histogram(x, bins=12)
    counts, np_edges = np.histogram(x.numpy(), bins=12)
    assert_close(edges, np_edges, atol=1e-12)
    assert_close(pmf, counts / 500, atol=1e-15)
    assert abs(float(pmf.sum()) - 1) < 1e-12  # a PMF sums to one ...
    dens, _ = histogram(x, bins=12, density=True)
    assert_close(dens, np.histogram(x.numpy(), bins=12, density=True)[0], atol=1e-12)
    assert abs(float((dens * edges.diff()).sum()) - 1) < 1e-12  # ... a density integrates to one
    fixed, _ = histogram(x, bins=[-1.0, 0.0, 0.5, 3.0])
    assert_close(fixed, np.histogram(x.numpy(), bins=[-1.0, 0.0, 0.5, 3.0])[0] / 500, atol=1e-15)


def test_discrete_joint_marginal_and_conditional():
    joint = torch.tensor([[0.10, 0.20, 0.05], [0.30, 0.15, 0.20]], dtype=torch.float64)
    assert_close(marginal(joint, 0), [0.35, 0.65], atol=1e-15)
    assert_close(marginal(joint, 1), [0.40, 0.35, 0.25], atol=1e-15)
    assert_close(conditional(joint, given=1, value=2), [0.05 / 0.25, 0.20 / 0.25], atol=1e-15)
    # Product rule: p(x, y) = p(x | y) p(y) for every cell.
    rebuilt = torch.stack([conditional(joint, 1, j) * marginal(joint, 1)[j] for j in range(3)], 1)
    assert_close(rebuilt, joint, atol=1e-15)


def test_gaussian_marginal_and_conditional_match_joint_over_marginal():
    loc = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    a = torch.tensor([[2.0, 0.0, 0.0], [0.6, 1.0, 0.0], [-0.3, 0.4, 0.7]], dtype=torch.float64)
    cov = a @ a.T
    m, s = gaussian_marginal(loc, cov, [0, 2])
    assert_close(m, loc[[0, 2]], atol=0) and assert_close(s, cov[[0, 2]][:, [0, 2]], atol=0)
    v = torch.tensor([0.3], dtype=torch.float64)
    mc, sc = gaussian_conditional(loc, cov, [1], v)
    joint = stats.multivariate_normal(loc.numpy(), cov.numpy())
    p_b = stats.norm(loc[1].item(), math.sqrt(cov[1, 1].item())).logpdf(0.3)
    for xa in ([0.0, 0.0], [2.0, -1.0], [1.5, 0.7]):
        full = np.array([xa[0], 0.3, xa[1]])
        expected = joint.logpdf(full) - p_b
        assert abs(stats.multivariate_normal(mc.numpy(), sc.numpy()).logpdf(xa) - expected) < 1e-12


def test_monte_carlo_interval_covers_at_the_nominal_rate():
    # E[X²] = 1 for X ~ N(0, 1); 400 independent 95% intervals from 200 draws each.
    g = torch.Generator().manual_seed(0)
    covered = 0
    for _ in range(400):
        est = monte_carlo(lambda x: x[:, 0] ** 2, torch.randn(200, 1, generator=g, dtype=torch.float64))
        lo, hi = est.interval()
        covered += lo <= 1.0 <= hi
    # Binomial(400, 0.95) has sd 4.4; allow 4 sd, plus ~1% for the normal approximation of a skewed h.
    assert abs(covered / 400 - 0.95) < 4 * math.sqrt(0.95 * 0.05 / 400) + 0.01


def test_minibatch_gradients_average_to_the_full_gradient():
    x = torch.randn(120, 2, dtype=torch.float64)
    w = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    full, batches = minibatch_gradients(lambda v: (v @ w + b - 1.0) ** 2, [w, b], x, batch_size=8)
    assert batches.shape == (15, 3)
    assert_close(batches.mean(0), full, atol=1e-13)  # exact: a partition into equal batches
    resid = x.detach() @ w.detach() + b.detach() - 1.0  # closed form of the full gradient
    assert_close(full, torch.cat([(2 * resid[:, None] * x).mean(0), (2 * resid).mean()[None]]), atol=1e-13)
    assert (batches - full).abs().max() > 1e-3  # single batches are noisy, only their mean is exact


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ecdf(torch.zeros(3, 2), 0.0), DataError, "one-dimensional"),
        (lambda: quantile(X, [1.5]), OptionError, r"\[0, 1\]"),
        (lambda: histogram(X, bins=0), OptionError, "positive number"),
        (lambda: histogram(X, bins=[1.0, 0.0]), OptionError, "increasing"),
        (lambda: marginal(torch.tensor([[0.5, 0.6]]), 0), DataError, "sums to 1"),
        (lambda: conditional(torch.tensor([[0.5, 0.5], [0.0, 0.0]]), 0, 1), DataError, "> 0"),
        (
            lambda: gaussian_conditional([0.0, 0.0], torch.eye(2), [1], [1.0, 2.0]),
            DataError,
            "observed values",
        ),
        (lambda: monte_carlo(lambda x: x, torch.zeros(5, 2)), DataError, "one number per sample"),
        (lambda: minibatch_gradients(lambda v: v.sum(), [], X, batch_size=0), OptionError, "batch_size"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
