"""Where a site with no data-driven start begins (``init_to_prior_centre``): Pyro's ``init_to_median``
bit for bit where the median is inside Stan's box, else moved toward it within the prior's central
half. References: Pyro's ``init_to_median`` on the same seed, and scipy's quartiles."""

import pyro.distributions as dist
import pytest
import torch
from pyro.distributions.transforms import biject_to
from pyro.infer.autoguide import init_to_median
from scipy import stats

from ppgen.inference.restarts import init_to_prior_centre


def _site(fn) -> dict:
    return {"name": "w", "fn": fn, "value": fn.sample(), "is_observed": False, "infer": {}}


@pytest.mark.parametrize(
    "fn",
    [
        dist.Normal(100.0, 1.0).expand([4]),  # a real support keeps its median, however far out
        dist.HalfNormal(1.0).expand([4]),
        dist.LogNormal(0.0, 2.0).expand([4]),
        dist.Gamma(2.0, 2.0).expand([3]).to_event(1),
        dist.Beta(2.0, 2.0).expand([4]),
        dist.Dirichlet(torch.ones(3)),  # a simplex: Pyro's own rule
    ],
    ids=["normal", "half-normal", "log-normal", "gamma-event", "beta", "dirichlet"],
)
def test_a_median_inside_stans_box_is_pyros_init_to_median_bit_for_bit(fn):
    site = _site(fn)
    torch.manual_seed(3)
    ours = init_to_prior_centre(site)
    torch.manual_seed(3)
    assert torch.equal(ours, init_to_median(site, num_samples=15))


def test_a_wide_positive_prior_starts_at_the_edge_of_its_central_half_nearest_zero():
    # log Gamma(0.1, 0.3): median -6.23, quartiles -13.16 and -2.14 (scipy), so the box's edge -2 lies
    # just outside the central half and the start is its upper quartile, estimated from 15 draws per
    # element: within 1.5 of scipy's (the 15-draw quartile's spread here is about 1).
    torch.manual_seed(0)
    site = _site(dist.Gamma(0.1, 0.3).expand([400]))
    start = init_to_prior_centre(site).log()
    upper = float(torch.tensor(stats.gamma.ppf(0.75, 0.1, scale=1 / 0.3)).log())
    # Past the box's edge (float32 round trip aside) only where the 15-draw median itself lies inside
    # it, which binomial(15, 0.26) puts at about 2 % of the elements.
    assert float((start > -2.0 + 1e-5).double().mean()) < 0.05
    assert float(start.median()) == pytest.approx(upper, abs=1.5)


def test_a_bounded_prior_moves_in_its_own_unconstrained_space():
    # Beta(0.1, 0.9) (hmm.py's emissions): median 0.0012, logit -6.8; the start's logit is clamped into
    # (-2, 2) unless that leaves the prior's central half (upper quartile 0.066, logit -2.65 by scipy).
    torch.manual_seed(0)
    start = init_to_prior_centre(_site(dist.Beta(0.1, 0.9).expand([400])))
    logit = biject_to(dist.Beta(0.1, 0.9).support).inv(start)
    upper = float(torch.tensor(stats.beta.ppf(0.75, 0.1, 0.9)).logit())
    assert float((logit > -2.0 + 1e-5).double().mean()) < 0.05
    assert float(logit.median()) == pytest.approx(upper, abs=1.5)
