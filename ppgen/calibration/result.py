"""``Calibration``: what :func:`ppgen.calibrate` returns — the per-simulation records, the table, the
picture, and save/load."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppgen.calibration.plot import plot_calibration  # imports matplotlib only when called
from ppgen.calibration.uniformity import chi_square_p, coverage, gamma_p
from ppgen.errors import FitFileError

__all__ = ["Calibration", "LEVELS"]

FILE_FORMAT = "ppgen-calibration"
#: The central intervals whose coverage the table reports.
LEVELS = (0.5, 0.8, 0.95)


@dataclass
class Calibration:
    """Simulation-based calibration of several methods on one program at one data size.

    Attributes:
        records: one dict per simulation, by index: the true global values and, per method, its
            status (``ok``, ``not_converged``, ``failed``), ranks, CDF at the truth, point estimate.
        methods: the methods' names, in the order asked.
        sites: ``{global site: shape}``, the latents calibrated.
        num_draws: ``L``, the draws each rank is taken among (ranks are in ``0..L``).
        seed: the run's seed; every simulation's seed derives from ``(seed, index)``.
        options: the fit options per method.
        elapsed: wall time of the run in seconds.
    """

    records: list[dict[str, Any]]
    methods: list[str]
    sites: dict[str, tuple[int, ...]]
    num_draws: int
    seed: int
    options: dict[str, dict] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def num_simulations(self) -> int:
        return len(self.records)

    def _elements(self):
        for site, shape in self.sites.items():
            for index in np.ndindex(*shape):
                label = site if not shape else f"{site}[{','.join(map(str, index))}]"
                yield site, index, label

    def ranks(self, method: str, parameter: str) -> np.ndarray:
        """The ranks of one parameter element (``"alpha[3]"``) under ``method``, failed fits left out."""
        for site, index, label in self._elements():
            if label == parameter:
                return self._values(method, "ranks", site, index).astype(np.int64)
        raise KeyError(
            f"Expected a parameter among {[lab for *_, lab in self._elements()]}, got {parameter!r}."
        )

    def _values(self, method: str, key: str, site: str, index: tuple) -> np.ndarray:
        found = [r["methods"][method] for r in self.records]
        return np.array([np.asarray(m[key][site])[index] for m in found if m["status"] != "failed"])

    def _truth(self, method: str, site: str, index: tuple) -> np.ndarray:
        rows = [r for r in self.records if r["methods"][method]["status"] != "failed"]
        return np.array([np.asarray(r["truth"][site])[index] for r in rows])

    def failures(self) -> pd.DataFrame:
        """One row per failed fit: method, simulation, the error."""
        rows = [
            {"method": name, "simulation": r["index"], "error": m["error"]}
            for r in self.records
            for name, m in r["methods"].items()
            if m["status"] == "failed"
        ]
        return pd.DataFrame(rows, columns=["method", "simulation", "error"])

    def table(self, alpha: float = 0.01) -> pd.DataFrame:
        """One row per method × parameter element.

        Columns: ``n`` (simulations ranked), ``failed`` and ``not_converged`` (counts; failed fits have
        no rank and are never dropped silently), ``gamma_p`` (Säilynoja et al.'s ECDF test) and
        ``chi2_p`` (binned ranks), ``cover50/80/95`` with ``*_se`` (binomial), ``mae`` (mean absolute
        error of the point estimate), ``seconds`` (mean per fit), ``calibrated`` (both p-values ≥
        ``alpha`` and no failed fit).
        """
        rows = []
        for method in self.methods:
            statuses = [r["methods"][method]["status"] for r in self.records]
            seconds = np.mean([r["methods"][method].get("seconds", np.nan) for r in self.records])
            failed, stalled = statuses.count("failed"), statuses.count("not_converged")
            for site, index, label in self._elements():
                ranks = self._values(method, "ranks", site, index) if failed < len(statuses) else np.array([])
                row = {"method": method, "parameter": label, "n": len(ranks), "failed": failed}
                row["not_converged"] = stalled
                row["gamma_p"] = gamma_p(ranks, self.num_draws, seed=self.seed) if len(ranks) else np.nan
                row["chi2_p"] = chi_square_p(ranks, self.num_draws) if len(ranks) else np.nan
                cdf = self._values(method, "cdf", site, index) if len(ranks) else np.array([])
                for level in LEVELS:
                    c, se = coverage(cdf, level)
                    row[f"cover{round(level * 100)}"], row[f"cover{round(level * 100)}_se"] = c, se
                if len(ranks):
                    estimate = self._values(method, "estimate", site, index)
                    row["mae"] = float(np.abs(estimate - self._truth(method, site, index)).mean())
                else:
                    row["mae"] = np.nan
                row["seconds"] = float(seconds)
                row["calibrated"] = bool(row["gamma_p"] >= alpha and row["chi2_p"] >= alpha and not failed)
                rows.append(row)
        table = pd.DataFrame(rows)
        table.attrs.update(num_simulations=self.num_simulations, num_draws=self.num_draws, seed=self.seed)
        return table

    def plot(self, kind: str = "ecdf", parameters: list[str] | None = None, axes=None):
        """ECDF-difference plots of the ranks with the 95 % simultaneous band, one panel per method
        (``kind="hist"``: rank histograms with the 99 % band of a uniform bin count)."""
        return plot_calibration(self, kind=kind, parameters=parameters, axes=axes)

    def __repr__(self) -> str:
        return (
            f"Calibration({self.num_simulations} simulations × methods {self.methods}, L={self.num_draws}, "
            f"sites {list(self.sites)})"
        )

    # --------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the calibration to ``path`` (a pickle of plain arrays; :meth:`load` reads it)."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        payload = {"format": FILE_FORMAT, "version": 1, "calibration": self.__dict__}
        with open(partial, "wb") as handle:
            pickle.dump(payload, handle)
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration written by :meth:`save`."""
        try:
            with open(path, "rb") as handle:
                payload = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError) as err:
            raise FitFileError(
                f"Expected a calibration file written by Calibration.save, but {err}"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            raise FitFileError(f"Expected a calibration file written by Calibration.save, but got {path}.")
        return cls(**payload["calibration"])
