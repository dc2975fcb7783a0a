"""Where an adversarial fit's options come from when the user does not give them.

Two sources, most specific first, and the user's own options always win key by key:

* **rows of two numbers** (``x.shape[1:] == (2,)``, the toy mixtures GANs are judged on):
  :func:`toy_2d_recipe` of the loss, measured on the 25-Gaussian grid and the 8-Gaussian ring
  over seeds and independent data draws (``benchmarks/gan_modes.py``);
* **anything else**: the loss's published defaults (:data:`RECIPES`; a 3×256 MLP critic,
  5,000 generator steps, batches of 256).

``ppgen.fit(g, x, method="adversarial")`` on 2-D data is therefore the measured recipe,
``ppgen.fit(g, x, method="adversarial", steps=500)`` is the recipe shortened to 500 steps, and
``recipe="published"`` (or ``"toy_2d"``) picks the source whatever the data.
``fit.extras["recipe"]`` names the source and ``fit.extras["config"]`` holds every resolved value.
"""

from __future__ import annotations

from typing import Any

from ppgen.errors import OptionError
from ppgen.measures import divergences

__all__ = ["LOSSES", "RECIPES", "TOY_2D", "TOY_2D_CRITIC", "TOY_2D_HINGE", "toy_2d_recipe", "default_recipe"]

LOSSES = ("minimax", "non_saturating", "wgan", "wgan_gp", "hinge") + tuple(
    f"f:{n}" for n in divergences.names()
)

#: Published defaults: DCGAN (Radford et al. 2016) for the classifier losses, WGAN (Arjovsky
#: et al. 2017), WGAN-GP (Gulrajani et al. 2017, toy-data script), SNGAN hinge (Miyato et al. 2018).
RECIPES: dict[str, dict[str, Any]] = {
    "classifier": dict(n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
    "wgan": dict(n_critic=5, lr_g=5e-5, lr_d=5e-5, betas=None, clip_value=0.01),
    "wgan_gp": dict(n_critic=5, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9), gp_weight=10.0),
    "hinge": dict(n_critic=1, lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999)),
}


#: The recipe measured for 2-D toy mixtures (benchmarks/gan_modes.py, 2-CPU machine, one thread
#: per fit, two fits at a time; 25-Gaussian grid, 50,000 points of draw 777, non-saturating
#: loss, 3×256 MLPs, seeds 0–3): the published DCGAN rates are too timid for a few thousand steps,
#: so both players take lr 1e-3 annealed linearly to 0 (8,000 steps: 21.5/25 modes, min 17, 89 %
#: high quality); an R1 penalty of γ = 0.1 on the critic keeps every mode in reach (25/25 in all
#: four; γ = 1 also 25/25 but at 78 %, the critic over-smoothed); sampling from the moving average
#: of the generator's weights (ema 0.999) keeps the samples on the modes (81.6 → 95.2 % in one
#: seed); 12,000 steps instead of 8,000 lift the high-quality share from 88.3 % (82.8–94.8) to
#: 94.6 % (92.9–95.9), same seeds, ≈ 240 s a fit. Packing (pack 2, 4) found modes but spread the
#: samples (5–44 % high quality). Use as ``ppgen.fit(g, x, method="adversarial")`` on 2-D data,
#: or ``**TOY_2D`` anywhere.
TOY_2D: dict[str, Any] = dict(
    steps=12000,
    batch_size=256,
    lr_g=1e-3,
    lr_d=1e-3,
    n_critic=1,
    lr_schedule="linear",
    r1_weight=0.1,
    ema=0.999,
)

#: WGAN-GP on 2-D mixtures (grid draw 777, seed 0, two fits at a time on 2 cores): several critic
#: steps per generator step as published (n_critic = 5, Adam betas (0.5, 0.9)) at TOY_2D's
#: annealed rate. With λ = 10 the critic's unit slope everywhere leaves the samples spread between
#: the modes (2,000 steps: 18/25 at 1.9 % high quality, with EMA); the published toy script's
#: λ = 0.1 lets its slope grow near the data (24/25 at 19 %; λ = 1: 25 at 27 %, λ = 0.01: 25 at
#: 14 %), and what the Wasserstein game lacks most is length: 4,000 steps give 25/25 at 72 %
#: (403 s), where 12,000 steps of one critic update give 25/25 at 61 % (330 s).
TOY_2D_CRITIC: dict[str, Any] = dict(
    steps=4000,
    batch_size=256,
    lr_g=1e-3,
    lr_d=1e-3,
    n_critic=5,
    betas=(0.5, 0.9),
    lr_schedule="linear",
    gp_weight=0.1,
    ema=0.999,
)

#: The hinge loss on 2-D mixtures: :data:`TOY_2D` with a plain critic. SNGAN's spectral norm
#: bounds the critic's slope by 1 in every layer, so inside a 0.05-wide mode the generator feels
#: almost no pull (TOY_2D_CRITIC with spectral norm: 21/25 grid modes at 14 % high quality, with
#: EMA too); R1 regularises the critic where the data are instead, and the hinge loss then trains
#: like the non-saturating one (grid draw 777, seed 0: 25/25 at 95.6 %, 271 s).
TOY_2D_HINGE: dict[str, Any] = dict(TOY_2D, spectral_norm=False)


def toy_2d_recipe(loss: str) -> dict[str, Any]:
    """The measured 2-D recipe for ``loss``: :data:`TOY_2D` for the classifier and f-GAN losses,
    :data:`TOY_2D_HINGE` for ``hinge``, :data:`TOY_2D_CRITIC` for ``wgan_gp`` (``wgan`` keeps its
    published recipe)."""
    if loss not in LOSSES:
        raise OptionError(f"Expected loss in {list(LOSSES)}, but got {loss!r}.")
    if loss == "hinge":
        return dict(TOY_2D_HINGE)
    if loss == "wgan_gp":
        return dict(TOY_2D_CRITIC)
    if loss == "wgan":
        return dict(RECIPES["wgan"], steps=TOY_2D["steps"], batch_size=TOY_2D["batch_size"])
    return dict(TOY_2D)


def default_recipe(
    loss: str, row_shape: tuple[int, ...], recipe: str | None = None
) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` a fit of ``loss`` on rows of ``row_shape`` starts from: ``("toy_2d",
    toy_2d_recipe(loss))`` for rows of two numbers, ``("published", {})`` otherwise (the config
    then falls back to :data:`RECIPES`). ``recipe="toy_2d"`` or ``"published"`` picks one."""
    if recipe not in (None, "toy_2d", "published"):
        raise OptionError(f"Expected recipe in ('toy_2d', 'published') or None, but got {recipe!r}.")
    if recipe == "toy_2d" or (recipe is None and tuple(row_shape) == (2,)):
        return "toy_2d", toy_2d_recipe(loss)
    return "published", {}
