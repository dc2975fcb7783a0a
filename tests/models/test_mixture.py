"""Gaussian mixtures and the skeleton every mixture shares: the Pyro story, the closed-form marginal
and EM agree with independent references — TraceEnum_ELBO, scipy densities, scikit-learn's EM,
closed-form M-steps and maximisers of Q + P. The discrete families are in test_pixel_mixture.py."""

import math
import warnings

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from scipy import stats
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import ppgen
from ppgen.core import global_latent_sites
from ppgen.errors import ConvergenceWarning, DataError, MethodError, OptionError
from ppgen.models import BernoulliMixture, CategoricalMixture, GaussianMixture
from ppgen.models.mixture import COVARIANCES, OrderedMeans, kmeans_plusplus
from tests.common import assert_close


def blobs(n=300, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(3, dim))
    labels = rng.integers(0, 3, size=n)
    scales = np.array([0.5, 1.0, 1.5])[labels, None]
    return torch.tensor(centers[labels] + rng.normal(size=(n, dim)) * scales)


def random_mixture(covariance, dim=3, k=3, seed=0):
    """A mixture with distinct random parameters (float64)."""
    model = GaussianMixture(k, dim, covariance).double()
    model.initialize(blobs(dim=dim, seed=seed), init="random", seed=seed)
    return model


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_enumerated_story_equals_log_prob(covariance):
    # Reference: TraceEnum_ELBO with the empty guide sums z out of the Pyro story exactly
    # (PYRO_NOTES 4), an independent code path from log_prob's GEMM formulas; float64 round-off ~1e-13.
    model = random_mixture(covariance)
    x = blobs(n=50, seed=3)
    elbo = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model.model, model.guide, x)
    assert_close(elbo, model.log_prob(x).sum(), atol=1e-10)


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_log_prob_matches_scipy(covariance):
    # Reference: scipy multivariate_normal densities, mixed by hand in numpy; exact up to round-off.
    model = random_mixture(covariance)
    x = blobs(n=20, seed=5)
    pi, mu, cov = model.pi.detach().numpy(), model.mu.detach().numpy(), model.covariances().numpy()
    dens = sum(pi[k] * stats.multivariate_normal(mu[k], cov[k]).pdf(x.numpy()) for k in range(3))
    assert_close(model.log_prob(x), np.log(dens), atol=1e-10)


def test_worked_responsibility_example():
    # Reference: the source text's worked example, pi=(0.6,0.4), mu=(-1,2), sigma=1, x=0,
    # computed here from the normal pdf; the text rounds it to (0.87, 0.13).
    model = GaussianMixture(2, 1, "spherical").double()
    f64 = {"dtype": torch.float64}
    model.set_params(pi=torch.tensor([0.6, 0.4], **f64), mu=torch.tensor([[-1.0], [2.0]], **f64))
    r = model.responsibilities([[0.0]])[0]
    w = np.array([0.6 * stats.norm(-1, 1).pdf(0), 0.4 * stats.norm(2, 1).pdf(0)])
    assert_close(r, w / w.sum(), atol=1e-12)
    assert_close(r, [0.87, 0.13], atol=0.005)


def _sklearn_init(model):
    cov = model.covariances().numpy()
    precisions = {
        "full": np.linalg.inv(cov),
        "tied": np.linalg.inv(cov[0]),
        "diag": 1 / np.diagonal(cov, axis1=1, axis2=2),
        "spherical": 1 / cov[:, 0, 0],
    }[model.covariance]
    return {
        "weights_init": model.pi.detach().numpy(),
        "means_init": model.mu.detach().numpy(),
        "precisions_init": precisions,
    }


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_em_trajectory_equals_sklearn(covariance):
    # Reference: scikit-learn GaussianMixture from the same initial parameters; lower_bound_
    # after max_iter=t is the mean log-lik after t-1 M-steps (our history[t-1]). Both are
    # float64 EM with the same reg_covar, so they agree to round-off; the issue asks 1e-6.
    x = blobs(n=400)
    model = GaussianMixture(3, 3, covariance).double().initialize(x, init="random", seed=2)
    init = _sklearn_init(model)
    steps = 6
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        fit = ppgen.fit(model, x, method="em", init="given", max_iter=steps, tol=0.0, progress=False)
    bounds = []
    for t in range(1, steps + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's own ConvergenceWarning at small max_iter
            sk = SkGaussianMixture(3, covariance_type=covariance, max_iter=t, tol=0.0, **init).fit(x.numpy())
        bounds.append(sk.lower_bound_)
    assert_close(fit.history[:steps], bounds, atol=1e-6)
    assert_close(fit.params["pi"], sk.weights_, atol=1e-6)
    assert_close(fit.params["mu"], sk.means_, atol=1e-6)
    sk_cov = sk.covariances_
    ours = fit.model.covariances()
    if covariance == "diag":
        ours = torch.diagonal(ours, dim1=1, dim2=2)
    elif covariance == "spherical":
        ours = ours[:, 0, 0]
    elif covariance == "tied":
        ours = ours[0]
    assert_close(ours, sk_cov, atol=1e-6)
    assert_close(fit.history[-1], sk.score(x.numpy()), atol=1e-6)


def test_bic_aic_match_sklearn():
    # Reference: sklearn's bic/aic with the same parameters (counts free parameters identically).
    x = blobs(n=200)
    fit = ppgen.fit(GaussianMixture(3, covariance="diag"), x, method="em", seed=0, progress=False)
    sk = SkGaussianMixture(3, covariance_type="diag", **_sklearn_init(fit.model), max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(x.numpy())
    sk.weights_, sk.means_ = fit.params["pi"].numpy(), fit.params["mu"].numpy()
    sk.covariances_ = fit.params["scale"].numpy() ** 2
    sk.precisions_cholesky_ = 1 / fit.params["scale"].numpy()
    assert_close(fit.model.bic(x), sk.bic(x.numpy()), atol=1e-8)
    assert_close(fit.model.aic(x), sk.aic(x.numpy()), atol=1e-8)


def test_em_recovers_separated_clusters_and_predict():
    # Reference: the generating labels; well-separated blobs are recovered up to relabelling.
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 400)
    x = torch.tensor(np.array([[-5.0, 0.0], [5.0, 0.0]])[labels] + rng.normal(size=(400, 2)))
    fit = ppgen.fit(GaussianMixture(2), x, method="em", seed=0, progress=False)
    pred = fit.model.predict(x).numpy()
    assert max((pred == labels).mean(), (pred != labels).mean()) > 0.99


def test_sampling_moments():
    # Reference: mixture mean sum_k pi_k mu_k; Monte Carlo with 20000 draws, sd of the mean
    # < 0.05 here, tolerance 0.1 (= 2+ standard errors per coordinate).
    model = GaussianMixture(2, 1, "spherical").double()
    model.set_params(pi=torch.tensor([0.3, 0.7]), mu=torch.tensor([[-4.0], [2.0]]), scale=torch.ones(2))
    draws = model.sample(20000)
    assert draws.shape == (20000, 1)
    assert_close(draws.mean(), 0.3 * -4 + 0.7 * 2, atol=0.1)


def test_kmeans_plusplus_picks_data_points_in_every_cluster():
    # Reference: with three far-apart tight clusters, D^2 seeding picks one point in each.
    x = torch.cat([torch.randn(50, 2) * 0.01 + c for c in (-100.0, 0.0, 100.0)]).double()
    centers = kmeans_plusplus(x, 3, torch.Generator().manual_seed(0))
    assert sorted(centers[:, 0].round().tolist()) == [-100.0, 0.0, 100.0]


def test_ordered_means_prior_support_and_density():
    # Reference: sorted draws, and the change-of-variables density by hand:
    # log p(mu) = log N(mu_1) + sum_k [log N(log(mu_k - mu_{k-1})) - log(mu_k - mu_{k-1})].
    prior = OrderedMeans(3, 0.0, 2.0)
    draws = prior.sample((100,))
    assert draws.shape == (100, 3, 1) and bool((draws[:, 1:, 0] > draws[:, :-1, 0]).all())
    mu = torch.tensor([[-1.0], [0.5], [3.0]], dtype=torch.float64)
    gaps = torch.log(mu[1:, 0] - mu[:-1, 0])
    expected = stats.norm(0, 2).logpdf(-1.0) + sum(stats.norm(0, 2).logpdf(g) - g for g in gaps.tolist())
    assert_close(prior.log_prob(mu), expected, atol=1e-10)


@pytest.mark.parametrize(
    "make, data, error, match",
    [
        (lambda: GaussianMixture(0), None, OptionError, "n_components"),
        (lambda: GaussianMixture(2, covariance="banana"), None, OptionError, "covariance"),
        (lambda: GaussianMixture(2, reg_covar=-1.0), None, OptionError, "reg_covar"),
        (lambda: GaussianMixture(5, 2), torch.randn(3, 2).double(), DataError, "n_components"),
        (lambda: GaussianMixture(2, 2), np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]]), DataError, "NaN"),
        (lambda: GaussianMixture(2, 3), torch.randn(10, 2).double(), DataError, r"\(N, 3\)"),
        (lambda: BernoulliMixture(2), torch.rand(10, 4).double(), DataError, "binary"),
        (lambda: CategoricalMixture(2, 3), torch.full((10, 4), 7.0).double(), DataError, "categories"),
    ],
)
def test_bad_inputs_raise_clear_errors(make, data, error, match):
    with pytest.raises(error, match=match):
        model = make()
        ppgen.fit(model, data, method="em", progress=False)


def test_method_errors_name_alternatives():
    # A Bayesian mixture has no MLE by EM; exact has no closed form for mixtures.
    model = ppgen.bayesian(GaussianMixture(2, 1, "spherical"), pi=dist.Dirichlet(torch.ones(2)))
    with pytest.raises(MethodError, match="mcmc"):
        ppgen.fit(model, torch.randn(20, 1), method="em")
    with pytest.raises(MethodError, match="em"):
        ppgen.fit(GaussianMixture(2, 1), torch.randn(20, 1), method="exact")


def test_svi_enumerated_reaches_em_optimum():
    # Reference: the EM optimum; TraceEnum_ELBO with the empty guide is the exact log-likelihood,
    # so gradient ascent from the EM solution must stay there (within Adam's jitter, 1e-4).
    x = ppgen.data.load("faithful")
    em = ppgen.fit(GaussianMixture(2, covariance="diag"), x, method="em", seed=0, tol=1e-8, progress=False)
    svi = ppgen.fit(em.model, x, method="svi", num_steps=30, lr=1e-3, progress=False)
    assert svi.score(x) == pytest.approx(em.score(x), abs=1e-4)
    assert math.isfinite(svi.history[-1])


@pytest.mark.slow
def test_bayesian_mixture_nuts_recovers_means():
    # Reference: the true means of two well-separated 1-D clusters; each must lie in its 95%
    # posterior interval. The ordering prior removes label switching so mu[0] is the left cluster.
    rng = np.random.default_rng(0)
    labels = rng.random(150) < 0.4
    x = torch.tensor(np.where(labels, -3.0, 2.0) + rng.normal(size=150))[:, None]
    model = ppgen.bayesian(
        GaussianMixture(2, 1, "spherical").double(),
        pi=dist.Dirichlet(torch.ones(2, dtype=torch.float64)),
        mu=OrderedMeans(2, 0.0, 5.0),
        scale=dist.LogNormal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1),
    )
    fit = ppgen.fit(model, x, method="mcmc", num_samples=300, warmup_steps=200, seed=0, progress=False)
    mu = fit.draws["mu"][:, :, 0]
    low, high = mu.quantile(0.025, 0), mu.quantile(0.975, 0)
    assert bool((low[0] < -3.0) & (-3.0 < high[0]) & (low[1] < 2.0) & (2.0 < high[1]))
    assert "log_likelihood" in fit.posterior.groups()


def test_save_load_roundtrip(tmp_path):
    # Reference: the fit before saving; a reloaded fit scores identically.
    x = blobs(n=100)
    fit = ppgen.fit(GaussianMixture(3), x, method="em", seed=0, progress=False)
    back = ppgen.load(fit.save(tmp_path / "gmm.pt"))
    assert back.score(x) == fit.score(x)


def test_prior_argument_equals_bayesian():
    # Reference: ppgen.bayesian on the same model; both stories expose the same global sites and
    # give the same log_prob once conditioned on the same global values (exact).
    f64 = {"dtype": torch.float64}
    priors = {
        "pi": dist.Dirichlet(torch.ones(2, **f64)),
        "mu": dist.Normal(torch.zeros(2, 1, **f64), 5.0).to_event(2),
    }
    direct = GaussianMixture(2, 1, "spherical", prior=priors).double()
    via = ppgen.bayesian(GaussianMixture(2, 1, "spherical").double(), **priors)
    x = torch.randn(10, 1, **f64)
    assert (
        sorted(global_latent_sites(direct, x, {})) == sorted(global_latent_sites(via, x, {})) == ["mu", "pi"]
    )
    values = {"pi": torch.tensor([0.3, 0.7], **f64), "mu": torch.tensor([[-1.0], [1.0]], **f64)}
    with poutine.condition(data=values):
        assert_close(direct.log_prob(x), via.log_prob(x), atol=1e-14)
    with pytest.raises(OptionError, match="dim="):
        GaussianMixture(2, prior=priors)
    with pytest.raises(OptionError, match="shape"):
        GaussianMixture(2, 3, prior={"mu": dist.Normal(0.0, 1.0)})


def _penalised_q(model, x, resp):
    """``Q + P = sum_ik r_ik [log pi_k + log N(x_i | mu_k, Sigma_k)] - (reg/2) sum_k N_k tr(Sigma_k^-1)``
    with scipy densities and numpy inverses (independent of the model's GEMM formulas)."""
    pi, mu, cov = model.pi.detach().numpy(), model.mu.detach().numpy(), model.covariances().numpy()
    logp = np.stack([stats.multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(len(pi))], 1)
    nk = resp.sum(0)
    trace = np.trace(np.linalg.inv(cov), axis1=1, axis2=2)
    q = float((resp * (np.log(pi) + logp)).sum())
    return q, q - 0.5 * model.reg_covar * float((nk * trace).sum())


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_regularised_m_step_maximises_q_plus_penalty(covariance):
    # The math behind EM's monotonicity check (issue 18): Sigma_k = S_k + reg I is the exact
    # maximiser of Q + P, P = -(reg/2) sum_k N_k tr(Sigma_k^-1), within each covariance family, and
    # not of Q alone. Reference: Q + P by scipy at the M-step's output vs 40 random perturbations
    # of (pi, mu, Sigma) in the family's own parameters (steps 1e-3..1e-2: a point that is not the
    # maximiser gains to first order along some of them; 1e-10 allows round-off); shrinking Sigma
    # by reg I raises Q alone (by > 1e-3 with reg = 0.3).
    x = blobs(n=60)
    reg = 0.3  # large, so the penalty is visible
    model = GaussianMixture(3, 3, covariance, reg_covar=reg).double().initialize(x, init="random", seed=1)
    with torch.no_grad():
        resp = model.e_step(x)[0]
        model.m_step(x, resp)
    resp, xs = resp.numpy(), x.numpy()
    best_q, best = _penalised_q(model, xs, resp)
    # The model's own em_penalty is the same P (per row).
    assert model.em_penalty(torch.tensor(resp)) == pytest.approx((best - best_q) / len(xs), abs=1e-12)
    optimum = model.point_estimates()
    scale_name = "scale_tril" if covariance in ("full", "tied") else "scale"
    rng = np.random.default_rng(0)
    for step in np.geomspace(1e-3, 1e-2, 40):
        moved = {k: v.clone() for k, v in optimum.items()}
        moved["pi"] = torch.softmax(torch.log(moved["pi"]) + step * torch.from_numpy(rng.normal(size=3)), 0)
        moved["mu"] = moved["mu"] + step * torch.from_numpy(rng.normal(size=moved["mu"].shape))
        noise = torch.from_numpy(rng.normal(size=moved[scale_name].shape))
        if scale_name == "scale_tril":
            moved["scale_tril"] = moved["scale_tril"] + step * torch.tril(noise)
        else:
            moved["scale"] = moved["scale"] * torch.exp(step * noise)
        model.set_params(**moved)
        assert _penalised_q(model, xs, resp)[1] <= best + 1e-10
    model.set_params(**optimum)
    cov = model.covariances() - reg * torch.eye(3, dtype=torch.float64)
    shrunk = {
        "full": lambda: {"scale_tril": torch.linalg.cholesky(cov)},
        "tied": lambda: {"scale_tril": torch.linalg.cholesky(cov[0])},
        "diag": lambda: {"scale": torch.diagonal(cov, dim1=1, dim2=2).sqrt()},
        "spherical": lambda: {"scale": cov[:, 0, 0].sqrt()},
    }[covariance]()
    model.set_params(**shrunk)
    assert _penalised_q(model, xs, resp)[0] > best_q + 1e-3


def test_em_on_sufficient_statistics_equals_the_responsibility_step():
    # Reference: e_step + m_step (responsibilities, whitened rows) from the same start. The
    # statistics path (e_step_moments, one GEMM per block on [vech(u uᵀ), u, 1]) sums in another
    # order: log p(x_i) to 1e-11, the updated parameters to 1e-10 (float64).
    x = blobs(n=5000, dim=4, seed=2)
    start = GaussianMixture(3, 4).double().initialize(x, init="kmeans++", seed=0)
    chunked = GaussianMixture(3, 4, chunk_size=700).double().set_params(**start.point_estimates())
    resp, loglik = start.e_step(x)
    stats, loglik_moments = chunked.e_step_moments(x)  # blocks of 700 rows: a partial last block
    assert_close(loglik_moments, loglik, atol=1e-11)
    assert start.moments_apply(x) and chunked.moments_accurate(chunked.moments_data(x))
    start.m_step(x, resp)
    chunked.m_step_moments(stats)
    for name, value in start.point_estimates().items():
        assert_close(chunked.point_estimates()[name], value, atol=1e-10, msg=name)
    assert_close(chunked.em_penalty(stats), start.em_penalty(resp), atol=1e-12)


def test_em_statistics_only_where_they_are_accurate():
    x = blobs(n=200, dim=2)
    model = GaussianMixture(2, 2).double().initialize(x, init="kmeans++", seed=0)
    assert not model.moments_apply(x.float())  # float32 keeps the whitened E-step
    assert not GaussianMixture(2, 2, covariance="diag").moments_apply(x)
    tril = model.scale_tril.detach().clone()
    tril[0] = 1e-4 * torch.eye(2, dtype=torch.float64)  # a component collapsed to variance 1e-8
    model.set_params(scale_tril=tril)
    assert not model.moments_accurate(model.moments_data(x))  # EM whitens for that iteration
