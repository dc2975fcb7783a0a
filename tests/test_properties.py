"""Property tests (hypothesis): invariants that must hold for any data, not just a fixture.

- EM's log-likelihood never decreases (history of ``ppgen.fit(..., method="em")``).
- Every explicit model's ``log_prob`` is per-example: invariant to the order of the batch and
  to splitting it (tolerance 1e-10, float64).
- KDE and Gaussian-mixture densities integrate to 1 in 1-D (trapezoid on 4001 points,
  |∫ - 1| < 1e-4) and 2-D (trapezoid on a 301² grid, |∫ - 1| < 2e-3).
- Conjugate posteriors are order-invariant, and updating on x1 then x2 (``posterior_model``)
  equals updating on x1 ∪ x2 at once (rtol 1e-10).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppgen
from ppgen.errors import ConvergenceWarning
from ppgen.models import (
    KDE,
    BetaBernoulli,
    DirichletCategorical,
    GammaPoisson,
    Gaussian,
    NormalInverseGamma,
    NormalInverseWishart,
    NormalKnownScale,
)
from ppgen.models.mixture import GaussianMixture
from tests.common import assert_close

FAST = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
seeds = st.integers(0, 2**31 - 1)


def _data(seed, n=40, dim=2):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=g, dtype=torch.float64) * 3
    z = torch.randint(0, 3, (n,), generator=g)
    return centres[z] + torch.randn(n, dim, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------ EM monotone
@FAST
@given(seed=seeds, k=st.integers(1, 4), dim=st.integers(1, 3))
def test_em_log_likelihood_never_decreases(seed, k, dim):
    x = _data(seed, n=60, dim=dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = ppgen.fit(
            GaussianMixture(n_components=k, dim=dim),
            x,
            method="em",
            max_iter=25,
            tol=0.0,
            progress=False,
            seed=seed,
        )
    h = torch.tensor(fit.history, dtype=torch.float64)
    assert len(h) >= 2
    steps = h[1:] - h[:-1]
    assert (steps >= -1e-9 * h.abs()[1:].clamp_min(1.0)).all(), f"EM decreased: min step {float(steps.min())}"


# ---------------------------------------------------- per-example log_prob invariants
def _explicit_fits():
    x2, x1 = _data(1, n=50, dim=2), _data(2, n=50, dim=1)
    binary = (torch.rand(50, 3, generator=torch.Generator().manual_seed(3)) < 0.3).double()
    counts = torch.poisson(torch.full((50, 1), 2.0), generator=torch.Generator().manual_seed(4)).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = {
            "gaussian": ppgen.fit(Gaussian(dim=2), x2, method="exact"),
            "kde": ppgen.fit(KDE(), x2, method="exact"),
            "gmm": ppgen.fit(
                GaussianMixture(n_components=3, dim=2), x2, method="em", max_iter=10, progress=False
            ),
            "normal_inverse_gamma": ppgen.fit(NormalInverseGamma(), x1, method="exact", seed=0),
            "normal_inverse_wishart": ppgen.fit(NormalInverseWishart(dim=2), x2, method="exact", seed=0),
            "beta_bernoulli": ppgen.fit(BetaBernoulli(dim=3), binary, method="exact", seed=0),
            "gamma_poisson": ppgen.fit(GammaPoisson(), counts, method="exact", seed=0),
        }
    return fits


@pytest.fixture(scope="module")
def explicit_fits():
    return _explicit_fits()


@pytest.mark.parametrize(
    "name",
    [
        "gaussian",
        "kde",
        "gmm",
        "normal_inverse_gamma",
        "normal_inverse_wishart",
        "beta_bernoulli",
        "gamma_poisson",
    ],
)
@FAST
@given(data=st.data())
def test_log_prob_invariant_to_order_and_split(explicit_fits, name, data):
    fit = explicit_fits[name]
    x = fit.data
    n = x.shape[0]
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    k = data.draw(st.integers(1, n - 1))
    whole = fit.log_prob(x)
    assert whole.shape == (n,)
    assert_close(fit.log_prob(x[perm]), whole[perm], atol=1e-10, msg=f"{name} order")
    assert_close(
        torch.cat([fit.log_prob(x[:k]), fit.log_prob(x[k:])]), whole, atol=1e-10, msg=f"{name} split"
    )
    assert_close(fit.log_prob(x[k : k + 1]), whole[k : k + 1], atol=1e-10, msg=f"{name} single row")


# ------------------------------------------------------------- densities integrate to 1
def _integral_1d(fit, lo, hi, points=4001):
    grid = torch.linspace(lo, hi, points, dtype=torch.float64)[:, None]
    return float(torch.trapezoid(fit.log_prob(grid).exp(), grid[:, 0]))


def _integral_2d(fit, lo, hi, points=301):
    axis = torch.linspace(lo, hi, points, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    density = fit.log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp().reshape(points, points)
    return float(torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis))


def _density_fit(kind, x):
    if kind == "kde":
        return ppgen.fit(KDE(), x, method="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ppgen.fit(
            GaussianMixture(n_components=2, dim=x.shape[1]), x, method="em", max_iter=10, progress=False
        )


@pytest.mark.parametrize("kind", ["kde", "gmm"])
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=seeds, n=st.integers(5, 40))
def test_density_integrates_to_one_1d(kind, seed, n):
    x = _data(seed, n=n, dim=1) / 3  # centres within ±~4: the mass sits well inside [-15, 15]
    assert abs(_integral_1d(_density_fit(kind, x), -15.0, 15.0) - 1) < 1e-4


@pytest.mark.parametrize("kind", ["kde", "gmm"])
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(seed=seeds)
def test_density_integrates_to_one_2d(kind, seed):
    x = _data(seed, n=30, dim=2) / 3
    assert abs(_integral_2d(_density_fit(kind, x), -10.0, 10.0) - 1) < 2e-3


# ------------------------------------------------------------------ conjugate updating
def _conjugate_case(name, seed, n):
    g = torch.Generator().manual_seed(seed)
    if name == "normal_known_scale":
        return NormalKnownScale(), torch.randn(n, 1, generator=g, dtype=torch.float64) * 2 + 1
    if name == "normal_inverse_gamma":
        return NormalInverseGamma(), torch.randn(n, 1, generator=g, dtype=torch.float64) * 2 + 1
    if name == "normal_inverse_wishart":
        return NormalInverseWishart(dim=2), torch.randn(n, 2, generator=g, dtype=torch.float64)
    if name == "beta_bernoulli":
        return BetaBernoulli(dim=2), (torch.rand(n, 2, generator=g) < 0.3).double()
    if name == "dirichlet_categorical":
        return DirichletCategorical(num_categories=4), torch.randint(0, 4, (n,), generator=g).double()
    return GammaPoisson(), torch.poisson(torch.full((n, 1), 3.0), generator=g).double()


CONJUGATES = [
    "normal_known_scale",
    "normal_inverse_gamma",
    "normal_inverse_wishart",
    "beta_bernoulli",
    "dirichlet_categorical",
    "gamma_poisson",
]


def _assert_same_hyper(a, b, msg):
    assert a.keys() == b.keys()
    for key in a:
        assert_close(a[key], b[key], atol=1e-10, rtol=1e-10, msg=f"{msg} {key}")


@pytest.mark.parametrize("name", CONJUGATES)
@FAST
@given(seed=seeds, n=st.integers(2, 30), data=st.data())
def test_conjugate_order_invariant_and_sequential(name, seed, n, data):
    model, x = _conjugate_case(name, seed, n)
    k = data.draw(st.integers(1, n - 1))
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    batch = model.conjugate_posterior(x).hyper
    _assert_same_hyper(model.conjugate_posterior(x[perm]).hyper, batch, f"{name} order")
    sequential = model.posterior_model(x[:k]).conjugate_posterior(x[k:]).hyper
    _assert_same_hyper(sequential, batch, f"{name} sequential")
