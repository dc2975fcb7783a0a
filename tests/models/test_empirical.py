"""Empirical distribution: sampling only returns training points, the PMF is counts / n.

References: brute-force counting with Python's collections.Counter, exact enumeration of
the Pyro story with TraceEnum_ELBO, and a binomial tolerance (4 standard errors).
"""

import math
from collections import Counter

import pytest
import torch
from pyro.infer import TraceEnum_ELBO

import ppgen
from ppgen.errors import DataError, OptionError
from ppgen.models import Empirical
from tests.common import assert_close


def discrete_data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 3, (200, 2), generator=g).double()


def test_samples_are_copies_of_training_points():
    x = ppgen.data.load("moons", n=50)
    fit = ppgen.fit(Empirical(), x, method="exact")
    s = fit.sample(500, seed=1)
    # Every draw equals some training row exactly (memorisation).
    assert ((s[:, None, :] == x[None]).all(-1).any(1)).all()
    counts = ((s[:, None, :] == x[None]).all(-1)).sum(0).double()
    # Each point is drawn with probability 1/50: binomial(500, 0.02), 4 sd.
    assert (counts - 10).abs().max() < 4 * math.sqrt(500 * 0.02 * 0.98) + 4


def test_pmf_equals_counts_and_sums_to_one():
    x = discrete_data()
    fit = ppgen.fit(Empirical(), x, method="exact")
    support = torch.cartesian_prod(torch.arange(3.0), torch.arange(3.0)).double()
    counts = Counter(tuple(row) for row in x.tolist())
    expected = torch.tensor([counts[tuple(r)] / 200 for r in support.tolist()], dtype=torch.float64)
    assert_close(fit.log_prob(support).exp(), expected, atol=1e-15)
    assert abs(float(fit.log_prob(support).exp().sum()) - 1) < 1e-12
    assert fit.log_prob(torch.tensor([[7.0, 7.0]], dtype=torch.float64)).item() == -math.inf
    assert int(fit.params["support_size"]) == len(counts)


def test_story_enumerates_to_the_pmf():
    x = discrete_data()[:30]
    model = Empirical()
    model.fit_exact(x)
    # log p(x_j) = log Σ_i (1/n) 1{x_i = x_j}: TraceEnum sums the index i out exactly.
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model.model, lambda x=None, n=None: None, x[:5])
    assert abs(-loss - float(model.log_prob(x[:5]).sum())) < 1e-10


def test_event_probability_is_a_fraction_of_the_data():
    x = ppgen.data.load("faithful")
    model = Empirical()
    model.fit_exact(x)
    assert model.probability(lambda v: v[:, 1] > 70) == float((x[:, 1] > 70).double().mean())


def test_continuous_data_has_no_pmf_and_points_to_kde():
    fit = ppgen.fit(Empirical(), ppgen.data.load("faithful"), method="exact")
    assert "log_prob" not in fit.model.capabilities
    with pytest.raises(DataError, match="KDE"):
        fit.model.log_prob(torch.zeros(1, 2))


def test_bad_input():
    with pytest.raises(OptionError, match="kind in"):
        Empirical(kind="mixed")
    with pytest.raises(DataError, match="fitted Empirical"):
        Empirical().sample(3)
    model = Empirical()
    model.fit_exact(discrete_data())
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        model.log_prob(torch.zeros(2, 3))
    with pytest.raises(DataError, match="one boolean per row"):
        model.probability(lambda v: v.sum())
