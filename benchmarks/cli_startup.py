"""How long the ``ppgen`` command takes to answer when it has nothing heavy to do.

Side by side, each as a fresh subprocess (median of REPEATS runs, interleaved so machine load hits
every command alike):
  * ``ppgen --help``: the parser only
  * ``ppgen list``: models, methods and datasets from static tables
  * ``ppgen fit``: a usage error (the required arguments are missing), one line on stderr
  * ``python -c "import torch, pyro"``: what a command pays that imports the stack first
  * ``python -c pass``: the interpreter alone, the floor under every row
The ``ppgen`` rows run the environment's console script (``python -m ppgen`` where there is none).
Target: each ``ppgen`` row answers in at most 0.5 s.

Prints the table and writes ``benchmarks/out/cli_startup.json``.
Run: ``.venv/bin/python benchmarks/cli_startup.py`` (``--repeats 3`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
#: seconds within which ``--help``, ``list`` and a usage error must answer
TARGET_SECONDS = 0.5


def ppgen_command() -> list[str]:
    """The console script beside this interpreter (what a user types), else ``python -m ppgen``."""
    script = Path(sys.executable).parent / "ppgen"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ppgen"]


def commands() -> dict[str, tuple[list[str], int]]:
    """name -> (argv, the exit status it must end with)."""
    ppgen = ppgen_command()
    return {
        "ppgen --help": ([*ppgen, "--help"], 0),
        "ppgen list": ([*ppgen, "list"], 0),
        "ppgen fit (usage error)": ([*ppgen, "fit"], 2),
        "import torch, pyro": ([sys.executable, "-c", "import torch, pyro"], 0),
        "python -c pass": ([sys.executable, "-c", "pass"], 0),
    }


def time_once(argv: list[str], status: int) -> float:
    """Wall seconds of one run of ``argv``; raises if it ends with another exit status."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != status:
        raise RuntimeError(f"{argv} exited with {done.returncode}, expected {status}: {done.stderr.strip()}")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", 5)))
    args = parser.parse_args(argv)
    cases = commands()
    for command, status in cases.values():  # warm-up: the file cache, .pyc files
        time_once(command, status)
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, (command, status) in cases.items():
            runs[name].append(time_once(command, status))
    median = {name: round(statistics.median(times), 4) for name, times in runs.items()}
    reference = median["import torch, pyro"]
    print(f"{'command':26s} {'median s':>9s} {'x import torch, pyro':>20s}")
    for name, seconds in median.items():
        print(f"{name:26s} {seconds:9.3f} {seconds / reference:20.2f}")
    ppgen_rows = [name for name in cases if name.startswith("ppgen")]
    meets = all(median[name] <= TARGET_SECONDS for name in ppgen_rows)
    print(f"target: every ppgen row <= {TARGET_SECONDS} s: {'met' if meets else 'NOT met'}")
    result = {
        "benchmark": "cli_startup",
        "repeats": args.repeats,
        "command": " ".join(ppgen_command()),
        "median_seconds": median,
        "runs_seconds": {name: [round(t, 4) for t in times] for name, times in runs.items()},
        "ratio_to_import_torch_pyro": {name: round(s / reference, 3) for name, s in median.items()},
        "target_seconds": TARGET_SECONDS,
        "meets_target": meets,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "cli_startup.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
