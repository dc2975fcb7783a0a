"""KDE log-density: ppgen vs scipy.stats.gaussian_kde vs scikit-learn KernelDensity.

n_train = n_eval = 10 000, d = 2, float64 (and float32 for ppgen), the same bandwidth
matrix on every side. Prints times, speed-ups and the largest disagreement, writes
benchmarks/out/kde.json, and measures ppgen's peak memory at n_train = n_eval = 1e5 in a
child process (``--full-memory`` runs the whole 1e10-pair evaluation; by default a
1e5 x 2e3 slice whose memory is the same by construction: one block at a time).

ppgen is timed with 1 torch thread (scipy's and scikit-learn's evaluations are single-threaded
too) and with torch's default thread count; on an oversubscribed machine the multi-threaded
numbers collapse (every small block waits for a descheduled thread), so read them with the
printed load average.

Run: ``python benchmarks/kde.py`` (about a minute on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(n_train: int, n_eval: int) -> None:
    """Print the extra peak memory (MiB) of one ppgen log_prob call and its time."""
    from ppgen.models import KDE

    torch.set_num_threads(1)  # as the timings above: oversubscribed shared cores distort threads
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train, 2, generator=g, dtype=torch.float64)
    e = torch.randn(n_eval, 2, generator=g, dtype=torch.float64)
    kde = KDE("scott", covariance="full")
    kde.fit_exact(x)
    kde.log_prob(e[:10])  # warm up allocator and kernels
    before = peak_rss_mib()
    start = time.perf_counter()
    kde.log_prob(e)
    print(json.dumps({"extra_peak_mib": peak_rss_mib() - before, "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=2, type=int)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    from scipy.stats import gaussian_kde
    from sklearn.neighbors import KernelDensity

    from ppgen.models import KDE

    n = args.n
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.0], [0.8, 0.6]], dtype=torch.float64)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) @ mix.T
    e = torch.randn(n, 2, generator=g, dtype=torch.float64) @ mix.T
    load = os.getloadavg()[0]
    result: dict = {"n_train": n, "n_eval": n, "d": 2, "load_average_1min": load, "cpus": os.cpu_count()}

    # scipy: full bandwidth matrix from the data covariance (Scott's factor).
    ref = gaussian_kde(x.numpy().T)
    t_scipy, scipy_lp = best_of(lambda: ref.logpdf(e.numpy().T), max(1, args.repeat - 1))
    kde = KDE("scott", covariance="full")
    kde.fit_exact(x)
    rows = []
    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        t64, lp64 = best_of(lambda: kde.log_prob(e), args.repeat)
        kde32 = KDE("scott", covariance="full")
        kde32.fit_exact(x.float())
        t32, lp32 = best_of(lambda k=kde32: k.log_prob(e.float()), args.repeat)
        rows.append(
            {
                "torch_threads": threads,
                "ppgen_f64_s": t64,
                "ppgen_f32_s": t32,
                "speedup_vs_scipy_f64": t_scipy / t64,
                "speedup_vs_scipy_f32": t_scipy / t32,
                "max_abs_diff_f64": float(np.abs(lp64.numpy() - scipy_lp).max()),
                "max_abs_diff_f32": float(np.abs(lp32.double().numpy() - scipy_lp).max()),
            }
        )
    result["scipy_s"] = t_scipy
    result["ppgen"] = rows

    # scikit-learn: isotropic bandwidth h (exact: rtol = atol = 0), ppgen with the same h.
    h = 0.2
    skl = KernelDensity(bandwidth=h, rtol=0.0, atol=0.0).fit(x.numpy())
    t_skl, skl_lp = best_of(lambda: skl.score_samples(e.numpy()), 1)
    iso = KDE(h)
    iso.fit_exact(x)
    torch.set_num_threads(1)
    t_iso, iso_lp = best_of(lambda: iso.log_prob(e), args.repeat)
    result["sklearn"] = {
        "sklearn_s": t_skl,
        "ppgen_f64_1thread_s": t_iso,
        "speedup_vs_sklearn": t_skl / t_iso,
        "max_abs_diff": float(np.abs(iso_lp.numpy() - skl_lp).max()),
    }

    # Memory at 1e5 x 1e5: a fresh process, peak resident memory.
    n_eval = 100_000 if args.full_memory else 2_000
    child = subprocess.run(
        [sys.executable, __file__, "--memory-child", "100000", str(n_eval)],
        capture_output=True,
        text=True,
        check=True,
    )
    result["memory"] = {
        "n_train": 100_000,
        "n_eval": n_eval,
        **json.loads(child.stdout.strip().splitlines()[-1]),
    }

    print(f"KDE log_prob, n_train = n_eval = {n}, d = 2 (load average {load:.1f} on {os.cpu_count()} cpus)")
    print(f"  scipy gaussian_kde.logpdf        {t_scipy:8.3f} s")
    for row in rows:
        t = row["torch_threads"]
        print(
            f"  ppgen float64 ({t} thread{'s' * (t > 1)})       {row['ppgen_f64_s']:8.3f} s   "
            f"{row['speedup_vs_scipy_f64']:5.1f}x scipy   max |diff| {row['max_abs_diff_f64']:.1e}"
        )
        print(
            f"  ppgen float32 ({t} thread{'s' * (t > 1)})       {row['ppgen_f32_s']:8.3f} s   "
            f"{row['speedup_vs_scipy_f32']:5.1f}x scipy   max |diff| {row['max_abs_diff_f32']:.1e}"
        )
    sk = result["sklearn"]
    print(
        f"  sklearn KernelDensity (h={h})     {sk['sklearn_s']:8.3f} s   "
        f"ppgen {sk['ppgen_f64_1thread_s']:.3f} s "
        f"= {sk['speedup_vs_sklearn']:.1f}x faster, max |diff| {sk['max_abs_diff']:.1e}"
    )
    mem = result["memory"]
    print(
        f"  memory: n_train=1e5, n_eval={mem['n_eval']}: extra peak {mem['extra_peak_mib']:.1f} MiB "
        f"in {mem['seconds']:.1f} s"
    )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "kde.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
