"""``ppgen tour``: run every chapter of the library on embedded data and write a
self-contained HTML report (figures embedded as PNG) plus ``results.json``.

A chapter is a function ``run(ctx: TourContext) -> None`` in ``ppgen/chapters/`` that adds
text, tables, figures, numbers and model-zoo rows to ``ctx``.
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ppgen.errors import OptionError

__all__ = ["CHAPTERS", "TourContext", "run_tour"]

#: (key, title, module) in the order of the source text.
CHAPTERS: list[tuple[str, str, str]] = [
    ("zoo", "The model zoo: every model × every method, one data set", "ppgen.chapters.zoo"),
    ("data", "From a dataset to a distribution", "ppgen.chapters.basics"),
    ("kde", "Density estimation: MLE and KDE", "ppgen.chapters.kde"),
    ("bayes", "Likelihood, posterior and MLE vs Bayes", "ppgen.chapters.bayes"),
    ("latent", "Mixtures, EM and factor analysis", "ppgen.chapters.latent"),
    ("deep", "Autoregressive models, flows and VAEs", "ppgen.chapters.deep"),
    ("divergences", "f-divergences and variational bounds", "ppgen.chapters.divergences"),
    ("gans", "GANs and Wasserstein GANs", "ppgen.chapters.gans"),
    ("pixels", "Discrete pixels: one NLL table", "ppgen.chapters.pixels"),
]


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
class TourContext:
    """What a chapter writes into; ``fast`` asks for a quick, smaller run."""

    fast: bool = False
    seed: int = 0
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    zoo: list[ZooRow] = field(default_factory=list)

    def text(self, paragraph: str) -> None:
        self.blocks.append(("text", paragraph))

    def table(self, frame: pd.DataFrame, caption: str = "") -> None:
        self.blocks.append(("table", (frame, caption)))

    def figure(self, fig, caption: str = "") -> None:
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.blocks.append(("figure", (base64.b64encode(buffer.getvalue()).decode(), caption)))

    def number(self, key: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        self.numbers[key] = value

    def zoo_row(self, **row: Any) -> None:
        self.zoo.append(ZooRow(**row))


def run_tour(
    out: str | Path = "ppgen-report", *, fast: bool = False, only: list[str] | None = None, seed: int = 0
) -> Path:
    """Run the chapters and write ``out/index.html`` and ``out/results.json``; return the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    keys = [key for key, _, _ in CHAPTERS]
    if only:
        unknown = sorted(set(only) - set(keys))
        if unknown:
            raise OptionError(f"Expected chapters in {keys}, but got {unknown}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections, results, zoo = [], {}, []
    chosen = [c for c in CHAPTERS if not only or c[0] in only]
    bar = tqdm(chosen, desc="tour", unit="chapter")
    for key, title, module_name in bar:
        bar.set_postfix(chapter=key)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue  # chapter not written yet
        ctx = TourContext(fast=fast, seed=seed)
        torch.manual_seed(seed)
        start = time.perf_counter()
        module.run(ctx)
        ctx.number("seconds", round(time.perf_counter() - start, 2))
        sections.append((key, title, ctx))
        results[key] = ctx.numbers
        zoo.extend(ctx.zoo)
    zoo_frame = pd.DataFrame([row.__dict__ for row in zoo])
    if not zoo_frame.empty:
        zoo_frame = zoo_frame.sort_values("data", kind="stable")  # one block per data set
    results["model_zoo"] = zoo_frame.to_dict(orient="records")
    results["machine"] = _machine()
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
    page = out / "index.html"
    page.write_text(_render(sections, zoo_frame, fast))
    print(f"ppgen tour: wrote {page.resolve()}")
    return page


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _machine() -> dict[str, Any]:
    import os

    import pyro

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.5}
h1{border-bottom:3px solid #4a6fa5}h2{color:#4a6fa5;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#eef2f8}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
nav a{margin-right:1em}.zoo{background:#fafcff;padding:.5em 1em;border:2px solid #4a6fa5;border-radius:6px}
"""


def _render(sections, zoo_frame: pd.DataFrame, fast: bool) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>ppgen tour</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ppgen tour: from a dataset to GANs</h1>",
        f"<p>Every chapter below was computed just now on embedded data{' (fast mode)' if fast else ''}.</p>",
        "<nav>" + "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t, _ in sections) + "</nav>",
    ]
    if not zoo_frame.empty:
        parts.append("<section class='zoo' id='zoo'><h2>Model zoo</h2>")
        parts.append(
            "<p>Every model × method on the same data: held-out log-likelihood per example "
            "(higher is better; <em>kind</em> says whether it is exact, a bound or an estimate).</p>"
        )
        parts.append(zoo_frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
        parts.append("</section>")
    for key, title, ctx in sections:
        parts.append(f"<section id='{key}'><h2>{html.escape(title)}</h2>")
        for kind, payload in ctx.blocks:
            if kind == "text":
                parts.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "table":
                frame, caption = payload
                parts.append(f"<p><b>{html.escape(caption)}</b></p>" if caption else "")
                parts.append(frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
            else:
                data, caption = payload
                parts.append(
                    f"<figure><img alt='{html.escape(caption or key)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
