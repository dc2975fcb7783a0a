"""Each piece of the sampler alone, against a closed form: leapfrog on a harmonic oscillator, the
U-turn criterion, the checkpoint indices, dual averaging, Stan's windows, the metrics."""

import math

import numpy as np
import pytest

from ppgen.inference.nuts.adaptation import DualAveraging, adaptation_windows, find_reasonable_step_size
from ppgen.inference.nuts.integrator import Point, leapfrog
from ppgen.inference.nuts.metrics import DenseMetric, DiagonalMetric, Welford
from ppgen.inference.nuts.trajectory import checkpoint_range, is_turning


def oscillator(q):
    """U(q) = q²/2 in each coordinate: H = (q² + p²)/2 is conserved, the flow is a rotation."""
    return 0.5 * float(q @ q), q.copy()


def test_leapfrog_matches_the_closed_form_and_conserves_energy():
    # Reference: the exact flow of H = (q² + p²)/2 rotates (q, p) by angle t. Leapfrog's global
    # error is O(ε²) and its energy error stays bounded (no drift) over 10⁴ steps.
    metric = DiagonalMetric(np.ones(1))
    point = Point(np.array([1.0]), np.array([0.0]), *oscillator(np.array([1.0])))
    eps, steps = 0.01, 10_000
    energies = []
    for _ in range(steps):
        point = leapfrog(point, eps, metric, oscillator)
        energies.append(point.potential + metric.kinetic(point.p))
    t = eps * steps
    assert abs(point.q[0] - math.cos(t)) < 1e-3 and abs(point.p[0] + math.sin(t)) < 1e-3
    assert max(abs(e - 0.5) for e in energies) < eps**2  # |ΔH| ≤ ε²/8 · (q² + p²) for this system
    back = leapfrog(leapfrog(point, eps, metric, oscillator), -eps, metric, oscillator)  # reversible
    assert np.allclose(back.q, point.q, atol=1e-12) and np.allclose(back.p, point.p, atol=1e-12)


def test_u_turn_criterion_on_a_circle():
    # On the oscillator's circle, the trajectory from angle 0 to angle θ has turned back on
    # itself exactly when θ > π (the end momenta point against the chord): generalised criterion
    # with ρ = Σp over the leaves.
    def arc(theta, n=200):
        angles = np.linspace(0.0, theta, n)
        return np.stack([-np.sin(angles), -np.cos(angles)], axis=1)  # p along the circle

    for theta, expected in ((0.9 * math.pi, False), (1.1 * math.pi, True)):
        p = arc(theta)
        assert is_turning(p[0], p[-1], p[0], p[-1], p.sum(0)) == expected, theta


def test_checkpoint_indices_are_numpyros():
    # Reference: NumPyro's _leaf_idx_to_ckpt_idxs (bit counts, worked by hand): an even leaf closes
    # nothing (an empty range), leaf 7 closes the three sub-trees 0..7, 4..7, 6..7 (checkpoints
    # 0..2), leaf 13 closes 12..13 only (checkpoint 2).
    assert checkpoint_range(0) == (1, 0)
    assert checkpoint_range(1) == (0, 0)
    assert checkpoint_range(6) == (3, 2)
    assert checkpoint_range(7) == (0, 2)
    assert checkpoint_range(13) == (2, 2)


def test_dual_averaging_finds_the_root_of_a_monotone_statistic():
    # Reference: with statistic g(x) = target − accept(x) and accept(x) = exp(−e^x) (falls with
    # the step size), the averaged iterate converges to x* = log(−log target).
    target = 0.8
    averaging = DualAveraging(prox_center=math.log(10.0))
    for _ in range(3000):
        averaging.update(target - math.exp(-math.exp(averaging.x)))
    assert abs(averaging.x_avg - math.log(-math.log(target))) < 0.02


def test_adaptation_windows_are_stans():
    # Reference: Stan's defaults for 1000 warm-up iterations: buffer 75, windows 25, 50, 100,
    # 200, 500 (the last stretched to the terminal buffer), terminal buffer 50.
    assert adaptation_windows(1000) == [
        (0, 74), (75, 99), (100, 149), (150, 249), (250, 449), (450, 949), (950, 999)
    ]  # fmt: skip
    assert adaptation_windows(100) == [(0, 14), (15, 89), (90, 99)]  # 15% / 75% / 10%
    assert adaptation_windows(10) == [(0, 9)] and adaptation_windows(0) == []


def test_reasonable_step_size_brackets_acceptance_of_0_8():
    # For the oscillator one leapfrog step of size ε changes H by ~ε²·(q² − p²)/... : the search
    # stops at the doubling/halving that crosses acceptance 0.8, so ε ends in (0.1, 4).
    rng = np.random.default_rng(0)
    q = np.ones(10)
    eps = find_reasonable_step_size(
        Point(q, q, *oscillator(q)), 1e-4, DiagonalMetric(np.ones(10)), oscillator, rng
    )
    assert 0.1 < eps < 4.0


@pytest.mark.parametrize("dense", [False, True])
def test_metric_momenta_have_covariance_inverse_mass_inverse(dense):
    # Reference: p ~ N(0, Σ⁻¹) and K(p) = ½ pᵀΣp, so E[K] = D/2 exactly; sample covariance of p
    # within 5% of Σ⁻¹ for 2·10⁵ draws.
    sigma = np.array([[2.0, 0.6], [0.6, 0.5]]) if dense else np.array([2.0, 0.5])
    metric = DenseMetric(sigma) if dense else DiagonalMetric(sigma)
    rng = np.random.default_rng(1)
    p = np.stack([metric.sample_momentum(rng) for _ in range(200_000)])
    expected = np.linalg.inv(sigma) if dense else np.diag(1 / sigma)
    assert np.allclose(np.cov(p.T), expected, rtol=0.05, atol=0.02)
    assert abs(np.mean([metric.kinetic(v) for v in p[:20_000]]) - 1.0) < 0.03


def test_welford_matches_numpy_and_is_regularised_like_stan():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 0.3]])
    for dense in (False, True):
        welford = Welford(3, dense)
        for row in x:
            welford.update(row)
        cov = np.cov(x.T) if dense else x.var(0, ddof=1)
        expected = 50 / 55 * cov + 1e-3 * 5 / 55 * (np.eye(3) if dense else 1.0)
        assert np.allclose(welford.covariance(), expected, atol=1e-12)
