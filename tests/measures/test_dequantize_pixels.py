"""Discrete pixels: 17-level digits, categorical likelihoods, dequantization bounds.

References: exact enumeration of all 17^3 states (MADE), the exact PMF of a categorical
mixture (dequantized cell density), and 1-D numerical integration (binned Gaussian).
"""

import itertools
import math

import pytest
import torch

import ppgen
from ppgen.data import load
from ppgen.errors import DataError, OptionError, PpgenError
from ppgen.measures.dequantize import CellDensity, check_levels, dequantize, discrete_nll_bound
from ppgen.models import MADE, VAE, CategoricalMixture, ConditionalVAE, Gaussian
from tests.common import assert_close


# ------------------------------------------------------------------ data
def test_digits17_splits_sizes_and_levels():
    sizes = {"train": 1000, "val": 350, "test": 447}
    whole = load("digits-17")
    assert whole.shape == (1797, 64)
    start = 0
    for split, size in sizes.items():
        x = load("digits-17", split)
        assert x.shape == (size, 64)
        assert torch.equal(x, whole[start : start + size])  # scikit-learn's order, no shuffle
        start += size
        assert torch.equal(x, x.round()) and x.min() == 0 and x.max() == 16
    # the same images as the [0, 1] digits, times 16
    digits = load("digits")
    assert_close(whole, digits * 16, atol=1e-9)
    assert load("digits-17", "test", return_labels=True)[1].shape == (447,)


def test_val_split_only_for_fixed_splits():
    with pytest.raises(DataError, match="val"):
        load("digits", "val")


# ------------------------------------------------------------------ likelihoods
def test_categorical_made_sums_to_one_over_all_states():
    torch.manual_seed(0)
    made = MADE(3, hidden=(16, 16), likelihood="categorical", num_categories=17, num_orderings=2)
    states = torch.tensor(list(itertools.product(range(17), repeat=3)), dtype=torch.float64)
    made = made.double()
    with torch.no_grad():
        total = made.log_prob(states).logsumexp(0)
    assert states.shape == (17**3, 3)
    assert_close(total, 0.0, atol=1e-10)


def test_discretized_logistic_made_sums_to_one_over_all_17_level_states():
    # Reference: enumeration of all 17^3 states (the digits' level count), float64; 1e-10.
    torch.manual_seed(0)
    made = MADE(
        3, (16, 16), "discretized_logistic", num_categories=17, num_mixtures=4, num_orderings=2
    ).double()
    states = torch.tensor(list(itertools.product(range(17), repeat=3)), dtype=torch.float64)
    with torch.no_grad():
        assert_close(made.log_prob(states).logsumexp(0), 0.0, atol=1e-10)


@pytest.mark.parametrize("bad", [0.5, 17.0, -1.0])
def test_categorical_likelihoods_reject_bad_levels(bad):
    x = torch.zeros(4, 3)
    x[1, 2] = bad
    # the ordinal MADE refuses exactly what the categorical one refuses, with the same message
    made = MADE(3, hidden=(8,), likelihood="categorical", num_categories=17)
    ordinal = MADE(3, hidden=(8,), likelihood="discretized_logistic", num_categories=17)
    vae = VAE(3, 2, "categorical", hidden=(8,), num_categories=17)
    mixture = CategoricalMixture(2, 17, 3)
    for model in (made, ordinal, vae):
        with pytest.raises(DataError, match="0..16"):
            model.log_prob(x)
    with pytest.raises(PpgenError, match="0..16"):
        ppgen.fit(mixture, x.double(), method="em")
    with pytest.raises(DataError, match="0..16"):
        ppgen.fit(ordinal, x, method="mle", num_steps=1, progress=False)
    with pytest.raises(DataError):
        check_levels(x, 17)


def test_categorical_vae_options_and_exact_decoder():
    with pytest.raises(OptionError, match="num_categories"):
        VAE(4, 2, "categorical")
    with pytest.raises(OptionError, match="num_categories"):
        VAE(4, 2, "bernoulli", num_categories=17)
    torch.manual_seed(0)
    vae = VAE(4, 2, "categorical", hidden=(8,), num_categories=5)
    x = torch.tensor([[0.0, 1.0, 4.0, 2.0]])
    z = torch.randn(3, 1, 2)
    # the closed-form reconstruction term equals the decoder distribution's log-probability
    assert_close(vae._reconstruction(z, x, None), vae.decode(z).log_prob(x), atol=1e-5)
    # given z, the decoder is a PMF: it sums to one over all 5^4 images
    states = torch.tensor(list(itertools.product(range(5), repeat=4)), dtype=torch.float32)
    assert_close(vae.decode(z[:1, 0]).log_prob(states).logsumexp(0), 0.0, atol=1e-5)
    draws = vae.sample(6)
    assert draws.shape == (6, 4) and torch.equal(draws, draws.round()) and draws.max() <= 4
    cvae = ConditionalVAE(4, 3, 2, "categorical", hidden=(8,), num_categories=5)
    assert cvae.log_prob(x, y=torch.tensor([1]), k=8).shape == (1,)


def test_categorical_mixture_runs_on_digits17():
    x = load("digits-17", "train")[:300]
    fit = ppgen.fit(CategoricalMixture(3, 17), x, method="em", seed=0, max_iter=20)
    nll = -float(fit.log_prob(load("digits-17", "val")[:50]).mean())
    assert math.isfinite(nll) and nll > 0


# ------------------------------------------------------------------ dequantization
def test_bound_of_cell_density_equals_exact_nll():
    x = load("digits-17", "train")[:200, :6]
    fit = ppgen.fit(CategoricalMixture(3, 17), x, method="em", seed=0, max_iter=30)
    exact = -float(fit.log_prob(x).mean())
    for scale in (1.0, 1.0 / 17):

        class Rescaled:  # the cell density of y = scale * v
            def log_prob(self, y, scale=scale):
                return CellDensity(fit).log_prob(y / scale) - 6 * math.log(scale)

        result = discrete_nll_bound(Rescaled(), x, num_samples=3, scale=scale, seed=1)
        assert_close(result.nll, exact, atol=1e-9)
        assert result.stderr < 1e-10  # constant on every cell: no Monte Carlo error at all


def test_bound_of_smooth_density_exceeds_binned_nll():
    torch.manual_seed(0)
    x = torch.randint(0, 5, (400, 1)).double()
    fit = ppgen.fit(Gaussian(1), dequantize(x, seed=0), method="exact")
    # midpoint rule on each unit cell [k, k + 1): 4000 points, error ~1e-8
    grid = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    with torch.no_grad():
        log_p = {k: fit.log_prob((k + grid)[:, None]) for k in range(5)}
    binned = {k: float(log_p[k].exp().mean().log()) for k in range(5)}  # log P(k) = log ∫_k^{k+1} p
    cell = {k: float(-log_p[k].mean()) for k in range(5)}  # E_u[-log p(k + u)]
    exact = -sum(binned[int(v)] for v in x[:, 0]) / len(x)
    integrated = sum(cell[int(v)] for v in x[:, 0]) / len(x)
    assert sum(math.exp(b) for b in binned.values()) < 1  # mass outside [0, 5) is lost
    result = discrete_nll_bound(fit, x, num_samples=64, seed=2)
    assert integrated >= exact  # Jensen, per cell
    assert abs(result.nll - integrated) < 4 * result.stderr + 1e-6  # MC estimate of the same integral
    assert result.nll >= exact


def test_naive_density_on_integers_is_not_a_probability():
    # a pixel that is almost always 0: the raw density at integers beats any PMF by far
    x = torch.zeros(100, 1).double()
    x[0] = 1.0
    fit = ppgen.fit(Gaussian(1), x, method="exact")
    naive = -float(fit.log_prob(x).mean())
    dequantized = discrete_nll_bound(ppgen.fit(Gaussian(1), dequantize(x, seed=0), method="exact"), x)
    assert naive < 0  # "probability" above 1 on average
    assert dequantized.nll > 0


def test_dequantize_range_and_errors():
    x = load("digits-17", "val")
    y = dequantize(x, seed=0, scale=1 / 17)
    assert torch.all(y >= x / 17) and torch.all(y < (x + 1) / 17)
    assert torch.equal(dequantize(x, seed=3), dequantize(x, seed=3))
    with pytest.raises(DataError, match="integer"):
        dequantize(x + 0.5)
    with pytest.raises(OptionError, match="scale"):
        dequantize(x, scale=0.0)
    with pytest.raises(OptionError, match="num_samples"):
        discrete_nll_bound(Gaussian(64), x, num_samples=1)


def test_made_dropout_only_while_training_and_ensemble_is_a_pmf():
    from ppgen.app.chapters.digits17_rows import made_ensemble_log_prob

    torch.manual_seed(0)
    states = torch.tensor(list(itertools.product(range(17), repeat=2)), dtype=torch.float32)
    models = [
        MADE(2, (32,), "categorical", num_categories=17, permutation=order, dropout=0.5)
        for order in ([0, 1], [1, 0])
    ]
    made = models[0]
    with torch.no_grad():  # train mode, but no gradients: exact and deterministic
        assert torch.equal(made.log_prob(states), made.log_prob(states))
    noisy = made.log_prob(states[:20])  # train mode with gradients: dropout is on
    assert not torch.allclose(noisy, made.log_prob(states[:20]))
    made.eval()
    assert torch.allclose(made.log_prob(states[:20]), made.log_prob(states[:20]))
    assert_close(made_ensemble_log_prob(models, states).logsumexp(0), 0.0, atol=1e-5)
    with pytest.raises(OptionError, match="dropout"):
        MADE(2, dropout=1.0)


def test_each_ordering_of_a_made_is_a_pmf_and_log_prob_is_their_mixture():
    torch.manual_seed(0)
    made = MADE(2, (16,), "categorical", num_categories=17, num_orderings=3, seed=1)
    states = torch.tensor(list(itertools.product(range(17), repeat=2)), dtype=torch.float32)
    with torch.no_grad():
        per_ordering = torch.stack([made.conditional_log_prob(states, k) for k in range(3)])  # (3, 289)
        assert_close(per_ordering.logsumexp(1), torch.zeros(3), atol=1e-5)
        assert_close(made.log_prob(states), per_ordering.logsumexp(0) - math.log(3), atol=1e-5)
