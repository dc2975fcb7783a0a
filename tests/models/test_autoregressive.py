"""MADE and CharRNN: autoregressive masks by autograd, normalisation by enumeration,
the sequential sampler against the exact probabilities."""

import itertools
import math

import pytest
import torch

import ppgen
from ppgen.errors import DataError, OptionError
from ppgen.models import MADE, CharRNN
from ppgen.models.autoregressive import first_names
from tests.common import assert_close

pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_output_i_ignores_inputs_at_or_after_i_in_the_order(likelihood):
    # Reference: autograd. d(params of x_i)/d x_j must be exactly 0 whenever j comes at or
    # after i in the ordering, for every ordering; and the network must use the earlier
    # inputs (some gradient is non-zero), or a mask of zeros would pass.
    dim = 6
    made = MADE(dim, hidden=(32, 32), likelihood=likelihood, permutation=[3, 0, 5, 1, 4, 2], num_orderings=3)
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


def test_char_rnn_sums_to_one_over_all_words():
    # Reference: enumeration of every word over the alphabet "ab" of length 0..3 (max_len 4
    # leaves room for the end token): 1 + 2 + 4 + 8 = 15 words. Exact to rounding, 1e-10.
    model = CharRNN(alphabet="ab", max_len=4, hidden=8, embedding=4)
    words = ["".join(w) for n in range(4) for w in itertools.product("ab", repeat=n)]
    with torch.no_grad():
        total = model.log_prob(model.encode(words)).exp().sum()
    assert len(words) == 15
    assert_close(total, 1.0, atol=1e-10)


def test_char_rnn_encode_decode_sample_and_names():
    names = first_names()
    assert len(names) > 4000 and all(n.isalpha() and n.islower() for n in names)
    model = CharRNN(max_len=12, hidden=16)
    x = model.encode(names[:50])
    assert model.decode(x) == names[:50]
    words = model.decode(model.sample(20, temperature=0.7))
    assert len(words) == 20 and all(len(w) < 12 and set(w) <= set(model.alphabet) for w in words)
    # Draws are valid rows: log_prob accepts them and is finite.
    assert torch.isfinite(model.log_prob(model.sample(5))).all()


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
