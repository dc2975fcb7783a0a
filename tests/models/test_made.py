"""MADE: autoregressive masks by autograd, normalisation by enumeration, the discretized logistic
against scipy.stats.logistic, the sequential sampler against the exact probabilities.

``test_bad_inputs_raise_clear_errors`` also checks CharRNN's input errors (one test for both models).
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

import ppgen
from ppgen.errors import DataError, OptionError
from ppgen.models import MADE, CharRNN
from tests.common import assert_close

pytestmark = pytest.mark.usefixtures("float64_default")


LIKELIHOOD_OPTIONS = {
    "bernoulli": {},
    "gaussian": {},
    "categorical": {"num_categories": 5},
    "discretized_logistic": {"num_categories": 5, "num_mixtures": 3},
}


@pytest.mark.parametrize("likelihood", list(LIKELIHOOD_OPTIONS))
def test_output_i_ignores_inputs_at_or_after_i_in_the_order(likelihood):
    # Reference: autograd. d(params of x_i)/d x_j must be exactly 0 whenever j comes at or
    # after i in the ordering, for every ordering; and the network must use the earlier
    # inputs (some gradient is non-zero), or a mask of zeros would pass. For the discretized
    # logistic all 3K outputs of a pixel (logits, means, log-scales) are covered.
    dim = 6
    made = MADE(
        dim,
        hidden=(32, 32),
        likelihood=likelihood,
        permutation=[3, 0, 5, 1, 4, 2],
        num_orderings=3,
        dropout=0.0,  # the masks alone: no units dropped while gradients are on
        **LIKELIHOOD_OPTIONS[likelihood],
    )
    x = torch.randn(1, dim)
    for k in range(made.num_orderings):
        jac = torch.autograd.functional.jacobian(lambda v, k=k: made.conditionals(v, k), x)  # (1, D, P, 1, D)
        dependence = jac[0, :, :, 0, :].abs().sum(1)  # (D outputs, D inputs)
        order = made.orders[k]
        later = order[None, :] >= order[:, None]  # input j at or after output i
        assert float(dependence[later].abs().max()) == 0.0
        assert float(dependence[~later].abs().min()) > 0.0


def test_first_ordering_follows_the_given_permutation():
    made = MADE(4, hidden=(8,), permutation=[2, 0, 3, 1])
    assert made.orders[0].tolist() == [1, 3, 0, 2]  # input 2 is generated first, then 0, 3, 1


@pytest.mark.parametrize("num_orderings", [1, 3])
def test_bernoulli_probabilities_sum_to_one_over_all_states(num_orderings):
    # Reference: brute-force enumeration of all 2^D binary vectors (D = 9); exact up to
    # float64 rounding, hence 1e-10.
    dim = 9
    made = MADE(dim, hidden=(24, 24), num_orderings=num_orderings, seed=1)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)))
    with torch.no_grad():
        total = made.log_prob(states).exp().sum()
    assert_close(total, 1.0, atol=1e-10)


def test_categorical_probabilities_sum_to_one():
    # Reference: enumeration of all 4^4 states of a 4-valued categorical MADE.
    made = MADE(4, hidden=(16,), likelihood="categorical", num_categories=4)
    states = torch.tensor(list(itertools.product(range(4), repeat=4)), dtype=torch.float64)
    with torch.no_grad():
        assert_close(made.log_prob(states).exp().sum(), 1.0, atol=1e-10)


@pytest.mark.parametrize("num_orderings", [1, 2])
@pytest.mark.parametrize("gain", [1.0, 8.0])
def test_discretized_logistic_probabilities_sum_to_one(num_orderings, gain):
    # Reference: enumeration of all 5^3 states (D = 3, C = 5, K = 3); exact up to float64
    # rounding, hence 1e-10. gain = 8 scales every weight so that scales hit the floor and
    # most states get masses far below PixelCNN++'s 1e-5 switch to a density.
    made = MADE(
        3,
        hidden=(16, 16),
        likelihood="discretized_logistic",
        num_categories=5,
        num_mixtures=3,
        num_orderings=num_orderings,
        seed=2,
    )
    with torch.no_grad():
        for p in made.parameters():
            p.mul_(gain)
        log_p = made.log_prob(torch.tensor(list(itertools.product(range(5), repeat=3)), dtype=torch.float64))
    assert torch.isfinite(log_p).all()
    if gain > 1:
        assert float(log_p.min()) < math.log(1e-5) * 3
    assert_close(log_p.logsumexp(0), 0.0, atol=1e-10)


def _single_pixel_made(logits, loc, log_scale, levels):
    """A one-pixel MADE: its only conditional is the output bias (every mask entry is 0)."""
    made = MADE(
        1, hidden=(4,), likelihood="discretized_logistic", num_categories=levels, num_mixtures=len(logits)
    )
    with torch.no_grad():
        made.layers[-1].bias.copy_(torch.tensor([*logits, *loc, *log_scale]))
    return made


def _scipy_discretized_logistic(logits, loc, log_scale, levels):
    """log P(c), c = 0..C-1, from scipy.stats.logistic: CDF differences (survival-function
    differences above the mean, so no digits cancel), edges open to ±inf."""
    weights = np.exp(np.asarray(logits) - np.logaddexp.reduce(logits))
    half = 1.0 / (levels - 1)
    out = []
    for c in range(levels):
        y = 2.0 * c / (levels - 1) - 1.0
        total = 0.0
        for w, m, ls in zip(weights, loc, log_scale):
            law = stats.logistic(loc=m, scale=math.exp(max(ls, -7.0)))
            lo = -math.inf if c == 0 else y - half
            hi = math.inf if c == levels - 1 else y + half
            mass = law.sf(lo) - law.sf(hi) if lo >= m else law.cdf(hi) - law.cdf(lo)
            total += w * mass
        out.append(math.log(total))
    return torch.tensor(out)


@pytest.mark.parametrize(
    "params",
    [
        ([0.3, -1.0], [-0.2, 0.7], [-1.5, -2.5]),  # two ordinary components
        ([0.0], [0.95], [-4.0]),  # sharp component near the top: tiny masses at low levels
        ([1.0, 0.0, -2.0], [-1.3, 0.1, 2.0], [-9.0, 0.5, -3.0]),  # a scale below the floor, means outside
    ],
)
def test_single_pixel_discretized_logistic_matches_scipy(params):
    # Reference: scipy.stats.logistic CDF/SF differences in float64 (independent of the
    # log-sigmoid identity used by ppgen), every level of a C = 9 pixel; 1e-10 on log P.
    logits, loc, log_scale = params
    made = _single_pixel_made(logits, loc, log_scale, 9)
    with torch.no_grad():
        log_p = made.log_prob(torch.arange(9.0)[:, None])
    assert_close(log_p, _scipy_discretized_logistic(logits, loc, log_scale, 9), atol=1e-10)


def test_discretized_logistic_far_tail_is_finite_and_exact_in_float32():
    # Reference: level 0 under a point-like component at the top (mean 1, scale e^-7, C = 17)
    # has log P = log σ(u) with u = e^7 (-1 + 1/16 - 1) ≈ -2055, and log σ(u) = u - log(1 + e^u)
    # equals u to float precision; relative 1e-5 allows float32 rounding. PixelCNN++'s
    # clamp would report log 1e-12 ≈ -27.6 instead.
    made = _single_pixel_made([0.0], [1.0], [-7.0], 17).float()
    x = torch.zeros(1, 1, dtype=torch.float32)
    log_p = made.log_prob(x)
    expected = math.exp(7.0) * (-1.0 + 1.0 / 16 - 1.0)
    assert abs(float(log_p.detach()) - expected) < 1e-5 * abs(expected)
    log_p.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in made.parameters() if p.grad is not None)


def test_gaussian_density_integrates_to_one():
    # Reference: ∫ p = 1 by the midpoint rule on [-8, 8]² with h = 0.02 (O(h²) ≈ 1e-5 error
    # for a smooth density whose conditionals have scale ≈ softplus(0) ≈ 0.7); ±1e-3.
    made = MADE(2, hidden=(16,), likelihood="gaussian")
    h = 0.02
    ticks = torch.arange(-8 + h / 2, 8, h)
    with torch.no_grad():
        mass = made.log_prob(torch.cartesian_prod(ticks, ticks)).exp().sum() * h * h
    assert abs(float(mass) - 1.0) < 1e-3


def test_sequential_sampler_matches_exact_probabilities():
    # Reference: the exact probabilities of all 8 states from log_prob. With n = 20000 draws
    # each frequency has standard error sqrt(p(1-p)/n) ≤ 0.0036; 5 standard errors bound it.
    made = MADE(3, hidden=(16,), num_orderings=2, seed=3)
    with torch.no_grad():
        for p in made.parameters():
            p.mul_(3.0)  # make the conditionals far from 1/2 so a wrong order would show
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    with torch.no_grad():
        probs = made.log_prob(states).exp()
    draws = made.sample(20000)
    codes = (draws * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / 20000
    se = (probs * (1 - probs) / 20000).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-4).all(), (freq, probs)


def test_discretized_logistic_sampler_matches_exact_probabilities():
    # Reference: the exact probabilities of all 4^2 states from log_prob (D = 2, C = 4); the
    # sampler draws by inverse CDF (component, logistic variate, bin), a route independent
    # of log_prob. n = 20000: 5 standard errors sqrt(p(1-p)/n) per state.
    made = MADE(2, hidden=(16,), likelihood="discretized_logistic", num_categories=4, num_mixtures=2, seed=3)
    with torch.no_grad():
        for p in made.parameters():
            p.mul_(3.0)
    states = torch.tensor(list(itertools.product(range(4), repeat=2)), dtype=torch.float64)
    with torch.no_grad():
        probs = made.log_prob(states).exp()
    torch.manual_seed(1)
    n = 20000
    draws = made.sample(n)
    assert torch.equal(draws, draws.round()) and draws.min() >= 0 and draws.max() <= 3
    freq = torch.bincount((draws[:, 0] * 4 + draws[:, 1]).long(), minlength=16).double() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-4).all(), (freq, probs)


def test_discretized_logistic_temperature_tempers_each_conditional():
    # Reference: for one pixel, temperature T samples p(c)^(1/T) / sum_c' p(c')^(1/T), the
    # same meaning as for "categorical"; frequencies within 5 standard errors (n = 20000).
    made = _single_pixel_made([0.5, -0.5], [-0.4, 0.5], [-1.0, -2.0], 6)
    with torch.no_grad():
        probs = made.log_prob(torch.arange(6.0)[:, None]).exp()
    tempered = probs**2 / (probs**2).sum()
    torch.manual_seed(2)
    draws = made.sample(20000, temperature=0.5)
    freq = torch.bincount(draws[:, 0].long(), minlength=6).double() / 20000
    se = (tempered * (1 - tempered) / 20000).sqrt()
    assert ((freq - tempered).abs() <= 5 * se + 1e-4).all(), (freq, tempered)


def test_mle_fit_reaches_the_independent_bernoulli_likelihood():
    # Reference: data from independent Bernoulli(0.2, 0.5, 0.8, 0.3): the MADE family contains
    # this model, so its train log-likelihood after MLE must come within 0.02 nats of the
    # closed-form product-Bernoulli MLE (it may exceed it slightly by fitting dependence).
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.2, 0.5, 0.8, 0.3])
    x = torch.bernoulli(p.expand(400, 4), generator=g)
    phat = x.mean(0)
    exact = float((x * phat.log() + (1 - x) * (1 - phat).log()).sum(1).mean())
    fit = ppgen.fit(MADE(4, hidden=(8,)), x, method="mle", num_steps=400, lr=0.05, progress=False, seed=0)
    assert fit.score(x) > exact - 0.02


def test_bad_inputs_raise_clear_errors():
    made = MADE(4, hidden=(8,))
    with pytest.raises(DataError, match="binary"):
        made.log_prob(torch.full((2, 4), 0.5))
    with pytest.raises(DataError, match=r"shape \(N, 4\)"):
        made.log_prob(torch.zeros(2, 5))
    with pytest.raises(DataError, match="NaN"):
        made.log_prob(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]))
    with pytest.raises(DataError, match="binary"):
        ppgen.fit(made, torch.full((3, 4), 0.5), method="mle", num_steps=1, progress=False)
    with pytest.raises(OptionError, match="num_categories"):
        MADE(4, likelihood="categorical")
    with pytest.raises(OptionError, match="num_categories >= 2 for likelihood='discretized_logistic'"):
        MADE(4, likelihood="discretized_logistic")
    with pytest.raises(OptionError, match="num_mixtures only"):
        MADE(4, likelihood="categorical", num_categories=3, num_mixtures=2)
    with pytest.raises(OptionError, match="num_mixtures"):
        MADE(4, likelihood="discretized_logistic", num_categories=3, num_mixtures=0)
    with pytest.raises(OptionError, match="permutation"):
        MADE(3, permutation=[0, 0, 1])
    with pytest.raises(OptionError, match="temperature"):
        made.sample(2, temperature=0)
    rnn = CharRNN(alphabet="ab", max_len=4)
    with pytest.raises(DataError, match="shorter than max_len"):
        rnn.encode(["abab"])
    with pytest.raises(DataError, match="after the end"):
        rnn.log_prob(torch.tensor([[1.0, 0.0, 2.0, 0.0]]))
    assert math.isfinite(float(rnn.log_prob(rnn.encode(["ab"])).detach()[0]))


def test_fit_save_and_load_round_trip(tmp_path):
    # Reference: the fitted model itself; a reloaded fit must give identical log-probabilities.
    x = torch.bernoulli(torch.full((30, 5), 0.4))
    fit = ppgen.fit(MADE(5, hidden=(8,), num_orderings=2), x, method="mle", num_steps=3, progress=False)
    loaded = ppgen.load(fit.save(tmp_path / "made.pt"))
    assert_close(loaded.log_prob(x), fit.log_prob(x), atol=1e-12)
