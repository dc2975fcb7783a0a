"""The contract's helpers: pointwise log-likelihoods over posterior draws."""

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.core import _looped_log_likelihood, _vectorised_log_likelihood
from ppgen.models import Gaussian, NormalInverseWishart
from tests.common import assert_close, gaussian_data


def _schools(x=None, sigma=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("data", len(sigma)):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        return pyro.sample("x", dist.Normal(theta, sigma), obs=x)


def _cases():
    x2 = gaussian_data(n=30, dim=2, seed=1)
    niw = NormalInverseWishart(dim=2)
    yield niw, x2, {}, niw.conjugate_posterior(x2).draw(40)
    bayes = ppgen.bayesian(
        Gaussian(dim=2, covariance="diag"),
        loc=dist.Normal(0.0, 10.0).expand([2]).to_event(1),
        scale=dist.LogNormal(0.0, 1.0).expand([2]).to_event(1),
    )
    draws = {"loc": torch.randn(40, 2), "scale": torch.rand(40, 2) + 0.5}
    yield bayes, x2.float(), {}, draws
    # Users' programs have their own vectorised path (ppgen.programs.draws), tested in tests/test_program.py.


def test_vectorised_pointwise_log_likelihood_equals_the_draw_by_draw_loop():
    # Reference: conditioning the story on one draw at a time and scoring with log_prob.
    # The loop scores with the model's own log_prob (for Gaussian written out, not through
    # torch.distributions): the same density in another order of operations, so float32 cases
    # agree to a few ulps of the values (rtol 1e-6, atol 1e-5), float64 to 1e-10.
    for model, x, covariates, draws in _cases():
        fast = _vectorised_log_likelihood(model, x, draws, covariates, 40)
        assert fast is not None, type(model).__name__
        slow = _looped_log_likelihood(model, x, draws, covariates, 40)
        if x.dtype == torch.float64:
            assert_close(fast, slow, atol=1e-10)
        else:
            assert_close(fast, slow, atol=1e-5, rtol=1e-6)


def test_priors_on_a_model_without_its_size_are_a_clear_error():
    # Gaussian() takes its dim from the data at fit time; a prior's shape cannot be checked before that.
    with pytest.raises(ppgen.OptionError, match="size given before priors"):
        ppgen.bayesian(Gaussian(), loc=dist.Normal(0.0, 10.0).expand([2]).to_event(1))
    sized = ppgen.bayesian(Gaussian(dim=2), loc=dist.Normal(0.0, 10.0).expand([2]).to_event(1))
    assert sized.is_bayesian
