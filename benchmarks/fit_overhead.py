"""What ppgen's gradient loop costs over a plain PyTorch loop optimising the same objective.

Side by side in one run, same data, same Adam(lr=0.05), same number of steps, interleaved
repeats (best of REPEATS), for n = 1e3 and 1e5 one-dimensional observations:
  * plain torch: a hand-written Gaussian NLL
  * ppgen mle: ppgen.fit(Gaussian, method="mle"), which optimises model.log_prob directly
  * ppgen program (elbo): ppgen.fit of the same story as a plain Pyro program with pyro.param
    statements (the path any user story takes: traced every step)
  * pyro SVI: Pyro's own SVI loop with the empty guide (global param store)
Reported as seconds per 1000 steps and ratios to plain torch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch

import ppgen
from ppgen.models import Gaussian

STEPS = int(os.environ.get("BENCH_STEPS", 2000))
REPEATS = int(os.environ.get("BENCH_REPEATS", 3))
OUT = Path(__file__).resolve().parent / "out"
FIT_OPTIONS = {"num_steps": STEPS, "lr": 0.05, "patience": 10**9, "progress": False}


def story(x=None):
    loc = pyro.param("loc", torch.zeros(1))
    scale = pyro.param("scale", torch.ones(1), constraint=dist.constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)


def plain_torch(x: torch.Tensor) -> float:
    loc = torch.zeros(1, requires_grad=True)
    log_scale = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([loc, log_scale], lr=0.05)
    start = time.perf_counter()
    for _ in range(STEPS):
        opt.zero_grad()
        scale = log_scale.exp()
        nll = (0.5 * ((x - loc) / scale) ** 2 + log_scale + 0.5 * math.log(2 * math.pi)).mean()
        nll.backward()
        opt.step()
    return time.perf_counter() - start


def ppgen_mle(x: torch.Tensor) -> float:
    start = time.perf_counter()
    ppgen.fit(Gaussian(dim=1, covariance="diag"), x, method="mle", seed=0, **FIT_OPTIONS)
    return time.perf_counter() - start


def ppgen_program(x: torch.Tensor) -> float:
    start = time.perf_counter()
    ppgen.fit(story, x, method="svi", seed=0, **FIT_OPTIONS)
    return time.perf_counter() - start


def pyro_svi(x: torch.Tensor) -> float:
    with pyro.settings.context(module_local_params=False):
        pyro.clear_param_store()
        svi = pyro.infer.SVI(story, lambda x: None, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
        start = time.perf_counter()
        for _ in range(STEPS):
            svi.step(x)
        return time.perf_counter() - start


CONTENDERS = {
    "plain torch": plain_torch,
    "ppgen mle": ppgen_mle,
    "ppgen program": ppgen_program,
    "pyro SVI": pyro_svi,
}


def run(n: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(n, 1) * 2 + 3
    ppgen.fit(Gaussian(dim=1), x, method="mle", num_steps=5, progress=False)  # warm-up: lazy torch imports
    runs = {name: [] for name in CONTENDERS}
    for _ in range(REPEATS):  # interleaved so machine load hits every contender alike
        for name, contender in CONTENDERS.items():
            runs[name].append(contender(x))
    best = {k: min(v) for k, v in runs.items()}
    per_1000 = {k: round(1000 * v / STEPS, 4) for k, v in best.items()}
    ratio = {k: round(v / best["plain torch"], 3) for k, v in best.items()}
    print(f"n = {n}\n{'loop':15s} {'s/1000 steps':>13s} {'x plain torch':>14s}")
    for name in CONTENDERS:
        print(f"{name:15s} {per_1000[name]:13.4f} {ratio[name]:14.2f}")
    return {"n": n, "steps": STEPS, "seconds_per_1000_steps": per_1000, "ratio_to_plain_torch": ratio}


def main() -> dict:
    result = {
        "benchmark": "fit_overhead",
        "runs": [run(n) for n in (1000, 100_000)],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "fit_overhead.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
