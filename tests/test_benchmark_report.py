"""The benchmark report: ``benchmarks/headline.py`` (used by ``run.py``) turns each script's JSON
into the summary rows that become README's performance table, and rewrites only the table between
the markers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def headline(run):
    import headline  # run.py put benchmarks/ on the path

    return headline


def _record(name, data):
    return {"status": "ok", "seconds": 1.0, "results": {f"{name}.json": data}}


RUNS = {
    "kde": _record(
        "kde",
        {
            "n_train": 10000,
            "n_eval": 10000,
            "d": 2,
            "scipy_s": 8.0,
            "ppgen": [
                {
                    "torch_threads": 2,
                    "ppgen_f64_s": 0.2,
                    "speedup_vs_scipy_f64": 40.0,
                    "max_abs_diff_f64": 1e-13,
                },
                {
                    "torch_threads": 1,
                    "ppgen_f64_s": 0.5,
                    "speedup_vs_scipy_f64": 16.0,
                    "max_abs_diff_f64": 2e-13,
                },
            ],
            "sklearn": {"sklearn_s": 6.0, "speedup_vs_sklearn": 12.0},
        },
    ),
    "em": _record(
        "em",
        {
            "d": 16,
            "k": 8,
            "rows": [
                {
                    "n": 100000,
                    "ppgen_s_per_iter": 0.1,
                    "sklearn_s_per_iter": 0.4,
                    "speedup_f64": 4.0,
                    "loglik_diff_f64": 0.0,
                    "ppgen_peak_mb": 30.0,
                    "sklearn_peak_mb": 60.0,
                }
            ],
        },
    ),
    "nuts": _record(
        "nuts",
        {
            "warmup": 500,
            "draws": 1000,
            "rows": {
                "pyro NUTS": {"seconds": 10.0, "ess_tau_per_s": 50.0},
                "ppgen mcmc": {"seconds": 10.5, "ess_tau_per_s": 48.0},
            },
        },
    ),
    "gan_modes": {"status": "failed (exit 1)", "seconds": 3.0, "results": {}},
}


def test_headline_rows_quote_each_benchmark_json(headline):
    rows = headline.headline(RUNS)
    assert [r["script"] for r in rows] == ["kde.py", "em.py", "nuts.py"]  # failed/missing: no row
    kde, em, nuts = rows
    assert kde["ppgen"] == "0.5 s" and "16.0× faster" in kde["ratio"]  # the one-thread row
    assert "d = 16, K = 8" in em["task"] and "4.00× faster" in em["ratio"]
    assert em["target"].startswith("target ≥ 5×: not met (limit: ") and "target" not in kde
    assert "1.05× Pyro's time" in nuts["ratio"] and "NumPyro" not in nuts["reference"]
    for line in headline.headline_table(rows)[2:]:
        assert line.count("|") == 7  # no stray pipes inside cells


def test_target_verdicts_follow_the_direction_of_each_goal(run):
    import targets  # run.py put benchmarks/ on the path

    assert targets.verdict("em", 5.0) == "target ≥ 5×: met"
    assert targets.verdict("mle", 1.2) == "target ≤ 1.2×: met"
    assert targets.verdict("mle", 1.21).startswith("target ≤ 1.2×: not met (limit: ")
    assert targets.verdict("program", 1.29).endswith("met")


def test_update_readme_replaces_only_the_marked_table(headline, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{headline.README_START}\nold table\n{headline.README_END}\nafter\n")
    machine = {"date": "today", "cpu": "cpu", "cores": 2, "load_average": [0.5], "torch": "t", "pyro": "p"}
    assert headline.update_readme(machine, headline.headline(RUNS), readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{headline.README_END}\nafter\n")
    assert "old table" not in text and "`benchmarks/kde.py`" in text and "2 cores" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers")
    assert not headline.update_readme(machine, [], plain) and plain.read_text() == "no markers"


def test_project_readme_has_the_markers(headline):
    text = (ROOT / "README.md").read_text()
    assert text.count(headline.README_START) == 1 and text.count(headline.README_END) == 1


def test_a_benchmark_whose_script_is_missing_is_skipped(run, monkeypatch):
    monkeypatch.setitem(run.BENCHMARKS, "no_such_benchmark", ([], [], {}, ["no_such_benchmark.json"]))
    record = run.run_benchmark("no_such_benchmark", quick=True, timeout=1)
    assert record == {"status": "missing", "seconds": 0.0}
    assert "cli_startup" in run.BENCHMARKS  # its script may land later: skipped until then
