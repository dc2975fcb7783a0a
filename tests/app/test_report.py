"""The tour report in a real headless browser (Debian's chromium): the page loads with no
console messages, every <img> is an embedded data: URI that decodes to a valid image, and the
first screen (1280x800) shows a figure.

The fast tests render a small synthetic chapter plus the cheap "data" chapter when it exists;
the slow one renders every chapter that exists (``--fast`` mode)."""

import base64
import importlib.util
import io
import json
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from PIL import Image

from ppgen.app import report, tour_context

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does this)"
)

SYNTHETIC = """
import matplotlib.pyplot as plt
import pandas as pd


def run(ctx):
    ctx.text("A synthetic chapter: two figures, two tables, one number <b>escaped</b>.")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    ctx.figure(fig, "a parabola")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [4, 1, 0])
    ctx.figure(fig, "the overview line", overview=True)
    ctx.table(pd.DataFrame({"model": ["a", "b"], "loglik": [-1.5, float("nan")]}), "a table")
    ctx.table(pd.DataFrame({"row": list(range(40))}), "a long table")
    ctx.number("answer", 42)
    ctx.number("mode", ctx.mode)
    ctx.zoo_row(model="Toy", method="exact", data="none", heldout_loglik=-1.5, kind="exact", seconds=0.0)
"""


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.scripts, self.external = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs.get("src") or "")
        if tag == "script":
            self.scripts += 1
        if tag in ("link", "iframe", "object", "embed") or (tag == "script" and attrs.get("src")):
            self.external.append(tag)


def _images(page: str) -> _Images:
    parser = _Images()
    parser.feed(page)
    return parser


def _decode(src: str) -> tuple[int, int]:
    """Decode one data: URI image; return its size. Fails on anything not embedded or broken."""
    match = re.fullmatch(r"data:image/(png|svg\+xml);base64,([A-Za-z0-9+/=\s]+)", src)
    assert match, f"image is not an embedded base64 PNG/SVG: {src[:60]!r}"
    try:
        raw = base64.b64decode(match.group(2), validate=True)
        if match.group(1) == "png":
            Image.open(io.BytesIO(raw)).verify()  # checksums and structure
            with Image.open(io.BytesIO(raw)) as image:
                image.load()  # full decode of the pixel data
                return image.size
        root = ET.fromstring(raw)
    except Exception as err:
        raise AssertionError(f"embedded image does not decode: {type(err).__name__}: {err}") from err
    assert root.tag.endswith("svg")
    return (1, 1)


def _browse(page_path, tmp_path) -> tuple[str, list[str]]:
    """Load the page in headless chromium; return the DOM after load and the console lines."""
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,800",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page_path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


#: appended to a copy of the page: after layout, the top of the first figure and the window height
_PROBE = """<script>window.addEventListener("load", () => {
  const img = document.querySelector("figure img"), tables = document.querySelectorAll("table");
  document.body.dataset.figureTop = img ? img.getBoundingClientRect().top : -1;
  document.body.dataset.figureBottom = img ? img.getBoundingClientRect().bottom : -1;
  document.body.dataset.tableTop = tables.length ? tables[0].getBoundingClientRect().top : 1e9;
  document.body.dataset.screen = window.innerHeight;
});</script>"""


def _first_screen(page_path, tmp_path) -> dict[str, float]:
    """Where the browser lays out the first figure and the first visible table, in pixels."""
    probe = tmp_path / "probe.html"
    probe.write_text(page_path.read_text().replace("</body>", _PROBE + "</body>"))
    dom, console = _browse(probe, tmp_path)
    assert not console, console
    found = {key: float(value) for key, value in re.findall(r'data-(\w+(?:-\w+)?)="([-\d.e+]+)"', dom)}
    assert {"figure-top", "screen"} <= set(found), dom[:500]
    return found


def _check_first_screen(page_path, tmp_path):
    where = _first_screen(page_path, tmp_path)
    assert 0 <= where["figure-top"] < where["screen"] / 2, where  # a figure starts on the first half-screen
    assert where["figure-bottom"] > where["figure-top"], where  # and has a height (its image decoded)
    assert where["figure-top"] < where["table-top"], where  # before any table


def _check_page(page_path, tmp_path, chapters):
    source = page_path.read_text()
    dom, console = _browse(page_path, tmp_path)
    assert not console, f"console messages while loading the report: {console}"
    assert "<title>ppgen tour</title>" in dom and "</html>" in dom
    for key in chapters:
        assert f'id="{key}"' in dom  # every chapter section reached the browser's DOM
    before, after = _images(source), _images(dom)
    assert not before.external and before.scripts == 0  # self-contained and script-free
    assert len(after.sources) == len(before.sources) >= 1
    for src in after.sources:
        width, height = _decode(src)
        assert width > 0 and height > 0
    _check_first_screen(page_path, tmp_path)


def _tour(tmp_path, monkeypatch, chapters):
    (tmp_path / "synthetic_chapter.py").write_text(SYNTHETIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        report, "CHAPTERS", report.CHAPTERS + [("synthetic", "Synthetic", "synthetic_chapter")]
    )
    keys = [*chapters, "synthetic"]
    page = report.run_tour(tmp_path / "report", fast=True, only=keys, seed=0)
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    for key in keys:
        assert key in results and results[key]["seconds"] >= 0 and results[key]["cpu_seconds"] >= 0
    assert results["synthetic"]["answer"] == 42 and results["synthetic"]["mode"] == "fast"
    timings = results["timings"]
    assert timings["mode"] == "fast" and timings["budget_seconds"] == report.BUDGETS["fast"]
    assert set(timings["chapters"]) == set(keys)
    assert math.isclose(timings["chapters"]["synthetic"], results["synthetic"]["seconds"])
    assert any(row["model"] == "Toy" for row in results["model_zoo"])
    assert {"torch", "pyro", "python"} <= set(results["machine"])
    return page, keys


def _existing(keys):
    return [key for key, _, module in report.CHAPTERS if key in keys and importlib.util.find_spec(module)]


def test_report_files_without_browser(tmp_path, monkeypatch):
    page, _ = _tour(tmp_path, monkeypatch, [])
    text = page.read_text()
    assert "&lt;b&gt;escaped&lt;/b&gt;" in text
    assert len(_images(text).sources) == 2 and all(_decode(src)[0] > 0 for src in _images(text).sources)
    # the overview figure comes first, before the chapters; each figure appears once
    assert text.index("the overview line") < text.index("id='synthetic'") < text.index("a parabola")
    assert text.count("alt='the overview line'") == 1
    # a long table folds below its chapter, a short one does not; neither appears twice
    folded = re.findall(r"<details><summary>([^<]*)</summary>", text)
    assert any(summary.startswith("a long table (40 rows)") for summary in folded)
    assert not any(summary.startswith("a table") for summary in folded)
    assert text.count("<td>39</td>") == 1
    assert "Model zoo" not in text  # the cross-chapter zoo is in results.json, not a second table


def test_tour_modes_and_estimate(tmp_path, monkeypatch, capsys):
    (tmp_path / "synthetic_chapter.py").write_text(SYNTHETIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(report, "CHAPTERS", [("synthetic", "Synthetic", "synthetic_chapter")])
    monkeypatch.setitem(report.ESTIMATES, "synthetic", (1.0, 61.0, 600.0))
    report.run_tour(tmp_path / "full", full=True)
    results = json.loads((tmp_path / "full" / "results.json").read_text())
    assert results["synthetic"]["mode"] == "full" and results["timings"]["budget_seconds"] == 1200.0
    err = capsys.readouterr().err
    assert "estimated 10:00" in err and "default ≈ 1:01" in err  # the estimate printed up front
    assert "elapsed" in err and "left" in err  # the progress line
    with pytest.raises(report.OptionError):
        report.run_tour(tmp_path / "both", fast=True, full=True)


def test_benchmark_quotes_carry_date_and_command(tmp_path, monkeypatch):
    results = {
        "benchmarks": {
            "gan_modes": {"status": "ok", "date": "2026-01-02 03:04 UTC", "command": ["benchmarks/g.py"],
                          "results": {"gan_modes.json": {"summary": {}}}},
            "broken": {"status": "failed (exit 1)", "results": {}},
        }
    }  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    quote = tour_context.load_benchmark("gan_modes", path)
    assert quote.date == "2026-01-02 03:04 UTC" and quote.command == "benchmarks/g.py"
    assert "2026-01-02 03:04 UTC" in quote.source() and "python benchmarks/g.py" in quote.source()
    assert tour_context.load_benchmark("broken", path) is None
    assert tour_context.load_benchmark("missing", path) is None
    assert tour_context.load_benchmark("gan_modes", tmp_path / "absent.json") is None
    monkeypatch.setattr(tour_context, "BENCHMARK_RESULTS", path)
    ctx = tour_context.TourContext()
    assert ctx.benchmark("gan_modes").date == quote.date
    assert ctx.numbers["quoted"]["gan_modes"] == {"date": quote.date, "command": "benchmarks/g.py"}


def test_shared_fits_are_computed_once_per_run():
    calls = []
    shared = {}
    first, second = tour_context.TourContext(shared=shared), tour_context.TourContext(shared=shared)
    assert first.once("fit", lambda: calls.append(1) or "model") == "model"
    assert second.once("fit", lambda: calls.append(1) or "other") == "model"
    assert calls == [1]
    assert tour_context.TourContext().once("fit", lambda: "fresh") == "fresh"  # a new run starts empty


@needs_chromium
def test_report_loads_in_chromium(tmp_path, monkeypatch):
    page, keys = _tour(tmp_path, monkeypatch, _existing({"data"}))
    _check_page(page, tmp_path, keys)


@needs_chromium
def test_first_screen_check_catches_a_page_that_opens_with_tables(tmp_path):
    rows = "".join(f"<tr><td>{i}</td></tr>" for i in range(80))
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    page = tmp_path / "tables_first.html"
    page.write_text(
        f"<!DOCTYPE html><html><body><table>{rows}</table><figure><img src='{image}'></figure></body></html>"
    )
    with pytest.raises(AssertionError):
        _check_first_screen(page, tmp_path)
    good = tmp_path / "figure_first.html"
    good.write_text(
        f"<!DOCTYPE html><html><body><figure><img src='{image}'></figure><table>{rows}</table></body></html>"
    )
    _check_first_screen(good, tmp_path)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "steelblue").save(buffer, format="PNG")
    return buffer.getvalue()


@needs_chromium
def test_browser_check_catches_console_errors_and_broken_images(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script></body></html>")
    _, console = _browse(bad, tmp_path)
    assert any("undefinedFunction" in line for line in console)
    with pytest.raises(AssertionError):
        _decode("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nbroken").decode())
    with pytest.raises(AssertionError):
        _decode("missing.png")


@pytest.mark.slow
@needs_chromium
def test_full_fast_tour_loads_in_chromium(tmp_path, monkeypatch):
    page, keys = _tour(tmp_path, monkeypatch, _existing({key for key, _, _ in report.CHAPTERS}))
    _check_page(page, tmp_path, keys)
