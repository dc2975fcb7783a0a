"""Adversarial inference: a critic (the "adversarial guide") against a generator.

The generator is any model that can draw *differentiable* samples — an implicit
``ImplicitModel`` (``x = g(z)``) or an explicit model with a reparameterised ``rsample(n)``
(a Gaussian ``loc + L eps``, a flow). The critic ``V`` scores real vs generated samples;
the players alternate on the two halves of one loss:

==================  ==========================================  ==================================
loss                critic minimises                            generator minimises
==================  ==========================================  ==================================
minimax             −E_P log σ(V) − E_Q log(1 − σ(V))           E_Q log(1 − σ(V))  (saturates)
non_saturating      same                                        −E_Q log σ(V)
wgan                E_Q V − E_P V, weights clipped              −E_Q V
wgan_gp             E_Q V − E_P V + λ E(‖∇V(x̂)‖ − 1)²           −E_Q V
hinge               E_P relu(1 − V) + E_Q relu(1 + V)           −E_Q V
f:<name>            −(E_P g_f(V) − E_Q f*(g_f(V)))              −E_Q f*(g_f(V))  (minimises D_f)
==================  ==========================================  ==================================

``pack=m`` lets the critic judge ``m`` samples at once (PacGAN), which penalises mode
collapse. Same conventions as :mod:`ppgen.inference.loop`: seeded minibatches, a tqdm bar,
a non-finite guard *before* each step (the players keep their last finite parameters),
Ctrl-C stops early and keeps the run so far. ``checkpoint=PATH`` saves the whole game at
the start, every ``checkpoint_every`` generator steps, at the end and at a Ctrl-C that lands
between steps (one that cuts a step short leaves the last complete save); ``resume=PATH``
continues from it, bit for bit.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass

import torch
from pyro import poutine

from ppgen.core import GenerativeModel
from ppgen.errors import DataError, MethodError, NonFiniteLossError, OptionError
from ppgen.inference.adversarial_loop import TwoPlayerLoop, gradient_penalty, player_losses
from ppgen.inference.adversarial_recipes import (
    LOSSES,
    RECIPES,
    TOY_2D,
    TOY_2D_CRITIC,
    TOY_2D_HINGE,
    default_recipe,
    toy_2d_recipe,
)
from ppgen.inference.checkpoints import check_checkpoint_options
from ppgen.inference.minibatches import Minibatches
from ppgen.inference.options import check_options
from ppgen.programs.vectorise import free
from ppgen.result import Fit

__all__ = [
    "Adversarial",
    "AdversarialConfig",
    "LOSSES",
    "RECIPES",
    "TOY_2D",
    "TOY_2D_CRITIC",
    "TOY_2D_HINGE",
    "toy_2d_recipe",
    "gradient_penalty",
    "player_losses",
    "log_density_ratio",
]


@dataclass
class AdversarialConfig:
    """Options of the two-player loop; ``None`` means "the loss's published default"."""

    loss: str = "non_saturating"
    steps: int = 5000
    batch_size: int = 256
    n_critic: int | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    betas: tuple[float, float] | None = None
    gp_weight: float | None = None
    clip_value: float | None = None
    pack: int = 1
    lr_schedule: str = "constant"
    ema: float | None = None  # sample from this moving average of the generator's weights (e.g. 0.999)
    r1_weight: float = 0.0  # R1 penalty γ/2 E_P ‖∇V‖² on the critic
    spectral_norm: bool | None = None  # of the default critic's layers; None: for the hinge loss (SNGAN)
    eval_every: int = 500
    progress: bool = True
    checkpoint: str | os.PathLike | None = None  # write the two players' training state here
    checkpoint_every: int = 500
    resume: str | os.PathLike | None = None  # continue the run saved in this checkpoint

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise OptionError(f"Expected loss in {list(LOSSES)}, but got {self.loss!r}.")
        recipe = RECIPES.get(self.loss, RECIPES["classifier"])
        for key, value in recipe.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        self.gp_weight = 10.0 if self.gp_weight is None else self.gp_weight
        self.clip_value = 0.01 if self.clip_value is None else self.clip_value
        if self.spectral_norm is None:
            self.spectral_norm = self.loss == "hinge"
        if not isinstance(self.spectral_norm, bool):
            raise OptionError(f"Expected spectral_norm=True or False, but got {self.spectral_norm!r}.")
        for key in ("steps", "batch_size", "n_critic", "pack", "eval_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"Expected {key} to be a positive integer, but got {value!r}.")
        if not self.lr_g >= 0:
            raise OptionError(f"Expected lr_g >= 0 (0 holds the generator fixed), but got {self.lr_g!r}.")
        for key in ("lr_d", "clip_value"):
            if not getattr(self, key) > 0:
                raise OptionError(f"Expected {key} > 0, but got {getattr(self, key)!r}.")
        for key in ("gp_weight", "r1_weight"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise OptionError(f"Expected {key} >= 0, but got {value!r}.")
        if self.ema is not None and (
            isinstance(self.ema, bool) or not isinstance(self.ema, (int, float)) or not 0 <= self.ema < 1
        ):
            raise OptionError(
                f"Expected ema as a decay in [0, 1) (e.g. 0.999) or None, but got {self.ema!r}."
            )
        if self.betas is not None and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise OptionError(f"Expected betas as two numbers in [0, 1), but got {self.betas!r}.")
        if self.lr_schedule not in ("constant", "linear"):
            raise OptionError(
                f"Expected lr_schedule in ('constant', 'linear'), but got {self.lr_schedule!r}."
            )
        check_checkpoint_options(self.checkpoint, self.checkpoint_every, self.resume)
        if self.batch_size % self.pack:
            raise OptionError(
                f"Expected batch_size divisible by pack, but got batch_size={self.batch_size}, "
                f"pack={self.pack}; e.g. batch_size={self.pack * max(1, self.batch_size // self.pack)}."
            )


def _default_critic(spectral_norm: bool) -> torch.nn.Module:
    """3×256 LeakyReLU MLP built on first use, its layers spectrally normalised if asked (SNGAN)."""
    return _LazyMLP(spectral_norm=spectral_norm)


class _LazyMLP(torch.nn.Module):
    def __init__(self, hidden=(256, 256, 256), spectral_norm=False):
        super().__init__()
        self.hidden, self.spectral_norm, self.net = hidden, spectral_norm, None

    def build(self, in_features: int, dtype: torch.dtype | None = None):
        sizes = (in_features, *self.hidden, 1)
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = torch.nn.Linear(a, b)
            layers.append(torch.nn.utils.parametrizations.spectral_norm(lin) if self.spectral_norm else lin)
            if i < len(sizes) - 2:
                layers.append(torch.nn.LeakyReLU(0.2))
        self.net = torch.nn.Sequential(*layers).to(dtype)
        return self

    def forward(self, x):
        return self.net(x)


class Adversarial:
    """``method="adversarial"``: fit a generator by a two-player game with a critic.

    Options: ``loss`` (see :data:`LOSSES`), ``critic`` (any ``nn.Module`` mapping
    ``(N, pack·D) -> (N, 1)``; default a 3×256 MLP), ``steps``, ``batch_size``, ``n_critic``,
    ``lr_g``, ``lr_d`` (``lr_g=0`` holds the generator fixed), ``betas`` (``None`` = RMSprop),
    ``lr_schedule`` (``"constant"`` or ``"linear"`` decay to 0), ``gp_weight``, ``clip_value``, ``pack``,
    ``r1_weight`` (γ of the R1 penalty ``γ/2 E_P ‖∇V‖²`` on the critic), ``spectral_norm`` (of
    the default critic's layers; by default for the hinge loss only), ``ema`` (sample from this
    moving average of the generator's weights; ``fit.extras["last_iterate"]`` keeps the raw ones),
    ``recipe`` (``"toy_2d"`` or ``"published"``: where left-out options come from; by default the
    measured 2-D recipe for rows of two numbers, see :mod:`~ppgen.inference.adversarial_recipes`),
    ``evaluate`` (``generator -> {name: float}``, run every ``eval_every`` steps and shown on
    the progress bar), ``progress``, ``seed``, ``checkpoint``/``checkpoint_every``/``resume``
    (both players, both optimisers, schedules, random states and histories; a resumed run
    equals the uninterrupted one bit for bit). ``fit.history`` is the generator loss per step,
    ``fit.extras["critic_history"]`` the critic's; ``fit.critic`` is the trained critic.
    """

    #: A game of networks gains nothing from float64 and pays twice the time: it runs in the
    #: generator's own dtype and ``ppgen.fit`` casts the data to it (``dtype=`` overrides).
    computes_in_model_dtype = True

    #: Trains data-parallel under torchrun (see :class:`~ppgen.inference.adversarial_loop.TwoPlayerLoop`).
    data_parallel = True

    name = "adversarial"
    options = set(AdversarialConfig.__dataclass_fields__) | {"critic", "evaluate", "seed", "recipe"}

    def check(self, model: GenerativeModel) -> None:
        if callable(getattr(model, "check_generator", None)):  # a program: its observed site is the sample
            if model.structure is not None:
                try:
                    model.check_generator()
                except NotImplementedError as err:  # e.g. contrib.tracking's EKFDistribution cannot sample
                    raise MethodError(
                        "Expected an observed site the program can draw for method='adversarial' (the game "
                        f"compares its draws with the data), but drawing it raised NotImplementedError: {err}"
                    ) from None
                _check_program_has_own_parameters(model)
            return
        if not callable(getattr(model, "rsample", None)):
            raise MethodError(
                f"Expected a generator with a reparameterised rsample(n) for method='adversarial', but "
                f"{type(model).__name__} has none; use an ImplicitModel such as MLPGenerator or an explicit "
                "model whose samples are differentiable (e.g. Gaussian)."
            )
        if model.is_bayesian:
            raise MethodError(
                f"Expected point estimates for method='adversarial', but {type(model).__name__} has "
                f"priors on {model.prior_names}; use method='svi' or 'mcmc'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if callable(getattr(model, "training_rows", None)):  # a program: the critic sees its observed site
            x, covariates = model.training_rows(x, covariates), {}
        if covariates:
            raise OptionError(
                f"Expected data without covariates for method='adversarial', but got {sorted(covariates)}."
            )
        recipe_name, recipe = default_recipe(
            options.get("loss", "non_saturating"), tuple(x.shape[1:]), options.get("recipe")
        )
        resolved = {**recipe, **options}  # an option the user gives always wins over the recipe's
        config = AdversarialConfig(
            **{k: v for k, v in resolved.items() if k in AdversarialConfig.__dataclass_fields__}
        )
        gen_params = [p for p in model.parameters() if p.requires_grad]
        if not gen_params and config.lr_g > 0:
            raise MethodError(
                f"Expected a generator with parameters to train, but {type(model).__name__} has none."
            )
        with torch.no_grad():
            probe = model.rsample(config.pack)
        if probe.shape[1:] != x.shape[1:]:
            raise DataError(
                f"Expected data rows of shape {tuple(probe.shape[1:])} (what the generator draws), but got "
                f"{tuple(x.shape[1:])}; build the generator for this data dimension."
            )
        x = x.to(probe.dtype)
        if options.get("critic") is not None and "spectral_norm" in options:
            raise OptionError(
                "Expected spectral_norm only with the default critic; wrap your critic's layers in "
                "torch.nn.utils.parametrizations.spectral_norm instead."
            )
        critic = (
            copy.deepcopy(options.get("critic"))
            if options.get("critic") is not None
            else _default_critic(config.spectral_norm)
        )
        if not isinstance(critic, torch.nn.Module):
            raise OptionError(f"Expected critic to be a torch.nn.Module, but got {type(critic).__name__}.")
        width = config.pack * int(math.prod(x.shape[1:]))
        if callable(getattr(critic, "build", None)):
            critic.build(width, x.dtype)
        critic.to(x.dtype)
        loop = TwoPlayerLoop(model, critic, config, options.get("evaluate"))
        batches = Minibatches(x, {}, config.batch_size, options.get("seed"))
        start = time.perf_counter()
        error = None
        try:
            interrupted = loop.run(batches)
        except NonFiniteLossError as err:
            error, interrupted = err, True
        last_iterate = loop.finish()
        fit = Fit(
            model=model,
            method=self.name,
            params=model.point_estimates(),
            history=loop.g_history,
            converged=not interrupted,
            elapsed=time.perf_counter() - start,
            options={k: v for k, v in options.items() if k not in ("critic", "evaluate")},
            critic=critic,
            n_train=x.shape[0],
            extras={
                "critic_history": loop.d_history,
                "evaluations": loop.evaluations,
                "config": asdict(config),
                "recipe": recipe_name,
                **({"last_iterate": last_iterate} if last_iterate is not None else {}),
            },
        )
        if error is not None:
            error.fit = fit
            raise error
        return fit


def log_density_ratio(fit: Fit, x: torch.Tensor) -> torch.Tensor:
    """The trained critic's estimate of ``log p_data(x) / p_θ(x)``, shape ``(N,)``.

    At the optimum a classifier critic's logit is the log ratio (``σ(V) = p/(p + p_θ)``);
    for ``f:kl`` the optimal ``T = 1 + log(p/p_θ)``. Needs ``pack=1``.
    """
    loss, pack = fit.extras["config"]["loss"], fit.extras["config"]["pack"]
    if pack != 1:
        raise OptionError(f"Expected a fit with pack=1 for a per-sample density ratio, but got pack={pack}.")
    ratio_losses = ("minimax", "non_saturating", "f:gan", "f:kl")
    if loss not in ratio_losses:
        raise OptionError(
            f"Expected a fit with loss in {ratio_losses} for a density ratio, but got {loss!r}."
        )
    with torch.no_grad():
        v = fit.critic(torch.as_tensor(x, dtype=fit.data.dtype)).squeeze(-1)
    return v - 1 if loss == "f:kl" else v


def _check_program_has_own_parameters(program) -> None:
    """The game trains the program that emits the data: parameters only its guide declares (intro_long's
    ``custom_guide`` given with ``method='adversarial'``) would leave the generator with nothing to train."""
    if getattr(program, "user_guide", None) is None:
        return
    with program.parameters_served(), torch.no_grad():
        trace = poutine.trace(free(program)).get_trace(None, **program.train_args)
    if not any(site["type"] == "param" for site in trace.nodes.values()):
        raise MethodError(
            "Expected a generator program with parameters of its own (pyro.param or pyro.module in the "
            "program) for method='adversarial', but only its guide has parameters; fit it with 'svi' "
            "(which trains the guide), 'map' or 'mcmc'."
        )
