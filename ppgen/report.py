"""``ppgen tour``: run every chapter of the library on embedded data and write a
self-contained HTML report (figures embedded as PNG) plus ``results.json``.

A chapter is a function ``run(ctx: TourContext) -> None`` in ``ppgen/chapters/`` that adds
text, tables, figures, numbers and model-zoo rows to ``ctx``. Three lengths: ``fast`` (the
smoke run, ≤ 2 min), the default (every chapter making its point, ≤ 5 min) and ``full`` (the
long versions: GAN recipes to thousands of steps, the whole digits-17 table, ≤ 20 min).
Long results that only a benchmark run can afford are quoted from ``benchmarks/results.json``
(:meth:`TourContext.benchmark`) with the date and command that produced them; everything
else on the page is computed by the run itself. Within one run chapters may share a fit
(:meth:`TourContext.once`); nothing is cached across runs.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ppgen.errors import OptionError

__all__ = ["CHAPTERS", "BUDGETS", "ESTIMATES", "TourContext", "run_tour", "load_benchmark"]

#: (key, title, module) in the order of the source text.
CHAPTERS: list[tuple[str, str, str]] = [
    ("zoo", "The model zoo: every model × every method, one data set", "ppgen.chapters.zoo"),
    ("data", "From a dataset to a distribution", "ppgen.chapters.basics"),
    ("kde", "Density estimation: MLE and KDE", "ppgen.chapters.kde"),
    ("bayes", "Likelihood, posterior and MLE vs Bayes", "ppgen.chapters.bayes"),
    ("programs", "Your Pyro program, every fit: baseball", "ppgen.chapters.programs"),
    ("latent", "Mixtures, EM and factor analysis", "ppgen.chapters.latent"),
    ("deep", "Autoregressive models, flows and VAEs", "ppgen.chapters.deep"),
    ("divergences", "f-divergences and variational bounds", "ppgen.chapters.divergences"),
    ("gans", "GANs and Wasserstein GANs", "ppgen.chapters.gans"),
    ("pixels", "Discrete pixels: one NLL table", "ppgen.chapters.pixels"),
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
#: a table longer than this folds into <details> under its chapter
FOLD_ROWS = 12
#: the last ``make bench`` run, quoted (with its date and command) where a chapter cites a long result
BENCHMARK_RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results.json"


@dataclass
class ZooRow:
    model: str
    method: str
    data: str
    heldout_loglik: float | None
    kind: str  # "exact" | "bound" | "estimate" | "n/a (implicit)"
    seconds: float
    note: str = ""


@dataclass
class Quote:
    """One benchmark's entry in ``benchmarks/results.json``: what a chapter may quote."""

    name: str
    date: str
    command: str
    results: dict[str, Any]

    def source(self) -> str:
        """``"make bench, 2026-11-30 22:48 UTC (python benchmarks/gan_modes.py)"``, for a caption."""
        return f"last `make bench` run, {self.date}; reproduce with `python {self.command}`"


def load_benchmark(name: str, path: str | Path | None = None) -> Quote | None:
    """The entry ``name`` of the last ``make bench`` report, or ``None`` when there is none
    (an installed package without the repository's ``benchmarks/``, or a failed benchmark)."""
    path = Path(path) if path is not None else BENCHMARK_RESULTS
    try:
        record = json.loads(path.read_text())["benchmarks"][name]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("status") != "ok" or not record.get("results"):
        return None
    return Quote(name, record.get("date", "?"), " ".join(record.get("command", [name])), record["results"])


@dataclass
class TourContext:
    """What a chapter writes into. ``fast`` asks for the smoke run, ``full`` for the long
    version; neither is the default. ``shared`` is one dict for the whole run (see :meth:`once`)."""

    fast: bool = False
    seed: int = 0
    full: bool = False
    shared: dict[str, Any] = field(default_factory=dict)
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    zoo: list[ZooRow] = field(default_factory=list)
    overview: list[tuple[str, str]] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "fast" if self.fast else "full" if self.full else "default"

    def pick(self, fast: Any, default: Any, full: Any) -> Any:
        """The setting for this run's mode: ``ctx.pick(300, 1000, 4000)``."""
        return {"fast": fast, "default": default, "full": full}[self.mode]

    def text(self, paragraph: str) -> None:
        self.blocks.append(("text", paragraph))

    def table(self, frame: pd.DataFrame, caption: str = "", fold: bool | None = None) -> None:
        """A table; one longer than :data:`FOLD_ROWS` rows folds unless ``fold=False``."""
        fold = len(frame) > FOLD_ROWS if fold is None else fold
        self.blocks.append(("table", (frame, caption, fold)))

    def figure(self, fig, caption: str = "", overview: bool = False) -> None:
        """Embed a matplotlib figure; ``overview=True`` also puts it at the top of the report."""
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode()
        if overview:
            self.overview.append((data, caption))
        else:
            self.blocks.append(("figure", (data, caption)))

    def number(self, key: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        self.numbers[key] = value

    def zoo_row(self, **row: Any) -> None:
        self.zoo.append(ZooRow(**row))

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time any chapter of this run asks for ``key``, then the same
        object: a model two chapters show is trained once per run (never across runs)."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]

    def benchmark(self, name: str) -> Quote | None:
        """The last ``make bench`` result ``name`` (see :func:`load_benchmark`), recorded in
        ``results.json`` under ``quoted`` with its date and command."""
        quote = load_benchmark(name)
        self.numbers.setdefault("quoted", {})[name] = (
            {"date": quote.date, "command": quote.command} if quote else None
        )
        return quote


def run_tour(
    out: str | Path = "ppgen-report",
    *,
    fast: bool = False,
    full: bool = False,
    only: list[str] | None = None,
    seed: int = 0,
) -> Path:
    """Run the chapters and write ``out/index.html`` and ``out/results.json``; return the HTML path."""
    import matplotlib

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
        f"ppgen tour ({mode}): {len(chosen)} chapters, estimated {_clock(total)} on 2 cores "
        f"(budget {_clock(BUDGETS[mode])}); fast ≈ {_clock(_total(chosen, 0))}, "
        f"default ≈ {_clock(_total(chosen, 1))}, --full ≈ {_clock(_total(chosen, 2))}",
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
    page.write_text(_render(sections, mode, results["timings"]))
    print(f"ppgen tour: {_clock(seconds)} (m:ss); wrote {page.resolve()}")
    return page


def _total(chosen, index: int) -> float:
    return sum(ESTIMATES.get(key, (5.0,) * 3)[index] for key, _, _ in chosen)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


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
            line = f"tour {count} {label:<12} |{bar}| {_clock(elapsed)} elapsed, ~{_clock(remaining)} left"
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


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.5}
h1{border-bottom:3px solid #4a6fa5;margin:.2em 0 .3em;font-size:1.7em}h2{color:#4a6fa5;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#eef2f8}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
nav{font-size:.9em}nav a{margin-right:1em}.lead{margin:.2em 0 .6em}
.overview{background:#fafcff;padding:.3em 1em;border:2px solid #4a6fa5;border-radius:6px}
.overview figure{margin:.5em 0}details{margin:1em 0}summary{cursor:pointer;font-weight:bold}
.meta{font-size:.85em;color:#555}
"""


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—")


def _render(sections, mode: str, timings: dict[str, Any]) -> str:
    label = {"fast": " (fast mode: the smoke run)", "default": "", "full": " (full length)"}[mode]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>ppgen tour</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ppgen tour: from a dataset to GANs</h1>",
        f"<p class='lead'>Every chapter below was computed just now on embedded data{label}, in "
        f"{_clock(timings['seconds'])} (m:ss). Numbers quoted from the last benchmark run say so, "
        "with their date and the command that reproduces them.</p>",
    ]
    overview = [(key, data, caption) for key, _, ctx in sections for data, caption in ctx.overview]
    if overview:
        parts.append("<section class='overview' id='overview'>")
        for key, data, caption in overview:
            parts.append(
                f"<figure><img alt='{html.escape(caption or key)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)} (<a href='#{key}'>chapter</a>)</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("<nav>" + "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t, _ in sections) + "</nav>")
    for key, title, ctx in sections:
        parts.append(f"<section id='{key}'><h2>{html.escape(title)}</h2>")
        folded = []
        for kind, payload in ctx.blocks:
            if kind == "text":
                parts.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "table":
                frame, caption, fold = payload
                if fold:
                    folded.append((frame, caption))  # long tables go below the chapter's story
                    parts.append(
                        f"<p class='meta'>Table below: {html.escape(caption)} ({len(frame)} rows).</p>"
                    )
                    continue
                parts.append(f"<p><b>{html.escape(caption)}</b></p>" if caption else "")
                parts.append(_table_html(frame))
            else:
                data, caption = payload
                parts.append(
                    f"<figure><img alt='{html.escape(caption or key)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        for frame, caption in folded:
            parts.append(
                f"<details><summary>{html.escape(caption or 'table')} ({len(frame)} rows)</summary>"
                f"{_table_html(frame)}</details>"
            )
        parts.append(f"<p class='meta'>{key}: {ctx.numbers.get('seconds', 0):.1f} s</p></section>")
    rows = "".join(
        f"<tr><td>{k}</td><td>{s:.1f}</td><td>{timings['cpu_seconds'][k]:.1f}</td></tr>"
        for k, s in timings["chapters"].items()
    )
    parts.append(
        f"<details><summary>Timings ({mode} mode, {timings['seconds']:.0f} s of a "
        f"{timings['budget_seconds']:.0f} s budget)</summary><table><tr><th>chapter</th><th>seconds</th>"
        f"<th>CPU seconds</th></tr>{rows}</table></details>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)
