"""NUTS side by side: ppgen's ``mcmc`` (compiled potential, own sampler), NumPyro and Pyro's ``MCMC``.

Each program is written the same way in both libraries; 2 chains, ``BENCH_WARMUP`` + ``BENCH_DRAWS``
(1000 + 1000 by default), seed 0, wall time from the call to the draws (ppgen's capture and
compilation and NumPyro's JIT included). The figure is the smallest bulk ESS over every scalar
parameter per wall second, and its ratio to NumPyro's (``pip install -e ".[bench]"``).

Programs: the issue's four (eight schools non-centred, Efron–Morris baseball logit-normal, logistic
regression n = 2000 d = 10, varying intercepts 50 groups n = 1000), two posteriordb posteriors
(``arK-arK``: AR(5), T = 200; ``kidiq-kidscore_momhsiq``: n = 434, unstandardised predictors) on
simulated data of the posteriordb sizes, and the scale rows (logistic regression at n = 1e4, 1e5).

    python benchmarks/nuts.py [--programs schools,baseball] [--pyro schools,...] [--nutpie] [--numpyro-dense]

``--nutpie`` adds nutpie (Rust NUTS) driven by ppgen's compiled potential (benchmarks/nutpie_trial.py);
``--numpyro-dense`` adds NumPyro with ``dense_mass=True`` on the programs where ppgen's default
(``dense_mass="auto"``) chose a dense mass matrix, the like-for-like comparison beside the
default-against-default one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=2"
)  # NumPyro's 2 chains in parallel

import arviz as az  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402

WARMUP = int(os.environ.get("BENCH_WARMUP", 1000))
DRAWS = int(os.environ.get("BENCH_DRAWS", 1000))
CHAINS = 2
#: ``BENCH_ADAPT_MASS=stan|gradient|gradient_sliding``: ppgen's mass adaptation (unset: the default).
ADAPT_MASS = {"adapt_mass": os.environ["BENCH_ADAPT_MASS"]} if os.environ.get("BENCH_ADAPT_MASS") else {}
OUT = Path(__file__).resolve().parent / "out"
Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
#: Efron & Morris (1975): hits in the first 45 at-bats of the 1970 season, 18 players.
HITS = [18, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 10, 10, 10, 10, 9, 8, 7]


# ----------------------------------------------------------------------------- data
def make_data(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "schools":
        return {"x": np.array(Y), "sigma": np.array(SIGMA)}
    if name == "baseball":
        return {"at_bats": np.full(18, 45.0), "hits": np.array(HITS, dtype=float)}
    if name.startswith("logistic"):
        n = {"logistic": 2000, "logistic_1e4": 10_000, "logistic_1e5": 100_000}[name]
        X = rng.normal(size=(n, 10))
        beta = rng.normal(size=10) * 0.5
        y = (rng.random(n) < 1 / (1 + np.exp(-(X @ beta + 0.3)))).astype(float)
        return {"X": X, "y": y}
    if name == "intercepts":
        group = rng.integers(0, 50, 1000)
        a = 1.0 + 0.7 * rng.normal(size=50)
        x = rng.normal(size=1000)
        return {"group": group, "x": x, "y": a[group] + 0.5 * x + rng.normal(size=1000)}
    if name == "arK":
        y = np.zeros(205)
        for t in range(5, 205):
            y[t] = 0.2 + 0.5 * y[t - 1] - 0.2 * y[t - 2] + 0.1 * y[t - 3] + 0.3 * rng.normal()
        lags = np.stack([y[5 - k : 205 - k] for k in range(1, 6)], axis=1)  # (200, 5): y[t-1..t-5]
        return {"lags": lags, "y": y[5:]}
    if name == "kidiq":
        mom_hs = (rng.random(434) < 0.79).astype(float)
        mom_iq = 100 + 15 * rng.normal(size=434)
        y = 20 + 5 * mom_hs + 0.9 * mom_iq - 0.2 * mom_hs * mom_iq + 18 * rng.normal(size=434)
        return {"mom_hs": mom_hs, "mom_iq": mom_iq, "y": y}
    raise KeyError(name)


# ----------------------------------------------------------------------------- programs
def programs(pyro_, d):
    """The programs for one library: ``pyro_`` is ``pyro`` or ``numpyro``, ``d`` its distributions."""
    sample, plate = pyro_.sample, pyro_.plate

    def schools(x=None, sigma=None):
        mu = sample("mu", d.Normal(0.0, 5.0))
        tau = sample("tau", d.HalfCauchy(5.0))
        with plate("data", len(sigma)):
            eta = sample("eta", d.Normal(0.0, 1.0))
            return sample("x", d.Normal(mu + tau * eta, sigma), obs=x)

    def baseball(at_bats=None, hits=None):
        loc = sample("loc", d.Normal(-1.0, 1.0))
        scale = sample("scale", d.HalfCauchy(1.0))
        with plate("players", len(at_bats)):
            alpha = sample("alpha", d.Normal(loc, scale))
            return sample("hits", d.Binomial(at_bats, logits=alpha), obs=hits)

    def logistic(X=None, y=None):
        beta = sample("beta", d.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        alpha = sample("alpha", d.Normal(0.0, 1.0))
        with plate("data", X.shape[0]):
            return sample("y", d.Bernoulli(logits=alpha + X @ beta), obs=y)

    def intercepts(group=None, x=None, y=None):
        mu = sample("mu", d.Normal(0.0, 5.0))
        tau = sample("tau", d.HalfNormal(5.0))
        slope = sample("slope", d.Normal(0.0, 5.0))
        sigma = sample("sigma", d.HalfNormal(5.0))
        with plate("groups", 50):
            a = sample("a", d.Normal(mu, tau))
        with plate("data", len(x)):
            return sample("y", d.Normal(a[group] + slope * x, sigma), obs=y)

    def arK(lags=None, y=None):
        alpha = sample("alpha", d.Normal(0.0, 10.0))
        beta = sample("beta", d.Normal(0.0, 10.0).expand([lags.shape[1]]).to_event(1))
        sigma = sample("sigma", d.HalfCauchy(2.5))
        with plate("data", len(y)):
            return sample("y", d.Normal(alpha + lags @ beta, sigma), obs=y)

    def kidiq(mom_hs=None, mom_iq=None, y=None):
        beta = sample("beta", d.Normal(0.0, 100.0).expand([4]).to_event(1))  # Stan: flat; wide here
        sigma = sample("sigma", d.HalfCauchy(2.5))
        mean = beta[0] + beta[1] * mom_hs + beta[2] * mom_iq + beta[3] * mom_hs * mom_iq
        with plate("data", len(y)):
            return sample("y", d.Normal(mean, sigma), obs=y)

    out = dict(
        schools=schools, baseball=baseball, logistic=logistic, intercepts=intercepts, arK=arK, kidiq=kidiq
    )
    out["logistic_1e4"] = out["logistic_1e5"] = logistic
    return out


PYRO_PROGRAMS = programs(pyro, dist)
TITLES = {
    "schools": "eight schools, non-centred",
    "baseball": "Efron–Morris baseball (logit-normal, 18 players)",
    "logistic": "logistic regression, n = 2000, d = 10",
    "intercepts": "varying intercepts, 50 groups, n = 1000",
    "arK": "posteriordb arK-arK (AR(5), T = 200, simulated)",
    "kidiq": "posteriordb kidiq-kidscore_momhsiq (n = 434, simulated)",
    "logistic_1e4": "logistic regression, n = 1e4, d = 10",
    "logistic_1e5": "logistic regression, n = 1e5, d = 10",
}


def min_ess(by_chain: dict[str, np.ndarray]) -> tuple[float, float]:
    """Smallest bulk ESS over every scalar parameter, and tau's (eight schools' headline figure)."""
    ess = az.ess(az.convert_to_dataset({k: np.asarray(v, dtype=np.float64) for k, v in by_chain.items()}))
    smallest = min(float(np.nanmin(ess[v].values)) for v in ess.data_vars)
    return smallest, float(ess["tau"].values) if "tau" in ess else math.nan


def _torch_data(data):
    return {
        k: torch.as_tensor(v, dtype=torch.long if k == "group" else torch.get_default_dtype())
        for k, v in data.items()
    }


# ----------------------------------------------------------------------------- runners
def run_ppgen(name: str, data, **options) -> dict:
    start = time.perf_counter()
    fit = ppgen.fit(
        PYRO_PROGRAMS[name], _torch_data(data), method="mcmc", num_chains=CHAINS, num_samples=DRAWS,
        warmup_steps=WARMUP, seed=0, progress=False, **(options or ADAPT_MASS),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    post = fit.posterior.posterior
    stats = fit.posterior.sample_stats
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else math.nan
    return _row(seconds, {k: post[k].values for k in post.data_vars}, steps, fit.extras)


def run_pyro(name: str, data) -> dict:
    pyro.set_rng_seed(0)
    start = time.perf_counter()
    kernel = pyro.infer.NUTS(
        PYRO_PROGRAMS[name], jit_compile=True, ignore_jit_warnings=True, max_plate_nesting=1
    )
    mcmc = pyro.infer.MCMC(
        kernel, num_samples=DRAWS, warmup_steps=WARMUP, num_chains=CHAINS, disable_progbar=True
    )
    mcmc.run(**_torch_data(data))
    seconds = time.perf_counter() - start
    return _row(seconds, {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()})


def run_numpyro(name: str, data, dense: bool = False) -> dict | None:
    try:
        import jax
        import numpyro
        import numpyro.distributions as ndist
    except ImportError:
        return None
    model = programs(numpyro, ndist)[name]
    start = time.perf_counter()  # JIT compilation included, as a user meets it
    kernel = numpyro.infer.NUTS(model, dense_mass=dense)
    mcmc = numpyro.infer.MCMC(
        kernel, num_warmup=WARMUP, num_samples=DRAWS, num_chains=CHAINS, progress_bar=False,
        chain_method="parallel" if jax.local_device_count() >= CHAINS else "sequential",
    )  # fmt: skip
    mcmc.run(
        jax.random.PRNGKey(0),
        **{k: jax.numpy.asarray(v) for k, v in data.items()},
        extra_fields=("num_steps",),
    )
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - start
    steps = float(np.mean(np.asarray(mcmc.get_extra_fields()["num_steps"])))
    return _row(seconds, samples, steps)


def _row(seconds: float, by_chain: dict, steps: float = math.nan, extras: dict | None = None) -> dict:
    smallest, tau = min_ess(by_chain)
    row = {
        "seconds": round(seconds, 2),
        "min_ess": round(smallest, 1),
        "ess_per_s": round(smallest / seconds, 2),
    }
    row["ess_tau_per_s"] = round(tau / seconds, 1) if not math.isnan(tau) else None
    row["steps_per_draw"] = round(steps, 1) if not math.isnan(steps) else None
    if extras:
        row["potential"] = extras.get("potential", extras.get("sampler"))
        row["dense_mass"] = extras.get("dense_mass")
    return row


# ----------------------------------------------------------------------------- report
def table(results: dict) -> str:
    nutpie = any("nutpie" in rows for rows in results.values())
    dense = any("numpyro dense" in rows for rows in results.values())
    keys = ("ppgen mcmc", "numpyro NUTS", "pyro NUTS") + (("nutpie",) if nutpie else ())
    keys += ("numpyro dense",) if dense else ()
    head = "| program | ppgen | NumPyro | Pyro `MCMC` |" + (" nutpie (ppgen's potential) |" if nutpie else "")
    head += " NumPyro `dense_mass=True` |" if dense else ""
    head += " ppgen / NumPyro |" + (" nutpie / NumPyro |" if nutpie else "")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    ratios: dict[str, list[float]] = {"ppgen mcmc": [], "nutpie": []}
    for name, rows in results.items():
        cells = []
        for key in keys:
            r = rows.get(key)
            cells.append(
                f"{r['seconds']:.1f} s, {r['min_ess']:.0f} → {r['ess_per_s']:.1f}/s" if r else "not run"
            )
            if key == "ppgen mcmc" and r and r.get("dense_mass"):
                cells[-1] += " (dense)"
        for key in ("ppgen mcmc", "nutpie")[: 1 + nutpie]:
            ratio = ""
            if rows.get("numpyro NUTS") and rows.get(key):
                value = rows[key]["ess_per_s"] / rows["numpyro NUTS"]["ess_per_s"]
                ratio = f"{value:.2f}×"
                if not name.startswith("logistic_"):
                    ratios[key].append(value)
            cells.append(ratio)
        lines.append(f"| {TITLES[name]} | {' | '.join(cells)} |")
    for key, label in (("ppgen mcmc", "ppgen"), ("nutpie", "nutpie")):
        if ratios[key]:
            geomean = math.exp(np.mean(np.log(ratios[key])))
            lines.append(
                f"\n{label}: geometric mean of the ratio to NumPyro over the {len(ratios[key])} "
                f"programs (scale rows apart) **{geomean:.2f}×**; lowest {min(ratios[key]):.2f}×."
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", default=",".join(TITLES))
    parser.add_argument("--pyro", default="schools,baseball,logistic,intercepts", help="programs Pyro runs")
    parser.add_argument("--nutpie", action="store_true", help="also nutpie driven by ppgen's potential")
    parser.add_argument(
        "--numpyro-dense", action="store_true", help="also NumPyro dense_mass=True where ppgen chose dense"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # each chain on one core, both cores busy with 2 chains
    load_before = os.getloadavg()[0]  # a shared machine moves wall times: say how loaded it was
    results = {}
    for name in args.programs.split(","):
        data = make_data(name)
        rows = {"ppgen mcmc": run_ppgen(name, data)}
        numpyro_row = run_numpyro(name, data)
        if numpyro_row is not None:
            rows["numpyro NUTS"] = numpyro_row
        if args.numpyro_dense and rows["ppgen mcmc"].get("dense_mass"):
            rows["numpyro dense"] = run_numpyro(name, data, dense=True)
        if name in args.pyro.split(","):
            rows["pyro NUTS"] = run_pyro(name, data)
        if args.nutpie:
            from nutpie_trial import run_nutpie  # benchmarks/ is on sys.path when run as a script

            rows["nutpie"] = run_nutpie(name, data)
        results[name] = rows
        print(name, json.dumps(rows), flush=True)
    print(table(results))
    schools = results.get("schools", {})
    result = {
        "benchmark": "nuts",
        "warmup": WARMUP,
        "draws": DRAWS,
        "chains": CHAINS,
        "rows": {k: v for k, v in schools.items() if k != "pyro NUTS" or v},  # eight schools (headline)
        "programs": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
    }
    if "pyro NUTS" in schools:
        result["ppgen_overhead"] = round(
            schools["ppgen mcmc"]["seconds"] / schools["pyro NUTS"]["seconds"] - 1, 3
        )
    OUT.mkdir(exist_ok=True)
    (OUT / "nuts.json").write_text(json.dumps(result, indent=2))
    (OUT / "nuts.md").write_text(table(results) + "\n")
    return result


if __name__ == "__main__":
    main()
