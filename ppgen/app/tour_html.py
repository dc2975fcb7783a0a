"""The tour's HTML page: one self-contained file (figures embedded as PNG, no scripts) with the
overview figures first, then each chapter's text, tables and figures, long tables folded below
their chapter, and the timings.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from ppgen.app.tour_context import TourContext

__all__ = ["render", "clock"]


def clock(seconds: float) -> str:
    """``m:ss`` of ``seconds``, rounded to the second."""
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


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


def render(sections: list[tuple[str, str, TourContext]], mode: str, timings: dict[str, Any]) -> str:
    """The page of the chapters ``(key, title, context)`` run in ``mode``, with ``timings``."""
    label = {"fast": " (fast mode: the smoke run)", "default": "", "full": " (full length)"}[mode]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>ppgen tour</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>ppgen tour: from a dataset to GANs</h1>",
        f"<p class='lead'>Every chapter below was computed just now on embedded data{label}, in "
        f"{clock(timings['seconds'])} (m:ss). Numbers quoted from the last benchmark run say so, "
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
