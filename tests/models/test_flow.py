"""Flow: change of variables against autograd, normalisation by quadrature, invertibility."""

import math

import pytest
import torch

import ppgen
from ppgen.errors import DataError, OptionError
from ppgen.models import Flow
from tests.common import assert_close

COUPLED = ["spline_coupling", "affine_coupling", "maf", "nsf"]


def _flow(transform, dim=3, perturb=0.3, **kwargs):
    """A float64 flow whose weights are redrawn as perturb·N(0, 1) (it starts near the identity,
    which would make the Jacobian and inverse checks too easy)."""
    torch.set_default_dtype(torch.float64)
    flow = Flow(dim, transform, num_layers=3, hidden=(16,), **kwargs).double()
    if perturb:
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in flow.parameters():
                p.copy_(perturb * torch.randn(p.shape, generator=generator))
    return flow


@pytest.mark.parametrize("transform", COUPLED)
def test_log_det_matches_autograd_jacobian(transform):
    # Reference: log N(f^{-1}(x); 0, I) + log|det d f^{-1}/dx| with the Jacobian built by
    # autograd, one row at a time. Float64 arithmetic: agreement to 1e-6 leaves only
    # rounding error (the spline / affine log-dets are analytic in Pyro).
    flow = _flow(transform)
    x = torch.randn(4, 3) * 1.5
    expected = []
    for row in x:
        z = flow.inverse(row[None])[0]
        jac = torch.autograd.functional.jacobian(lambda r: flow.inverse(r[None])[0], row)
        base = -0.5 * (z**2).sum() - 1.5 * math.log(2 * math.pi)
        expected.append(base + torch.linalg.slogdet(jac)[1])
    assert_close(flow.log_prob(x).detach(), torch.stack(expected).detach(), atol=1e-6)


@pytest.mark.parametrize("transform", COUPLED)
def test_inverse_of_forward_is_identity(transform):
    # Reference: the identity map; analytic inverses in float64 agree to rounding (1e-6 is loose;
    # with weights ~0.5·N(0, 1) the random splines get so steep that inversion loses ~1e-6).
    flow = _flow(transform)
    z = torch.randn(50, 3) * 2
    with torch.no_grad():
        assert_close(flow.inverse(flow.forward(z)), z, atol=1e-6)
        x = torch.randn(50, 3) * 2
        assert_close(flow.forward(flow.inverse(x)), x, atol=1e-6)


@pytest.mark.parametrize("transform", ["spline_coupling", "affine_coupling", "maf"])
def test_density_integrates_to_one_on_a_grid(transform):
    # Reference: ∫ p = 1. Flows start near the identity, so every weight is redrawn as
    # 0.2·N(0, 1) to make the map far from it (peak density up to ≈ 1.7 vs 0.16 for N(0, I))
    # yet smooth on the grid's scale (larger random splines have spikes narrower than h).
    # Midpoint rule on [-6, 6]² with h = 0.025: O(h²) error ≈ 1e-4 at most here, mass outside
    # the box < 1e-6, so ±1e-3 passes only if the density is normalised.
    flow = _flow(transform, dim=2, perturb=None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    h = 0.025
    ticks = torch.arange(-6 + h / 2, 6, h)
    grid = torch.cartesian_prod(ticks, ticks)
    with torch.no_grad():
        mass = float(flow.log_prob(grid).exp().sum() * h * h)
    assert abs(mass - 1.0) < 1e-3, mass


def test_initial_affine_flow_is_the_standard_normal():
    # Reference: N(0, I). Zeroed output layers make affine couplings exact identities.
    flow = _flow("affine_coupling", dim=2, perturb=None)
    x = torch.randn(10, 2)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert_close(flow.log_prob(x).detach(), expected, atol=1e-12)


def test_parameters_are_registered_and_fit_lowers_the_loss():
    # Reference: a fit must move every registered parameter and lower the NLL (PYRO_NOTES 1).
    torch.set_default_dtype(torch.float64)
    flow = Flow(dim=2, transform="affine_coupling", num_layers=2, hidden=(16,))
    before = [p.detach().clone() for p in flow.parameters()]
    assert len(before) == 2 * 4  # two coupling nets with two Linear layers each (+ heads fused)
    x = torch.randn(200, 2) * torch.tensor([2.0, 0.5]) + 1.0
    fit = ppgen.fit(flow, x, method="mle", num_steps=60, lr=0.02, progress=False, seed=0)
    after = list(fit.model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
    with torch.no_grad():
        start = float(flow.log_prob(x).mean())
    assert fit.score(x) > start + 0.3


def test_repeated_full_batch_log_prob_is_not_stale():
    # Regression: torch transforms cache the last (input, output) pair, so re-scoring the same
    # data tensor after a parameter change returned the old value. Reference: a fresh copy of x.
    flow = _flow("spline_coupling", dim=2)
    x = torch.randn(20, 2)
    flow.log_prob(x)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1)
    assert_close(flow.log_prob(x).detach(), flow.log_prob(x.clone()).detach(), atol=1e-12)


def test_defaults_one_dimensional_spline_and_sampling_shape():
    flow = Flow(dim=2)
    assert flow.transform == "spline_coupling" and flow.sample(7).shape == (7, 2)
    one = Flow(dim=1)
    assert one.transform == "spline" and one.log_prob(torch.zeros(3, 1)).shape == (3,)


def test_bad_inputs_raise_clear_errors():
    flow = Flow(dim=2)
    with pytest.raises(DataError, match=r"shape \(N, 2\)"):
        flow.log_prob(torch.zeros(3, 3))
    with pytest.raises(DataError, match="NaN"):
        flow.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(DataError, match="NaN"):
        ppgen.fit(flow, torch.tensor([[0.0, float("nan")]]), method="mle", num_steps=1, progress=False)
    with pytest.raises(OptionError, match="transform='spline'"):
        Flow(dim=1, transform="affine_coupling")
    with pytest.raises(OptionError, match="transform in"):
        Flow(dim=2, transform="glow")


def test_fit_save_and_load_round_trip(tmp_path):
    # Reference: the fitted model itself; a reloaded fit must give identical log-densities.
    x = torch.randn(50, 2)
    fit = ppgen.fit(Flow(dim=2, num_layers=2, hidden=(8,)), x, method="mle", num_steps=3, progress=False)
    loaded = ppgen.load(fit.save(tmp_path / "flow.pt"))
    assert_close(loaded.log_prob(x), fit.log_prob(x), atol=1e-12)
