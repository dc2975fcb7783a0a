"""Standard errors of point fits (``fit.summary()["sd"]`` of ``mle``/``map``) against closed forms:
the observed information of a Normal sample and of a logistic regression, the exact Gaussian posterior
a Laplace approximation reproduces, and a binomial proportion for a well separated mixture's weight."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import config_enumerate

import ppgen
from ppgen.inference.standard_errors import point_errors
from ppgen.models import Gaussian


def normal_with_priors(x=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    s = pyro.sample("s", dist.LogNormal(0.0, 2.0))
    with pyro.plate("data", 50):
        pyro.sample("x", dist.Normal(mu, s), obs=x)


def logistic(x, y=None):
    w = pyro.param("w", torch.zeros(x.shape[1]))
    b = pyro.param("b", torch.tensor(0.0))
    with pyro.plate("rows", x.shape[0]):
        return pyro.sample("y", dist.Bernoulli(logits=x @ w + b), obs=y)


def known_scale_mean(x=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 2.0), obs=x)


@config_enumerate
def two_clusters(data):
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([2]).to_event(1))
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[z], 1.0), obs=data)


def test_empirical_bayes_mle_of_a_normal_sample_has_the_observed_information_errors():
    # At the MLE the information of (mu, s) is diag(n/s², 2n/s²): sd = s/√n and s/√(2n) exactly;
    # the fit is float32, so 1e-3 relative covers its rounding.
    x = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 2 + 1
    fit = ppgen.fit(normal_with_priors, {"x": x}, method="mle", seed=0, progress=False)
    s_hat = float(x.std(unbiased=False))
    assert float(fit.params["s"]) == pytest.approx(s_hat, rel=1e-4)
    table = fit.summary().set_index("parameter")
    assert table.loc["mu", "sd"] == pytest.approx(s_hat / math.sqrt(50), rel=1e-3)
    assert table.loc["s", "sd"] == pytest.approx(s_hat / math.sqrt(100), rel=1e-3)


def test_logistic_regression_mle_matches_scikit_learn_and_the_fisher_information():
    # sklearn's unpenalised lbfgs to 1e-3 (float32 data); se = sqrt(diag((XᵀWX)⁻¹)) at the estimate
    # computed here in float64 numpy, to 1e-3 relative.
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=g)
    y = torch.bernoulli(torch.sigmoid(x @ torch.tensor([1.0, -0.5, 0.2]) + 0.3), generator=g)
    fit = ppgen.fit(logistic, {"x": x, "y": y}, method="mle", seed=0, progress=False)
    assert fit.extras["polish"] == "lbfgs"
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(x.numpy(), y.numpy())
    np.testing.assert_allclose(fit.params["w"].numpy(), reference.coef_[0], atol=1e-3)
    assert float(fit.params["b"]) == pytest.approx(float(reference.intercept_[0]), abs=1e-3)
    design = np.c_[x.numpy(), np.ones(300)].astype(np.float64)
    estimate = np.r_[fit.params["w"].numpy(), fit.params["b"].numpy()].astype(np.float64)
    p = 1 / (1 + np.exp(-design @ estimate))
    se = np.sqrt(np.diag(np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]))))
    sd = fit.summary()["sd"].to_numpy()
    np.testing.assert_allclose(sd, se, rtol=1e-3)


def test_map_standard_error_is_the_exact_gaussian_posterior_sd():
    # Normal prior, Normal likelihood with known scale: the posterior is Normal, so Laplace is exact.
    x = torch.randn(40, generator=torch.Generator().manual_seed(1)) * 2 + 3
    fit = ppgen.fit(known_scale_mean, {"x": x}, method="map", seed=0, progress=False)
    precision = 1 / 100 + 40 / 4
    assert float(fit.params["mu"]) == pytest.approx(float(x.sum()) / 4 / precision, rel=1e-4)
    assert fit.summary().set_index("parameter").loc["mu", "sd"] == pytest.approx(precision**-0.5, rel=1e-3)


def test_a_mixture_weight_has_a_binomial_proportion_standard_error():
    # Clusters 10 sds apart: each point's component is known, so the weight's information is that of
    # a proportion, sd = sqrt(w(1−w)/n); on a simplex the two weights' errors are equal. 2 % covers the
    # overlap left at 10 sds (below 1e-20) and float32.
    g = torch.Generator().manual_seed(0)
    data = torch.cat([torch.randn(120, generator=g) - 5, torch.randn(280, generator=g) + 5])
    fit = ppgen.fit(two_clusters, {"data": data}, method="mle", num_steps=200, seed=0, progress=False)
    table = fit.summary().set_index("parameter")
    w = float(fit.params["weights"][0])
    assert w == pytest.approx(0.3, abs=1e-3)
    assert table.loc["weights[0]", "sd"] == pytest.approx(math.sqrt(w * (1 - w) / 400), rel=0.02)
    assert table.loc["weights[0]", "sd"] == pytest.approx(table.loc["weights[1]", "sd"], rel=1e-3)
    assert table.loc["locs[0]", "sd"] == pytest.approx(1 / math.sqrt(120), rel=0.02)


def test_point_fits_without_a_deterministic_objective_report_no_error_and_leave_the_rng():
    x = torch.randn(50, generator=torch.Generator().manual_seed(0))
    svi = ppgen.fit(normal_with_priors, {"x": x}, method="svi", num_steps=50, seed=0, progress=False)
    assert "sd" not in svi.extras
    builtin = ppgen.fit(Gaussian(1), x[:, None], method="mle", num_steps=20, seed=0, progress=False)
    assert np.isnan(builtin.summary()["sd"]).all()
    # the errors' own evaluations run on a forked random stream: the caller's draws are unchanged
    param = torch.zeros(2, requires_grad=True)
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    extras = point_errors(
        lambda: ((param - torch.randn(2) * 0) ** 2).sum(), [param], lambda: {"p": param.detach()}, 1.0
    )
    assert set(extras) == {"sd"} and torch.allclose(extras["sd"]["p"], torch.full((2,), 0.5**0.5))
    assert torch.equal(torch.rand(3), expected)


def test_a_saddle_gives_the_reason_instead_of_errors():
    param = torch.zeros(2, requires_grad=True)
    extras = point_errors(lambda: param[0] ** 2 - param[1] ** 2, [param], lambda: {"p": param.detach()}, 1.0)
    assert "sd" not in extras and "not positive definite" in extras["sd_skipped"]
    assert extras["unbounded"] == {"p": "saddle"}  # H = diag(2, -2) at g = 0


def test_an_interrupted_map_is_neither_polished_nor_given_errors(monkeypatch):
    # Ctrl-C keeps the steps done; L-BFGS after it would report a finished, converged fit. The
    # interrupt comes from Adam's 50th step (the program itself runs only to trace its loss once).
    adam_step, calls = torch.optim.Adam.step, {"n": 0}

    def interrupted_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", interrupted_step)
    x = torch.randn(40, generator=torch.Generator().manual_seed(1))
    fit = ppgen.fit(known_scale_mean, {"x": x}, method="map", num_steps=200, seed=0, progress=False)
    assert fit.converged is False and len(fit.history) < 200
    assert "polish" not in fit.extras and "sd" not in fit.extras
