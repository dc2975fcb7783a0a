"""Run every side-by-side benchmark in benchmarks/ and collect the results in one report.

Each benchmark script present (kde, em, fit_overhead, svi_overhead, program_overhead, nuts, gan_modes,
adversarial_overhead, digits_nll) runs in its own process and writes
``benchmarks/out/<name>.json``; this script then writes ``benchmarks/results.md`` (a table per
benchmark, ratios included, plus machine info) and ``benchmarks/results.json``, and measures
scaling curves — time vs n for EM (GaussianMixture, K=3, d=2, 10 iterations) and the KDE
(n training points scored at n points: O(n²)) — with the fitted log–log slope, the peak memory
at the largest n (VmHWM of a child process) and a plot ``benchmarks/scaling.png``.

``--quick`` runs every benchmark at small sizes (a few minutes in all) to check the pipeline:
its report goes to ``benchmarks/out/quick/`` and the full-size JSON files already in
``benchmarks/out/`` are left as they were.

Run: ``python benchmarks/run.py`` (full; tens of minutes on 2 cores) or ``--quick``;
``--only kde em scaling`` reruns a subset (merged into the last report; ``scaling`` is the
curves), ``--collect gan_modes`` takes a benchmark's output files from a run made on its own,
``--no-scaling`` skips the curves, ``--report-only`` rebuilds the reports from the
last ``results.json``. A full run also rewrites the performance table in README.md (between
its ``benchmarks:start``/``benchmarks:end`` markers) from the summary rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
if str(HERE) not in sys.path:  # run as a script or loaded by path (the tests): its sibling modules
    sys.path.insert(0, str(HERE))
from targets import verdict  # noqa: E402

#: name -> (full-size arguments, quick arguments, quick environment, output JSON files)
BENCHMARKS = {
    "kde": ([], ["--n", "2000", "--repeat", "1"], {}, ["kde.json"]),
    "em": ([], ["--sizes", "20000", "--repeats", "1"], {}, ["em.json"]),
    "fit_overhead": ([], [], {"BENCH_STEPS": "200", "BENCH_REPEATS": "1"}, ["fit_overhead.json"]),
    "svi_overhead": ([], ["--epochs", "2", "--repeats", "1"], {}, ["svi_overhead.json"]),
    "program_overhead": ([], ["--steps", "60", "--repeats", "1"], {}, ["program_overhead.json"]),
    "nuts": ([], [], {"BENCH_WARMUP": "100", "BENCH_DRAWS": "100"}, ["nuts.json"]),
    "gan_modes": (
        [],
        ["--fast", "--seeds", "0", "--datasets", "ring8", "--losses", "non_saturating"],
        {},
        ["gan_modes.json"],
    ),
    "adversarial_overhead": ([], ["--steps", "30", "--repeats", "1"], {}, ["adversarial_overhead.json"]),
    "digits_nll": ([], ["--fast"], {}, ["digits_nll.json"]),
}

# KDE costs O(n²): below a few thousand points fixed costs hide the slope.
SCALING_N = {
    "em": [10_000, 30_000, 100_000, 300_000, 1_000_000],
    "kde": [2_000, 4_000, 8_000, 16_000, 32_000],
}
SCALING_N_QUICK = {"em": [2_000, 5_000, 10_000], "kde": [250, 500, 1_000]}


# ------------------------------------------------------------------------- machine
def machine_info() -> dict:
    import pyro
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "platform": platform.platform(),
    }
    for package in ("numpy", "scipy", "sklearn", "numpyro", "jax"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = "not installed"
    return info


# ---------------------------------------------------------------------- benchmarks
def run_benchmark(name: str, quick: bool, timeout: float) -> dict:
    script = HERE / f"{name}.py"
    full_args, quick_args, quick_env, outputs = BENCHMARKS[name]
    if not script.exists():
        return {"status": "missing", "seconds": 0.0}
    env = {**os.environ, **(quick_env if quick else {})}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(script), *(quick_args if quick else full_args)]
    load_before = [round(v, 2) for v in os.getloadavg()]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent
        )
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
    except subprocess.TimeoutExpired:
        status, tail = f"timeout after {timeout:.0f}s", []
    record = {
        "status": status,
        "seconds": round(time.perf_counter() - start, 1),
        "command": [str(script.relative_to(HERE.parent)), *command[2:]],
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": load_before,
    }
    if status != "ok":
        record["log_tail"] = tail
    results = {}
    for file in outputs:
        path = OUT / file
        if path.exists() and path.stat().st_mtime >= time.time() - (time.perf_counter() - start) - 1:
            results[file] = json.loads(path.read_text())
    record["results"] = results
    return record


def collect_benchmark(name: str) -> dict:
    """The record of a benchmark run by hand (e.g. the hour-long gan_modes grid on its own):
    its output files as they are, dated by their modification time; nothing is rerun."""
    outputs = BENCHMARKS[name][3]
    paths = [OUT / file for file in outputs if (OUT / file).exists()]
    if not paths:
        return {"status": "missing", "seconds": 0.0}
    written = max(p.stat().st_mtime for p in paths)
    return {
        "status": "ok",
        "seconds": 0.0,
        "command": [f"benchmarks/{name}.py", "(run separately; collected)"],
        "date": dt.datetime.fromtimestamp(written, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "results": {p.name: json.loads(p.read_text()) for p in paths},
    }


# ------------------------------------------------------------------------- scaling
def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
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
    before = _current_rss_mib()
    start = time.perf_counter()
    if kind == "em":
        ppgen.fit(
            GaussianMixture(n_components=3, dim=2), x, method="em", max_iter=10, tol=0.0, progress=False
        )
    else:
        fit = ppgen.fit(KDE(), x, method="exact")
        fit.log_prob(x)
    seconds = time.perf_counter() - start
    return {"n": n, "seconds": seconds, "peak_extra_mib": _peak_rss_mib() - before}


def scaling(quick: bool, out: Path) -> dict:
    sizes = SCALING_N_QUICK if quick else SCALING_N
    curves = {}
    for kind, ns in sizes.items():
        rows = []
        for n in ns:
            done = subprocess.run(
                [sys.executable, __file__, "--scaling-child", kind, str(n)],
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


# ------------------------------------------------------------------------ headline
def _result(runs: dict, name: str) -> dict | list | None:
    record = runs.get(name) or {}
    return (record.get("results") or {}).get(f"{name}.json")


def _x(value: float) -> str:
    return f"{value:.2f}×"


def headline(runs: dict) -> list[dict]:
    """One row per claim: task, ppgen, the reference tool, the ratio, the script (README table)."""
    rows = []
    kde = _result(runs, "kde")
    if kde:
        one = next((r for r in kde["ppgen"] if r["torch_threads"] == 1), kde["ppgen"][0])
        sk = kde.get("sklearn", {})
        rows.append(
            {
                "task": f"KDE log-density, {kde['n_train']:,} × {kde['n_eval']:,} points, d = {kde['d']}, "
                "float64, 1 thread",
                "ppgen": f"{one['ppgen_f64_s']:.3g} s",
                "reference": f"scipy `gaussian_kde` {kde['scipy_s']:.3g} s; "
                f"sklearn {sk.get('sklearn_s', 0):.3g} s",
                "ratio": f"**{one['speedup_vs_scipy_f64']:.1f}× faster** than scipy (max diff "
                f"{one['max_abs_diff_f64']:.0e}); {sk.get('speedup_vs_sklearn', float('nan')):.1f}× sklearn",
                "script": "kde.py",
            }
        )
    em = _result(runs, "em")
    if em:
        shape = f"d = {em['d']}, K = {em['k']}, " if "d" in em else ""
        for r in em["rows"]:
            rows.append(
                {
                    "task": f"GMM EM, {shape}full covariance, float64, n = {r['n']:,}, per iteration",
                    "ppgen": f"{r['ppgen_s_per_iter']:.3g} s",
                    "reference": f"sklearn `GaussianMixture` {r['sklearn_s_per_iter']:.3g} s",
                    "ratio": f"**{r['speedup_f64']:.2f}× faster**, Δ log-lik {r['loglik_diff_f64']:.0e}; "
                    f"peak {r['ppgen_peak_mb']:.0f} vs {r['sklearn_peak_mb']:.0f} MB",
                    "target": verdict("em", r["speedup_f64"]),
                    "script": "em.py",
                }
            )
    fit = _result(runs, "fit_overhead")
    if fit:
        for r in fit["runs"]:
            per, ratio = r["seconds_per_1000_steps"], r["ratio_to_plain_torch"]
            rows.append(
                {
                    "task": f"gradient MLE, 1-D Gaussian, n = {r['n']:,}, per 1000 Adam steps",
                    "ppgen": f"{per['ppgen mle']:.3g} s",
                    "reference": f"plain PyTorch {per['plain torch']:.3g} s; "
                    f"Pyro `SVI` {per['pyro SVI']:.3g} s",
                    "ratio": f"{_x(ratio['ppgen mle'])} plain torch (Pyro SVI {_x(ratio['pyro SVI'])})",
                    "target": verdict("mle", ratio["ppgen mle"]),
                    "script": "fit_overhead.py",
                }
            )
    svi = _result(runs, "svi_overhead")
    if svi:
        sec, ratio = svi["vae_seconds_per_epoch"], svi["vae_ratio"]
        rows.append(
            {
                "task": "VAE on digits, batch 128, per epoch",
                "ppgen": f"{sec['ppgen_closed_form']:.3g} s (closed-form ELBO); "
                f"{sec['ppgen_trace_elbo']:.3g} s "
                "(Trace_ELBO)",
                "reference": f"plain PyTorch loop {sec['plain']:.3g} s",
                "ratio": f"**{_x(ratio['ppgen_closed_form'])}** "
                f"(Trace_ELBO path {_x(ratio['ppgen_trace_elbo'])})",
                "script": "svi_overhead.py",
            }
        )
    programs = _result(runs, "program_overhead")
    if programs:
        sec, ratio = programs["seconds_per_step"], programs["ratio_to_plain"]
        once = programs.get("fixed_seconds")  # steady-state steps; the trace's one-time cost apart
        for task, title in (
            ("vae", "Pyro VAE tutorial program (`pyro.module`), digits, batch 128, per step (steady state)"),
            (
                "regression",
                "hierarchical regression program, AutoNormal, 1,000 rows, per step (steady state)",
            ),
        ):
            rows.append(
                {
                    "task": title,
                    "ppgen": f"{sec[task]['ppgen compiled'] * 1e3:.3g} ms compiled"
                    + (f" (+ {once[task]['ppgen compiled']:.2g} s once, to trace)" if once else "")
                    + f"; {sec[task]['ppgen eager'] * 1e3:.3g} ms eager",
                    "reference": f"plain PyTorch loop, same ELBO {sec[task]['plain'] * 1e3:.3g} ms",
                    "ratio": f"{_x(ratio[task]['ppgen compiled'])} (eager {_x(ratio[task]['ppgen eager'])})",
                    "target": verdict("program", ratio[task]["ppgen compiled"]),
                    "script": "program_overhead.py",
                }
            )
    nuts = _result(runs, "nuts")
    if nuts:
        r = nuts["rows"]
        mine, pyro_row = r["ppgen mcmc"], r["pyro NUTS"]
        reference = f"Pyro NUTS {pyro_row['seconds']:.3g} s ({pyro_row['ess_tau_per_s']:.0f})"
        ratio = f"{_x(mine['seconds'] / pyro_row['seconds'])} Pyro's time"
        if "numpyro NUTS" in r:
            num = r["numpyro NUTS"]
            reference += f"; NumPyro {num['seconds']:.3g} s ({num['ess_tau_per_s']:.0f}, incl. JIT)"
            ratio += f"; {_x(mine['ess_tau_per_s'] / num['ess_tau_per_s'])} NumPyro's ESS/s"
        rows.append(
            {
                "task": f"NUTS, eight schools, {nuts['warmup']} warm-up + {nuts['draws']} draws",
                "ppgen": f"{mine['seconds']:.3g} s, ESS(τ)/s {mine['ess_tau_per_s']:.0f}",
                "reference": reference,
                "ratio": ratio,
                "script": "nuts.py",
            }
        )
    adv = _result(runs, "adversarial_overhead")
    if adv:
        best, steps = adv["best"], adv["steps"]
        rows.append(
            {
                "task": f"adversarial loop, 3×{adv['hidden'][0]} MLPs, batch 256, per step",
                "ppgen": f"{1000 * best['ppgen adversarial'] / steps:.3g} ms",
                "reference": f"plain PyTorch GAN {1000 * best['plain torch'] / steps:.3g} ms",
                "ratio": f"**{_x(adv['ratio'])}**",
                "script": "adversarial_overhead.py",
            }
        )
    gan = _result(runs, "gan_modes")
    if gan:
        n_modes = {r["data"]: r["n_modes"] for r in gan["rows"]}
        seeds = len({r["seed"] for r in gan["rows"]})
        draws = len({r.get("draw") for r in gan["rows"]})
        cells = [
            f"{key}: {s['modes']:.1f}/{n_modes[key.split('/')[0]]} modes "
            f"(min {s.get('modes_min', s['modes']):.0f}), {100 * s['high_quality']:.0f} % high quality"
            for key, s in gan["summary"].items()
        ]
        rows.append(
            {
                "task": f"GAN mode coverage, defaults (`toy_2d_recipe(loss)`), mean of {seeds} seed(s) × "
                f"{draws} data draw(s)",
                "ppgen": "; ".join(cells),
                "reference": "published MLP GAN ≈ 17.3/25 grid modes at 94.8 %; PacGAN4 24.8/25 at 93.6 %",
                "ratio": "",
                "script": "gan_modes.py",
            }
        )
    digits = _result(runs, "digits_nll")
    if digits:
        finite = [r for r in digits if r["test_nll"] == r["test_nll"] and r["test_nll"] < float("inf")]
        best = min((r for r in finite if r["kind"] == "exact"), key=lambda r: r["test_nll"], default=None)
        vae = next((r for r in finite if r["model"].startswith("VAE")), None)
        if best is not None:
            rows.append(
                {
                    "task": "held-out NLL, 17-level digits (nats/image)",
                    "ppgen": f"best exact: {best['model']} {best['test_nll']:.2f}"
                    + (f"; {vae['model']} {vae['test_nll']:.2f} ({vae['kind']})" if vae else ""),
                    "reference": "",
                    "ratio": "",
                    "script": "digits_nll.py",
                }
            )
    return rows


def headline_table(rows: list[dict]) -> list[str]:
    """The README's table; ``target`` is the issue's goal for the ratio and whether this run met it."""
    lines = ["| task | ppgen | reference | ratio | target | script |", "|---|---|---|---|---|---|"]
    for r in rows:
        script = f"`benchmarks/{r['script']}`"
        cells = (r["task"], r["ppgen"], r["reference"], r["ratio"], r.get("target", ""), script)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


README_START, README_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def update_readme(machine: dict, rows: list[dict], readme: Path) -> bool:
    """Replace the table between the README's benchmark markers; False when it has none."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    load = machine.get("load_average") or ["?"]
    lines = [
        README_START,
        f"Generated by `make bench` on {machine['date']}: {machine['cpu']}, {machine['cores']} cores "
        f"(load {load[0]} at the end), torch {machine['torch']}, Pyro {machine['pyro']}.",
        "",
        *headline_table(rows),
        README_END,
    ]
    head, rest = text.split(README_START, 1)
    readme.write_text(head + "\n".join(lines) + rest.split(README_END, 1)[1])
    return True


# -------------------------------------------------------------------------- report
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _flatten(row: dict) -> dict:
    """One level of nested records as ``outer.inner`` columns (e.g. seconds per tool)."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return flat


def _table(rows: list[dict]) -> list[str]:
    rows = [_flatten(row) for row in rows]
    keys: list[str] = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, (dict, list))]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return lines


def _render(data, depth: int = 0) -> list[str]:
    """Scalars as a key/value table, lists of records and dicts of records as tables."""
    lines: list[str] = []
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return _table(data) + [""]
    if not isinstance(data, dict):
        return [f"{_fmt(data)}", ""]
    scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list)) or _is_flat_list(v)}
    if scalars:
        lines += (
            ["| key | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()] + [""]
        )
    for key, value in data.items():
        if key in scalars or depth > 2:
            continue
        lines.append(f"{'#' * min(6, 4 + depth)} {key}")
        lines.append("")
        if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            lines += (
                ["| name | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in value.items()] + [""]
            )
        else:
            lines += _render(value, depth + 1)
    return lines


def _is_flat_list(value) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def write_report(machine: dict, runs: dict, curves: dict | None, out_md: Path, quick: bool) -> None:
    lines = [
        "# ppgen benchmarks" + (" (quick sizes: pipeline check, not for quoting)" if quick else ""),
        "",
        "Generated by `python benchmarks/run.py" + (" --quick" if quick else "") + "`.",
        "",
        "## Machine",
        "",
        "| key | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in machine.items()]
    lines += ["", "## Summary (the README's performance table)", "", *headline_table(headline(runs))]
    lines += ["", "## Runs", "", "| benchmark | status | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {r['status']} | {r['seconds']} |" for name, r in runs.items()]
    lines.append("")
    for name, record in runs.items():
        if not record.get("results"):
            continue
        lines += [f"## {name}", ""]
        for file, data in record["results"].items():
            lines += [f"### {file}", ""]
            lines += _render(data)
    if curves:
        lines += ["## Scaling (time vs n, log-log)", "", "![time vs n](scaling.png)", ""]
        lines += [
            "| model | what | n | seconds | slope | peak extra MiB at largest n |",
            "|---|---|---|---|---|---|",
        ]
        for kind, curve in curves.items():
            for row in curve["rows"]:
                slope = curve["loglog_slope"]
                seconds = _fmt(row.get("seconds", row.get("error")))
                slope_text = _fmt(slope) if slope is not None else ""
                peak = _fmt(curve["peak_extra_mib_at_largest_n"])
                lines.append(f"| {kind} | {curve['what']} | {row['n']} | {seconds} | {slope_text} | {peak} |")
        lines.append("")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines))


def write_outputs(payload: dict, report_dir: Path, quick: bool) -> None:
    """results.md from a results.json payload; a full run also regenerates the README's table."""
    machine, runs = payload["machine"], payload["benchmarks"]
    write_report(machine, runs, payload.get("scaling"), report_dir / "results.md", quick)
    print(f"wrote {report_dir / 'results.md'} and {report_dir / 'results.json'}")
    if not quick and update_readme(machine, headline(runs), HERE.parent / "README.md"):
        print("updated the performance table in README.md")


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; report in benchmarks/out/quick/")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*BENCHMARKS, "scaling"],
        help="run only these benchmarks ('scaling': the curves)",
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling curves")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per benchmark (default 3600, quick 600)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild results.md and the README table from the last results.json; run nothing",
    )
    parser.add_argument(
        "--collect",
        nargs="+",
        default=[],
        metavar="NAME",
        help="take these benchmarks' output files as they are (run separately) instead of running them",
    )
    parser.add_argument("--scaling-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_child:
        print(json.dumps(scaling_child(args.scaling_child[0], int(args.scaling_child[1]))))
        return 0
    timeout = args.timeout or (600 if args.quick else 3600)
    OUT.mkdir(exist_ok=True)
    report_dir = OUT / "quick" if args.quick else HERE
    if args.report_only:
        payload = json.loads((report_dir / "results.json").read_text())
        write_outputs(payload, report_dir, args.quick)
        return 0
    figure_dir = OUT / "quick" if args.quick else HERE
    # --quick must not overwrite full-size results already in out/: keep them and put them back.
    saved = {p: p.read_bytes() for p in OUT.glob("*.json")} if args.quick else {}
    runs = {}
    try:
        for name in [n for n in args.only or BENCHMARKS if n != "scaling" and n not in args.collect]:
            print(f"[run] {name} ...", flush=True)
            runs[name] = run_benchmark(name, args.quick, timeout)
            print(f"[run] {name}: {runs[name]['status']} in {runs[name]['seconds']}s", flush=True)
        for name in args.collect:
            runs[name] = collect_benchmark(name)
    finally:
        if args.quick:
            for path in OUT.glob("*.json"):
                if path not in saved:
                    path.unlink()
            for path, blob in saved.items():
                path.write_bytes(blob)
    curves_wanted = not args.no_scaling and (args.only is None or "scaling" in args.only)
    curves = scaling(args.quick, figure_dir) if curves_wanted else None
    machine = machine_info()
    report_dir.mkdir(parents=True, exist_ok=True)
    previous = report_dir / "results.json"
    if (args.only or args.no_scaling or args.collect) and previous.exists():
        # A partial rerun updates its part of the last report and keeps the rest.
        old = json.loads(previous.read_text())
        runs = {**old.get("benchmarks", {}), **runs}
        curves = curves if curves is not None else old.get("scaling")
    payload = {"machine": machine, "quick": args.quick, "benchmarks": runs, "scaling": curves}
    (report_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    write_outputs(payload, report_dir, args.quick)
    failed = [n for n, r in runs.items() if r["status"] not in ("ok", "missing")]
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
