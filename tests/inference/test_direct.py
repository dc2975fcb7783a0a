"""mle's direct loss (ppgen.inference.direct) against Pyro's own reads of the same model."""

import pytest
import torch
from pyro.infer import Trace_ELBO

from ppgen.inference.direct import _constrained_reads, direct_total_log_prob, pinned_parameters
from ppgen.models import Gaussian
from tests.common import assert_close


def _perturbed(covariance: str) -> Gaussian:
    torch.manual_seed(0)
    model = Gaussian(dim=3, covariance=covariance).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_direct_loss_and_gradients_equal_pyros_elbo_with_the_empty_guide(covariance):
    # Reference: Pyro's Trace_ELBO on the model's own story with the empty guide (the
    # log-likelihood, read through PyroModule's effects); equal to round-off (atol 1e-10).
    model = _perturbed(covariance)
    x = torch.randn(40, 3, dtype=torch.float64) * 2
    params = list(model.parameters())
    direct = -direct_total_log_prob(model)(x)
    direct_grads = torch.autograd.grad(direct, params)
    elbo = Trace_ELBO().differentiable_loss(model.model, lambda *a, **k: None, x)
    elbo_grads = torch.autograd.grad(elbo, params)
    assert_close(direct, elbo, atol=1e-10)
    for got, want in zip(direct_grads, elbo_grads):
        assert_close(got, want, atol=1e-10)


def test_pinned_values_leave_with_the_block_so_the_next_read_sees_the_update():
    # Reference: PyroModule's own read after an in-place update of the unconstrained tensor.
    model = _perturbed("diag")
    reads = _constrained_reads(model)
    assert {name for _, name, _, _ in reads} == {"loc", "scale"}
    with pinned_parameters(reads):
        pinned = model.scale
        assert model.__dict__["scale"] is pinned
    assert "scale" not in model.__dict__ and "loc" not in model.__dict__
    with torch.no_grad():
        model.scale_unconstrained.add_(1.0)
    assert_close(model.scale, pinned.detach() * torch.e, atol=1e-12)


def test_pins_are_removed_when_the_block_raises():
    model = _perturbed("full")
    with pytest.raises(ValueError, match="inside"):
        with pinned_parameters(_constrained_reads(model)):
            raise ValueError("inside")
    assert not {"loc", "scale_tril"} & set(model.__dict__)
