"""Factor analysis and pPCA against scikit-learn and the analytic pPCA likelihood."""

import math

import numpy as np
import pytest
import torch
from pyro.infer import Trace_ELBO
from sklearn.decomposition import PCA
from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis

import ppgen
from ppgen.errors import DataError, OptionError
from ppgen.models import PPCA, FactorAnalysis
from tests.common import assert_close


def factor_data(n=400, d=6, q=2, seed=1):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, q))
    noise = rng.uniform(0.5, 1.0, size=d)  # no Heywood case: EM converges in ~50 steps
    return torch.tensor(rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, d)) * noise + 3.0)


def test_fa_em_matches_sklearn_loglik():
    # Reference: scikit-learn FactorAnalysis (SVD-based iterations, tol 1e-10) reaches the MLE;
    # EM run to a 1e-10 change reaches the same optimum; issue's tolerance 1e-5 on the mean log-lik.
    x = factor_data()
    fit = ppgen.fit(FactorAnalysis(2), x, method="em", tol=1e-10, max_iter=2000, progress=False)
    sk = SkFactorAnalysis(2, tol=1e-10, max_iter=10000).fit(x.numpy())
    assert_close(fit.history[-1], sk.score(x.numpy()), atol=1e-5)
    assert_close(fit.model.log_prob(x).mean(), sk.score(x.numpy()), atol=1e-5)
    # The fitted covariance W Wᵀ + Psi is identified (W only up to rotation).
    cov = fit.params["W"] @ fit.params["W"].T + torch.diag(fit.params["psi"])
    assert_close(cov, sk.get_covariance(), atol=1e-3)


def test_fa_density_and_transform_equal_sklearn_with_same_params():
    # Reference: sklearn's score_samples and transform computed from the same (mean, W, Psi):
    # two independent implementations of N(mu, W Wᵀ + Psi) and E[z|x]; round-off only.
    x = factor_data()
    sk = SkFactorAnalysis(2).fit(x.numpy())
    model = FactorAnalysis(2, 6).double()
    model.set_params(
        mu=torch.tensor(sk.mean_), W=torch.tensor(sk.components_.T), psi=torch.tensor(sk.noise_variance_)
    )
    assert_close(model.log_prob(x), sk.score_samples(x.numpy()), atol=1e-10)
    assert_close(model.transform(x), sk.transform(x.numpy()), atol=1e-10)


def test_guide_is_exact_posterior_so_elbo_equals_loglik():
    # Reference: with q(z|x) = p(z|x), log p(x,z) - log q(z|x) = log p(x) for every z, so a
    # single-particle ELBO equals log_prob exactly (round-off ~1e-10 over 50 rows).
    x = factor_data(n=50)
    model = FactorAnalysis(2).initialize(x, init="random", seed=0)
    elbo = -Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    assert_close(elbo, model.log_prob(x).sum(), atol=1e-8)


def ppca_formula(x: np.ndarray, q: int) -> float:
    """Tipping & Bishop: -1/2 [d log 2π + Σ_{j≤q} log λ_j + (d-q) log σ² + d] per example."""
    n, d = x.shape
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    sigma2 = lam[q:].mean()
    return -0.5 * (d * math.log(2 * math.pi) + np.log(lam[:q]).sum() + (d - q) * math.log(sigma2) + d)


def test_ppca_exact_equals_analytic_formula():
    # Reference: the analytic maximum log-likelihood from numpy's eigvalsh, to 1e-10 (issue).
    x = factor_data()
    fit = ppgen.fit(PPCA(2), x, method="exact")
    assert_close(fit.model.log_prob(x).mean(), ppca_formula(x.numpy(), 2), atol=1e-10)
    assert_close(fit.params["sigma"] ** 2, np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[:4].mean())


def test_ppca_density_equals_sklearn_pca_score():
    # Reference: sklearn PCA.score_samples evaluates the pPCA density with its own parameters
    # (it uses n-1 variances, so we load its parameters rather than compare optima); round-off.
    x = factor_data()
    pca = PCA(2).fit(x.numpy())
    model = PPCA(2, 6).double()
    scale = np.sqrt(pca.explained_variance_ - pca.noise_variance_)
    model.set_params(
        mu=torch.tensor(pca.mean_),
        W=torch.tensor(pca.components_.T * scale),
        sigma=torch.tensor(np.sqrt(pca.noise_variance_)),
    )
    assert_close(model.log_prob(x), pca.score_samples(x.numpy()), atol=1e-10)


def test_ppca_em_reaches_exact_optimum():
    # Reference: the analytic optimum; EM from random loadings within 1e-3 relative (issue).
    x = factor_data()
    best = ppca_formula(x.numpy(), 2)
    fit = ppgen.fit(PPCA(2), x, method="em", init="random", tol=1e-10, max_iter=2000, progress=False)
    assert fit.history[-1] == pytest.approx(best, rel=1e-3)
    assert fit.history[-1] <= best + 1e-9  # nothing beats the MLE


@pytest.mark.slow
def test_ppca_svi_reaches_exact_optimum():
    # Reference: the analytic optimum; SVI with the model's exact-posterior guide is gradient
    # ascent on the log-likelihood, within 1e-3 relative after 1500 Adam steps.
    x = factor_data()
    best = ppca_formula(x.numpy(), 2)
    fit = ppgen.fit(PPCA(2, 6), x, method="svi", num_steps=1500, lr=0.05, seed=0, progress=False)
    assert fit.score(x) == pytest.approx(best, rel=1e-3)


@pytest.mark.slow
def test_ppca_mle_by_gradient_reaches_exact_optimum():
    # Reference: analytic optimum; method='mle' optimises the exact marginal log_prob (1e-3 rel).
    x = factor_data(n=200)
    best = ppca_formula(x.numpy(), 2)
    fit = ppgen.fit(PPCA(2, 6), x, method="mle", num_steps=600, lr=0.05, seed=0, progress=False)
    assert fit.score(x) == pytest.approx(best, rel=1e-3)


def test_sampling_covariance_matches_marginal():
    # Reference: the marginal covariance W Wᵀ + Psi; Monte Carlo with 40000 draws, entries
    # of size ~1 have standard error ~0.01, tolerance 0.06.
    model = FactorAnalysis(1, 3).double()
    model.set_params(
        W=torch.tensor([[1.0], [0.5], [-1.0]]).double(), psi=torch.tensor([0.2, 0.3, 0.4]).double()
    )
    draws = model.sample(40000)
    expected = model.W @ model.W.T + torch.diag(model.psi)
    assert_close(torch.cov(draws.T), expected.detach(), atol=0.06)


@pytest.mark.parametrize(
    "make, data, error, match",
    [
        (lambda: FactorAnalysis(0), None, OptionError, "n_factors"),
        (lambda: FactorAnalysis(3, dim=3), None, OptionError, "dim > n_factors"),
        (lambda: FactorAnalysis(4), torch.randn(20, 3).double(), DataError, "more features"),
        (lambda: FactorAnalysis(1, 3), torch.randn(20, 2).double(), DataError, r"\(N, 3\)"),
        (lambda: PPCA(2), np.full((10, 4), np.inf), DataError, "finite"),
    ],
)
def test_bad_inputs(make, data, error, match):
    with pytest.raises(error, match=match):
        ppgen.fit(make(), data, method="em", progress=False)


def test_ppca_exact_needs_residual_variance():
    # Data lying exactly in a 2-D subspace has sigma² = 0: a clear error, never NaN.
    x = torch.randn(50, 2).double() @ torch.randn(2, 4).double()
    with pytest.raises(DataError, match="fewer components"):
        ppgen.fit(PPCA(2), x, method="exact")
