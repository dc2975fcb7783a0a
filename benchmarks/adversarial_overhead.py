"""Overhead of ppgen's adversarial loop vs a plain PyTorch GAN loop with the same networks.

Same generator and critic (MLPs), same batch size, non-saturating loss, Adam; the plain loop
is the textbook one (critic step on detached fakes, then a generator step). Repeats are
interleaved and the fastest of each is kept, because the machine is shared.

    python benchmarks/adversarial_overhead.py [--steps 300] [--repeats 3]

Writes benchmarks/out/adversarial_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import ppgen
from ppgen.models import MLPCritic, MLPGenerator

OUT = Path(__file__).parent / "out"


def plain_loop(
    gen: torch.nn.Module, critic: torch.nn.Module, x: torch.Tensor, steps: int, batch: int
) -> None:
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        real = x[torch.randperm(x.shape[0], generator=g)[:batch]]
        fake = gen(torch.randn(batch, 2)).detach()
        d_loss = F.softplus(-critic(real)).mean() + F.softplus(critic(fake)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-critic(gen(torch.randn(batch, 2)))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("PPGEN_THREADS", "1")))
    x = torch.randn(20_000, 2)
    hidden = tuple(args.hidden)
    times = {"plain torch": [], "ppgen adversarial": []}
    for _ in range(args.repeats):
        torch.manual_seed(0)
        gen, critic = MLPGenerator(2, 2, hidden=hidden), MLPCritic(hidden, in_features=2)
        start = time.perf_counter()
        plain_loop(gen.net, critic, x, args.steps, 256)
        times["plain torch"].append(time.perf_counter() - start)
        torch.manual_seed(0)
        gen, critic = MLPGenerator(2, 2, hidden=hidden), MLPCritic(hidden, in_features=2)
        fit = ppgen.fit(
            gen,
            x,
            method="adversarial",
            loss="non_saturating",
            recipe="published",  # the plain loop's DCGAN rates, no R1, no weight averaging
            critic=critic,
            steps=args.steps,
            batch_size=256,
            seed=0,
            progress=False,
        )
        times["ppgen adversarial"].append(fit.elapsed)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["ppgen adversarial"] / best["plain torch"]
    print(
        f"{args.steps} steps, batch 256, hidden {hidden}, threads {torch.get_num_threads()}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    for k, v in best.items():
        print(f"  {k:20s} {v:7.2f} s  ({1000 * v / args.steps:.1f} ms/step)")
    print(f"  ratio ppgen / plain   {ratio:.3f}x  (goal <= 1.1x)")
    OUT.mkdir(exist_ok=True)
    (OUT / "adversarial_overhead.json").write_text(
        json.dumps(
            {
                "times": times,
                "best": best,
                "ratio": ratio,
                "steps": args.steps,
                "hidden": hidden,
                "threads": torch.get_num_threads(),
                "loadavg": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
