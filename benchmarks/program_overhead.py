"""Users' Pyro programs through ppgen's ELBO vs a plain PyTorch loop computing the same ELBO.

Side by side in one run, interleaved repeats (median), one intra-op thread:

1. **The VAE tutorial's program** (``pyro.module`` encoder/decoder, 64 → 256 → latent 8,
   Bernoulli pixels) on binarized digits, batch 128, Adam 1e-3: ``ppgen.fit(vae.model, x,
   guide=vae.guide, method="svi")`` compiled (the default) and with ``compile=False``, against
   a torch loop with the same networks and the same single-sample estimator
   ``log p(x|z) + log p(z) − log q(z|x)``, ``z = loc + scale·ε``.
2. **A hierarchical regression program** (20 groups, 1,000 rows: ``y ~ N(a_g + b·x, σ_y)``,
   ``a_g ~ N(μ, σ_a)``, priors on μ, b, σ_a, σ_y), ``guide="normal"`` (AutoNormal), Adam 0.02,
   full batch, against a torch loop with the same mean-field Gaussian on the unconstrained
   latents (exp for the scales, log-Jacobian added) and the same estimator.

Reports the steady-state seconds per step — each variant runs ``steps`` and ``2·steps`` steps and
the difference is divided by ``steps``, so a compiled loss's one-time trace and agreement check
(reported apart, as ``fixed seconds``) is not spread over a short run — and its ratio to the plain
loop; writes ``benchmarks/out/program_overhead.json``. Run: ``python benchmarks/program_overhead.py
[--steps 300] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import Normal

import ppgen
from ppgen.data import load

BATCH, LATENT, HIDDEN = 128, 8, 256
GROUPS, ROWS = 20, 1000


# ------------------------------------------------------------------ 1. the VAE tutorial
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.loc, self.log_scale = (
            nn.Linear(64, HIDDEN),
            nn.Linear(HIDDEN, LATENT),
            nn.Linear(HIDDEN, LATENT),
        )

    def forward(self, x):
        h = nn.functional.softplus(self.hidden(x))
        return self.loc(h), self.log_scale(h).exp()


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(LATENT, HIDDEN), nn.Linear(HIDDEN, 64)

    def forward(self, z):
        return torch.sigmoid(self.out(nn.functional.softplus(self.hidden(z))))


class TutorialVAE(nn.Module):
    """The Pyro VAE tutorial's layout: networks registered with ``pyro.module``."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], LATENT), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(self.decoder(z), validate_args=False).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))


def vae_plain(x: torch.Tensor, steps: int, seed: int) -> float:
    torch.manual_seed(seed)
    vae = TutorialVAE()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        xb = x[torch.randperm(x.shape[0], generator=generator)[:BATCH]]
        loc, scale = vae.encoder(xb)
        z = loc + scale * torch.randn_like(loc)
        probs = vae.decoder(z)
        log_lik = (xb * probs.log() + (1 - xb) * (1 - probs).log()).sum()  # as dist.Bernoulli(probs)
        log_prior = Normal(0.0, 1.0).log_prob(z).sum()
        log_q = Normal(loc, scale).log_prob(z).sum()
        loss = -(log_lik + log_prior - log_q) * (x.shape[0] / BATCH) / x.shape[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def vae_ppgen(x: torch.Tensor, steps: int, seed: int, compile: bool) -> tuple[float, str]:
    torch.manual_seed(seed)
    vae = TutorialVAE()
    fit = ppgen.fit(
        vae.model, x, guide=vae.guide, method="svi", num_steps=steps, batch_size=BATCH, lr=1e-3,
        patience=10**9, progress=False, seed=seed, compile=compile,
    )  # fmt: skip
    return fit.elapsed, fit.extras["compiled"]


# ------------------------------------------------------------ 2. hierarchical regression
def regression_data(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    group = torch.randint(GROUPS, (ROWS,), generator=generator)
    x = torch.randn(ROWS, generator=generator)
    effects = 1.0 + 0.5 * torch.randn(GROUPS, generator=generator)
    y = effects[group] + 0.7 * x + 0.3 * torch.randn(ROWS, generator=generator)
    return {"group": group, "x": x, "y": y}


def hierarchical(group, x, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma_a = pyro.sample("sigma_a", dist.HalfNormal(2.0))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    sigma_y = pyro.sample("sigma_y", dist.HalfNormal(2.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, sigma_a))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(a[group] + b * x, sigma_y), obs=y)


def regression_plain(data: dict, steps: int, seed: int) -> float:
    """Mean-field Gaussian on (μ, log σ_a, b, log σ_y, a_1..a_G), as AutoNormal builds it."""
    torch.manual_seed(seed)
    group, x, y = data["group"], data["x"], data["y"]
    loc = torch.zeros(4 + GROUPS, requires_grad=True)
    raw_scale = torch.full((4 + GROUPS,), math.log(math.expm1(0.1)), requires_grad=True)  # softplus⁻¹(0.1)
    optimizer = torch.optim.Adam([loc, raw_scale], lr=0.02)
    half = torch.distributions.HalfNormal(2.0)
    start = time.perf_counter()
    for _ in range(steps):
        scale = nn.functional.softplus(raw_scale)
        u = loc + scale * torch.randn_like(loc)
        log_q = Normal(loc, scale).log_prob(u).sum()
        mu, b, a = u[0], u[2], u[4:]
        sigma_a, sigma_y = u[1].exp(), u[3].exp()
        log_jacobian = u[1] + u[3]
        log_p = (
            Normal(0.0, 5.0).log_prob(mu)
            + half.log_prob(sigma_a)
            + Normal(0.0, 5.0).log_prob(b)
            + half.log_prob(sigma_y)
            + Normal(mu, sigma_a).log_prob(a).sum()
            + Normal(a[group] + b * x, sigma_y).log_prob(y).sum()
        )
        loss = -(log_p + log_jacobian - log_q) / ROWS
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def regression_ppgen(data: dict, steps: int, seed: int, compile: bool) -> tuple[float, str]:
    fit = ppgen.fit(
        hierarchical, data, method="svi", guide="normal", num_steps=steps, lr=0.02, patience=10**9,
        progress=False, seed=seed, compile=compile,
    )  # fmt: skip
    return fit.elapsed, fit.extras["compiled"]


def marginal(run, steps: int) -> tuple[float, float]:
    """``(seconds per step, fixed seconds)`` from runs of ``steps`` and ``2·steps`` steps."""
    short, long = run(steps), run(2 * steps)
    per_step = max(long - short, 0.0) / steps
    return per_step, max(short - per_step * steps, 0.0)


def _ppgen_seconds(run, data, seed, flag, states, task, name, steps) -> float:
    seconds, states[f"{task} {name}"] = run(data, steps, seed, flag)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    digits = load("digits-binary", "train", dtype=torch.float32)
    data = regression_data()
    tasks = {"vae": (vae_plain, vae_ppgen, digits), "regression": (regression_plain, regression_ppgen, data)}
    timings = {task: {"plain": [], "ppgen compiled": [], "ppgen eager": []} for task in tasks}
    fixed = {task: {name: [] for name in row} for task, row in timings.items()}
    states = {}
    for r in range(args.repeats):  # interleaved, so machine load hits every variant alike
        for task, (plain, ppgen_run, task_data) in tasks.items():
            variants = {"plain": functools.partial(plain, task_data, seed=r)}
            for name, flag in (("ppgen compiled", True), ("ppgen eager", False)):
                variants[name] = functools.partial(
                    _ppgen_seconds, ppgen_run, task_data, r, flag, states, task, name
                )
            for name, run in variants.items():
                per_step, once = marginal(run, args.steps)
                timings[task][name].append(per_step)
                fixed[task][name].append(once)
    summary = {
        task: {name: statistics.median(values) for name, values in runs.items()}
        for task, runs in timings.items()
    }
    ratios = {
        task: {name: value / row["plain"] for name, value in row.items()} for task, row in summary.items()
    }
    for task, row in summary.items():
        print(f"{task}: ms per step (median of {args.repeats}), ratio to the plain loop")
        for name, value in row.items():
            print(f"  {name:16s} {value * 1e3:8.3f} ms  {ratios[task][name]:.2f}x")
    print("compiled state:", states)
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    payload = {
        "seconds_per_step": summary,
        "fixed_seconds": {
            task: {name: statistics.median(values) for name, values in runs.items()}
            for task, runs in fixed.items()
        },
        "ratio_to_plain": ratios,
        "compiled": states,
        "runs": timings,
        "steps": args.steps,
        "threads": args.threads,
        "load_average": os.getloadavg(),
    }
    (out / "program_overhead.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
