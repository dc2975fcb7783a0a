"""One program, every fit: marginal MLE (empirical Bayes), MAP, Laplace, SVI, NUTS, and predictive checks.

References: closed-form marginal likelihoods maximised by scipy, closed-form MLEs, Hessians by
torch.autograd on the log joint written out by hand, analytic prior predictive moments (Monte
Carlo tolerance in standard errors), the Normal-inverse-gamma posterior predictive Student-t (KS).
"""

import math
import warnings

import arviz as az
import matplotlib
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import optimize, stats

import ppgen
from ppgen.errors import ConvergenceWarning
from ppgen.models import NormalInverseGamma
from tests import pyro_programs as programs
from tests.programs.test_program import _players

matplotlib.use("Agg")


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def normal_hierarchy(y, sigma):
    """Group means theta_i ~ N(mu, tau²) seen with known noise sigma_i."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("groups", y.shape[0]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def gaussian_with_priors(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    scale = pyro.sample("scale", dist.HalfNormal(5.0))
    with pyro.plate("rows", x.shape[0]):
        pyro.sample("obs", dist.Normal(loc, scale), obs=x)


def normal_log_scale(x):
    """Both latents on the real line, so the Laplace approximation needs no change of variables."""
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    log_scale = pyro.sample("log_scale", dist.Normal(0.0, 2.0))
    with pyro.plate("rows", x.shape[0]):
        pyro.sample("obs", dist.Normal(loc, log_scale.exp()), obs=x)


def _hierarchy_data():
    g = torch.Generator().manual_seed(0)
    sigma = 1 + torch.rand(30, generator=g)
    y = 2 + 3 * torch.randn(30, generator=g) + sigma * torch.randn(30, generator=g)
    return {"y": y, "sigma": sigma}


def test_empirical_bayes_reaches_the_marginal_likelihood_maximiser(float64):
    # Reference: y_i ~ N(mu, sigma_i² + tau²) integrates theta_i out in closed form; scipy's Nelder-Mead
    # maximises it to 1e-10. 30 groups, tau = 3: the maximiser is interior (not eight schools' tau = 0).
    # Tolerance 1e-3 (the issue's); the averaged 16-particle ELBO lands within 3e-4 (measured).
    data = _hierarchy_data()
    y, sigma = data["y"], data["sigma"]

    def negative_marginal(p):
        return -float(dist.Normal(p[0], torch.sqrt(sigma**2 + math.exp(p[1]) ** 2)).log_prob(y).sum())

    best = optimize.minimize(
        negative_marginal,
        [0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
    )
    fit = ppgen.fit(normal_hierarchy, data, method="mle", seed=0, progress=False)
    assert float(fit.params["mu"]) == pytest.approx(best.x[0], abs=1e-3)
    assert float(fit.params["tau"]) == pytest.approx(math.exp(best.x[1]), abs=1e-3)
    # the per-unit effects are draws from their fitted conditional posterior, listed after the globals
    table = fit.summary()
    assert list(table["parameter"][:3]) == ["mu", "tau", "theta[0]"]
    assert fit.draws["theta"].shape[1:] == (30,) and fit.posterior is not None
    # exact conditional posterior of theta_0 given (mu, tau): the guide is Gaussian, so its draws match it
    mu, tau = float(fit.params["mu"]), float(fit.params["tau"])
    precision = 1 / sigma[0] ** 2 + 1 / tau**2
    mean = (y[0] / sigma[0] ** 2 + mu / tau**2) / precision
    draws = fit.draws["theta"][:, 0]
    assert float(draws.mean()) == pytest.approx(
        float(mean), abs=4 * float(precision**-0.5) / math.sqrt(len(draws)) + 0.02
    )
    assert "prior" not in " ".join(fit.extras["dropped_priors"]) and fit.extras["integrated"] == ["theta"]


def test_mle_of_a_program_with_priors_without_locals_is_the_closed_form(float64):
    # Reference: the Gaussian MLE (mean, biased sd), exactly; the L-BFGS polish gets Adam's answer to 1e-6.
    x = torch.randn(200) * 2 + 1
    fit = ppgen.fit(gaussian_with_priors, {"x": x}, method="mle", seed=0, progress=False)
    assert float(fit.params["loc"]) == pytest.approx(float(x.mean()), abs=1e-6)
    assert float(fit.params["scale"]) == pytest.approx(float(x.std(unbiased=False)), abs=1e-6)
    assert fit.extras["polish"] == "lbfgs" and fit.posterior is None
    # plug-in score = the closed-form Gaussian log-likelihood per row
    expected = dist.Normal(x.mean(), x.std(unbiased=False)).log_prob(x).mean()
    assert fit.score({"x": x}) == pytest.approx(float(expected), abs=1e-8)


def test_laplace_is_the_inverse_hessian_at_the_map(float64):
    # Reference: torch.autograd's Hessian of -log p(x, loc, log_scale), the log joint written by hand,
    # at the Laplace guide's mode; its inverse must equal the guide's covariance to 1e-6.
    x = torch.randn(40) * 1.5 + 0.5
    fit = ppgen.fit(
        normal_log_scale,
        {"x": x},
        method="svi",
        guide="laplace",
        num_steps=3000,
        lr=0.05,
        seed=0,
        progress=False,
    )

    def negative_log_joint(z):
        loc, log_scale = z[0], z[1]
        return -(
            dist.Normal(0.0, 10.0).log_prob(loc)
            + dist.Normal(0.0, 2.0).log_prob(log_scale)
            + dist.Normal(loc, log_scale.exp()).log_prob(x).sum()
        )

    mode = fit.guide.loc.detach()
    hessian = torch.autograd.functional.hessian(negative_log_joint, mode)
    guide_cov = (fit.guide.scale[:, None] * fit.guide.scale_tril) @ (
        fit.guide.scale[:, None] * fit.guide.scale_tril
    ).T
    np.testing.assert_allclose(guide_cov.numpy(), torch.linalg.inv(hessian).numpy(), rtol=1e-6, atol=1e-10)
    # the mode is a stationary point of the log joint (Adam on a deterministic objective: gradient ~ 0)
    gradient = torch.autograd.functional.jacobian(negative_log_joint, mode)
    assert float(gradient.abs().max()) < 1e-3
    assert fit.draws["loc"].shape == (1000,) and "log_scale" in fit.posterior.posterior


def test_laplace_mean_map_and_the_analytic_mode_agree_on_a_conjugate_model(float64):
    # Reference: the normal-mean posterior N(sum x / (n + 1/100), 1 / (n + 1/100)) is Gaussian, so its
    # mode (= mean), MAP and the Laplace approximation coincide; Adam's end within 1e-4 of the mode.
    x = torch.randn(50) + 2.5
    precision = 50 + 1 / 100
    mode = float(x.sum() / precision)
    laplace = ppgen.fit(
        programs.normal_mean,
        {"x": x},
        method="svi",
        guide="laplace",
        num_steps=3000,
        lr=0.05,
        seed=0,
        progress=False,
    )
    map_ = ppgen.fit(
        programs.normal_mean, {"x": x}, method="map", num_steps=3000, lr=0.05, seed=0, progress=False
    )
    assert float(laplace.guide.loc[0]) == pytest.approx(mode, abs=1e-4)
    assert float(map_.params["mu"]) == pytest.approx(mode, abs=1e-4)
    assert float(laplace.guide.scale[0]) == pytest.approx(precision**-0.5, rel=1e-4)


def test_prior_predictive_moments_match_the_analytic_prior_predictive(float64):
    # Reference: mu ~ N(0, 10²), x_i | mu ~ N(mu, 1): x_i ~ N(0, 101) marginally and Cov(x_i, x_j) = 100.
    # 4000 draws; mean within 4 standard errors (sd / sqrt(4000)), variance within 4 standard errors of a
    # normal sample variance (var * sqrt(2 / 4000)).
    x = torch.randn(5)
    prior = ppgen.prior_predictive(programs.normal_mean, {"x": x}, num_samples=4000, seed=0)
    assert set(prior.groups()) == {"prior", "prior_predictive", "observed_data"}
    draws = prior.prior_predictive["obs"].values[0]  # (4000, 5)
    assert draws.shape == (4000, 5) and prior.prior["mu"].shape == (1, 4000)
    assert abs(draws[:, 0].mean()) < 4 * math.sqrt(101 / 4000)
    assert abs(draws[:, 0].var() - 101) < 4 * 101 * math.sqrt(2 / 4000)
    assert abs(np.cov(draws[:, 0], draws[:, 1])[0, 1] - 100) < 4 * 101 * math.sqrt(2 / 4000)
    np.testing.assert_array_equal(prior.observed_data["obs"].values, x.numpy())


def test_posterior_predictive_of_normal_inverse_gamma_is_its_student_t(float64):
    # Reference: the closed-form posterior predictive t_{2 a_n}(mu_n, b_n (kappa_n + 1) / (a_n kappa_n)),
    # hyperparameters computed here from the data; KS test on 2000 replicated points at level 0.001.
    x = torch.randn(40, 1) * 1.3 + 0.7
    fit = ppgen.fit(NormalInverseGamma(), x, method="exact")
    replicates = fit.predict(num_samples=2000, seed=1)["x"]  # (2000, 40, 1): one data set per draw
    points = replicates[:, 0, 0].numpy()
    n, xbar = 40, float(x.mean())
    kappa, mu = 1 + n, n * xbar / (1 + n)
    a = 1 + n / 2
    b = 1 + 0.5 * float(((x - xbar) ** 2).sum()) + n * xbar**2 / (2 * (1 + n))
    reference = stats.t(df=2 * a, loc=mu, scale=math.sqrt(b * (kappa + 1) / (a * kappa)))
    assert stats.kstest(points, reference.cdf).pvalue > 1e-3


def test_posterior_predictive_follows_the_posterior_draws():
    # Regression: the replicates were drawn from the prior (unconditioning freed the draws too). With every
    # draw's alpha at logit 3, each replicate's mean hit count is 45 sigmoid(3) = 42.9 (MC sd < 0.3).
    data = _players()
    fit = ppgen.fit(programs.logit_pooling, data, method="svi", num_steps=10, seed=0, progress=False)
    draws = {
        "loc": torch.full((50,), 3.0),
        "scale": torch.full((50,), 0.01),
        "alpha": torch.full((50, 18), 3.0),
    }
    fit.draws = {k: v.double() for k, v in draws.items()}
    replicates = fit.predict(num_samples=50, seed=0)["obs"]
    assert float(replicates.mean()) == pytest.approx(45 * float(torch.sigmoid(torch.tensor(3.0))), abs=1.0)


@pytest.fixture(scope="module")
def baseball_fits():
    data, season = _players(), _players("SeasonAt-Bats", "SeasonHits")
    quiet = {"seed": 0, "progress": False}
    # the funnel: the log joint grows without bound as scale -> 0, so the MAP fit says it has no optimum
    with pytest.warns(ConvergenceWarning, match="stopped short of an optimum"):
        map_ = ppgen.fit(programs.logit_pooling, data, method="map", **quiet)
    assert map_.extras["unbounded"]
    fits = {
        "mle": ppgen.fit(programs.logit_pooling, data, method="mle", num_steps=1500, **quiet),
        "map": map_,
        "svi": ppgen.fit(programs.logit_pooling, data, method="svi", num_steps=1500, lr=0.02, **quiet),
        "nuts": ppgen.fit(
            programs.logit_pooling,
            data,
            method="mcmc",
            num_chains=1,
            num_samples=200,
            warmup_steps=200,
            **quiet,
        ),
    }
    return fits, data, season


def test_one_table_compares_every_fit_of_one_program(baseball_fits):
    fits, _, season = baseball_fits
    table = ppgen.compare(list(fits.values()), season)
    assert list(table["method"]) == ["mle", "map", "svi", "mcmc"]
    assert table["test_loglik"].notna().all()
    # LOO/WAIC where there are draws of the per-unit latents (empirical Bayes, SVI, NUTS), not for MAP
    assert table.loc[[0, 2, 3], "elpd_loo"].notna().all() and math.isnan(table.loc[1, "elpd_loo"])
    # partial pooling shrinks: empirical Bayes and NUTS predict the season better than MAP's collapse
    assert table.loc[0, "test_loglik"] > table.loc[1, "test_loglik"] - 1.0


def test_laplace_refuses_a_posterior_without_a_mode(baseball_fits):
    # The hierarchical scale's density is unbounded as scale -> 0 with every alpha at loc (the funnel): the
    # MAP drifts there and the Hessian is not positive definite. A clear error, not a nonsense Gaussian.
    _, data, _ = baseball_fits
    with pytest.raises(ppgen.MethodError, match="positive-definite Hessian"):
        ppgen.fit(programs.logit_pooling, data, method="svi", guide="laplace", seed=0, progress=False)


def test_plot_ppc_and_loo_pit_run_on_a_nuts_fit(baseball_fits):
    # filterwarnings=error: ArviZ must find matching groups (no warning, no error)
    fits, _, _ = baseball_fits
    nuts = fits["nuts"]
    replicates = nuts.predict()
    assert replicates["obs"].shape == (200, 18)
    assert {"posterior_predictive", "observed_data", "log_likelihood"} <= set(nuts.posterior.groups())
    az.plot_ppc(nuts.posterior, num_pp_samples=50)
    pit = az.loo_pit(nuts.posterior, y="obs")
    assert pit.shape == (18,) and np.all((pit >= 0) & (pit <= 1))
    point = fits["map"]
    point.predict()
    assert "posterior_predictive" in point.posterior.groups() and not point.is_bayesian
    assert point.summary()["parameter"].iloc[0] == "loc"  # a point fit's summary is unchanged


def test_predictive_check_figure_compares_plug_in_and_posterior(baseball_fits):
    fits, _, _ = baseball_fits
    figure = ppgen.plots.predictive_check([fits["map"], fits["nuts"]], statistic="sd", num_samples=200)
    titles = [ax.get_title() for ax in figure.axes]
    assert len(titles) == 2 and all("P(T_rep" in t for t in titles)
    with pytest.raises(ppgen.OptionError, match="statistic"):
        ppgen.plots.predictive_check([fits["map"]], statistic="kurtosis")


def test_prior_and_posterior_predictive_of_a_ppgen_model():
    # Built-in models get both too: a Gaussian with priors (ppgen.bayesian) sampled and refitted by NUTS.
    from ppgen.models import Gaussian

    x = torch.randn(30, 1)
    model = ppgen.bayesian(
        Gaussian(dim=1, covariance="diag"), loc=dist.Normal(0.0, 10.0).expand([1]).to_event(1)
    )
    prior = ppgen.prior_predictive(model, x, num_samples=20, seed=0)
    assert prior.prior_predictive["x"].shape == (1, 20, 30, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NUTS on 30 points: step-size adaptation notices
        fit = ppgen.fit(
            model, x, method="mcmc", num_chains=1, num_samples=50, warmup_steps=50, seed=0, progress=False
        )
    replicates = fit.predict()["x"]
    assert replicates.shape[1:] == (30, 1) and "posterior_predictive" in fit.posterior.groups()
