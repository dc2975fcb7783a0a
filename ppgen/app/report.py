"""``ppgen tour``: run every chapter of the library on embedded data and write a
self-contained HTML report (figures embedded as PNG) plus ``results.json``.

A chapter is a function ``run(ctx: TourContext) -> None`` in ``ppgen/app/chapters/`` that adds
text, tables, figures, numbers and model-zoo rows to ``ctx`` (:mod:`ppgen.app.tour_context`);
this module runs the chapters, times them and writes the files (the page:
:mod:`ppgen.app.tour_html`). Three lengths: ``fast`` (the smoke run, ≤ 2 min), the default (every
chapter making its point, ≤ 5 min) and ``full`` (the long versions: GAN recipes to thousands of
steps, the whole digits-17 table, ≤ 20 min).
Long results that only a benchmark run can afford are quoted from ``benchmarks/results.json``
(:meth:`TourContext.benchmark`) with the date and command that produced them; everything
else on the page is computed by the run itself. Within one run chapters may share a fit
(:meth:`TourContext.once`); nothing is cached across runs.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ppgen.app.tour_context import TourContext
from ppgen.app.tour_html import clock, render
from ppgen.errors import OptionError

__all__ = ["CHAPTERS", "BUDGETS", "ESTIMATES", "run_tour"]

#: (key, title, module) in the order of the source text.
CHAPTERS: list[tuple[str, str, str]] = [
    ("zoo", "The model zoo: every model × every method, one data set", "ppgen.app.chapters.zoo"),
    ("data", "From a dataset to a distribution", "ppgen.app.chapters.basics"),
    ("kde", "Density estimation: MLE and KDE", "ppgen.app.chapters.kde"),
    ("bayes", "Likelihood, posterior and MLE vs Bayes", "ppgen.app.chapters.bayes"),
    ("programs", "Your Pyro program, every fit: baseball", "ppgen.app.chapters.programs"),
    ("latent", "Mixtures, EM and factor analysis", "ppgen.app.chapters.latent"),
    ("deep", "Autoregressive models, flows and VAEs", "ppgen.app.chapters.deep"),
    ("divergences", "f-divergences and variational bounds", "ppgen.app.chapters.divergences"),
    ("gans", "GANs and Wasserstein GANs", "ppgen.app.chapters.gans"),
    ("pixels", "Discrete pixels: one NLL table", "ppgen.app.chapters.pixels"),
]

MODES = ("fast", "default", "full")
#: wall-clock budget of a whole tour per mode, seconds (2-core machine, nothing else running)
BUDGETS = {"fast": 120.0, "default": 300.0, "full": 1200.0}
#: measured seconds per chapter (fast, default, full) on a 2-core machine shared with other work,
#: one thread; used only for the estimate printed up front and the remaining-time display.
ESTIMATES: dict[str, tuple[float, float, float]] = {
    "zoo": (20.0, 38.0, 110.0),
    "data": (0.5, 0.5, 0.5),
    "kde": (2.5, 4.0, 8.0),
    "bayes": (6.0, 12.0, 30.0),
    "programs": (8.0, 18.0, 60.0),
    "latent": (6.0, 10.0, 30.0),
    "deep": (8.0, 25.0, 150.0),
    "divergences": (3.0, 5.0, 10.0),
    "gans": (10.0, 32.0, 240.0),
    "pixels": (10.0, 35.0, 480.0),
}


def run_tour(
    out: str | Path = "ppgen-report",
    *,
    fast: bool = False,
    full: bool = False,
    only: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """Run the chapters and write ``out/index.html`` and ``out/results.json``; return the HTML path."""
    import matplotlib  # heavy, needed only once a tour runs: the chapters draw off-screen

    matplotlib.use("Agg")
    if fast and full:
        raise OptionError("Expected at most one of fast and full, but got both; pick one.")
    keys = [key for key, _, _ in CHAPTERS]
    if only:
        unknown = sorted(set(only) - set(keys))
        if unknown:
            raise OptionError(f"Expected chapters in {keys}, but got {unknown}.")
    mode = "fast" if fast else "full" if full else "default"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, results, zoo, shared = [], {}, [], {}
    chosen = [c for c in CHAPTERS if not only or c[0] in only]
    estimates = {key: ESTIMATES.get(key, (5.0, 5.0, 5.0))[MODES.index(mode)] for key, _, _ in chosen}
    total = sum(estimates.values())
    print(
        f"ppgen tour ({mode}): {len(chosen)} chapters, estimated {clock(total)} on 2 cores "
        f"(budget {clock(BUDGETS[mode])}); fast ≈ {clock(_total(chosen, 0))}, "
        f"default ≈ {clock(_total(chosen, 1))}, --full ≈ {clock(_total(chosen, 2))}",
        file=sys.stderr,
        flush=True,
    )
    progress = _Progress(estimates)
    tour_start = time.perf_counter()
    try:
        for key, title, module_name in chosen:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                progress.skip(key)
                continue  # chapter not written yet
            ctx = TourContext(fast=fast, full=full, seed=seed, shared=shared)
            torch.manual_seed(seed)
            progress.begin(key)
            start, cpu = time.perf_counter(), time.process_time()
            module.run(ctx)
            ctx.number("seconds", round(time.perf_counter() - start, 2))
            ctx.number("cpu_seconds", round(time.process_time() - cpu, 2))  # ≈ wall time on an idle machine
            progress.end(key, ctx.numbers["seconds"])
            sections.append((key, title, ctx))
            results[key] = ctx.numbers
            zoo.extend(ctx.zoo)
    finally:
        progress.close()
    seconds = time.perf_counter() - tour_start
    zoo_frame = pd.DataFrame([row.__dict__ for row in zoo])
    if not zoo_frame.empty:
        zoo_frame = zoo_frame.sort_values("data", kind="stable")  # one block per data set
    results["model_zoo"] = zoo_frame.to_dict(orient="records")
    results["timings"] = {
        "mode": mode,
        "seconds": round(seconds, 1),
        "budget_seconds": BUDGETS[mode],
        "estimate_seconds": round(total, 1),
        "chapters": {key: results[key]["seconds"] for key, _, _ in sections},
        "cpu_seconds": {key: results[key]["cpu_seconds"] for key, _, _ in sections},
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    results["machine"] = _machine()
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
    page = out / "index.html"
    page.write_text(render(sections, mode, results["timings"]))
    print(f"ppgen tour: {clock(seconds)} (m:ss); wrote {page.resolve()}")
    return page


def _total(chosen, index: int) -> float:
    return sum(ESTIMATES.get(key, (5.0,) * 3)[index] for key, _, _ in chosen)


class _Progress:
    """One line on stderr: the chapter running, a bar over the estimated seconds, elapsed and
    remaining time (the remaining estimate rescaled by how fast the finished chapters ran).
    A daemon thread refreshes it once a second while a chapter trains."""

    def __init__(self, estimates: dict[str, float]):
        self.estimates, self.done = dict(estimates), {}
        self.total = max(sum(estimates.values()), 1e-9)
        self.start, self.current, self.chapter_start = time.perf_counter(), None, 0.0
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.tty = sys.stderr.isatty()
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.thread.start()

    def begin(self, key: str) -> None:
        with self.lock:
            self.current, self.chapter_start = key, time.perf_counter()
        self._draw(final=False)

    def end(self, key: str, seconds: float) -> None:
        with self.lock:
            self.done[key], self.current = seconds, None
        self._draw(final=True, finished=key)

    def skip(self, key: str) -> None:
        with self.lock:
            self.done[key] = 0.0

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        if self.tty:
            print(file=sys.stderr, flush=True)

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            if self.tty and self.current is not None:
                self._draw(final=False)

    def _draw(self, final: bool, finished: str | None = None) -> None:
        with self.lock:
            now = time.perf_counter()
            elapsed = now - self.start
            estimated_done = sum(self.estimates[k] for k in self.done)
            actual_done = sum(self.done.values())
            speed = actual_done / estimated_done if estimated_done > 1.0 else 1.0  # > 1: slower than measured
            running = 0.0
            if self.current is not None:
                running = now - self.chapter_start
                estimate = self.estimates[self.current] * speed
                left_here = max(estimate - running, 0.0)
                here = min(running / max(speed, 1e-9), 0.98 * self.estimates[self.current])
                position = estimated_done + here
            else:
                left_here, position = 0.0, estimated_done
            rest = [k for k in self.estimates if k not in self.done and k != self.current]
            remaining = left_here + speed * sum(self.estimates[k] for k in rest)
            share = min(position / self.total, 1.0)
            width = 24
            bar = "#" * int(share * width) + "-" * (width - int(share * width))
            label = self.current or finished or ""
            count = f"{len(self.done)}/{len(self.estimates)}"
            line = f"tour {count} {label:<12} |{bar}| {clock(elapsed)} elapsed, ~{clock(remaining)} left"
            if final and finished is not None:
                line += f" ({finished} took {self.done[finished]:.0f} s)"
            if self.tty:
                print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
            elif final:
                print(line, file=sys.stderr, flush=True)


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _machine() -> dict[str, Any]:
    import pyro

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
