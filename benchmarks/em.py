"""EM for a full-covariance Gaussian mixture: ppgen vs scikit-learn, side by side.

d = 16, K = 8, n = 1e5, 2e5 and 1e6, the same initial parameters, exactly 20 EM iterations
(tol = 0) in both. Each run is its own process so its peak memory (above the loaded data)
is measured alone. Prints per-iteration times, the speed-up ratio, the final mean
log-likelihood difference and peak memory; writes benchmarks/out/em.json.

    python benchmarks/em.py                 # n = 1e5, 2e5 and 1e6, 1 thread each
    python benchmarks/em.py --sizes 100000 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

D, K, ITERS = 16, 8, 20
OUT = Path(__file__).parent / "out"


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(tool: str, data: str, init: str, dtype: str, threads: int) -> dict:
    """One timed fit in this process; returns seconds, final mean log-lik and memory."""
    x = np.load(data.replace(".npy", f"_{dtype}.npy"))  # stored in the run's dtype: no copy
    start = np.load(init)
    weights, means, precisions = start["weights"], start["means"], start["precisions"]
    if tool == "sklearn":
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads):
            base = _rss_mb()
            model = GaussianMixture(
                K,
                covariance_type="full",
                max_iter=ITERS,
                tol=0.0,
                weights_init=weights,
                means_init=means,
                precisions_init=precisions,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its ConvergenceWarning: 20 iterations by design
                tic = time.perf_counter()
                model.fit(x)
                seconds = time.perf_counter() - tic
            peak = _peak_mb() - base
            loglik = float(model.score(x))
    else:
        import torch

        import ppgen
        from ppgen.models import GaussianMixture

        torch.set_num_threads(threads)
        tensor = torch.from_numpy(x)  # shares memory with the loaded array
        cast = torch.float32 if dtype == "float32" else torch.float64
        model = GaussianMixture(K, D).to(cast)
        chol = np.linalg.cholesky(np.linalg.inv(precisions))
        model.set_params(
            pi=torch.tensor(weights, dtype=cast),
            mu=torch.tensor(means, dtype=cast),
            scale_tril=torch.tensor(chol, dtype=cast),
        )
        base = _rss_mb()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ppgen.ConvergenceWarning)
            fit = ppgen.fit(model, tensor, method="em", init="given", max_iter=ITERS, tol=0.0, progress=False)
        seconds = fit.elapsed
        peak = _peak_mb() - base
        loglik = fit.history[-1]
    return {"seconds": seconds, "per_iter": seconds / ITERS, "loglik": loglik, "peak_mb_above_data": peak}


def make_data(n: int, folder: Path) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(K, D))
    scales = rng.uniform(0.5, 1.5, size=(K, 1, D))
    labels = rng.integers(0, K, n)
    x = centers[labels] + rng.normal(size=(n, D)) * scales[labels, 0]
    data = folder / f"x{n}.npy"
    np.save(folder / f"x{n}_float64.npy", x)
    np.save(folder / f"x{n}_float32.npy", x.astype(np.float32))
    # Shared initial parameters: one M-step from hard k-means++ assignments (ppgen's init).
    import torch

    from ppgen.models import GaussianMixture

    model = GaussianMixture(K, D).double().initialize(torch.from_numpy(x[:20000]), init="kmeans++", seed=0)
    cov = model.covariances().numpy()
    init = folder / f"init{n}.npz"
    np.savez(
        init,
        weights=model.pi.detach().numpy(),
        means=model.mu.detach().numpy(),
        precisions=np.linalg.inv(cov),
    )
    return str(data), str(init)


def run_child(tool, data, init, dtype, threads) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, data, init, dtype, str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool for n <= 2e5 (best kept)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, data, init, dtype, threads = args.child
        print(json.dumps(child(tool, data, init, dtype, int(threads))))
        return
    load = os.getloadavg()
    print(f"EM benchmark: d={D}, K={K}, {ITERS} iterations, {args.threads} thread(s), load {load[0]:.1f}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            data, init = make_data(n, Path(folder))
            # The machine is shared: alternate the tools and keep each one's fastest run.
            repeats = args.repeats if n <= 200_000 else 1
            runs = {"sk": [], "ours": [], "ours32": []}
            for _ in range(repeats):
                runs["sk"].append(run_child("sklearn", data, init, "float64", args.threads))
                runs["ours"].append(run_child("ppgen", data, init, "float64", args.threads))
                runs["ours32"].append(run_child("ppgen", data, init, "float32", args.threads))
            sk, ours, ours32 = (min(runs[k], key=lambda r: r["per_iter"]) for k in ("sk", "ours", "ours32"))
            row = {
                "n": n,
                "repeats": repeats,
                "sklearn_s_per_iter": sk["per_iter"],
                "ppgen_s_per_iter": ours["per_iter"],
                "ppgen_f32_s_per_iter": ours32["per_iter"],
                "speedup_f64": sk["per_iter"] / ours["per_iter"],
                "speedup_f32": sk["per_iter"] / ours32["per_iter"],
                "loglik_diff_f64": abs(ours["loglik"] - sk["loglik"]),
                "loglik_diff_f32": abs(ours32["loglik"] - sk["loglik"]),
                "data_mb": n * D * 8 / 2**20,
                "sklearn_peak_mb": sk["peak_mb_above_data"],
                "ppgen_peak_mb": ours["peak_mb_above_data"],
                "ppgen_f32_peak_mb": ours32["peak_mb_above_data"],
            }
            rows.append(row)
            print(
                f"n={n:>8}: sklearn {row['sklearn_s_per_iter']:.3f} s/iter | ppgen f64 "
                f"{row['ppgen_s_per_iter']:.3f} s/iter ({row['speedup_f64']:.2f}x, |dLL|="
                f"{row['loglik_diff_f64']:.1e}) | ppgen f32 {row['ppgen_f32_s_per_iter']:.3f} s/iter "
                f"({row['speedup_f32']:.2f}x, |dLL|={row['loglik_diff_f32']:.1e}) | peak MB above data "
                f"({row['data_mb']:.0f} MB): sklearn {row['sklearn_peak_mb']:.0f}, ppgen "
                f"{row['ppgen_peak_mb']:.0f}, f32 {row['ppgen_f32_peak_mb']:.0f}",
                flush=True,
            )
    OUT.mkdir(exist_ok=True)
    result = {
        "benchmark": "em",
        "d": D,
        "k": K,
        "iterations": ITERS,
        "threads": args.threads,
        "load_before": load,
        "rows": rows,
    }
    result["load_after"] = os.getloadavg()
    (OUT / "em.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT / 'em.json'}")


if __name__ == "__main__":
    main()
