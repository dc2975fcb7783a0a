"""What a tour chapter writes into: :class:`TourContext` (text, tables, figures, numbers, model-zoo
rows), and :func:`load_benchmark`, the long results a chapter quotes from ``benchmarks/results.json``.

A chapter is a function ``run(ctx: TourContext) -> None`` in ``ppgen/app/chapters/``;
:func:`ppgen.app.report.run_tour` runs the chapters and :mod:`ppgen.app.tour_html` renders what
they wrote.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

__all__ = ["TourContext", "Quote", "ZooRow", "load_benchmark", "FOLD_ROWS", "BENCHMARK_RESULTS"]

#: a table longer than this folds into <details> under its chapter
FOLD_ROWS = 12
#: the last ``make bench`` run, quoted (with its date and command) where a chapter cites a long result
BENCHMARK_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results.json"


@dataclass
class ZooRow:
    """One fit in the cross-chapter model zoo of ``results.json``."""

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
        import matplotlib.pyplot as plt  # heavy: only chapters that draw pay for it

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
