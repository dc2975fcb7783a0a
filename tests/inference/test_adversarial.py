"""The adversarial backend: losses against their algebra, the gradient penalty against a closed form
and per-sample autograd, the density-ratio readout against the optimal discriminator, fits against the
data's parameters and seeded reruns, NaN stops, bad inputs and save/load. The options each game
starts from (recipes, spectral norm, EMA, R1, dtype) are in test_adversarial_recipes.py."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import DataError, ImplicitModelError, MethodError, NonFiniteLossError, OptionError
from ppgen.inference.adversarial import LOSSES, gradient_penalty, log_density_ratio, player_losses
from ppgen.models import Gaussian, MLPCritic, MLPGenerator
from tests.common import assert_close


def test_every_catalog_divergence_is_a_loss():
    assert {f"f:{n}" for n in ppgen.measures.divergences.names()} <= set(LOSSES)
    for name in ("minimax", "non_saturating", "wgan", "wgan_gp", "hinge"):
        assert name in LOSSES


def test_f_gan_critic_loss_is_minimax_cross_entropy_minus_log4():
    # Reference: algebra — with g_f(v) = log 2 + log σ(v) and f*(t) = −log(2 − eᵗ), the f-GAN critic
    # objective is the minimax binary cross-entropy minus log 4 (float64 rounding, 1e-12).
    v_real, v_fake = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    f_loss = player_losses("f:gan")[0](v_real, v_fake)
    bce = player_losses("minimax")[0](v_real, v_fake)
    assert_close(f_loss, bce - math.log(4), atol=1e-12)
    # Minimax generator loss = E log(1 − σ(v)); non-saturating = −E log σ(v).
    assert_close(player_losses("minimax")[1](v_fake), torch.log1p(-torch.sigmoid(v_fake)).mean(), atol=1e-12)
    assert_close(
        player_losses("non_saturating")[1](v_fake), -torch.log(torch.sigmoid(v_fake)).mean(), atol=1e-12
    )


def test_gradient_penalty_matches_closed_form_and_per_sample_autograd():
    # Reference 1: for a linear critic V(x) = w·x + b, ∇V = w everywhere: penalty = λ(‖w‖ − 1)².
    lin = torch.nn.Linear(3, 1).double()
    real, fake = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 3, dtype=torch.float64)
    expected = 10.0 * (lin.weight.norm() - 1) ** 2
    assert_close(gradient_penalty(lin, real, fake, 10.0), expected.detach(), atol=1e-12)
    # Reference 2: an MLP critic, the same interpolates, gradients taken one sample at a time.
    critic = MLPCritic((16, 16), in_features=3).double()
    torch.manual_seed(5)
    penalty = gradient_penalty(critic, real, fake, 2.0)
    torch.manual_seed(5)
    alpha = torch.rand(20, 1, dtype=torch.float64)
    terms = []
    for i in range(20):
        point = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(point.unsqueeze(0)).sum(), point)
        terms.append((grad.norm() - 1) ** 2)
    assert_close(penalty.detach(), 2.0 * torch.stack(terms).mean(), atol=1e-12)
    # The penalty is differentiable in the critic's weights (double backward).
    penalty.backward()
    assert all(p.grad is not None for name, p in critic.named_parameters() if "weight" in name)


@pytest.mark.slow
def test_optimal_discriminator_is_the_density_ratio():
    # Reference: D*(x) = p_data / (p_data + p_θ) in closed form for data N(0,1) and a fixed
    # generator N(1, 1.5²) (lr_g = 0). Tolerance 0.05 on the central 95% of the data (|x| < 1.96), as
    # in the issue: 3,000 critic steps of 512 samples leave an estimation error of a few 0.01.
    x = torch.randn(20_000, 1, dtype=torch.float64)
    gen = Gaussian(dim=1, loc=torch.tensor([1.0]), scale_tril=torch.tensor([[1.5]])).double()
    critic = MLPCritic((64, 64), activation="tanh")
    fit = ppgen.fit(
        gen,
        x,
        method="adversarial",
        loss="minimax",
        lr_g=0.0,
        lr_d=2e-3,
        steps=3000,
        batch_size=512,
        critic=critic,
        seed=0,
        progress=False,
    )
    assert_close(fit.params["loc"], torch.tensor([1.0], dtype=torch.float64), atol=0)  # fixed generator
    grid = torch.linspace(-1.96, 1.96, 101, dtype=torch.float64).unsqueeze(-1)
    N = torch.distributions.Normal
    log_ratio = N(0.0, 1.0).log_prob(grid) - N(1.0, 1.5).log_prob(grid)
    estimate = log_density_ratio(fit, grid).unsqueeze(-1)
    assert_close(torch.sigmoid(estimate), torch.sigmoid(log_ratio), atol=0.05)
    assert torch.corrcoef(torch.stack([estimate.flatten(), log_ratio.flatten()]))[0, 1] > 0.98


def test_adversarial_fit_recovers_a_gaussian():
    # Reference: the data's true μ = 2, σ = 0.5; the tolerance 0.1 (the GAN equilibrium is
    # the data distribution; 600 steps of batch 256 leave a noise of a few 0.01).
    torch.manual_seed(0)
    x = torch.randn(4000, 1) * 0.5 + 2.0
    critic = MLPCritic((32, 32))
    fit = ppgen.fit(
        Gaussian(dim=1),
        x,
        method="adversarial",
        loss="non_saturating",
        steps=600,
        lr_g=2e-2,
        lr_d=2e-3,
        batch_size=256,
        critic=critic,
        seed=0,
        progress=False,
    )
    assert abs(float(fit.params["loc"]) - 2.0) < 0.1
    assert abs(float(fit.params["scale_tril"]) - 0.5) < 0.1
    assert len(fit.history) == 600 and len(fit.extras["critic_history"]) == 600
    assert fit.critic is not None and fit.method == "adversarial"


def test_generator_fit_reproducible_with_seed_and_evaluation_hook_runs():
    # Reference: bitwise equality of two seeded runs; the hook is called every eval_every steps.
    x = torch.randn(500, 2)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the generator's initial weights
        g = MLPGenerator(latent_dim=2, data_dim=2, hidden=(8,))
        fit = ppgen.fit(
            g,
            x,
            method="adversarial",
            loss="wgan_gp",
            steps=6,
            n_critic=2,
            critic=MLPCritic((8,)),
            batch_size=64,
            seed=7,
            progress=False,
            eval_every=3,
            evaluate=lambda gen: {"mean": gen.sample(100).mean()},
        )
        runs.append(fit)
    assert runs[0].history == runs[1].history
    assert [e["step"] for e in runs[0].evaluations] if hasattr(runs[0], "evaluations") else True
    assert [e["step"] for e in runs[0].extras["evaluations"]] == [3, 6]
    with pytest.raises(ImplicitModelError):
        runs[0].log_prob(x)


@pytest.mark.parametrize(
    "loss", ["minimax", "wgan", "hinge", "f:reverse_kl", "f:pearson", "f:total_variation"]
)
def test_every_loss_runs_and_keeps_finite_parameters(loss):
    x = torch.randn(300, 2)
    fit = ppgen.fit(
        MLPGenerator(2, 2, hidden=(8,)),
        x,
        method="adversarial",
        loss=loss,
        steps=3,
        pack=2,
        batch_size=32,
        critic=MLPCritic((8,)),
        seed=0,
        progress=False,
    )
    assert all(torch.isfinite(p).all() for p in fit.model.parameters())
    assert fit.critic.in_features == 4  # packing: 2 samples of dimension 2 per critic input


class ExplodingCritic(torch.nn.Module):
    """Scores NaN from its 4th call on — a stand-in for a diverging critic."""

    def __init__(self):
        super().__init__()
        self.lin, self.calls = torch.nn.Linear(2, 1), 0

    def forward(self, x):
        self.calls += 1
        out = self.lin(x)
        return out * float("nan") if self.calls > 3 else out


def test_nan_stops_with_clear_error_keeping_last_finite_parameters():
    x = torch.randn(200, 2)
    with pytest.raises(NonFiniteLossError, match="finite critic loss") as info:
        ppgen.fit(
            MLPGenerator(2, 2, hidden=(8,)),
            x,
            method="adversarial",
            critic=ExplodingCritic(),
            steps=10,
            batch_size=32,
            seed=0,
            progress=False,
        )
    fit = info.value.fit
    assert fit is not None and len(fit.history) == 1  # one full step (critic, generator), then NaN
    assert all(torch.isfinite(p).all() for p in list(fit.model.parameters()) + list(fit.critic.parameters()))


def test_bad_inputs_give_clear_errors():
    x = torch.randn(100, 2)
    g = MLPGenerator(2, 2, hidden=(8,))
    with pytest.raises(OptionError, match="non_saturating.*f:hellinger"):
        ppgen.fit(g, x, method="adversarial", loss="lsgan")
    with pytest.raises(DataError, match=r"shape \(2,\)"):
        ppgen.fit(g, torch.randn(100, 3), method="adversarial", steps=1, progress=False)
    with pytest.raises(DataError, match="finite"):
        ppgen.fit(g, torch.tensor([[0.0, float("nan")]] * 10), method="adversarial")
    with pytest.raises(OptionError, match="divisible by pack"):
        ppgen.fit(g, x, method="adversarial", pack=3, batch_size=64)
    with pytest.raises(OptionError, match="unknown"):
        ppgen.fit(g, x, method="adversarial", learning_rate=1e-3)
    with pytest.raises(OptionError, match="torch.nn.Module"):
        ppgen.fit(g, x, method="adversarial", critic="big", steps=1)
    with pytest.raises(ImplicitModelError, match="adversarial"):
        g.log_prob(x)

    def story(x=None):
        return pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    # A story with nothing to train: the generator needs parameters (pyro.module / pyro.param).
    with pytest.raises(MethodError, match="parameters"):
        ppgen.fit(story, x[:, 0], method="adversarial")


def test_adversarial_fit_saves_and_loads(tmp_path):
    # Reference: the saved generator must reproduce the same draws under the same seed (exact).
    x = torch.randn(200, 2)
    fit = ppgen.fit(
        MLPGenerator(2, 2, hidden=(8,)),
        x,
        method="adversarial",
        steps=2,
        batch_size=32,
        critic=MLPCritic((8,)),
        seed=0,
        progress=False,
    )
    loaded = ppgen.load(fit.save(tmp_path / "gan.pt"))
    assert_close(loaded.sample(10, seed=3), fit.sample(10, seed=3), atol=0)
    assert loaded.critic is not None and loaded.extras["config"]["loss"] == "non_saturating"
