"""Tour chapter "gans": the discriminator as a density ratio, saturating vs non-saturating
gradients, and mode coverage of GAN losses on the 8-Gaussian ring."""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

import ppgen
from ppgen.app.tour_context import TourContext
from ppgen.inference.adversarial import log_density_ratio, toy_2d_recipe
from ppgen.measures.metrics import energy_distance, mode_coverage
from ppgen.models import Gaussian, MLPCritic, MLPGenerator


def run(ctx: TourContext) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread avoids oversubscription (several x faster here)
    try:
        _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx: TourContext) -> None:
    import matplotlib.pyplot as plt

    # 1. The optimal discriminator is a density ratio (fixed generator: lr_g = 0).
    x0 = torch.randn(20_000, 1, dtype=torch.float64)
    fixed = Gaussian(dim=1, loc=torch.tensor([1.0]), scale_tril=torch.tensor([[1.5]])).double()
    fit = ppgen.fit(
        fixed,
        x0,
        method="adversarial",
        loss="minimax",
        lr_g=0.0,
        lr_d=2e-3,
        steps=ctx.pick(300, 800, 3000),
        batch_size=512,
        critic=MLPCritic((64, 64), activation="tanh"),
        seed=ctx.seed,
        progress=False,
    )
    grid = torch.linspace(-1.96, 1.96, 101, dtype=torch.float64).unsqueeze(-1)
    N = torch.distributions.Normal
    true_logit = (N(0.0, 1.0).log_prob(grid) - N(1.0, 1.5).log_prob(grid)).squeeze(-1)
    logit = log_density_ratio(fit, grid)
    err = float((torch.sigmoid(logit) - torch.sigmoid(true_logit)).abs().max())
    ctx.number("discriminator_max_error_central95", err)
    ctx.text(
        "With the generator held at N(1, 1.5²) and data from N(0, 1), the trained discriminator approaches "
        f"D* = p_data/(p_data + p_θ): max |D − D*| = {err:.3f} on the central 95% of the data; its logit "
        "estimates log p_data/p_θ — a GAN critic is a density-ratio estimator."
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(grid, true_logit, label="log p_data/p_θ")
    ax.plot(grid, logit, "--", label="discriminator logit")
    ax.legend()
    ctx.figure(fig, "Discriminator logit vs the true log density ratio")

    # 2. Saturation: generator-loss slopes when D is confident.
    v = torch.tensor([-8.0, -4.0, 0.0], requires_grad=True)
    rows = []
    for name, loss in [("minimax", lambda v: -F.softplus(v)), ("non_saturating", lambda v: F.softplus(-v))]:
        (grad,) = torch.autograd.grad(loss(v).sum(), v)
        rows.append(
            {"generator loss": name, **{f"D = {torch.sigmoid(t):.4f}": float(g) for t, g in zip(v, grad)}}
        )
    ctx.table(pd.DataFrame(rows), "d loss / d logit on a generated sample: the minimax loss saturates")

    # 3. Mode coverage on the ring (8 Gaussians, std 0.02), standard protocol with 2,500 samples.
    angles = torch.arange(8) * torch.pi / 4
    means = 2 * torch.stack([angles.cos(), angles.sin()], 1)
    ring = means[torch.randint(8, (50_000,))] + 0.02 * torch.randn(50_000, 2)
    hidden = ctx.pick((64, 64), (128, 128), (256, 256, 256))
    # live runs: the measured 2-D recipes (toy_2d_recipe), shortened outside --full; WGAN-GP needs
    # thousands of steps of 5 critic updates to settle on the modes, so it trains only in --full
    live = ctx.pick(
        {"non_saturating": 400},
        {"non_saturating": 1500, "hinge": 400},
        {"non_saturating": None, "wgan_gp": None, "hinge": None},  # None: the recipe's own length
    )
    rows, samples = [], {}
    for loss, steps in live.items():
        torch.manual_seed(ctx.seed)
        recipe = toy_2d_recipe(loss)
        recipe["steps"] = steps or recipe["steps"]
        spectral_norm = recipe.pop("spectral_norm", loss == "hinge")  # the critic is built here
        f = ppgen.fit(
            MLPGenerator(2, 2, hidden=hidden),
            ring,
            method="adversarial",
            loss=loss,
            critic=MLPCritic(hidden, spectral_norm=spectral_norm),
            seed=ctx.seed,
            progress=False,
            **recipe,
        )
        samples[loss] = f.sample(2500)
        cover = mode_coverage(samples[loss], means, 0.02)
        full_length = toy_2d_recipe(loss)["steps"]
        note = "the recipe's length" if recipe["steps"] >= full_length else f"{full_length:,} in the recipe"
        rows.append(
            {
                "loss": loss,
                "modes (of 8)": cover["modes"],
                "high quality %": 100 * cover["high_quality"],
                "KL to uniform": cover["kl_uniform"],
                "energy distance": energy_distance(ring[:2500], samples[loss]),
                "hidden": "x".join(map(str, hidden)),
                "steps": recipe["steps"],
                "note": note,
                "seconds": f.elapsed,
            }
        )
        ctx.number(f"ring_modes_{loss}", cover["modes"])
        ctx.number(f"ring_high_quality_{loss}", cover["high_quality"])
        ctx.zoo_row(
            model="MLPGenerator",
            method=f"adversarial ({loss})",
            data="ring8 (generated)",
            heldout_loglik=None,
            kind="n/a (implicit)",
            seconds=f.elapsed,
            note=f"{cover['modes']}/8 modes, {100 * cover['high_quality']:.0f}% high quality, "
            f"{recipe['steps']} steps",
        )
    ctx.table(
        pd.DataFrame(rows),
        f"Trained just now ({ctx.mode} run): 8-Gaussian ring, modes captured, high-quality share "
        "(within 3 std of a mode), histogram KL to uniform",
    )
    fig, axes = plt.subplots(1, len(samples), figsize=(4 * len(samples), 4), squeeze=False)
    for ax, row in zip(axes[0], rows):
        loss, s = row["loss"], samples[row["loss"]]
        ax.scatter(*ring[:2500].T, s=2, alpha=0.3)
        ax.scatter(*s.T, s=2, alpha=0.3)
        ax.set(
            title=f"{loss}, {live[loss] or toy_2d_recipe(loss)['steps']} steps", xlim=(-3, 3), ylim=(-3, 3)
        )
        ax.set_aspect("equal")
    ctx.figure(fig, "Generated (orange) vs data (blue) on the ring, trained just now")
    _quoted(ctx)


def _quoted(ctx: TourContext) -> None:
    """The three losses at their full recipe length over seeds and data draws, ring and grid: too
    long for a tour, so read from the last ``make bench`` run, with its date and command."""
    quote = ctx.benchmark("gan_modes")
    if quote is None:
        ctx.text(
            "No benchmark results found (benchmarks/results.json): run `make bench` (or "
            "`python benchmarks/gan_modes.py`) for the three losses at full length over seeds and draws."
        )
        return
    summary = quote.results.get("gan_modes.json", {}).get("summary", {})
    rows = []
    for key, value in summary.items():
        data, loss = key.split("/")
        rows.append(
            {
                "data": data,
                "loss": loss,
                "modes": value["modes"],
                "min": value.get("modes_min", value["modes"]),
                "of": 8 if data == "ring8" else 25,
                "runs": value.get("runs", 3),
                "high quality %": 100 * value["high_quality"],
                "KL to uniform": value["kl_uniform"],
                "steps": toy_2d_recipe(loss)["steps"],
                "seconds per fit": value["seconds"],
            }
        )
        ctx.number(f"quoted_{data}_{loss}_modes", value["modes"])
    ctx.table(
        pd.DataFrame(rows),
        f"Quoted, not trained here: mean over seeds x data draws ('runs') of the default call, the "
        f"measured 2-D recipes with 256x256x256 networks ({quote.source()})",
        fold=False,
    )
