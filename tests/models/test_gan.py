"""MLPGenerator (an implicit pushforward story) and MLPCritic."""

import pytest
import torch
from pyro import poutine

from ppgen.errors import DataError, ImplicitModelError, OptionError
from ppgen.models import MLPCritic, MLPGenerator
from tests.common import assert_close


def test_story_draws_z_in_the_plate_and_emits_x_deterministically():
    # Reference: the story's definition x = g(z); the deterministic site must equal net(z) exactly.
    g = MLPGenerator(latent_dim=3, data_dim=2, hidden=(16,))
    trace = poutine.trace(g.model).get_trace(n=7)
    z, x = trace.nodes["z"]["value"], trace.nodes["x"]["value"]
    assert z.shape == (7, 3) and x.shape == (7, 2)
    assert_close(x, g.net(z), atol=0)
    assert trace.nodes["x"]["infer"].get("_deterministic")
    assert g.sample(5).shape == (5, 2)


def test_rsample_is_differentiable_and_seeded():
    # Reference: autograd — a gradient of the sample mean must reach every generator weight;
    # reseeding must reproduce the draws exactly.
    g = MLPGenerator(latent_dim=2, data_dim=2, hidden=(8, 8))
    torch.manual_seed(1)
    a = g.rsample(64)
    a.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())
    torch.manual_seed(1)
    assert_close(g.sample(64), a.detach(), atol=0)
    assert not g.sample(3).requires_grad


def test_generator_has_no_density():
    g = MLPGenerator(latent_dim=2, data_dim=2, hidden=(8,))
    assert "log_prob" not in g.capabilities
    with pytest.raises(ImplicitModelError, match="adversarial"):
        g.log_prob(torch.zeros(3, 2))


def test_bad_arguments_give_clear_errors():
    with pytest.raises(OptionError, match="latent_dim"):
        MLPGenerator(latent_dim=0, data_dim=2)
    with pytest.raises(OptionError, match="hidden"):
        MLPGenerator(latent_dim=2, data_dim=2, hidden=(8, -1))
    with pytest.raises(OptionError, match="activation"):
        MLPCritic(activation="sigmoidish")
    with pytest.raises(DataError, match=r"\(N, 2\)"):
        MLPGenerator(latent_dim=2, data_dim=2, hidden=(8,)).model(torch.zeros(4, 3))
    critic = MLPCritic((8,), in_features=4)
    with pytest.raises(DataError, match="width 4"):
        critic.build(6)


def test_critic_builds_on_first_use_with_raw_output():
    critic = MLPCritic((16, 16))
    out = critic(torch.randn(10, 5, dtype=torch.float64))
    assert out.shape == (10, 1) and out.dtype == torch.float64 and critic.in_features == 5


def test_spectral_normalised_critic_has_unit_singular_values():
    # Reference: torch.linalg.matrix_norm(ord=2) (an SVD) of each effective weight. Power iteration
    # runs one step per training-mode forward; after 100 forwards it has converged far below 1e-3.
    torch.manual_seed(0)
    critic = MLPCritic((32, 32), spectral_norm=True, in_features=4)
    critic.train()
    for _ in range(100):
        critic(torch.randn(16, 4))
    layers = [m for m in critic.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 3
    for layer in layers:
        assert abs(float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2)) - 1.0) < 1e-3
