"""The tour report in a real headless browser (Debian's chromium): the page loads with no
console messages, and every <img> is an embedded data: URI that decodes to a valid image.

The fast test renders a small synthetic chapter plus the cheap "data" chapter when it
exists; the slow one renders every chapter that exists (``--fast`` mode)."""

import base64
import importlib.util
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from PIL import Image

from ppgen import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does this)"
)

SYNTHETIC = """
import matplotlib.pyplot as plt
import pandas as pd


def run(ctx):
    ctx.text("A synthetic chapter: one figure, one table, one number <b>escaped</b>.")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    ctx.figure(fig, "a parabola")
    ctx.table(pd.DataFrame({"model": ["a", "b"], "loglik": [-1.5, float("nan")]}), "a table")
    ctx.number("answer", 42)
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
        assert key in results and results[key]["seconds"] >= 0
    assert results["synthetic"]["answer"] == 42
    assert any(row["model"] == "Toy" for row in results["model_zoo"])
    assert {"torch", "pyro", "python"} <= set(results["machine"])
    return page, keys


def _existing(keys):
    return [key for key, _, module in report.CHAPTERS if key in keys and importlib.util.find_spec(module)]


def test_report_files_without_browser(tmp_path, monkeypatch):
    page, _ = _tour(tmp_path, monkeypatch, [])
    text = page.read_text()
    assert "Model zoo" in text and "&lt;b&gt;escaped&lt;/b&gt;" in text
    assert len(_images(text).sources) == 1 and _decode(_images(text).sources[0])[0] > 0


@needs_chromium
def test_report_loads_in_chromium(tmp_path, monkeypatch):
    page, keys = _tour(tmp_path, monkeypatch, _existing({"data"}))
    _check_page(page, tmp_path, keys)


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
