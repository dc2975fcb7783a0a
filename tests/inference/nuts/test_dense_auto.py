"""``dense_mass="auto"`` (the default): a dense mass matrix for small models whose warm-up can
estimate it, a diagonal one otherwise; ``True``/``False`` force it.

Reference for the gain: a regression on an unstandardised covariate (x near 10, so the intercept
and slope correlate at about −0.995, as posteriordb's kidiq does) — a diagonal metric leaves the
correlation to the trajectory (deep trees), a dense one removes it. The seeded runs are
deterministic (one thread, fixed graph); the margins are wide (measured 10× fewer leapfrog steps
a draw and over 3× the smallest bulk ESS) so that another BLAS's rounding cannot flip them."""

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import OptionError
from ppgen.inference.nuts.adaptation import AUTO_DENSE_MAX, auto_dense


def regression(x, y=None):
    intercept = pyro.sample("intercept", dist.Normal(0.0, 100.0))
    slope = pyro.sample("slope", dist.Normal(0.0, 100.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", len(x)):
        return pyro.sample("y", dist.Normal(intercept + slope * x, sigma), obs=y)


def wide(y=None):
    theta = pyro.sample("theta", dist.Normal(0.0, 1.0).expand([AUTO_DENSE_MAX + 1]).to_event(1))
    with pyro.plate("data", len(y)):
        return pyro.sample("y", dist.Normal(theta, 1.0).to_event(1), obs=y)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    x = 10.0 + torch.randn(100, generator=g)
    return {"x": x, "y": 3.0 + 0.5 * x + torch.randn(100, generator=g)}


def _fit(program, data, **options):
    options = {"warmup_steps": 300, "num_samples": 200, **options}
    return ppgen.fit(program, data, method="mcmc", num_chains=1, seed=1, progress=False, **options)


def test_rule_reads_the_dimension_and_the_last_slow_window():
    # warm-up 1000: slow windows 25, 50, 100, 200, 500 → 500 draws ≥ 20 a dimension up to 25
    assert auto_dense(5, 1000) and auto_dense(AUTO_DENSE_MAX, 1000)
    assert not auto_dense(AUTO_DENSE_MAX + 1, 1000)
    # warm-up 200: slow windows 25, 50 → 50 draws carry at most 2 dimensions
    assert auto_dense(2, 200) and not auto_dense(3, 200)
    assert not auto_dense(2, 15)  # no slow window at all: nothing to estimate from


def test_auto_is_dense_on_a_small_correlated_model_and_mixes_better(data):
    auto, diagonal = _fit(regression, data), _fit(regression, data, dense_mass=False)
    assert auto.extras["dense_mass"] is True and diagonal.extras["dense_mass"] is False
    steps = [float(f.posterior.sample_stats["n_steps"].mean()) for f in (auto, diagonal)]
    assert steps[1] >= 4 * steps[0]  # measured 46 against 4.6
    # smallest bulk ESS per leapfrog step (per gradient): measured 21× (148 of 920 against 68 of 9200)
    ess = [
        float(az.ess(f.posterior, var_names=["intercept", "slope"]).to_array().min())
        for f in (auto, diagonal)
    ]
    assert ess[0] / steps[0] >= 5 * ess[1] / steps[1]
    # both sample the same posterior: means within 4 combined MCSE
    for name in ("intercept", "slope"):
        mcse = [float(az.mcse(f.posterior, var_names=[name])[name]) for f in (auto, diagonal)]
        gap = abs(float(auto.draws[name].mean()) - float(diagonal.draws[name].mean()))
        assert gap <= 4 * np.hypot(*mcse)


def test_auto_stays_diagonal_above_the_limit_and_with_gradient_adaptation(data):
    # 26 independent dimensions, a warm-up long enough for 25: the rule reads the dimension
    wide_fit = ppgen.fit(
        wide, {"y": torch.zeros(20, AUTO_DENSE_MAX + 1)}, method="mcmc", num_chains=1, warmup_steps=1000,
        num_samples=1, compiler="trace", seed=0, progress=False,
    )  # fmt: skip
    assert wide_fit.extras["dense_mass"] is False
    short = {"warmup_steps": 20, "num_samples": 5}  # the choice is made before the first step
    assert _fit(regression, data, adapt_mass="gradient", **short).extras["dense_mass"] is False
    assert _fit(regression, data, dense_mass=True, **short).extras["dense_mass"] is True


def test_dense_mass_takes_only_true_false_or_auto(data):
    from ppgen.inference.mcmc import _dense_option

    with pytest.raises(OptionError, match="dense_mass"):
        _fit(regression, data, dense_mass="full")
    # a string built at run time (a command line's "dense_mass=auto") is not the interned literal
    assert _dense_option({"dense_mass": "dense_mass=auto".split("=")[1]}) == "auto"
    assert _dense_option({"dense_mass": np.True_}) is True


def test_pyros_nuts_receives_dense_mass_true_as_full_mass():
    # sampler="pyro" ignored dense_mass before; "auto" stays Pyro's own default (diagonal) there
    from types import SimpleNamespace

    from ppgen.inference.mcmc import _kernel

    model = SimpleNamespace(model=regression, max_plate_nesting=1)
    assert _kernel(model, {"dense_mass": True}, jit=False)._adapter.dense_mass is True
    assert _kernel(model, {}, jit=False)._adapter.dense_mass is False
