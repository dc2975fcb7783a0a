"""NUTS: what ppgen's ``mcmc`` adds over calling Pyro's NUTS directly, and effective samples
per second of tau on eight schools (non-centred) against NumPyro when it is installed
(``pip install -e ".[bench]"``).

Same model, same warm-up/draws, same seeds; reported as wall-time ratio and ESS/s ratio.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import torch

import ppgen

WARMUP = int(os.environ.get("BENCH_WARMUP", 500))
DRAWS = int(os.environ.get("BENCH_DRAWS", 1000))
OUT = Path(__file__).resolve().parent / "out"
Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]


def schools(x=None, sigma=None):
    """Non-centred eight schools: theta = mu + tau * eta."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("data", len(sigma)):
        eta = pyro.sample("eta", dist.Normal(0.0, 1.0))
        return pyro.sample("x", dist.Normal(mu + tau * eta, sigma), obs=x)


def ess_per_second(tau: np.ndarray, seconds: float) -> float:
    return float(az.ess(tau.reshape(1, -1))) / seconds


def run_ppgen(data) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    fit = ppgen.fit(
        schools, data, method="mcmc", num_samples=DRAWS, warmup_steps=WARMUP, seed=0, progress=False
    )
    return time.perf_counter() - start, fit.draws["tau"].numpy()


def run_pyro(data) -> tuple[float, np.ndarray]:
    pyro.set_rng_seed(0)
    start = time.perf_counter()
    kernel = pyro.infer.NUTS(schools, jit_compile=True, ignore_jit_warnings=True, max_plate_nesting=1)
    mcmc = pyro.infer.MCMC(kernel, num_samples=DRAWS, warmup_steps=WARMUP, disable_progbar=True)
    mcmc.run(data["x"], sigma=data["sigma"])
    return time.perf_counter() - start, mcmc.get_samples()["tau"].numpy()


def run_numpyro() -> tuple[float, np.ndarray] | None:
    try:
        import jax
        import numpyro
        import numpyro.distributions as ndist
    except ImportError:
        return None

    def model(sigma, y=None):
        mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", ndist.HalfCauchy(5.0))
        with numpyro.plate("data", len(sigma)):
            eta = numpyro.sample("eta", ndist.Normal(0.0, 1.0))
            numpyro.sample("x", ndist.Normal(mu + tau * eta, sigma), obs=y)

    start = time.perf_counter()  # includes JIT compilation, as a user would experience it
    mcmc = numpyro.infer.MCMC(
        numpyro.infer.NUTS(model), num_warmup=WARMUP, num_samples=DRAWS, progress_bar=False
    )
    mcmc.run(jax.random.PRNGKey(0), np.array(SIGMA), y=np.array(Y))
    tau = np.asarray(mcmc.get_samples()["tau"])
    return time.perf_counter() - start, tau


def main() -> dict:
    torch.set_num_threads(1)  # NUTS on 8 points is latency-bound; threads only add contention
    data = {"x": torch.tensor(Y), "sigma": torch.tensor(SIGMA)}
    run_pyro(data)  # warm-up (imports, JIT caches) for both Pyro contenders
    results = {"pyro NUTS": run_pyro(data), "ppgen mcmc": run_ppgen(data)}
    numpyro_run = run_numpyro()
    if numpyro_run is not None:
        results["numpyro NUTS"] = numpyro_run
    rows = {
        name: {"seconds": round(sec, 3), "ess_tau_per_s": round(ess_per_second(tau, sec), 1)}
        for name, (sec, tau) in results.items()
    }
    base = rows["pyro NUTS"]
    print(f"eight schools, {WARMUP} warm-up + {DRAWS} draws, 1 chain")
    print(f"{'sampler':14s} {'seconds':>8s} {'x pyro':>7s} {'ESS(tau)/s':>11s}")
    for name, row in rows.items():
        ratio = row["seconds"] / base["seconds"]
        print(f"{name:14s} {row['seconds']:8.2f} {ratio:7.2f} {row['ess_tau_per_s']:11.1f}")
    result = {
        "benchmark": "nuts",
        "warmup": WARMUP,
        "draws": DRAWS,
        "rows": rows,
        "ppgen_overhead": round(rows["ppgen mcmc"]["seconds"] / base["seconds"] - 1, 3),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "nuts.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
