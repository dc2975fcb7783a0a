"""Sample-based metrics, each against a direct computation or a known answer."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import energy_distance as scipy_energy
from scipy.stats import wasserstein_distance

from ppgen.errors import DataError
from ppgen.measures import metrics

GRID = torch.tensor([(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)])


def test_mode_coverage_counts_by_hand():
    # Reference: a hand-built sample — 40 points on each of 10 modes (within 1 std), 100 points
    # 1.0 away from mode 0 (beyond 3 std = 0.15): 10 modes, 400/500 high quality, and the captured
    # histogram is uniform over 10 of 25 modes, so KL(h‖U_25) = log(25/10).
    std = 0.05
    rng = torch.Generator().manual_seed(0)
    near = torch.cat([GRID[k] + 0.03 * torch.randn(40, 2, generator=rng).clamp(-1, 1) for k in range(10)])
    far = GRID[0] + torch.tensor([1.0, 0.0]) * torch.ones(100, 1)
    out = metrics.mode_coverage(torch.cat([near, far]), GRID, std)
    assert out["modes"] == 10 and out["n_modes"] == 25 and out["n"] == 500
    assert out["high_quality"] == pytest.approx(0.8, abs=1e-12)
    assert out["kl_uniform"] == pytest.approx(math.log(25 / 10), abs=1e-12)
    assert out["counts"][:10] == [40] * 10 and sum(out["counts"][10:]) == 0


def test_mode_coverage_of_perfect_samples():
    # Reference: samples from the true mixture — all 25 modes, P(|N(0, I₂)| ≤ 3) = 1 − e^{−4.5} = 0.9889
    # high quality (Rayleigh tail), within 3 binomial standard errors (n = 2,500, so ±0.007).
    rng = torch.Generator().manual_seed(1)
    x = GRID[torch.randint(25, (2500,), generator=rng)] + 0.05 * torch.randn(2500, 2, generator=rng)
    out = metrics.mode_coverage(x, GRID, 0.05)
    assert out["modes"] == 25
    assert abs(out["high_quality"] - (1 - math.exp(-4.5))) < 3 * math.sqrt(0.0111 * 0.9889 / 2500)


def direct_mmd(x, y, h):
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_equals_direct_double_sum():
    # Reference: the unbiased U-statistic written as explicit Python loops; float64, 1e-12.
    g = torch.Generator().manual_seed(2)
    x, y = (
        torch.randn(15, 2, generator=g, dtype=torch.float64),
        torch.randn(12, 2, generator=g, dtype=torch.float64),
    )
    assert metrics.mmd(x, y, bandwidth=0.7) == pytest.approx(direct_mmd(x, y, 0.7), abs=1e-12)


def test_mmd_detects_a_shift_and_is_unbiased_at_zero():
    # Reference: unbiasedness — E[MMD²] = 0 when P = Q, so over 12 replicate pairs the mean lies
    # within 4 standard errors of 0; a 1-sd shift gives a value far above that spread.
    g = torch.Generator().manual_seed(3)
    values = [
        metrics.mmd(torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g)) for _ in range(20)
    ]
    assert abs(np.mean(values)) < 4 * np.std(values) / math.sqrt(12)
    shifted = metrics.mmd(torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 1.0)
    assert shifted > 10 * np.std(values)


def test_energy_distance_matches_scipy():
    # Reference: scipy.stats.energy_distance (1-D; V-statistic and square-rooted): converting the
    # within-sample means from 1/n² to 1/(n(n−1)) gives our U-statistic exactly (1e-12).
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=30), rng.normal(0.5, 1.3, size=40)
    v_stat = scipy_energy(x, y) ** 2
    dxx, dyy = np.abs(x[:, None] - x[None]).sum(), np.abs(y[:, None] - y[None]).sum()
    u_stat = v_stat + dxx / 30**2 - dxx / (30 * 29) + dyy / 40**2 - dyy / (40 * 39)
    assert metrics.energy_distance(x, y) == pytest.approx(u_stat, abs=1e-12)


def test_sliced_wasserstein_in_one_dimension_is_exact_w1():
    # Reference: scipy.stats.wasserstein_distance (exact W₁ in 1-D), equal sample sizes; 1e-12.
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=200), rng.exponential(size=200)
    assert metrics.sliced_wasserstein(x, y, p=1) == pytest.approx(wasserstein_distance(x, y), abs=1e-12)


def test_sliced_wasserstein_of_a_translation():
    # Reference: for Y = X + c every projection moves by θ·c exactly, so SW₂ = sqrt(E_θ (θ·c)²) =
    # |c|/√2 in 2-D; with 2,048 random directions the Monte Carlo error is about 2%, allow 5%.
    x = torch.randn(500, 2, dtype=torch.float64)
    c = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert metrics.sliced_wasserstein(x, x + c, n_projections=2048) == pytest.approx(
        5 / math.sqrt(2), rel=0.05
    )


def test_precision_recall_on_known_supports():
    # Reference: set logic — identical samples are covered both ways (1, 1); fakes equal to one of two
    # far-apart real clusters: precision 1 and recall exactly 1/2 (the other cluster is never reached).
    g = torch.Generator().manual_seed(6)
    real = torch.cat([torch.randn(100, 2, generator=g), torch.randn(100, 2, generator=g) + 50])
    same = metrics.precision_recall(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    half = metrics.precision_recall(real, real[:100])  # the fake samples are one real cluster
    assert half["precision"] == 1.0 and half["recall"] == 0.5
    assert half["n_real"] == 200 and half["n_fake"] == 100


def test_data_copying_flags_memorisation_only():
    # Reference: under no copying the Mann-Whitney z is ~N(0, 1), so |z| < 4; copies of the training
    # data (plus 1e-3 jitter) have far smaller nearest-neighbour distances: z ≪ 0.
    g = torch.Generator().manual_seed(7)
    train, heldout = torch.randn(400, 2, generator=g), torch.randn(300, 2, generator=g)
    fresh = metrics.data_copying(train, heldout, torch.randn(300, 2, generator=g))
    copied = metrics.data_copying(train, heldout, train[:300] + 1e-3 * torch.randn(300, 2, generator=g))
    assert abs(fresh["z"]) < 4 and copied["z"] < -10
    assert copied["median_nn_generated"] < fresh["median_nn_generated"]


def test_sample_metrics_reject_bad_input():
    with pytest.raises(DataError, match="same dimension"):
        metrics.mmd(torch.randn(10, 2), torch.randn(10, 3))
    with pytest.raises(DataError, match="finite"):
        metrics.energy_distance(torch.tensor([[float("nan")], [1.0]]), torch.randn(5, 1))
    with pytest.raises(DataError, match="at least 2"):
        metrics.sliced_wasserstein(torch.randn(1, 2), torch.randn(5, 2))
    report = metrics.sample_report(torch.randn(50, 2), torch.randn(40, 2))
    assert report["n_real"] == 50 and report["n_fake"] == 40
