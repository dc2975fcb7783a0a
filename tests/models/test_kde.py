"""KDE against scipy.stats.gaussian_kde, scikit-learn KernelDensity, brute-force sums and
numerical integration.

Tolerances: 1e-10 in float64 for closed-form parity (both sides sum the same terms; the
measured gap is ~1e-13); 1e-4 for grid integration (trapezoid / midpoint error);
4 standard errors for Monte Carlo moments.
"""

import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO
from scipy.special import logsumexp
from scipy.stats import gaussian_kde
from sklearn.neighbors import KernelDensity

import ppgen
from ppgen.errors import ConvergenceWarning, DataError, OptionError
from ppgen.models import KDE
from tests.common import assert_close


def correlated(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.6, 2.0, 0.0], [0.1, 0.3, 0.5]], dtype=torch.float64)
    return torch.randn(n, 3, generator=g, dtype=torch.float64) @ mix.T


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 0.3])
def test_full_covariance_matches_scipy_gaussian_kde(bandwidth):
    x, e = correlated(), correlated(200, seed=1)
    fit = ppgen.fit(KDE(bandwidth, covariance="full"), x, method="exact")
    ref = gaussian_kde(x.numpy().T, bw_method=bandwidth)
    assert_close(fit.params["bandwidth_matrix"], ref.covariance, atol=1e-12)
    assert_close(fit.log_prob(e), ref.logpdf(e.numpy().T), atol=1e-10)


@pytest.mark.parametrize("bandwidth", ["scott", "silverman"])
def test_one_dimensional_rules_match_scipy(bandwidth):
    x = ppgen.data.load("bimodal1d")[:400]
    grid = torch.linspace(-5, 5, 101, dtype=torch.float64)[:, None]
    fit = ppgen.fit(KDE(bandwidth), x, method="exact")
    ref = gaussian_kde(x.numpy()[:, 0], bw_method=bandwidth)
    assert_close(fit.log_prob(grid), ref.logpdf(grid.numpy()[:, 0]), atol=1e-10)


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_identity_bandwidth_matches_scikit_learn(kernel):
    x = correlated()
    e = torch.randn(200, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kde = KDE(0.9, kernel=kernel)
    kde.fit_exact(x)
    ours = kde.log_prob(e).numpy()
    ref = KernelDensity(bandwidth=0.9, kernel=kernel, rtol=0, atol=0).fit(x.numpy()).score_samples(e.numpy())
    # scikit-learn sums kernel values in a tree without rescaling, so it is only accurate to
    # ~1e-16 in density: compare where the density is not astronomically small.
    ok = ref > -25
    assert ok.sum() > 150
    assert_close(ours[ok], ref[ok], atol=1e-10)
    # Brute force everywhere, including the exact zeros of the Epanechnikov support.
    sq = ((e[:, None] - x[None]) ** 2).sum(-1).numpy() / 0.81
    if kernel == "gaussian":
        brute = logsumexp(-0.5 * sq, axis=1) - 1.5 * math.log(2 * math.pi)
    else:
        with np.errstate(divide="ignore"):
            brute = np.log((np.clip(1 - sq, 0, None)).sum(1) * 5 / (2 * 4 / 3 * math.pi))
    brute -= math.log(300) + 3 * math.log(0.9)
    assert (np.isinf(ours) == np.isinf(brute)).all()
    assert_close(ours[np.isfinite(brute)], brute[np.isfinite(brute)], atol=1e-10)


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_density_integrates_to_one_in_1d_and_2d(kernel):
    kde = KDE("silverman", kernel=kernel)
    kde.fit_exact(ppgen.data.load("toy11"))
    t = torch.linspace(-8, 8, 16001, dtype=torch.float64)
    assert abs(float(torch.trapezoid(kde.log_prob(t[:, None]).exp(), t)) - 1) < 1e-4
    kde2 = KDE(0.4, kernel=kernel)
    kde2.fit_exact(ppgen.data.load("moons", n=60))
    h = 0.02
    ticks = torch.arange(-3, 4, h, dtype=torch.float64) + h / 2
    grid = torch.cartesian_prod(ticks, ticks)
    assert abs(float(kde2.log_prob(grid).exp().sum()) * h * h - 1) < 1e-4


def test_rules_follow_their_formulas_and_scale_with_the_data():
    x = ppgen.data.load("faithful")
    n, d = x.shape
    sigma = math.sqrt(float(x.var(0).mean()))  # unbiased variances, averaged over dims
    scott, silverman = n ** (-1 / (d + 4)), (n * (d + 2) / 4) ** (-1 / (d + 4))
    for rule, factor in (("scott", scott), ("silverman", silverman)):
        h = float(ppgen.fit(KDE(rule), x, method="exact").params["bandwidth"])
        assert abs(h - factor * sigma) < 1e-12
        h1000 = float(ppgen.fit(KDE(rule), x * 1000, method="exact").params["bandwidth"])
        assert abs(h1000 / h - 1000) < 1e-9  # bandwidth must scale with the data
        ep = float(ppgen.fit(KDE(rule, kernel="epanechnikov"), x, method="exact").params["bandwidth"])
        assert abs(ep - math.sqrt(d + 4) * h) < 1e-12  # same kernel std: radius² / (d + 4) = h²
    assert abs(gaussian_kde(x.numpy().T).scotts_factor() - scott) < 1e-15


@pytest.mark.parametrize("kernel", ["gaussian", "epanechnikov"])
def test_loo_cv_equals_brute_force_over_the_grid(kernel):
    x = ppgen.data.load("bimodal1d")[:30]
    grid = torch.tensor([0.2, 0.35, 0.5, 0.8, 1.2, 2.0], dtype=torch.float64)
    brute = []
    for h in grid.tolist():
        total = 0.0
        for j in range(30):
            rest = torch.cat([x[:j], x[j + 1 :]])
            u = ((x[j] - rest) / h).numpy()[:, 0]
            k = (
                np.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
                if kernel == "gaussian"
                else 0.75 * np.clip(1 - u**2, 0, None)
            )
            total += math.log(k.sum() / (29 * h)) if k.sum() > 0 else -math.inf
        brute.append(total / 30)
    kde = KDE("cv", kernel=kernel, grid=grid)
    ours, brute = kde.loo_log_likelihood(x, grid), torch.tensor(brute, dtype=torch.float64)
    assert torch.equal(torch.isinf(ours), torch.isinf(brute))  # a point with no neighbour: -inf
    assert_close(ours[torch.isfinite(brute)], brute[torch.isfinite(brute)], atol=1e-12)
    fit = ppgen.fit(kde, x, method="exact")
    assert float(fit.params["bandwidth"]) == float(grid[int(torch.argmax(brute))])


def test_chunking_keeps_the_result_and_streams_over_training_blocks():
    x, e = correlated(), correlated(50, seed=3)
    full = KDE(0.5)
    full.fit_exact(x)
    tiny = KDE(0.5, max_elements=64)  # fewer than n = 300: blocks over the training points too
    tiny.fit_exact(x)
    assert_close(tiny.log_prob(e), full.log_prob(e), atol=1e-12)
    grid = torch.tensor([0.3, 0.6], dtype=torch.float64)
    assert_close(tiny.loo_log_likelihood(x, grid), full.loo_log_likelihood(x, grid), atol=1e-12)


def test_far_points_fall_back_to_the_shifted_sum_and_match_scipy():
    # exp(-|u|²/2) underflows for every training point here; the fallback path keeps it exact.
    x = correlated()
    far = torch.tensor([[40.0, -30.0, 5.0], [0.0, 0.0, 0.0], [-80.0, 10.0, 3.0]], dtype=torch.float64)
    fit = ppgen.fit(KDE("scott", covariance="full"), x, method="exact")
    ref = gaussian_kde(x.numpy().T).logpdf(far.numpy().T)
    assert ref[0] < -700  # beyond float64's exp range: a naive sum would give -inf
    assert_close(fit.log_prob(far), ref, atol=1e-10, rtol=1e-13)
    # float32 underflows already near exp(-87): a point ~300 nats out must still be finite and right.
    mid = torch.tensor([[9.0, 3.0, 1.0]], dtype=torch.float64)
    fit32 = ppgen.fit(KDE("scott", covariance="full"), x.float(), method="exact")
    ref_mid = gaussian_kde(x.numpy().T).logpdf(mid.numpy().T)
    assert ref_mid[0] < -100
    assert_close(fit32.log_prob(mid.float()), ref_mid, atol=0, rtol=1e-5)  # float32 rounding


def test_story_marginal_equals_log_prob_and_samples_have_the_kernel_spread():
    x = ppgen.data.load("bimodal1d")[:20]
    kde = KDE(0.3)
    kde.fit_exact(x)
    # TraceEnum_ELBO with an empty guide sums the Categorical out exactly (PYRO_NOTES 4).
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss(kde.model, lambda x=None, n=None: None, x[:7])
    assert abs(-float(loss) - float(kde.log_prob(x[:7]).sum())) < 1e-10
    for kernel, extra in (("gaussian", 0.3**2), ("epanechnikov", 0.3**2 / 5)):
        kde = KDE(0.3, kernel=kernel)
        kde.fit_exact(x)
        pyro.set_rng_seed(1)
        s = kde.sample(20000)
        var = float(x.var(0, unbiased=False)) + extra  # mixture variance: data spread + kernel
        assert abs(float(s.mean()) - float(x.mean())) < 4 * math.sqrt(var / 20000)
        # sd of the sample variance ≈ sqrt((m4 − σ⁴)/N); bound m4 by 3 σ⁴ · 2 for this bimodal set.
        assert abs(float(s.var()) - var) < 4 * math.sqrt(5 * var**2 / 20000)


def test_float32_fit_and_save_load(tmp_path):
    x = correlated().float()
    fit = ppgen.fit(KDE("scott", covariance="full"), x, method="exact")
    assert fit.log_prob(x[:5]).dtype == torch.float32
    ref = gaussian_kde(x.double().numpy().T).logpdf(x[:5].double().numpy().T)
    assert_close(fit.log_prob(x[:5]), ref, atol=1e-4)
    back = ppgen.load(fit.save(tmp_path / "kde.pt"))
    assert torch.equal(back.log_prob(x[:5]), fit.log_prob(x[:5]))


def test_cv_at_the_grid_edge_warns():
    with pytest.warns(ConvergenceWarning, match="edge"):
        ppgen.fit(KDE("cv", grid=[5.0, 6.0, 7.0]), ppgen.data.load("toy11"), method="exact")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: KDE(-1.0), "bandwidth > 0"),
        (lambda: KDE("wide"), "bandwidth > 0"),
        (lambda: KDE(kernel="tophat"), "kernel in"),
        (lambda: KDE(covariance="spherical"), "covariance in"),
        (lambda: KDE("cv", grid=[0.1, -1.0]), "positive bandwidths"),
        (lambda: KDE(max_elements=0), "max_elements"),
    ],
)
def test_bad_options(make, match):
    with pytest.raises(OptionError, match=match):
        make()


def test_bad_data():
    with pytest.raises(DataError, match="fitted KDE"):
        KDE().log_prob(torch.zeros(2, 1))
    kde = KDE(0.5)
    kde.fit_exact(torch.randn(10, 2))
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        kde.log_prob(torch.zeros(3, 3))
    with pytest.raises(DataError, match="at least 2"):
        KDE().fit_exact(torch.zeros(1, 2))
    with pytest.raises(DataError, match="spread"):
        KDE().fit_exact(torch.ones(5, 2))
    with pytest.raises(DataError, match="non-singular"):
        KDE(covariance="full").fit_exact(torch.randn(10, 1).repeat(1, 2))
    with pytest.raises(DataError, match="-inf"):
        KDE("cv", kernel="epanechnikov", grid=[1e-4, 2e-4]).fit_exact(ppgen.data.load("toy11"))
