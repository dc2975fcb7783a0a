"""The fuzzing harness test_fuzz_api.py and test_fuzz_cli.py share: malformed inputs, one case runner
and the tally of outcomes.

A case ends well in a :class:`PpgenError` or a correct result (finite parameters, no NaN log-density on
the training data) — never another exception type, a hang or a silently wrong answer. Each test counts
its inputs and outcomes in ``SUMMARY`` (printed with ``pytest -s``).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import ppgen
from ppgen.errors import ConvergenceWarning, PpgenError
from ppgen.models import Gaussian

SUMMARY: dict[str, Counter] = {}

#: Real bugs found by fuzzing, reported to the owners; (case label prefix) -> reason.
KNOWN_BUGS: dict[str, str] = {}  # all three bugs fuzzing found are fixed; new ones go here

G = torch.Generator().manual_seed(0)
GOOD2 = torch.randn(30, 2, generator=G, dtype=torch.float64)


def _nan(x):
    x = x.clone()
    x[3, 0] = math.nan
    return x


def _inf(x):
    x = x.clone()
    x[5, 1] = math.inf
    return x


BAD_DATA = {
    "rank3": torch.randn(4, 3, 2, dtype=torch.float64),
    "rank0": torch.tensor(1.0, dtype=torch.float64),
    "empty": torch.zeros(0, 2, dtype=torch.float64),
    "one-row": GOOD2[:1],
    "nan": _nan(GOOD2),
    "inf": _inf(GOOD2),
    "huge-1e300": GOOD2 * 1e300,
    "tiny-1e-300": GOOD2 * 1e-300,
    "constant": torch.ones(30, 2, dtype=torch.float64),
    "string": "not-a-dataset",
    "list-of-strings": [["a", "b"], ["c", "d"]],
    "ragged": [[1.0, 2.0], [3.0]],
    "complex": torch.randn(10, 2, dtype=torch.complex64),
    "bool": torch.ones(10, 2, dtype=torch.bool),
    "object": object(),
    "none": None,
    "dict-without-x": {"y": GOOD2},
    "numpy-object": np.array([[1, "a"], [2, "b"]], dtype=object),
    "dataframe-strings": pd.DataFrame({"a": ["x", "y", "z"], "b": [1.0, 2.0, 3.0]}),
    "wrong-dim-3": torch.randn(30, 3, dtype=torch.float64),
    "wrong-dim-1": torch.randn(30, 1, dtype=torch.float64),
    "non-binary": torch.rand(30, 2, generator=G, dtype=torch.float64) * 2,
    "non-integer": torch.rand(30, 1, generator=G, dtype=torch.float64) * 2.5,
    "negative": -torch.rand(30, 1, generator=G, dtype=torch.float64),
    "codes-column": torch.randint(0, 3, (30, 1), generator=G).double(),
}


def record(test: str, outcome: str) -> None:
    """Count one outcome of ``test`` in ``SUMMARY``."""
    SUMMARY.setdefault(test, Counter())[outcome] += 1


def is_valid(fit: ppgen.Fit) -> bool:
    """A fit that did not raise must be a usable answer: finite parameters, no NaN density."""
    for value in fit.params.values():
        if (
            isinstance(value, torch.Tensor)
            and torch.is_floating_point(value)
            and not torch.isfinite(value).all()
        ):
            return False
    model = fit.model
    if fit.data is not None and ("log_prob" in model.capabilities or fit.is_bayesian) and fit.data.numel():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lp = fit.log_prob(fit.data)
        if torch.isnan(lp).any():
            return False
    return True


def run_case(test: str, label: str, call, check=None) -> str | None:
    """Run one fuzz case; return None when it ended well, else a description of the failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # Pyro warns before the loop's guard raises NonFiniteLossError: not a failure
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            result = call()
    except PpgenError:
        record(test, "PpgenError")
        return None
    except Exception as err:  # noqa: BLE001 - classifying every other exception is the point
        if any(label.startswith(key) for key in KNOWN_BUGS):
            record(test, "known bug")
            return None
        record(test, "CRASH")
        return f"{label}: {type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else ''}"
    if check is not None and not check(result):
        record(test, "WRONG")
        return f"{label}: returned an invalid result"
    record(test, "ok")
    return None


def fit_gaussian() -> ppgen.Fit:
    """The exact fit whose queries, saved file and corruptions of that file the tests feed bad inputs."""
    return ppgen.fit(Gaussian(dim=2), GOOD2, method="exact")


def corrupt_files(tmp_path: Path, gaussian_fit: ppgen.Fit) -> dict[str, Path]:
    """Paths that are not loadable fits: missing, empty, truncated, flipped, foreign or future files."""
    good = gaussian_fit.save(tmp_path / "good.pt")
    raw = good.read_bytes()
    files = {
        "missing": tmp_path / "missing.pt",
        "directory": tmp_path,
    }
    contents = {
        "empty": b"",
        "text": b"hello, not a fit\n",
        "random-bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "truncated-half": raw[: len(raw) // 2],
        "truncated-10": raw[:10],
        "flipped-bytes": raw[:200] + bytes(b ^ 0xFF for b in raw[200:400]) + raw[400:],
        "csv": b"a,b\n1,2\n",
    }
    for label, blob in contents.items():
        path = tmp_path / f"{label}.pt"
        path.write_bytes(blob)
        files[label] = path
    for label, payload in {
        "foreign-dict": {"weights": torch.zeros(3)},
        "foreign-tensor": torch.zeros(3),
        "future-version": {"format": "ppgen-fit", "version": 99, "fit": None},
        "not-a-fit": {"format": "ppgen-fit", "version": 1, "fit": "hello"},
    }.items():
        path = tmp_path / f"{label}.pt"
        torch.save(payload, path)
        files[label] = path
    return files
