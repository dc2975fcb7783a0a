"""Conjugate posteriors checked by Bayes' rule itself, with scipy densities as the reference.

For any parameter value θ, log p(θ|D) − log p(θ) − log p(D|θ) = −log p(D) must not depend
on θ. Checking that at several random θ verifies the posterior exactly (1e-10 relative: float64
round-off of sums over ~50 points) without re-deriving its formulas; the same evidence
gives the posterior predictive, log p(x*|D) = log p(D ∪ x*) − log p(D).
"""

import numpy as np
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.models import (
    BetaBernoulli,
    DirichletCategorical,
    GammaPoisson,
    NormalInverseGamma,
    NormalInverseWishart,
    NormalKnownScale,
)
from tests.common import assert_close

rng = np.random.default_rng(0)


def _normal_known(x, theta):
    m = NormalKnownScale(dim=2, scale=1.5, prior_loc=1.0, prior_scale=3.0)
    loc = theta["loc"]
    prior = stats.norm(1.0, 3.0).logpdf(loc).sum()
    lik = stats.norm(loc, 1.5).logpdf(x).sum()
    return m, prior + lik


def _nig(x, theta):
    m = NormalInverseGamma(mu0=0.5, kappa0=2.0, alpha0=3.0, beta0=2.0)
    var, loc = theta["scale"][0] ** 2, theta["loc"][0]
    # density of (loc, var); the posterior check below uses the same parametrisation.
    prior = stats.invgamma(3.0, scale=2.0).logpdf(var) + stats.norm(0.5, np.sqrt(var / 2.0)).logpdf(loc)
    lik = stats.norm(loc, np.sqrt(var)).logpdf(x).sum()
    return m, prior + lik


def _niw(x, theta):
    psi0 = np.array([[2.0, 0.3], [0.3, 1.0]])
    m = NormalInverseWishart(dim=2, mu0=[0.0, 1.0], kappa0=0.5, nu0=5.0, psi0=psi0)
    cov, loc = theta["covariance"], theta["loc"]
    prior = stats.invwishart(5.0, psi0).logpdf(cov) + stats.multivariate_normal([0.0, 1.0], cov / 0.5).logpdf(
        loc
    )
    lik = stats.multivariate_normal(loc, cov).logpdf(x).sum()
    return m, prior + lik


def _beta(x, theta):
    m = BetaBernoulli(dim=3, alpha=2.0, beta=0.5)
    p = theta["probs"]
    return m, stats.beta(2.0, 0.5).logpdf(p).sum() + stats.bernoulli(p).logpmf(x).sum()


def _dirichlet(x, theta):
    m = DirichletCategorical(num_categories=4, alpha=[1.0, 2.0, 0.5, 3.0])
    p = theta["probs"]
    return m, stats.dirichlet([1.0, 2.0, 0.5, 3.0]).logpdf(p) + np.log(p[x.astype(int)]).sum()


def _gamma(x, theta):
    m = GammaPoisson(dim=2, alpha=2.0, beta=0.5)
    r = theta["rate"]
    return m, stats.gamma(2.0, scale=1 / 0.5).logpdf(r).sum() + stats.poisson(r).logpmf(x).sum()


FAMILIES = {
    "normal_known": (_normal_known, lambda n: rng.normal(2.0, 1.5, size=(n, 2))),
    "nig": (_nig, lambda n: rng.normal(-1.0, 2.0, size=(n, 1))),
    "niw": (_niw, lambda n: rng.multivariate_normal([1.0, -1.0], [[1.0, 0.5], [0.5, 2.0]], size=n)),
    "beta": (_beta, lambda n: (rng.random((n, 3)) < [0.2, 0.5, 0.9]).astype(float)),
    "dirichlet": (_dirichlet, lambda n: rng.choice(4, size=n, p=[0.1, 0.2, 0.3, 0.4]).astype(float)),
    "gamma": (_gamma, lambda n: rng.poisson([1.0, 4.0], size=(n, 2)).astype(float)),
}


def _joint_log_posterior(post, theta):
    """log p(θ | D) from the posterior's marginals (plus the conditional for NIG/NIW)."""
    h = post.hyper
    if "kappa0" in h and "alpha0" in h:  # NIG: IG(var) * N(loc | mu_n, var / kappa_n)
        var, loc = theta["scale"][0] ** 2, theta["loc"][0]
        return stats.invgamma(float(h["alpha0"]), scale=float(h["beta0"])).logpdf(var) + stats.norm(
            float(h["mu0"]), np.sqrt(var / float(h["kappa0"]))
        ).logpdf(loc)
    if "nu0" in h:  # NIW
        cov, loc = theta["covariance"], theta["loc"]
        return stats.invwishart(float(h["nu0"]), h["psi0"].numpy()).logpdf(cov) + stats.multivariate_normal(
            h["mu0"].numpy(), cov / float(h["kappa0"])
        ).logpdf(loc)
    ((name, marginal),) = post.marginals.items()
    value = torch.as_tensor(theta[name], dtype=torch.float64)
    return float(marginal.log_prob(value).sum())


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_posterior_satisfies_bayes_rule(family):
    make, gen = FAMILIES[family]
    x = gen(40)
    model, _ = make(x, _prior_draw(family))
    post = model.conjugate_posterior(torch.as_tensor(x))
    constants = []
    for _ in range(4):
        theta = {k: v.numpy() for k, v in post.draw(1).items()}
        theta = {k: v[0] for k, v in theta.items()}
        _, prior_plus_lik = make(x, theta)
        constants.append(_joint_log_posterior(post, theta) - prior_plus_lik)
    assert np.ptp(constants) < 1e-10 * max(1.0, abs(constants[0])), constants


def _prior_draw(family):
    return {
        "normal_known": {"loc": np.zeros(2)},
        "nig": {"scale": np.ones(1), "loc": np.zeros(1)},
        "niw": {"covariance": np.eye(2), "loc": np.zeros(2)},
        "beta": {"probs": np.full(3, 0.5)},
        "dirichlet": {"probs": np.full(4, 0.25)},
        "gamma": {"rate": np.ones(2)},
    }[family]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_posterior_predictive_is_the_evidence_ratio(family):
    make, gen = FAMILIES[family]
    x = gen(30)
    x_new = gen(1)
    model, _ = make(x, _prior_draw(family))

    def log_evidence(data):
        post = model.conjugate_posterior(torch.as_tensor(data))
        theta = {k: v[0].numpy() for k, v in post.draw(1).items()}
        _, prior_plus_lik = make(data, theta)
        return prior_plus_lik - _joint_log_posterior(post, theta)

    with_new, without = log_evidence(np.concatenate([x, x_new])), log_evidence(x)
    expected = with_new - without
    post = model.conjugate_posterior(torch.as_tensor(x))
    got = float(post.log_predictive(torch.as_tensor(x_new)).sum())
    # The evidences are O(100) each; their difference inherits their round-off.
    assert abs(got - expected) < 1e-10 * max(1.0, abs(with_new), abs(without))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sequential_updating_equals_batch(family):
    make, gen = FAMILIES[family]
    x = gen(30)
    model, _ = make(x, _prior_draw(family))
    batch = model.conjugate_posterior(torch.as_tensor(x)).hyper
    step = model.posterior_model(torch.as_tensor(x[:13])).conjugate_posterior(torch.as_tensor(x[13:])).hyper
    for key in batch:
        assert_close(step[key], batch[key], atol=1e-10)


def test_inverse_wishart_matches_scipy():
    from ppgen.models.conjugate_normal import InverseWishart

    psi = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    d = InverseWishart(6.0, psi)
    value = torch.tensor([[0.7, 0.1], [0.1, 0.4]], dtype=torch.float64)
    assert abs(float(d.log_prob(value)) - stats.invwishart(6.0, psi.numpy()).logpdf(value.numpy())) < 1e-10
    torch.manual_seed(0)
    draws = d.sample((20000,))
    # Monte Carlo mean within ~4 standard errors of Ψ/(ν-d-1).
    assert_close(draws.mean(0), psi / 3.0, atol=0.03)


def test_exact_fit_reports_posterior_and_student_t_predictive():
    x = torch.as_tensor(rng.normal(3.0, 2.0, size=(50, 1)))
    fit = ppgen.fit(NormalInverseGamma(mu0=0.0, kappa0=1.0, alpha0=2.0, beta0=2.0), x, method="exact")
    h = fit.exact_posterior.hyper
    ref = stats.t(
        2 * float(h["alpha0"]),
        float(h["mu0"]),
        np.sqrt(float(h["beta0"] * (h["kappa0"] + 1) / (h["alpha0"] * h["kappa0"]))),
    ).logpdf(x.numpy()[:, 0])
    assert_close(fit.log_prob(x), ref, atol=1e-10)
    assert "log_likelihood" in fit.posterior.groups()
    table = fit.summary()
    assert set(table["parameter"]) == {"loc[0]", "scale[0]"}


def test_bad_data_for_discrete_families():
    with pytest.raises(ppgen.DataError, match="binary"):
        BetaBernoulli(dim=1).conjugate_posterior(torch.tensor([[0.5]]))
    with pytest.raises(ppgen.DataError, match="integer labels"):
        DirichletCategorical(3).conjugate_posterior(torch.tensor([0.0, 3.0]))
    with pytest.raises(ppgen.DataError, match="counts"):
        GammaPoisson().conjugate_posterior(torch.tensor([[-1.0]]))
    with pytest.raises(ppgen.OptionError, match="alpha0 > 0"):
        NormalInverseGamma(alpha0=-1.0)
