"""NUTS against the exact conjugate posterior, and the InferenceData it returns."""

import warnings

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.models import Gaussian, NormalInverseGamma
from tests.common import gaussian_data


def _nig():
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return NormalInverseGamma(mu0=f64(0.0), kappa0=f64(1.0), alpha0=f64(3.0), beta0=f64(4.0))


def test_nuts_agrees_with_exact_posterior_within_4_mcse():
    # Reference: the Normal-Inverse-Gamma posterior in closed form. NUTS means must lie within
    # 4 Monte Carlo standard errors (arviz's MCSE of the mean, from the effective sample size).
    x = gaussian_data(n=40, dim=1, seed=1)
    model = _nig()
    exact = model.conjugate_posterior(x)
    fit = ppgen.fit(
        model, x, method="mcmc", num_chains=1, num_samples=800, warmup_steps=400, seed=0, progress=False
    )
    mcse = az.mcse(fit.posterior, method="mean")
    for site in ("loc", "scale"):
        err = abs(float(fit.draws[site].mean()) - float(exact.mean()[site]))
        assert err < 4 * float(mcse[site].values.max()), (site, err)
        # the posterior sd agrees to ~10% (its MCSE is about sd / sqrt(2 ESS) ~ 3%)
        assert abs(float(fit.draws[site].std()) / float(exact.sd()[site]) - 1) < 0.15


def test_posterior_has_every_site_and_pointwise_log_likelihood():
    # PYRO_NOTES 1 and 3: every prior is a site, and LOO/WAIC run without the
    # "missing log_likelihood" failure of az.from_pyro.
    model = ppgen.bayesian(
        Gaussian(dim=2, covariance="diag"),
        loc=dist.Normal(0.0, 10.0).expand([2]).to_event(1),
        scale=dist.LogNormal(0.0, 1.0).expand([2]).to_event(1),
    )
    x = gaussian_data(n=50, dim=2, seed=2).float()
    fit = ppgen.fit(
        model, x, method="mcmc", num_chains=1, num_samples=200, warmup_steps=200, seed=0, progress=False
    )
    assert set(fit.posterior.posterior.data_vars) == {"loc", "scale"}
    assert fit.posterior.log_likelihood["x"].shape == (1, 200, 50)
    # no warning about a missing log-likelihood group (ArviZ's Pareto-k warning depends on the draws
    # and is not what this test is about)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = az.loo(fit.posterior)
    messages = [str(w.message).lower() for w in caught]
    assert not [m for m in messages if "log" in m and "likelihood" in m], messages
    assert np.isfinite(loo["elpd_loo"])
    table = ppgen.compare([fit], x)
    assert np.isfinite(table.loc[0, "elpd_waic"])
    assert "diverging" in fit.posterior.sample_stats


def test_mcmc_is_seed_reproducible():
    x = gaussian_data(n=20, dim=1, seed=3)
    a = ppgen.fit(_nig(), x, method="mcmc", num_samples=50, warmup_steps=50, seed=5, progress=False)
    b = ppgen.fit(_nig(), x, method="mcmc", num_samples=50, warmup_steps=50, seed=5, progress=False)
    assert torch.equal(a.draws["loc"], b.draws["loc"])


def test_mcmc_needs_priors():
    with pytest.raises(ppgen.MethodError, match="Methods that apply to this model: \\['exact', 'mle'"):
        ppgen.fit(Gaussian(dim=1), gaussian_data(n=10), method="mcmc")


def _schools(x=None, sigma=None):
    """Eight schools: a user's hierarchical story with known measurement errors sigma."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("data", len(sigma)):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        return pyro.sample("x", dist.Normal(theta, sigma), obs=x)


SCHOOLS = {
    "x": torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
    "sigma": torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
}


def test_user_callable_with_covariates_by_mcmc():
    # Reference: the classic eight-schools posterior mean of mu is ~4.4 (sd ~3.3); we ask for
    # the right neighbourhood (within 2 of it), which a broken covariate path would miss.
    fit = ppgen.fit(
        _schools, SCHOOLS, method="mcmc", num_samples=200, warmup_steps=200, seed=1, progress=False
    )
    assert {"mu", "tau", "theta"} <= set(fit.draws)
    assert abs(float(fit.draws["mu"].mean()) - 4.4) < 2.0
    assert fit.posterior.log_likelihood["x"].shape[-1] == 8


def test_user_callable_by_svi_guides_local_latents_too():
    # A plain Pyro program has no guide of its own, so the autoguide must cover theta as well.
    svi = ppgen.fit(_schools, SCHOOLS, method="svi", guide="normal", num_steps=50, lr=0.05, seed=1)
    assert {"mu", "tau", "theta"} <= set(svi.draws)
    assert svi.draws["theta"].shape == (1000, 8)


@pytest.mark.slow
def test_user_callable_by_svi_finds_the_posterior():
    svi = ppgen.fit(_schools, SCHOOLS, method="svi", guide="normal", num_steps=4000, lr=0.05, seed=1)
    assert abs(float(svi.draws["mu"].mean()) - 4.4) < 2.0


@pytest.mark.slow
def test_two_chains_run_in_parallel_processes():
    x = gaussian_data(n=30, dim=1, seed=4)
    fit = ppgen.fit(_nig(), x, method="mcmc", num_samples=300, warmup_steps=200, num_chains=2, seed=0)
    assert fit.posterior.posterior.sizes["chain"] == 2
    assert fit.converged


def test_summary_has_stans_diagnostics_and_the_sampler_reports_them(caplog):
    # Reference: ArviZ's own az.summary(kind="diagnostics") on the same InferenceData (the columns
    # must be those numbers, not a re-implementation); 2 chains of 40 draws fail the ESS check
    # (< 100 per chain) by construction, so its line must be logged and kept in fit.extras.
    with caplog.at_level("WARNING", logger="ppgen.mcmc"):
        fit = ppgen.fit(
            _schools, SCHOOLS, method="mcmc", num_samples=40, warmup_steps=60, num_chains=2, seed=0,
            progress=False, parallel=False,
        )  # fmt: skip
    table = fit.summary().set_index("parameter")
    expected = az.summary(fit.posterior, kind="diagnostics", round_to="none")
    for column in ("r_hat", "ess_bulk", "ess_tail", "mcse_mean"):
        assert np.allclose(table.loc[expected.index, column], expected[column]), column
    assert any(line.startswith("Bulk ESS down to") for line in fit.extras["diagnostics"])
    assert any("Bulk ESS down to" in record.message for record in caplog.records)
    stats = fit.posterior.sample_stats
    assert {"diverging", "tree_depth", "n_steps", "step_size", "energy", "lp", "acceptance_rate"} <= set(
        stats
    )
    assert stats["energy"].shape == (2, 40) and np.isfinite(az.bfmi(fit.posterior)).all()


def _branching(x=None):
    """Python control flow on a latent's value: no graph can hold it, so the capture must refuse."""
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = 1.0 if float(loc) > 0 else 2.0
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(loc, scale), obs=x)


def test_uncapturable_program_falls_back_to_pyros_nuts_with_one_warning():
    x = torch.tensor([0.5, 1.0, 1.5])
    with pytest.warns(ppgen.inference.mcmc.SamplerFallbackWarning, match="cannot take this program") as seen:
        fit = ppgen.fit(
            _branching,
            x,
            method="mcmc",
            num_chains=1,
            num_samples=30,
            warmup_steps=30,
            seed=0,
            progress=False,
        )
    assert len([w for w in seen if issubclass(w.category, UserWarning)]) == 1
    assert fit.extras["sampler"] == "pyro" and "reads a number from a latent" in fit.extras["fallback"]
    assert fit.draws["loc"].shape == (30,) and "diverging" in fit.posterior.sample_stats
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for by name: no warning
        ppgen.fit(_branching, x, method="mcmc", sampler="pyro", num_samples=5, warmup_steps=5, progress=False)


@pytest.mark.parametrize("sampler", ["ppgen", "pyro"])
def test_mcmc_leaves_torch_and_pyro_settings_as_it_found_them(sampler):
    # The chains run on one thread each and capture with validation off: both restored on exit.
    threads, validation = torch.get_num_threads(), dist.is_validation_enabled()
    torch.set_num_threads(2)
    try:
        ppgen.fit(
            _schools, SCHOOLS, method="mcmc", sampler=sampler, num_samples=5, warmup_steps=5, progress=False
        )
        assert torch.get_num_threads() == 2 and dist.is_validation_enabled() == validation
    finally:
        torch.set_num_threads(threads)


def test_num_chains_defaults_to_the_cores_between_two_and_four(monkeypatch):
    # PyMC's rule: R-hat needs two chains even on one core; more than four cores add no chains.
    from ppgen.inference import mcmc

    for cores, chains in ((1, 2), (2, 2), (3, 3), (16, 4)):
        monkeypatch.setattr(mcmc.os, "sched_getaffinity", lambda _, n=cores: set(range(n)))
        assert mcmc.default_num_chains() == chains
    monkeypatch.setattr(mcmc.os, "sched_getaffinity", lambda _: {0, 1, 2})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # five draws: the diagnostics say so
        fit = ppgen.fit(_schools, SCHOOLS, method="mcmc", num_samples=5, warmup_steps=5, progress=False)
    assert fit.posterior.posterior.sizes["chain"] == 3 and fit.options["num_chains"] == 3
