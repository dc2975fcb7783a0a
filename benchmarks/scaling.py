"""Scaling curves for ``run.py``: time vs n for EM and the KDE, their log–log slope and a plot.

EM is a GaussianMixture (K=3, d=2, 10 iterations); the KDE is fitted on n points and scored at
the same n points (O(n²)). Each size runs in a fresh child process (``run.py --scaling-child``)
so that its peak memory (VmHWM) is its own; the curves go to ``scaling.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# KDE costs O(n²): below a few thousand points fixed costs hide the slope.
SCALING_N = {
    "em": [10_000, 30_000, 100_000, 300_000, 1_000_000],
    "kde": [2_000, 4_000, 8_000, 16_000, 32_000],
}
SCALING_N_QUICK = {"em": [2_000, 5_000, 10_000], "kde": [250, 500, 1_000]}


def _status_mib(field: str) -> float:
    """A memory line of /proc/self/status in MiB: ``VmRSS`` now, ``VmHWM`` the peak so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def scaling_child(kind: str, n: int) -> dict:
    """Time one EM fit (10 iterations) or one KDE fit + evaluation at size n, in this process."""
    import torch

    import ppgen
    from ppgen.errors import ConvergenceWarning
    from ppgen.models import KDE
    from ppgen.models.mixture import GaussianMixture

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x[: n // 3] += 4.0
    import warnings

    warnings.simplefilter("ignore", ConvergenceWarning)
    before = _status_mib("VmRSS")
    start = time.perf_counter()
    if kind == "em":
        ppgen.fit(
            GaussianMixture(n_components=3, dim=2), x, method="em", max_iter=10, tol=0.0, progress=False
        )
    else:
        fit = ppgen.fit(KDE(), x, method="exact")
        fit.log_prob(x)
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "peak_extra_mib": _status_mib("VmHWM") - before}


def scaling(quick: bool, out: Path) -> dict:
    """Every curve (one child process per size), with ``scaling.png`` written to ``out``."""
    sizes = SCALING_N_QUICK if quick else SCALING_N
    curves = {}
    for kind, ns in sizes.items():
        rows = []
        for n in ns:
            done = subprocess.run(
                [sys.executable, str(HERE / "run.py"), "--scaling-child", kind, str(n)],
                capture_output=True,
                text=True,
                timeout=1800,
                env={**os.environ, "PYTHONPATH": str(HERE.parent)},
            )
            if done.returncode != 0:
                rows.append({"n": n, "error": done.stderr.strip().splitlines()[-1:]})
                break
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        good = [r for r in rows if "seconds" in r]
        slope = None
        if len(good) >= 2:
            slope = float(
                np.polyfit(np.log([r["n"] for r in good]), np.log([r["seconds"] for r in good]), 1)[0]
            )
        curves[kind] = {
            "rows": rows,
            "loglog_slope": slope,
            "peak_extra_mib_at_largest_n": good[-1]["peak_extra_mib"] if good else None,
            "what": "GaussianMixture K=3 d=2, 10 EM iterations"
            if kind == "em"
            else "KDE d=2: fit on n points + log_prob at the same n points",
        }
    _plot(curves, out / "scaling.png")
    return curves


def _plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for kind, curve in curves.items():
        good = [r for r in curve["rows"] if "seconds" in r]
        if not good:
            continue
        slope = curve["loglog_slope"]
        label = f"{kind} (slope {slope:.2f})" if slope is not None else kind
        ax.loglog([r["n"] for r in good], [r["seconds"] for r in good], "o-", label=label)
    ax.set_xlabel("n")
    ax.set_ylabel("seconds")
    ax.set_title("time vs n (log-log)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
