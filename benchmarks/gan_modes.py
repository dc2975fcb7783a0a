"""Mode coverage of adversarial fits with their defaults, over seeds × data draws × losses.

Standard protocol (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018): after training,
draw 2,500 samples, assign each to its nearest mode, count it as high quality within 3 std; a
mode is captured with ≥ 1 high-quality sample; KL of the captured-mode histogram against
uniform. Each fit is the call a user makes first — ``ppgen.fit(MLPGenerator(latent_dim=2,
data_dim=2), x, method="adversarial", loss=loss, seed=seed)``, no other option — so what is
measured is the default recipe (``ppgen.inference.adversarial_recipes``).

Two independent data draws per benchmark: ``tuning`` (generator seed 777, 50,000 points,
float32: the draw the recipe was chosen on) and ``held_out`` (seed 31337, never used in tuning,
2,000 points, float64, which the fit casts to the float32 generator a user builds). Five fit seeds
each. Cells report mean, min and max.

    python benchmarks/gan_modes.py                 # the full grid (about an hour on 2 cores)
    python benchmarks/gan_modes.py --quick         # one short fit per cell (pipeline check)
    python benchmarks/gan_modes.py --losses wgan_gp --datasets grid25 --seeds 0 1 --jobs 2

Writes benchmarks/out/gan_modes.json.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "out"

#: The benchmarks as published: 8 modes on a circle of radius 2 (std 0.02); 25 modes on
#: {-4,-2,0,2,4}² (std 0.05).
BENCHES = {
    "ring8": (2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1), 0.02),
    "grid25": (np.array([(a, b) for a in range(-4, 5, 2) for b in range(-4, 5, 2)], dtype=float), 0.05),
}

#: name -> (generator seed, points, dtype)
DRAWS = {"tuning": (777, 50_000, "float32"), "held_out": (31337, 2_000, "float64")}


def make_data(name: str, draw: str):
    import torch

    means, std = BENCHES[name]
    seed, n, dtype = DRAWS[draw]
    rng = np.random.default_rng(seed)
    x = means[rng.integers(len(means), size=n)] + std * rng.standard_normal((n, 2))
    return torch.tensor(x, dtype=getattr(torch, dtype)), torch.tensor(means), std


def run_one(loss: str, name: str, draw: str, seed: int, steps: int | None) -> dict:
    import torch

    import ppgen
    from ppgen.measures.metrics import mode_coverage
    from ppgen.models import MLPGenerator

    torch.set_num_threads(1)  # tiny networks: one thread per fit, fits in parallel processes
    x, means, std = make_data(name, draw)
    torch.manual_seed(seed)  # the generator's initial weights
    generator = MLPGenerator(latent_dim=2, data_dim=2)  # float32, as a user builds it: float64 data are cast
    options = {} if steps is None else {"steps": steps}
    start = time.perf_counter()
    fit = ppgen.fit(generator, x, method="adversarial", loss=loss, seed=seed, progress=False, **options)
    seconds = time.perf_counter() - start
    torch.manual_seed(10_000 + seed)
    cover = mode_coverage(fit.sample(2500), means, std)
    cover.pop("counts")
    return {
        "loss": loss,
        "data": name,
        "draw": draw,
        "seed": seed,
        "steps": fit.extras["config"]["steps"],
        "recipe": fit.extras["recipe"],
        "seconds": round(seconds, 1),
        **cover,
    }


def summarise(rows: list[dict]) -> dict:
    cells: dict[str, dict] = {}
    for key in sorted({(r["data"], r["loss"]) for r in rows}):
        sel = [r for r in rows if (r["data"], r["loss"]) == key]
        modes, quality = [r["modes"] for r in sel], [r["high_quality"] for r in sel]
        finite_kl = [r["kl_uniform"] for r in sel if math.isfinite(r["kl_uniform"])]
        cells["/".join(key)] = {
            "runs": len(sel),
            "modes": float(np.mean(modes)),
            "modes_min": int(min(modes)),
            "modes_max": int(max(modes)),
            "high_quality": float(np.mean(quality)),
            "high_quality_min": float(min(quality)),
            "high_quality_max": float(max(quality)),
            "kl_uniform": float(np.mean(finite_kl)) if finite_kl else math.inf,
            "seconds": float(np.mean([r["seconds"] for r in sel])),
            "seconds_max": float(max(r["seconds"] for r in sel)),
        }
    return cells


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", "--fast", action="store_true", help="one seed, one draw, 200 steps")
    parser.add_argument("--losses", nargs="+", default=["non_saturating", "wgan_gp", "hinge"])
    parser.add_argument("--datasets", nargs="+", default=["grid25", "ring8"])
    parser.add_argument("--draws", nargs="+", default=list(DRAWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's length")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=OUT / "gan_modes.json", help="where to write")
    parser.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        default=None,
        help="merge these runs' rows into --out; train nothing",
    )
    args = parser.parse_args()
    steps, draws, seeds = args.steps, args.draws, args.seeds
    if args.quick:
        steps, draws, seeds = steps or 200, ["held_out"], seeds[:1]
    grid = [(loss, d, w, s) for d in args.datasets for loss in args.losses for w in draws for s in seeds]
    if args.combine:  # cells run separately (e.g. two processes at once): one report
        parts = [json.loads(path.read_text()) for path in args.combine]
        rows = [row for part in parts for row in part["rows"]]
        machine = {"combined": [str(p) for p in args.combine], "parts": [part["machine"] for part in parts]}
        args.out.write_text(
            json.dumps({"rows": rows, "summary": summarise(rows), "machine": machine}, indent=2)
        )
        return
    rows = []
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no shared torch state
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        for row in pool.map(run_one, *zip(*grid), [steps] * len(grid)):
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = summarise(rows)
    print(f"{'benchmark':26s} {'modes (min-max)':>16s} {'HQ % (min-max)':>16s} {'s/fit (max)':>12s}")
    for key, s in summary.items():
        print(
            f"{key:26s} {s['modes']:6.2f} ({s['modes_min']}-{s['modes_max']})   "
            f"{100 * s['high_quality']:5.1f} ({100 * s['high_quality_min']:.0f}-"
            f"{100 * s['high_quality_max']:.0f})   {s['seconds']:5.0f} ({s['seconds_max']:.0f})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"jobs": args.jobs, "loadavg": os.getloadavg(), "draws": {d: DRAWS[d] for d in draws}}
    args.out.write_text(json.dumps({"rows": rows, "summary": summary, "machine": meta}, indent=2))


if __name__ == "__main__":
    main()
