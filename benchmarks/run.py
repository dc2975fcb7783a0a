"""Run every side-by-side benchmark in benchmarks/ and collect the results in one report.

Each benchmark script present (kde, em, fit_overhead, svi_overhead, program_overhead, nuts, gan_modes,
adversarial_overhead, digits_nll, cli_startup) runs in its own process and writes
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

This module runs the benchmarks and holds the command line; ``scaling.py`` measures the curves,
``headline.py`` builds the summary rows and the README's table, ``report.py`` renders results.md.
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

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
if str(HERE) not in sys.path:  # run as a script or loaded by path (the tests): its sibling modules
    sys.path.insert(0, str(HERE))
from headline import headline, update_readme  # noqa: E402
from report import write_report  # noqa: E402
from scaling import scaling, scaling_child  # noqa: E402

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
    "cli_startup": ([], [], {}, ["cli_startup.json"]),
}


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


# ------------------------------------------------------------------------- outputs
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
