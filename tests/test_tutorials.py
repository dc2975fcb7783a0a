"""Every tutorial runs top to bottom in fast mode (PPGEN_FAST=1), as a user would run it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(script, tmp_path):
    env = {**os.environ, "PPGEN_FAST": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    env.pop("PPGEN_FULL", None)
    # one intra-op thread, as the suite itself runs: on a busy 2-core machine two threads make
    # these small-tensor scripts several times slower
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "a tutorial prints the numbers it discusses"
    last = result.stdout.strip().splitlines()[-1]
    assert f"tutorial {script.name[:2]} ran in" in last and "(fast mode)" in last, last
