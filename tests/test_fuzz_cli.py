"""Fuzzing the CLI with malformed inputs: bad data files, options, fit files and commands, in process
and through ``python -m ppgen``.

Every input must end in a clean error: non-zero exit, one line on stderr, no "Traceback" and no
"unexpected" (the CLI's wrapper for a non-ppgen exception). The tally is ``SUMMARY`` in
``tests/fuzzing.py`` (printed with ``pytest -s``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from ppgen.app import cli
from ppgen.errors import ConvergenceWarning
from tests.fuzzing import SUMMARY, corrupt_files, fit_gaussian, record


@pytest.fixture(scope="module")
def gaussian_fit():
    return fit_gaussian()


def _cli_cases(tmp_path, gaussian_fit):
    files = corrupt_files(tmp_path, gaussian_fit)

    def csv(name, text):
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)

    npy = tmp_path / "rank3.npy"
    np.save(npy, np.zeros((3, 2, 2)))
    good = str(files["missing"].with_name("good.pt"))
    data = {
        "missing-csv": "/nonexistent/data.csv",
        "strings-csv": csv("s.csv", "a,b\nx,y\nz,w\n"),
        "nan-csv": csv("n.csv", "a,b\n1,nan\n2,3\n"),
        "inf-csv": csv("i.csv", "a,b\n1,inf\n2,3\n"),
        "empty-csv": csv("e.csv", ""),
        "header-only-csv": csv("h.csv", "a,b\n"),
        "ragged-csv": csv("r.csv", "1,2\n3\n4,5,6\n"),
        "huge-csv": csv("u.csv", "a,b\n1e300,1e300\n-1e300,1e300\n3e300,-2e300\n"),
        "rank3-npy": str(npy),
        "unknown-dataset": "nope",
        "txt-file": csv("t.txt", "1 2\n3 4\n"),
    }
    cases = [
        ["fit", "gaussian", "--data", path, "--method", "exact", "--out", str(tmp_path / "o.pt")]
        for path in data.values()
    ]
    nonbinary = csv("nb.csv", "a,b\n0.5,2\n3,0.5\n2,1.5\n0.5,4\n")  # every row invalid: any split
    cases += [
        ["fit", "bmm", "--data", nonbinary, "--method", "em", "--out", str(tmp_path / "o.pt")],
        ["fit", "beta_bernoulli", "--data", nonbinary, "--out", str(tmp_path / "o.pt")],
        [
            "fit",
            "dirichlet_categorical",
            "--data",
            csv("c.csv", "x\n0.5\n1.5\n2.5\n0.1\n"),
            "--out",
            str(tmp_path / "o.pt"),
        ],
        [
            "fit",
            "gamma_poisson",
            "--data",
            csv("p.csv", "x\n-1\n-2\n-3\n-4\n"),
            "--out",
            str(tmp_path / "o.pt"),
        ],
        ["fit", "nomodel", "--data", "faithful"],
        ["fit", "gaussian", "--data", "faithful", "--method", "bogus"],
        ["fit", "gaussian", "--data", "faithful", "--method", "mcmc"],
        ["fit", "kde", "--data", "faithful", "--method", "mle"],
        ["fit", "gaussian", "--data", "faithful", "--option", "lr"],
        ["fit", "gaussian", "--data", "faithful", "--option", "=3"],
        ["fit", "gaussian", "--data", "faithful", "--option", "bogus=1", "--method", "exact"],
        ["fit", "gaussian", "--data", "faithful", "--option", "num_steps=-1", "--method", "mle"],
        ["fit", "gaussian", "--data", "faithful", "--option", "covariance=banana", "--method", "exact"],
        ["fit", "gmm", "--data", "faithful", "--option", "n_components=0", "--method", "em"],
        ["fit", "gmm", "--data", "faithful", "--option", "n_components=abc", "--method", "em"],
        ["fit", "gaussian", "--data", "faithful", "--out", "/nonexistent/dir/fit.pt", "--method", "exact"],
        ["fit", "gaussian", "--data", "faithful", "--seed", "x"],
        ["fit", "gaussian"],
        ["sample", good, "-n", "-5", "--out", str(tmp_path / "s.npy")],
        ["sample", good, "-n", "0", "--out", str(tmp_path / "s.npy")],
        ["sample", good, "-n", "3", "--out", str(tmp_path / "s.bogus")],
        ["sample", good, "-n", "3", "--out", "/nonexistent/dir/s.npy"],
        ["evaluate", good, "--data", data["strings-csv"]],
        ["evaluate", good, "--data", csv("w.csv", "a,b,c\n1,2,3\n4,5,6\n")],
        ["evaluate", good, "--data", "nope"],
        ["compare", good, str(files["missing"]), "--data", "faithful"],
        ["bogus-command"],
        ["tutorial", "999"],
    ]
    for path in files.values():
        cases.append(["sample", str(path), "-n", "3", "--out", str(tmp_path / "s.npy")])
        cases.append(["evaluate", str(path), "--data", "faithful"])
    return cases


def test_fuzz_cli_in_process(tmp_path, gaussian_fit, capsys):
    test, failures = "cli", []
    for argv in _cli_cases(tmp_path, gaussian_fit):
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                code = cli.main(argv)
            except BaseException as err:  # noqa: BLE001
                code, _ = None, err
        err = capsys.readouterr().err.strip()
        lines = [line for line in err.splitlines() if line.strip()]
        usage = code == 2 and err.startswith("usage:")  # argparse's own message (usage + error line)
        clean = code not in (0, None) and "Traceback" not in err and "unexpected" not in err
        clean = clean and (len(lines) == 1 or usage)
        record(test, "clean error" if clean else "UNCLEAN")
        if not clean:
            failures.append(f"{argv}: exit {code}, stderr {err[:200]!r}")
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not failures, "\n".join(failures)


def test_fuzz_cli_subprocess(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01 not a fit")
    for argv in (
        ["fit", "gaussian", "--data", str(tmp_path / "missing.csv")],
        ["sample", str(junk), "-n", "3"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "ppgen", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        err = run.stderr.strip()
        assert run.returncode != 0 and "Traceback" not in err and "unexpected" not in err, err
        assert len(err.splitlines()) == 1, err
        record("cli-subprocess", "clean error")
    print(f"\ncli-subprocess: {dict(SUMMARY['cli-subprocess'])}")
