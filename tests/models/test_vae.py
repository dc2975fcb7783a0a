"""VAE: the ELBO against its closed form for a linear-Gaussian VAE, ELBO ≤ IWAE_k ≤ IWAE_k',
the linear VAE against probabilistic PCA's closed-form MLE, and the clear-error paths."""

import math

import pytest
import torch
from pyro.infer import Trace_ELBO

import ppgen
from ppgen.errors import DataError, NonFiniteLossError, OptionError
from ppgen.models import VAE, ConditionalVAE
from tests.common import assert_close

pytestmark = pytest.mark.usefixtures("float64_default")


def _linear_vae(data_dim=5, latent_dim=2, seed=0):
    torch.manual_seed(seed)
    vae = VAE(data_dim, latent_dim, likelihood="gaussian", linear=True)
    with torch.no_grad():
        vae.encoder_log_scale.fill_(-0.5)
        vae.obs_scale = torch.tensor(0.7)
    return vae


def _closed_form_elbo(vae, x):
    """E_q[log N(x; Wz + b, σ²I)] − KL(q ‖ N(0, I)) for the linear decoder, written out by hand."""
    w, b, sigma = vae.decoder[0].weight, vae.decoder[0].bias, vae.obs_scale
    loc, scale = vae.encode(x)
    d = x.shape[1]
    resid = ((x - loc @ w.T - b) ** 2).sum(1) + ((w**2) @ (scale**2).T).T.sum(1)
    expected_loglik = -0.5 * d * math.log(2 * math.pi) - d * sigma.log() - resid / (2 * sigma**2)
    kl = 0.5 * (loc**2 + scale**2 - 1 - (scale**2).log()).sum(1)
    return expected_loglik - kl


def _exact_marginal(vae, x):
    w, b, sigma = vae.decoder[0].weight, vae.decoder[0].bias, vae.obs_scale
    cov = w @ w.T + sigma**2 * torch.eye(x.shape[1])
    return torch.distributions.MultivariateNormal(b, cov).log_prob(x)


def test_kl_term_is_the_analytic_gaussian_kl():
    # Reference: torch.distributions' registered KL(Normal ‖ Normal), summed over latent dims;
    # both are closed forms, so they agree to rounding (1e-10).
    vae = VAE(8, 3, hidden=(16,))
    x = torch.bernoulli(torch.full((20, 8), 0.4))
    loc, scale = vae.encode(x)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    _, kl = vae.elbo_terms(x)
    assert_close(kl.detach(), reference.detach(), atol=1e-10)


def test_elbo_and_pyro_trace_elbo_match_the_closed_form():
    # Reference: the linear-Gaussian ELBO in closed form. vae.elbo (one reparameterised draw,
    # analytic KL) is averaged over 4000 draws and Pyro's Trace_ELBO on model/guide uses 4000
    # vectorised particles (Monte Carlo KL); each must lie within 5 standard errors of the
    # closed form (SE estimated from the draws, the Pyro one from a hand-written MC-KL estimator).
    vae = _linear_vae()
    x = torch.randn(6, 5) * 2
    with torch.no_grad():
        exact = _closed_form_elbo(vae, x).sum()
        draws = torch.stack([vae.elbo(x).sum() for _ in range(4000)])
        se = draws.std() / math.sqrt(4000)
        assert abs(float(draws.mean() - exact)) < 5 * float(se)

        loc, scale = vae.encode(x)
        q = torch.distributions.Normal(loc, scale)
        z = q.sample((4000,))
        prior = torch.distributions.Normal(0.0, 1.0)
        mc = vae.decode(z).log_prob(x) + (prior.log_prob(z) - q.log_prob(z)).sum(-1)  # (S, N)
        se_pyro = mc.sum(1).std() / math.sqrt(4000)
        elbo = Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1)
        pyro_value = -elbo.differentiable_loss(vae.model, vae.guide, x)
    assert abs(float(pyro_value - exact)) < 5 * float(se_pyro)


def test_elbo_below_iwae_k_below_iwae_larger_k_on_average():
    # Reference: Burda et al.'s ordering E[ELBO] ≤ E[IWAE_k] ≤ E[IWAE_k'] (k < k'), checked on
    # averages over 30 repetitions × 40 rows; each gap must exceed 4 standard errors of the
    # difference, so the test fails if the bounds were computed the wrong way round.
    vae = VAE(10, 2, hidden=(16,))
    x = torch.bernoulli(torch.full((40, 10), 0.3))
    with torch.no_grad():
        elbo = torch.stack([vae.elbo(x).mean() for _ in range(30)])
        iwae5 = torch.stack([vae.iwae_bound(x, 5).mean() for _ in range(30)])
        iwae50 = torch.stack([vae.iwae_bound(x, 50).mean() for _ in range(30)])
    for low, high in ((elbo, iwae5), (iwae5, iwae50)):
        diff = high - low
        assert float(diff.mean()) > 4 * float(diff.std() / math.sqrt(30))


def test_iwae_estimate_approaches_the_exact_marginal():
    # Reference: the linear VAE's exact marginal N(x; b, WWᵀ + σ²I). IWAE_k ≤ log p in
    # expectation and converges to it; with k = 5000 the gap for this 2-d latent is < 0.01 nats.
    vae = _linear_vae()
    with torch.no_grad():  # a sensible proposal: the exact posterior mean, a widened diagonal scale
        w, b, sigma = vae.decoder[0].weight, vae.decoder[0].bias, vae.obs_scale
        precision = w.T @ w + sigma**2 * torch.eye(2)
        gain = torch.linalg.solve(precision, w.T)  # (L, D)
        vae.encoder[0].weight[:2] = gain
        vae.encoder[0].bias[:2] = -gain @ b
        vae.encoder_log_scale.copy_((1.5 * (sigma**2 * torch.linalg.inv(precision).diagonal()).sqrt()).log())
    x = torch.randn(10, 5)
    with torch.no_grad():
        exact = _exact_marginal(vae, x)
        estimate = vae.log_prob(x, k=5000)
        assert float((estimate - exact).mean()) < 0.003  # a lower bound up to MC noise
        assert_close(estimate, exact, atol=0.05)
        assert float((exact - estimate).mean()) < 0.01


def test_linear_vae_reaches_ppca_heldout_likelihood():
    # Reference: probabilistic PCA's closed-form MLE (Tipping & Bishop 1999): σ² = mean of the
    # discarded eigenvalues of the sample covariance, W = U_q (Λ_q − σ²I)^½. The linear VAE's
    # global optimum is that MLE (Lucas et al. 2019), so after SVI its exact held-out
    # log-likelihood must come within 1% of pPCA's on the same split.
    g = torch.Generator().manual_seed(0)
    d, q, n = 6, 2, 1000
    w_true, mu = torch.randn(d, q, generator=g) * 2, torch.randn(d, generator=g)
    draw = lambda m: torch.randn(m, q, generator=g) @ w_true.T + mu + 0.5 * torch.randn(m, d, generator=g)
    x_train, x_test = draw(n), draw(n)
    mean = x_train.mean(0)
    cov = (x_train - mean).T @ (x_train - mean) / n
    eigvals, eigvecs = torch.linalg.eigh(cov)
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    sigma2 = eigvals[q:].mean()
    w_ml = eigvecs[:, :q] * (eigvals[:q] - sigma2).sqrt()
    ppca = torch.distributions.MultivariateNormal(mean, w_ml @ w_ml.T + sigma2 * torch.eye(d))
    reference = float(ppca.log_prob(x_test).mean())

    vae = VAE(d, q, likelihood="gaussian", linear=True)
    fit = ppgen.fit(vae, x_train, method="svi", num_steps=800, lr=0.03, progress=False, seed=0, patience=100)
    with torch.no_grad():
        exact = float(_exact_marginal(fit.model, x_test).mean())
    assert abs(exact - reference) < 0.01 * abs(reference), (exact, reference)
    assert abs(fit.score(x_test) - reference) < 0.01 * abs(reference)  # the IWAE (k=1000) estimate


def test_svi_fit_and_conditional_vae_sampling():
    # Reference: training must lower the loss (its own history) and move the encoder;
    # class-conditional sampling returns binary rows of the right shape per label.
    x = torch.bernoulli(torch.full((64, 12), 0.3))
    y = torch.arange(64) % 3
    cvae = ConditionalVAE(12, num_classes=3, latent_dim=2, hidden=(16,))
    fit = ppgen.fit(cvae, {"x": x, "y": y}, method="svi", num_steps=60, lr=0.02, progress=False, seed=0)
    assert sum(fit.history[-10:]) < sum(fit.history[:10])
    draws = fit.sample(5, y=2)
    assert draws.shape == (5, 12) and set(draws.unique().tolist()) <= {0.0, 1.0}
    assert fit.model.sample(3, y=torch.tensor([0, 1, 2])).shape == (3, 12)
    assert math.isfinite(fit.score(x, y=y))
    assert fit.model.reconstruct(x[:4], y[:4]).shape == (4, 12)


def test_bad_inputs_raise_clear_errors():
    vae = VAE(4, 2, hidden=(8,))
    with pytest.raises(DataError, match="binary"):
        vae.elbo(torch.full((2, 4), 0.5))
    with pytest.raises(DataError, match="binary"):
        ppgen.fit(vae, torch.full((3, 4), 0.5), method="svi", num_steps=1, progress=False)
    with pytest.raises(DataError, match=r"shape \(N, 4\)"):
        vae.elbo(torch.zeros(2, 3))
    with pytest.raises(DataError, match="NaN"):
        vae.log_prob(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        VAE(4, 2, likelihood="continuous_bernoulli", hidden=(8,)).elbo(torch.full((2, 4), 2.0))
    with pytest.raises(OptionError, match="linear=True"):
        VAE(4, 2, likelihood="bernoulli", linear=True)
    cvae = ConditionalVAE(4, num_classes=3, hidden=(8,))
    with pytest.raises(DataError, match="labels y"):
        cvae.elbo(torch.zeros(2, 4))
    with pytest.raises(DataError, match="labels"):
        cvae.elbo(torch.zeros(2, 4), torch.tensor([0, 5]))
    with pytest.raises(OptionError, match="ConditionalVAE"):
        vae.elbo(torch.zeros(2, 4), torch.tensor([0, 1]))


def test_non_finite_loss_stops_with_a_message():
    # Data so large that the Gaussian log-likelihood overflows: the loop must stop with
    # NonFiniteLossError before taking a step, not return NaN parameters.
    x = torch.full((8, 3), 1e200)
    with pytest.raises(NonFiniteLossError, match="finite"):
        ppgen.fit(VAE(3, 1, likelihood="gaussian", hidden=(4,)), x, method="svi", num_steps=5, progress=False)


def test_mle_is_refused_with_a_pointer_to_svi():
    # log_prob is an IWAE estimate (no gradient path); method="mle" must say to use "svi".
    from ppgen.errors import MethodError

    x = torch.bernoulli(torch.full((20, 6), 0.4))
    with pytest.raises(MethodError, match="svi"):
        ppgen.fit(VAE(6, 2, hidden=(8,)), x, method="mle", num_steps=2, progress=False)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "continuous_bernoulli"])
def test_fast_reconstruction_term_equals_the_decoder_distribution(likelihood):
    # Reference: log_prob of the decoder's Pyro distribution (what the model observes); the
    # training path's closed forms must agree to rounding (1e-10, float64).
    vae = VAE(5, 2, likelihood=likelihood, hidden=(8,))
    x = torch.bernoulli(torch.full((7, 5), 0.5)) if likelihood == "bernoulli" else torch.rand(7, 5)
    z = torch.randn(3, 7, 2)
    with torch.no_grad():
        assert_close(vae._reconstruction(z, x, None), vae.decode(z).log_prob(x), atol=1e-10)
