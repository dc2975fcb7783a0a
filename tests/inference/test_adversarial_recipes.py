"""The options an adversarial fit starts from: the measured 2-D recipe or the published defaults,
spectral norm, EMA, R1 and dtype. References: the rules written in ppgen.inference.adversarial_recipes
and ppgen.fit, the EMA written out by hand, R1 of a linear critic in closed form, and one smoke run of
the default recipe."""

import pytest
import torch

import ppgen
from ppgen.errors import OptionError
from ppgen.inference.adversarial import (
    LOSSES,
    RECIPES,
    TOY_2D,
    AdversarialConfig,
    log_density_ratio,
    toy_2d_recipe,
)
from ppgen.inference.adversarial_loop import TwoPlayerLoop, r1_penalty
from ppgen.models import MLPCritic, MLPGenerator
from tests.common import assert_close


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
