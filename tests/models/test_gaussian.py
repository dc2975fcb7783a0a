"""Gaussian story: closed-form MLE vs numpy, gradient MLE vs closed form, sampling."""

import numpy as np
import pytest
import torch

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
