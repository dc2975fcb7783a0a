"""Time the interactive commands against their budgets: ``ppgen tour`` per chapter (fast and
default; ``--tour full`` adds the long version), every tutorial's default run, and optionally
the test suite.

Budgets (2-core machine, nothing else running): tour ``--fast`` 2 min, default 5 min, ``--full``
20 min; each tutorial 3 min; ``make test`` 5 min. A timing is not a unit test — this script
records and reports, it fails nothing. It writes ``benchmarks/timings.json`` (merged with the
last run, so a partial rerun keeps the rest) and prints one table; the tour's per-chapter
seconds come from its own ``results.json``, a tutorial's from its last line ("tutorial NN ran
in S s"; all it printed goes to ``benchmarks/out/tutorials/NN_*.txt``). The 1-minute load
average is recorded beside each number: on a shared machine the wall time is not the
program's alone.

Run: ``python benchmarks/timings.py`` (or ``make timings``); ``--tour default``,
``--tutorials 09 10`` (``--tutorials`` alone: all of them), ``--test``, ``--report-only``
(print the last file, run nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECORD = HERE / "timings.json"
BUDGETS = {"tour fast": 120, "tour default": 300, "tour full": 1200, "tutorial": 180, "test": 300}
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _ppgen() -> list[str]:
    return [sys.executable, "-m", "ppgen"]


def time_tour(mode: str, timeout: float) -> dict:
    out = HERE / "out" / f"tour-{mode}"
    flag = {"fast": ["--fast"], "default": [], "full": ["--full"]}[mode]
    load, start = _load(), time.perf_counter()
    try:
        done = subprocess.run(
            [*_ppgen(), "tour", *flag, "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode}): {done.stderr[-300:]}"
    except subprocess.TimeoutExpired:
        status = f"timeout after {timeout:.0f} s"
    record = {
        "seconds": round(time.perf_counter() - start, 1),
        "budget": BUDGETS[f"tour {mode}"],
        "status": status,
        "date": _now(),
        "load_before": load,
        "load_after": _load(),
    }
    try:
        timings = json.loads((out / "results.json").read_text())["timings"]
        record["chapters"] = timings["chapters"]
        record["cpu_seconds"] = timings.get("cpu_seconds")
    except (OSError, KeyError, ValueError):
        pass
    return record


def time_tutorial(script: Path, timeout: float) -> dict:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PPGEN_FAST", None)
    env.pop("PPGEN_FULL", None)
    load, start = _load(), time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:
        try:
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            status = (
                "ok" if done.returncode == 0 else f"failed (exit {done.returncode}): {done.stderr[-300:]}"
            )
            said = re.findall(r"ran in (\d+) s", done.stdout)
            log = HERE / "out" / "tutorials" / f"{script.stem}.txt"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(done.stdout + done.stderr)  # what it printed, to read the numbers beside the time
        except subprocess.TimeoutExpired:
            status, said = f"timeout after {timeout:.0f} s", []
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "self_reported": int(said[-1]) if said else None,
        "budget": BUDGETS["tutorial"],
        "status": status,
        "date": _now(),
        "load_before": load,
        "load_after": _load(),
    }


def time_tests(timeout: float) -> dict:
    load, start = _load(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "auto"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "budget": BUDGETS["test"],
        "status": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})",
        "summary": tail[0],
        "date": _now(),
        "load_before": load,
        "load_after": _load(),
    }


def report(record: dict) -> str:
    lines = [f"{'what':34s} {'seconds':>8s} {'budget':>7s}  {'':4s} {'load':>5s}  date"]

    def line(name: str, entry: dict) -> None:
        verdict = "ok" if entry["status"] == "ok" and entry["seconds"] <= entry["budget"] else "OVER"
        if entry["status"] != "ok":
            verdict = "FAIL"
        lines.append(
            f"{name:34s} {entry['seconds']:8.1f} {entry['budget']:7.0f}  {verdict:4s} "
            f"{entry['load_before']:5.2f}  {entry['date']}"
        )

    for mode, entry in record.get("tour", {}).items():
        line(f"ppgen tour ({mode})", entry)
        cpu = entry.get("cpu_seconds") or {}
        for chapter, seconds in entry.get("chapters", {}).items():
            extra = f" (CPU {cpu[chapter]:.1f} s)" if chapter in cpu else ""
            lines.append(f"    {chapter:30s} {seconds:8.1f}{extra}")
    for name, entry in record.get("tutorials", {}).items():
        line(f"tutorial {name}", entry)
    if "test" in record:
        line("make test (pytest -q -x -n auto)", record["test"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tour", nargs="*", choices=["fast", "default", "full"], default=None)
    parser.add_argument("--tutorials", nargs="*", default=None, help="numbers, e.g. 06 09; default all")
    parser.add_argument("--test", action="store_true", help="also time the test suite (as make test)")
    parser.add_argument("--report-only", action="store_true", help="print the last timings.json")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    args = parser.parse_args(argv)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if not args.report_only:
        everything = args.tour is None and args.tutorials is None and not args.test
        modes = args.tour if args.tour is not None else (["fast", "default"] if everything else [])
        wanted = args.tutorials or (None if everything or args.tutorials == [] else [])
        scripts = [s for s in TUTORIALS if wanted is None or s.name[:2] in wanted]
        for mode in modes:
            print(f"[timings] ppgen tour ({mode}) ...", flush=True)
            record.setdefault("tour", {})[mode] = time_tour(mode, args.timeout)
        for script in scripts:
            print(f"[timings] {script.stem} ...", flush=True)
            record.setdefault("tutorials", {})[script.stem] = time_tutorial(script, args.timeout)
        if args.test:
            print("[timings] pytest ...", flush=True)
            record["test"] = time_tests(args.timeout)
        record["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(), "date": _now()}
        RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(report(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
