"""Mode coverage of GAN losses on the 25-Gaussian grid and the 8-Gaussian ring.

Standard protocol (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): after
training, draw 2,500 samples, assign each to its nearest mode, count it as high quality
within 3 std, a mode is captured with ≥ 1 high-quality sample; KL of the captured-mode
histogram against uniform. Three losses side by side, three seeds each, on the CPU.

    python benchmarks/gan_modes.py                 # full run (minutes per fit)
    python benchmarks/gan_modes.py --fast          # smoke run
    python benchmarks/gan_modes.py --losses wgan_gp --datasets grid25 --seeds 0

Writes benchmarks/out/gan_modes.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

import ppgen
from ppgen.inference.adversarial import RECIPES, toy_2d_recipe
from ppgen.metrics import mode_coverage
from ppgen.models import MLPCritic, MLPGenerator

OUT = Path(__file__).parent / "out"

#: The benchmarks as published: 8 modes on a circle of radius 2 (std 0.02); 25 modes on
#: {-4,-2,0,2,4}² (std 0.05).
BENCHES = {
    "ring8": (2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1), 0.02),
    "grid25": (np.array([(a, b) for a in range(-4, 5, 2) for b in range(-4, 5, 2)], dtype=float), 0.05),
}


def make_data(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    means, std = BENCHES[name]
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(means), size=n)
    x = means[labels] + std * rng.standard_normal((n, 2))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(means), std


def run_one(loss: str, name: str, seed: int, steps: int, recipe: dict) -> dict:
    x, means, std = make_data(name, 100_000, seed)
    recipe = dict(recipe)
    gen_hidden = recipe.pop("gen_hidden", (256, 256, 256))
    critic_hidden = recipe.pop("critic_hidden", (256, 256, 256))
    spectral = recipe.pop("spectral_norm", loss == "hinge")
    latent = recipe.pop("latent_dim", 2)
    torch.manual_seed(seed)
    generator = MLPGenerator(latent_dim=latent, data_dim=2, hidden=gen_hidden)
    critic = MLPCritic(critic_hidden, spectral_norm=spectral)
    start = time.perf_counter()
    fit = ppgen.fit(
        generator, x, method="adversarial", loss=loss, critic=critic, steps=steps, seed=seed, **recipe
    )
    seconds = time.perf_counter() - start
    torch.manual_seed(10_000 + seed)
    cover = mode_coverage(fit.sample(2500), means, std)
    cover.pop("counts")
    return {"loss": loss, "data": name, "seed": seed, "seconds": round(seconds, 1), **cover}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--losses", nargs="+", default=["non_saturating", "wgan_gp", "hinge"])
    parser.add_argument("--datasets", nargs="+", default=["grid25", "ring8"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--recipe", default="2d", help="'2d' (the tuned default) or 'published'")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("PPGEN_THREADS", "1")))  # tiny nets: 1 thread is fastest
    steps = args.steps or (200 if args.fast else None)
    rows = []
    for name in args.datasets:
        for loss in args.losses:
            recipe = (
                toy_2d_recipe(loss) if args.recipe == "2d" else dict(RECIPES.get(loss, RECIPES["classifier"]))
            )
            recipe.update(progress=False)
            n_steps = steps or recipe.pop("steps", 5000)
            recipe.pop("steps", None)
            for seed in args.seeds:
                row = run_one(loss, name, seed, n_steps, recipe)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for name in args.datasets:
        for loss in args.losses:
            sel = [r for r in rows if r["data"] == name and r["loss"] == loss]
            summary[f"{name}/{loss}"] = {
                "modes": float(np.mean([r["modes"] for r in sel])),
                "high_quality": float(np.mean([r["high_quality"] for r in sel])),
                "kl_uniform": float(
                    np.mean([r["kl_uniform"] for r in sel if math.isfinite(r["kl_uniform"])] or [math.inf])
                ),
                "seconds": float(np.mean([r["seconds"] for r in sel])),
            }
    print(f"{'benchmark':28s} {'modes':>6s} {'HQ %':>6s} {'KL':>6s} {'s/fit':>6s}")
    for key, s in summary.items():
        print(
            f"{key:28s} {s['modes']:6.2f} {100 * s['high_quality']:6.1f} "
            f"{s['kl_uniform']:6.3f} {s['seconds']:6.0f}"
        )
    OUT.mkdir(exist_ok=True)
    meta = {"threads": torch.get_num_threads(), "loadavg": os.getloadavg(), "recipe": args.recipe}
    (OUT / "gan_modes.json").write_text(
        json.dumps({"rows": rows, "summary": summary, "machine": meta}, indent=2)
    )


if __name__ == "__main__":
    main()
