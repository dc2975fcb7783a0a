"""The adversarial backend: losses, gradient penalty, density-ratio readout, fits and errors."""

import math

import pytest
import torch

import ppgen
from ppgen.errors import DataError, ImplicitModelError, MethodError, NonFiniteLossError, OptionError
from ppgen.inference.adversarial import (
    LOSSES,
    RECIPES,
    TOY_2D,
    AdversarialConfig,
    gradient_penalty,
    log_density_ratio,
    player_losses,
    toy_2d_recipe,
)
from ppgen.inference.adversarial_loop import TwoPlayerLoop, r1_penalty
from ppgen.models import Gaussian, MLPCritic, MLPGenerator
from tests.common import assert_close


def test_every_catalog_divergence_is_a_loss():
    assert {f"f:{n}" for n in ppgen.divergences.names()} <= set(LOSSES)
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
        return ppgen.core.pyro.sample("x", ppgen.core.dist.Normal(0.0, 1.0), obs=x)

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


def test_toy_2d_recipes_are_valid_options_for_every_loss():
    # Each loss's measured 2-D recipe must pass the config's own validation (no silently
    # ignored or out-of-range option), and the critic losses keep several critic steps.
    for loss in LOSSES:
        recipe = toy_2d_recipe(loss)
        config = AdversarialConfig(loss=loss, **recipe)
        assert config.steps == recipe["steps"]
    assert toy_2d_recipe("non_saturating") == TOY_2D
    assert toy_2d_recipe("wgan_gp")["n_critic"] == 5
    assert toy_2d_recipe("hinge") == {**TOY_2D, "spectral_norm": False}
    with pytest.raises(OptionError, match="loss"):
        toy_2d_recipe("bogus")


# ---------------------------------------------------------------- default recipe, EMA, R1
def _stub_training(monkeypatch):
    """Resolve the options and build the game, but train for no step (the rule, not the run)."""
    monkeypatch.setattr(TwoPlayerLoop, "run", lambda self, batches: False)


@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp", "hinge", "f:js"])
def test_two_dimensional_data_defaults_to_the_measured_recipe(loss, monkeypatch):
    # Reference: the rule written in adversarial_recipes — rows of two numbers take
    # toy_2d_recipe(loss) for every option the user leaves out; an explicit option wins.
    _stub_training(monkeypatch)
    x = torch.randn(64, 2)
    fit = ppgen.fit(MLPGenerator(2, 2, hidden=(8,)), x, method="adversarial", loss=loss, seed=0)
    config, recipe = fit.extras["config"], toy_2d_recipe(loss)
    assert fit.extras["recipe"] == "toy_2d"
    assert {k: config[k] for k in recipe} == {k: (tuple(v) if k == "betas" else v) for k, v in recipe.items()}
    mine = dict(steps=7, lr_g=3e-4, ema=None, pack=1)
    fit = ppgen.fit(MLPGenerator(2, 2, hidden=(8,)), x, method="adversarial", loss=loss, **mine)
    assert {k: fit.extras["config"][k] for k in mine} == mine
    untouched = set(recipe) - set(mine)
    assert {k: fit.extras["config"][k] for k in untouched} == {
        k: (tuple(v) if k == "betas" else v) for k, v in recipe.items() if k in untouched
    }


def _spectrally_normalised(critic: torch.nn.Module) -> bool:
    return any(torch.nn.utils.parametrize.is_parametrized(m) for m in critic.modules())


def test_spectral_norm_follows_the_recipe_and_the_option(monkeypatch):
    # Reference: the rule — hinge's published (SNGAN) critic is spectrally normalised, its 2-D
    # recipe's is not (R1 instead); spectral_norm= overrides either; with an own critic it is an error.
    _stub_training(monkeypatch)
    x2, x3 = torch.randn(64, 2), torch.randn(64, 3)

    def critic_of(x, **options):
        g = MLPGenerator(2, x.shape[1], hidden=(8,))
        return ppgen.fit(g, x, method="adversarial", loss="hinge", seed=0, **options).critic

    assert not _spectrally_normalised(critic_of(x2))
    assert _spectrally_normalised(critic_of(x3))
    assert _spectrally_normalised(critic_of(x2, spectral_norm=True))
    assert not _spectrally_normalised(critic_of(x3, spectral_norm=False))
    assert _spectrally_normalised(critic_of(x2, recipe="published"))
    with pytest.raises(OptionError, match="spectral_norm=True or False"):
        critic_of(x2, spectral_norm="yes")
    with pytest.raises(OptionError, match="only with the default critic"):
        critic_of(x2, spectral_norm=True, critic=torch.nn.Linear(2, 1))


def test_other_data_keeps_the_published_defaults(monkeypatch):
    # Reference: RECIPES (DCGAN for the classifier losses, Gulrajani et al. for WGAN-GP) and the
    # config's own defaults, for rows that are not two numbers.
    _stub_training(monkeypatch)
    for loss, published in (("non_saturating", RECIPES["classifier"]), ("wgan_gp", RECIPES["wgan_gp"])):
        fit = ppgen.fit(MLPGenerator(2, 3, hidden=(8,)), torch.randn(64, 3), method="adversarial", loss=loss)
        config = fit.extras["config"]
        assert fit.extras["recipe"] == "published"
        assert {k: config[k] for k in published} == published
        assert config["steps"] == AdversarialConfig.steps and config["ema"] is None


def test_ema_samples_from_the_average_of_the_generators_iterates():
    # Reference: the EMA written out by hand, θ̄_t = β_t θ̄_{t-1} + (1 − β_t) θ_t with
    # β_t = min(β, (1 + t)/(10 + t)), over the iterates θ_t that a run without EMA records (EMA
    # only reads the weights, so both runs follow one trajectory bit for bit). Tolerance 1e-12:
    # float64, the same operations in another order.
    x = torch.randn(200, 2, dtype=torch.float64)
    common = dict(
        method="adversarial", steps=12, batch_size=32, critic=MLPCritic((8,)), seed=1, progress=False
    )
    iterates = []
    torch.manual_seed(5)
    raw = ppgen.fit(
        MLPGenerator(2, 2, hidden=(8,)).double(),
        x,
        ema=None,
        eval_every=1,
        evaluate=lambda g: iterates.append([p.detach().clone() for p in g.parameters()]) or {},
        **common,
    )
    torch.manual_seed(5)
    initial = [p.detach().clone() for p in MLPGenerator(2, 2, hidden=(8,)).double().parameters()]
    torch.manual_seed(5)
    averaged = ppgen.fit(MLPGenerator(2, 2, hidden=(8,)).double(), x, ema=0.95, **common)
    expected = initial
    for t, theta in enumerate(iterates):
        beta = min(0.95, (1 + t) / (10 + t))
        expected = [beta * a + (1 - beta) * p for a, p in zip(expected, theta)]
    for got, want in zip(averaged.model.parameters(), expected):
        assert_close(got.detach(), want, atol=1e-12)
    last = averaged.extras["last_iterate"]  # the raw weights are kept beside the average
    for (name, p), q in zip(raw.model.named_parameters(), iterates[-1]):
        assert torch.equal(p, q) and torch.equal(last[name], q), name
    assert raw.history == averaged.history and "last_iterate" not in raw.extras


def test_r1_penalty_of_a_linear_critic_is_half_gamma_squared_weight_norm():
    # Reference: closed form — V(x) = w·x + b has ∇V = w everywhere, so R1 = γ/2 ‖w‖².
    critic = torch.nn.Linear(3, 1).double()
    real = torch.randn(50, 3, dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty(critic(real).squeeze(-1), real, weight=4.0)
    assert_close(penalty.detach(), 2.0 * critic.weight.detach().pow(2).sum(), atol=1e-12)
    penalty.backward()  # differentiable in the critic's weights (double backward)
    assert_close(critic.weight.grad, 4.0 * critic.weight.detach(), atol=1e-12)


def test_ema_and_r1_options_are_checked():
    g, x = MLPGenerator(2, 2, hidden=(8,)), torch.randn(64, 2)
    for bad in (1.0, -0.1, "0.99", True):
        with pytest.raises(OptionError, match="ema"):
            ppgen.fit(g, x, method="adversarial", ema=bad)
    with pytest.raises(OptionError, match="r1_weight"):
        ppgen.fit(g, x, method="adversarial", r1_weight=-1.0)


def test_default_recipe_moves_samples_toward_the_data():
    # Smoke test (mode coverage is a benchmark, benchmarks/gan_modes.py): 400 steps of the
    # default 2-D recipe bring the generator's mean from ≈ 3.6 away from the data's to less than
    # a quarter of that (measured 0.07–0.29 over seeds 0–2; 200 steps are not yet enough).
    torch.manual_seed(0)
    x = torch.tensor([3.0, -2.0]) + 0.3 * torch.randn(4000, 2)
    torch.manual_seed(0)
    g = MLPGenerator(2, 2, hidden=(32, 32))

    def gap(gen):
        torch.manual_seed(1)
        with torch.no_grad():
            return float((gen.sample(1000).mean(0) - x.mean(0)).norm())

    before = gap(g)
    fit = ppgen.fit(g, x, method="adversarial", steps=400, critic=MLPCritic((32, 32)), seed=0, progress=False)
    assert fit.extras["recipe"] == "toy_2d"
    assert gap(fit.model) < 0.25 * before


def test_recipe_option_picks_the_source_whatever_the_data(monkeypatch):
    _stub_training(monkeypatch)
    g2, g3 = MLPGenerator(2, 2, hidden=(8,)), MLPGenerator(2, 3, hidden=(8,))
    fit = ppgen.fit(g2, torch.randn(64, 2), method="adversarial", recipe="published")
    assert (
        fit.extras["recipe"] == "published" and fit.extras["config"]["lr_g"] == RECIPES["classifier"]["lr_g"]
    )
    fit = ppgen.fit(g3, torch.randn(64, 3), method="adversarial", recipe="toy_2d")
    assert fit.extras["recipe"] == "toy_2d" and fit.extras["config"]["steps"] == TOY_2D["steps"]
    with pytest.raises(OptionError, match="recipe in"):
        ppgen.fit(g2, torch.randn(64, 2), method="adversarial", recipe="fast")


def test_a_game_runs_in_the_generators_dtype_and_the_data_follow(monkeypatch):
    # Reference: the rule in ppgen.fit — float64 data train a float32 generator in float32 (the
    # data are cast), a float64 generator stays float64, dtype= overrides both; the critic reads
    # float64 rows through log_density_ratio either way.
    _stub_training(monkeypatch)
    x = torch.randn(64, 2, dtype=torch.float64)

    def fit_of(generator, **options):
        return ppgen.fit(generator, x, method="adversarial", seed=0, **options)

    for generator in (MLPGenerator(2, 2, hidden=(8,)), MLPGenerator(2, hidden=(8,))):  # explicit, lazy
        fit = fit_of(generator)
        assert fit.data.dtype == fit.sample(3).dtype == torch.float32
        assert log_density_ratio(fit, x[:4]).dtype == torch.float32
    assert fit_of(MLPGenerator(2, 2, hidden=(8,)).double()).sample(3).dtype == torch.float64
    assert fit_of(MLPGenerator(2, 2, hidden=(8,)), dtype=torch.float64).sample(3).dtype == torch.float64
