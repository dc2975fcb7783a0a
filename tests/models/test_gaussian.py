"""Gaussian story: closed-form MLE vs numpy, gradient MLE vs closed form, sampling."""

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

import ppgen
from ppgen.models import Gaussian
from tests.common import assert_close, gaussian_data


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_exact_mle_equals_numpy(covariance):
    # Reference: numpy mean and the 1/n covariance; both exact in float64 -> 1e-12.
    x = gaussian_data(n=300, dim=3, seed=1)
    fit = ppgen.fit(Gaussian(dim=3, covariance=covariance), x, method="exact")
    xn = x.numpy()
    assert_close(fit.params["loc"], xn.mean(0), atol=1e-12)
    cov = np.cov(xn.T, bias=True)
    if covariance == "full":
        L = fit.params["scale_tril"]
        assert_close(L @ L.T, cov, atol=1e-12)
    else:
        assert_close(fit.params["scale"] ** 2, np.diag(cov), atol=1e-12)


def test_log_prob_equals_scipy():
    from scipy.stats import multivariate_normal

    x = gaussian_data(n=50, dim=2, seed=2)
    fit = ppgen.fit(Gaussian(dim=2), x, method="exact")
    L = fit.params["scale_tril"]
    ref = multivariate_normal(fit.params["loc"].numpy(), (L @ L.T).numpy()).logpdf(x.numpy())
    assert_close(fit.log_prob(x), ref, atol=1e-10)


def test_written_out_log_prob_equals_the_storys_distribution():
    # Reference: the story's own torch distribution (MultivariateNormal / Normal.to_event) and
    # scipy, to 1e-10 in float64 — for both covariances, and for a batch of loc draws broadcast
    # against the rows.
    from scipy.stats import multivariate_normal, norm

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64) * 3 + 1
    full = Gaussian(dim=3).double()
    full.set_params(
        loc=torch.randn(3, generator=g).double(),
        scale_tril=torch.tril(torch.rand(3, 3, generator=g).double()) + torch.eye(3).double(),
    )
    diag = Gaussian(dim=3, covariance="diag").double()
    diag.set_params(loc=torch.randn(3, generator=g).double(), scale=torch.rand(3, generator=g).double() + 0.2)
    with torch.no_grad():
        for model in (full, diag):
            assert_close(model.log_prob(x), model._distribution().log_prob(x), atol=1e-10)
        L = full.scale_tril
        ref = multivariate_normal(full.loc.numpy(), (L @ L.T).numpy()).logpdf(x.numpy())
        assert_close(full.log_prob(x), ref, atol=1e-10)
        ref = norm(diag.loc.numpy(), diag.scale.numpy()).logpdf(x.numpy()).sum(-1)
        assert_close(diag.log_prob(x), ref, atol=1e-10)
    # a batch of loc draws (as a Bayesian model is scored), broadcast against the rows like torch's
    prior = dist.Normal(torch.zeros(3, dtype=torch.float64), 1.0).to_event(1)
    bayes = ppgen.bayesian(full, loc=prior)
    locs = torch.randn(5, 1, 3, generator=g).double()
    with torch.no_grad(), poutine.condition(data={"loc": locs}):
        scored = bayes.log_prob(x)
    expected = dist.MultivariateNormal(locs, scale_tril=full.scale_tril.detach()).log_prob(x)
    assert expected.shape == (5, 40)
    assert_close(scored, expected, atol=1e-10)


def test_mle_by_gradient_reaches_closed_form():
    # SVI with the empty guide (method="mle") converges to the closed form; Adam at lr 0.05
    # for 3000 steps on a convex-in-loc problem reaches it to ~1e-4, so 1e-3 is safe.
    x = gaussian_data(n=200, dim=1, seed=3)
    exact = ppgen.fit(Gaussian(dim=1, covariance="diag"), x, method="exact")
    grad = ppgen.fit(Gaussian(dim=1, covariance="diag"), x, method="mle", lr=0.05, num_steps=3000, seed=0)
    assert_close(grad.params["loc"], exact.params["loc"], atol=1e-3)
    assert_close(grad.params["scale"], exact.params["scale"], atol=1e-3)


def test_log_prob_objective_equals_empty_guide_elbo():
    # mle optimises log_prob directly; it must be the same objective as Trace_ELBO with the empty guide.
    from pyro.infer import Trace_ELBO

    model = Gaussian(dim=2)
    x = gaussian_data(n=40, dim=2, seed=4)
    elbo = Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    assert_close(-model.log_prob(x).sum(), elbo, atol=1e-9)


def test_mle_fit_moves_parameters_and_does_not_touch_the_users_model():
    # PYRO_NOTES 1/2: a fit that leaves parameters at their init, or leaks into another
    # instance, is the silent failure we guard against.
    model = Gaussian(dim=1)
    x = gaussian_data(n=100, dim=1, seed=5)
    fit = ppgen.fit(model, x, method="mle", num_steps=500, lr=0.05)
    assert abs(float(fit.params["loc"]) - 3.0) < 0.5
    assert float(model.loc.detach()) == 0.0
    other = Gaussian(dim=1)
    assert float(other.loc.detach()) == 0.0


def test_sample_is_the_pushforward_of_standard_noise():
    # loc + L eps: the sample mean/cov match within Monte Carlo error (n=20000 -> sd of mean ~0.01).
    model = Gaussian(dim=2, loc=torch.tensor([1.0, -2.0]), scale_tril=torch.tensor([[2.0, 0.0], [1.0, 0.5]]))
    torch.manual_seed(0)
    s = model.sample(20000)
    assert s.shape == (20000, 2)
    assert_close(s.mean(0), [1.0, -2.0], atol=0.05)
    assert_close(torch.cov(s.T), [[4.0, 2.0], [2.0, 1.25]], atol=0.1)


def test_bad_inputs():
    with pytest.raises(ppgen.OptionError, match="covariance"):
        Gaussian(dim=2, covariance="banana")
    with pytest.raises(ppgen.OptionError, match="dim"):
        Gaussian(dim=0)
    with pytest.raises(ppgen.DataError, match=r"\(N, 2\)"):
        ppgen.fit(Gaussian(dim=2), torch.randn(10, 3), method="exact")
    with pytest.raises(ppgen.DataError, match="n > dim"):
        ppgen.fit(Gaussian(dim=3), torch.randn(2, 3), method="exact")
