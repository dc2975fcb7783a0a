"""What does ppgen's SVI cost over a plain PyTorch loop computing the same objective?

Side by side, in one run, one intra-op thread (see the note printed at the end):

1. VAE on binarized digits (64-dim, latent 8, hidden 256, batch 128, Adam 1e-3):
   time per epoch of ``ppgen.fit(vae, x, method="svi")`` with Pyro's ``Trace_ELBO`` on the
   model/guide pair (``loss="elbo"``), with the VAE's closed-form ELBO (``loss="auto"``),
   and a hand-written torch loop with the same networks and the same ELBO.
2. A 1-D Gaussian (N = 1000, full batch): ``method="svi"`` (Trace_ELBO, empty guide) and
   ``method="mle"`` (the model's log_prob) vs a plain torch loop on ``Normal.log_prob``.

Prints ratios and writes ``benchmarks/out/svi_overhead.json``. Run:
``.venv/bin/python benchmarks/svi_overhead.py [--epochs 20] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import platform
import pstats
import statistics
import time
from pathlib import Path

import torch

import ppgen
from ppgen.data import load
from ppgen.models import VAE, Gaussian

BATCH = 128


def plain_vae_epochs(template: VAE, x: torch.Tensor, epochs: int, seed: int) -> float:
    """The same networks (a copy of the VAE's encoder/decoder) trained by a bare torch loop."""
    encoder, decoder = copy.deepcopy(template.encoder), copy.deepcopy(template.decoder)
    latent = template.latent_dim
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    steps = epochs * (n // BATCH)
    start = time.perf_counter()
    for _ in range(steps):
        xb = x[torch.randperm(n, generator=generator)[:BATCH]]
        out = encoder(xb)
        loc, scale = out[:, :latent], torch.nn.functional.softplus(out[:, latent:]) + 1e-5
        z = loc + scale * torch.randn_like(loc)
        logits = decoder(z)
        reconstruction = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, xb, reduction="none"
        ).sum(1)
        kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * scale.log()).sum(1)
        loss = -(reconstruction - kl).sum() / BATCH
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / epochs


def ppgen_vae_epochs(template: VAE, x: torch.Tensor, epochs: int, seed: int, loss: str) -> float:
    steps = epochs * (x.shape[0] // BATCH)
    fit = ppgen.fit(
        template, x, method="svi", loss=loss, num_steps=steps, batch_size=BATCH, lr=1e-3, progress=False,
        seed=seed, patience=10**9,
    )  # fmt: skip
    return fit.elapsed / epochs


def plain_gaussian(x: torch.Tensor, steps: int) -> float:
    loc = torch.zeros(1, requires_grad=True)
    log_scale = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([loc, log_scale], lr=0.01)
    start = time.perf_counter()
    for _ in range(steps):
        loss = -torch.distributions.Normal(loc, log_scale.exp()).log_prob(x).sum() / x.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def ppgen_gaussian(x: torch.Tensor, steps: int, method: str) -> float:
    fit = ppgen.fit(
        Gaussian(dim=1, covariance="diag"), x, method=method, num_steps=steps, lr=0.01, progress=False,
        seed=0, patience=10**9,
    )  # fmt: skip
    return fit.elapsed / steps


def profile_trace_elbo(template: VAE, x: torch.Tensor) -> dict[str, float]:
    """Where the Trace_ELBO path spends its time: self time grouped by package (3 epochs)."""
    profiler = cProfile.Profile()
    profiler.enable()
    ppgen_vae_epochs(template, x, 3, 0, "elbo")
    profiler.disable()
    groups: dict[str, float] = {}
    for (filename, _, name), (_, _, tottime, _, _) in pstats.Stats(profiler).stats.items():
        if "/pyro/" in filename:
            key = "pyro (tracing, messengers, distributions)"
        elif "/torch/" in filename or name.startswith("<method") or name.startswith("<built-in method torch"):
            key = "torch (kernels, autograd, optimiser)"
        elif "/ppgen/" in filename:
            key = "ppgen (model, loop, minibatches)"
        else:
            key = "other python"
        groups[key] = groups.get(key, 0.0) + tottime
    total = sum(groups.values())
    return {k: v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = load("digits-binary", "train", dtype=torch.float32)
    torch.manual_seed(0)
    template = VAE(64, 8, hidden=(256,))

    runs: dict[str, list[float]] = {"plain": [], "ppgen_trace_elbo": [], "ppgen_closed_form": []}
    for r in range(args.repeats):  # interleaved, so machine load hits every variant alike
        runs["plain"].append(plain_vae_epochs(template, x, args.epochs, r))
        runs["ppgen_trace_elbo"].append(ppgen_vae_epochs(template, x, args.epochs, r, "elbo"))
        runs["ppgen_closed_form"].append(ppgen_vae_epochs(template, x, args.epochs, r, "auto"))
    vae = {k: statistics.median(v) for k, v in runs.items()}

    xg = torch.randn(1000, 1) * 2 + 3
    g_runs: dict[str, list[float]] = {"plain": [], "ppgen_svi": [], "ppgen_mle": []}
    for _ in range(args.repeats):
        g_runs["plain"].append(plain_gaussian(xg, 500))
        g_runs["ppgen_svi"].append(ppgen_gaussian(xg, 500, "svi"))
        g_runs["ppgen_mle"].append(ppgen_gaussian(xg, 500, "mle"))
    gauss = {k: statistics.median(v) for k, v in g_runs.items()}

    print(
        f"VAE on digits-binary ({x.shape[0]} rows, batch {BATCH}), "
        f"seconds per epoch (median of {args.repeats}):"
    )
    for name, value in vae.items():
        print(f"  {name:20s} {value:.4f} s   ratio to plain {value / vae['plain']:.2f}x")
    print("1-D Gaussian, seconds per step:")
    for name, value in gauss.items():
        print(f"  {name:20s} {value * 1e3:.3f} ms  ratio to plain {value / gauss['plain']:.2f}x")
    top = profile_trace_elbo(template, x)
    print("Trace_ELBO path, share of self time by package (cProfile, 3 epochs):")
    for name, share in top.items():
        print(f"  {share:6.1%}  {name}")
    load_avg = os.getloadavg()
    print(
        f"threads={args.threads}, load average {load_avg[0]:.2f} "
        "(shared machine: compare ratios, not seconds)"
    )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    payload = {
        "vae_seconds_per_epoch": vae,
        "vae_ratio": {k: v / vae["plain"] for k, v in vae.items()},
        "gaussian_seconds_per_step": gauss,
        "gaussian_ratio": {k: v / gauss["plain"] for k, v in gauss.items()},
        "trace_elbo_profile": top,
        "runs": {"vae": runs, "gaussian": g_runs},
        "threads": args.threads,
        "epochs": args.epochs,
        "load_average": load_avg,
        "machine": platform.platform(),
        "torch": torch.__version__,
    }
    (out / "svi_overhead.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
