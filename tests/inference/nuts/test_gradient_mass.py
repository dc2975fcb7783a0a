"""nutpie's gradient-based diagonal mass (``adapt_mass="gradient"``/``"gradient_sliding"``): the estimate's
closed form on a Gaussian, the whole sampler's moments with it, and bit-for-bit resume."""

import numpy as np
import pytest

from ppgen.inference.checkpoints import write_checkpoint
from ppgen.inference.nuts import Chain, Settings
from ppgen.inference.nuts.adaptation import WindowAdaptation
from ppgen.inference.nuts.metrics import GradientWelford, gradient_mass
from tests.inference.nuts.test_targets import Gaussian, _assert_moments_within_4_mcse, _ill_conditioned

SCALES = np.logspace(-1, 1, 6)  # σ from 0.1 to 10: 100× apart (σ² 10⁴× apart)


def test_gradient_estimate_is_the_variance_of_a_diagonal_gaussian_from_few_draws():
    # U = Σ qᵢ²/(2σᵢ²): ∂ᵢU = qᵢ/σᵢ², so Var(∂ᵢU) = Var(qᵢ)/σᵢ⁴ for *any* draws and
    # √(Var(q)/Var(∇U)) = σ² with no sampling error at all: 8 draws give it to rounding (1e-10),
    # where the positions' variance alone (Stan's) is off by tens of percent from 8 draws.
    q = np.random.default_rng(0).normal(size=(8, len(SCALES))) * SCALES
    estimate = GradientWelford(len(SCALES))
    for row in q:
        estimate.update(row, row / SCALES**2)
    np.testing.assert_allclose(estimate.inverse_mass(np.ones(len(SCALES))), SCALES**2, rtol=1e-10)
    assert np.max(np.abs(q.var(0, ddof=1) / SCALES**2 - 1)) > 0.2


def test_initial_point_rule_and_its_guards():
    grad = np.array([4.0, -0.25, 0.0, np.nan])
    np.testing.assert_allclose(gradient_mass(None, grad**2, np.full(4, 7.0)), [0.25, 4.0, 7.0, 7.0])
    adaptation = WindowAdaptation(100, 4, False, 0.8, adapt_mass="gradient", initial_grad=grad)
    np.testing.assert_allclose(adaptation.metric.inverse_mass, [0.25, 4.0, 1.0, 1.0])
    dense = WindowAdaptation(100, 4, True, 0.8, adapt_mass="gradient", initial_grad=grad)
    assert dense.adapt_mass == "stan"  # dense mass: Stan's covariance estimate


@pytest.mark.parametrize("mode", ["gradient", "gradient_sliding"])
def test_sampler_adapts_the_exact_scales_and_recovers_the_moments(mode):
    # The adapted inverse mass after warm-up is σ² to rounding (a diagonal Gaussian, see above);
    # the draws' means and variances sit within 4 MCSE of the truth.
    target = Gaussian(np.linspace(-1, 1, len(SCALES)), np.diag(SCALES**2))
    settings = Settings(num_warmup=300, num_samples=600, adapt_mass=mode)
    chains = [Chain(target, settings, target.mean + c + 0.5, 3, c) for c in range(2)]
    for chain in chains:
        chain.run(None, None, progress=False)
        np.testing.assert_allclose(chain.adaptation.metric.inverse_mass, SCALES**2, rtol=1e-8)
    draws = np.stack([chain.result()[0] for chain in chains])
    _assert_moments_within_4_mcse(draws, target.mean, SCALES**2)


@pytest.mark.parametrize("mode", ["gradient", "gradient_sliding"])
def test_100d_gaussian_with_condition_number_100(mode):
    cov = _ill_conditioned(100, rotate=False)
    target = Gaussian(np.linspace(-1, 1, 100), cov)
    settings = Settings(num_warmup=400, num_samples=500, adapt_mass=mode)
    results = []
    for c in range(2):
        chain = Chain(target, settings, target.mean + np.random.default_rng([0, c]).normal(size=100), 0, c)
        chain.run(None, None, progress=False)
        results.append(chain.result())
    _assert_moments_within_4_mcse(np.stack([d for d, _ in results]), target.mean, np.diag(cov))
    assert sum(int(s["diverging"].sum()) for _, s in results) == 0
    # the adapted metric keeps trees short: depth 3-4 (8-16 steps) against 7+ with a unit metric.
    # A bound on the share of deep trees, not on the deepest one: a chain can meet a few depth-8
    # trees on the way (seen on one seed with another numpy build: 24 of 1000 draws).
    depths = np.concatenate([s["tree_depth"] for _, s in results])
    assert np.median(depths) <= 4 and np.mean(depths > 5) <= 0.1


@pytest.mark.parametrize("mode", ["gradient", "gradient_sliding"])
def test_resume_mid_warmup_repeats_the_uninterrupted_run_bit_for_bit(tmp_path, mode):
    target = Gaussian(np.zeros(3), np.diag([0.01, 1.0, 100.0]))
    settings = Settings(num_warmup=120, num_samples=50, adapt_mass=mode)
    whole = Chain(target, settings, np.ones(3), 5, 0)
    whole.run(None, None, progress=False)
    part = Chain(target, settings, np.ones(3), 5, 0)
    for _ in range(57):  # inside a window: both estimators hold draws
        part.step()
    write_checkpoint(tmp_path / "c.pt", "mcmc", part.state())
    resumed = Chain(target, settings, np.ones(3), 5, 0)
    resumed.run(None, tmp_path / "c.pt", progress=False)
    np.testing.assert_array_equal(resumed.result()[0], whole.result()[0])
    assert np.array_equal(resumed.adaptation.metric.inverse_mass, whole.adaptation.metric.inverse_mass)


def test_adapt_mass_option_is_checked():
    from ppgen.errors import OptionError
    from ppgen.inference.mcmc import _check_choices

    _check_choices({"adapt_mass": "gradient"})
    with pytest.raises(OptionError, match="adapt_mass in"):
        _check_choices({"adapt_mass": "nutpie"})
    with pytest.raises(OptionError, match="dense_mass=False with adapt_mass='gradient'"):
        _check_choices({"adapt_mass": "gradient", "dense_mass": True})
