"""Pushforward ``x = g(z)``: the change-of-variables density against closed forms (scipy).

Tolerances: 1e-12 for closed forms in float64; 4 standard errors for sample moments.
"""

import math

import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from torch.distributions.transforms import ExpTransform

from ppgen.errors import DataError, ImplicitModelError, OptionError
from ppgen.models import Pushforward
from tests.common import assert_close

F64 = torch.float64


@pytest.mark.parametrize("a,b", [(2.0, 1.0), (-0.5, 3.0), (10.0, -4.0)])
def test_affine_map_of_standard_normal_is_normal_b_a2(a, b):
    model = Pushforward.affine(torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64))
    x = torch.linspace(-10, 10, 101, dtype=F64)[:, None]
    assert_close(model.log_prob(x), stats.norm(b, abs(a)).logpdf(x.numpy()[:, 0]), atol=1e-12)
    s = model.sample(20000)
    assert abs(float(s.mean()) - b) < 4 * abs(a) / math.sqrt(20000)


def test_exp_map_gives_the_lognormal():
    base = dist.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    model = Pushforward(ExpTransform(), base)
    x = torch.linspace(0.05, 5, 50, dtype=F64)[:, None]
    assert_close(model.log_prob(x), stats.lognorm(1.0).logpdf(x.numpy()[:, 0]), atol=1e-12)


def test_non_invertible_map_is_implicit():
    model = Pushforward(lambda z: z**2)
    assert "log_prob" not in model.capabilities
    s = model.sample(20000)
    assert (s >= 0).all() and abs(float(s.mean()) - 1) < 4 * math.sqrt(2 / 20000)  # chi²(1)
    with pytest.raises(ImplicitModelError, match="implicit"):
        model.log_prob(torch.zeros(1, 1))


def test_bad_input():
    with pytest.raises(OptionError, match="a != 0"):
        Pushforward.affine(0.0, 1.0)
    with pytest.raises(OptionError, match="callable"):
        Pushforward(3.0)
    with pytest.raises(OptionError, match="batch shape"):
        Pushforward(ExpTransform(), dist.Normal(torch.zeros(3), 1.0))
    with pytest.raises(DataError, match=r"shape \(N, 1\)"):
        Pushforward.affine(2.0, 1.0).log_prob(torch.zeros(2, 2))
