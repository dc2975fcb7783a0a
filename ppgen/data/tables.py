"""Small real data tables shipped with ppgen (read with pandas; nothing is downloaded).

- ``EfronMorrisBB.txt`` (tab-separated, 18 rows): Efron & Morris (1975), "Data analysis using
  Stein's estimator and its generalizations", JASA 70, 311–319 — each player's hits in the first
  45 at-bats of 1970 and the rest of the season; the file Pyro's baseball example reads.
- ``rugged_data.csv`` (latin-1, 234 rows, 170 with ``rgdppc_2000``): Nunn & Puga (2012),
  "Ruggedness: The blessing of bad geography in Africa", Review of Economics and Statistics
  94(1), 20–36 — the data of Pyro's Bayesian regression tutorial.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["baseball", "rugged", "BASEBALL_SOURCE", "RUGGED_SOURCE"]

BASEBALL_SOURCE = (
    "Efron & Morris (1975), Data analysis using Stein's estimator and its generalizations, "
    "JASA 70, 311-319 (the file of Pyro's baseball example)"
)
RUGGED_SOURCE = (
    "Nunn & Puga (2012), Ruggedness: the blessing of bad geography in Africa, Review of Economics "
    "and Statistics 94(1), 20-36 (the data of Pyro's Bayesian regression tutorial)"
)


def baseball():
    """18 players: ``At-Bats``, ``Hits`` (first 45 at-bats), ``RemainingAverage``, ``SeasonHits``, ..."""
    import pandas as pd

    with (
        resources.files("ppgen.data").joinpath("files", "EfronMorrisBB.txt").open("r", encoding="utf-8") as f
    ):
        return pd.read_csv(f, sep="\t")


def rugged():
    """The 170 countries with a GDP value: ``rugged``, ``cont_africa``, ``rgdppc_2000``, ...."""
    import pandas as pd

    with (
        resources.files("ppgen.data").joinpath("files", "rugged_data.csv").open("r", encoding="latin-1") as f
    ):
        table = pd.read_csv(f)
    return table[table["rgdppc_2000"].notna()].reset_index(drop=True)
