"""The built-in datasets: each one's loader, citation and licence, registered with
:func:`ppgen.data.register` when :mod:`ppgen.data` is imported.

Every dataset ships inside the package (or comes from a PyPI package): nothing is downloaded at
run time.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

import numpy as np

from ppgen.data import synthetic as _toy
from ppgen.data import tables as _tables
from ppgen.data.registry import _LABELLED_SYNTHETIC, GENERATION_SEED, Dataset, _draw, register


def _read_csv(filename: str) -> np.ndarray:
    with resources.files("ppgen.data").joinpath("files", filename).open("r", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return np.asarray(rows[1:], dtype=np.float64)


register(
    Dataset(
        name="faithful",
        loader=lambda: _read_csv("faithful.csv"),
        kind="continuous",
        source="Old Faithful geyser, Yellowstone (R datasets::faithful; Härdle 1991; "
        "Azzalini & Bowman 1990, Applied Statistics 39, 357-365)",
        licence="public domain (R datasets)",
        description="272 eruptions: duration (min), waiting time to next eruption (min)",
        shape=(272, 2),
    )
)


# --------------------------------------------------------------- small real tables
register(
    Dataset(
        name="baseball",
        loader=lambda: _tables.baseball().select_dtypes("number").to_numpy(np.float64),
        table=_tables.baseball,
        kind="table",
        source=_tables.BASEBALL_SOURCE,
        licence="published data (Efron & Morris 1975)",
        description="18 players' hits in their first 45 at-bats of 1970 and the rest of the season",
        shape=(18, 10),
    )
)
register(
    Dataset(
        name="rugged",
        loader=lambda: _tables.rugged().select_dtypes("number").to_numpy(np.float64),
        table=_tables.rugged,
        kind="table",
        source=_tables.RUGGED_SOURCE,
        licence="replication data of Nunn & Puga (2012), as distributed with Pyro's tutorial",
        description="170 countries with GDP per capita in 2000: ruggedness, cont_africa, rgdppc_2000, ...",
        shape=(170, 51),
    )
)


# --------------------------------------------------------------- small real datasets
@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    return bunch.data / 16.0, bunch.target.astype(np.int64)


_DIGITS_SOURCE = (
    "scikit-learn load_digits (bundled): UCI Optical Recognition of Handwritten Digits, "
    "Alpaydin & Kaynak 1998"
)
_DIGITS_LICENCE = "CC BY 4.0 (UCI); shipped in scikit-learn (BSD-3-Clause)"

register(
    Dataset(
        name="digits",
        loader=lambda: _digits()[0],
        labels=lambda: _digits()[1],
        kind="continuous",
        source=_DIGITS_SOURCE,
        licence=_DIGITS_LICENCE,
        description="1797 handwritten digits, 8x8 grey levels 0..16 scaled to [0, 1]; labels 0-9",
        shape=(1797, 64),
    )
)
register(
    Dataset(
        name="digits-binary",
        loader=lambda: (_digits()[0] > 0.5).astype(np.float64),
        labels=lambda: _digits()[1],
        kind="binary",
        source=_DIGITS_SOURCE,
        licence=_DIGITS_LICENCE,
        description="the digits binarized: pixel = 1 where the scaled grey level > 0.5; labels 0-9",
        shape=(1797, 64),
    )
)

register(
    Dataset(
        name="digits-17",
        loader=lambda: np.rint(_digits()[0] * 16.0),
        labels=lambda: _digits()[1],
        kind="discrete",
        source=_DIGITS_SOURCE,
        licence=_DIGITS_LICENCE,
        description="the digits as integer grey levels 0..16 (17 values), scikit-learn's row order; "
        "fixed splits train = rows 0-999, val = 1000-1349, test = 1350-1796",
        shape=(1797, 64),
        splits={"train": (0, 1000), "val": (1000, 1350), "test": (1350, 1797)},
    )
)

#: The 11-point 1-D sample of the source text's KDE bandwidth figure.
TOY11 = (-2.3, -1.8, -1.4, -0.6, -0.2, 0.05, 0.25, 0.9, 1.3, 1.8, 2.25)

register(
    Dataset(
        name="toy11",
        loader=lambda: np.asarray(TOY11, dtype=np.float64)[:, None],
        kind="continuous",
        source="the 11-point toy sample of the KDE section of 'Generative Modeling - From Datasets to GANs'",
        licence="public domain (11 numbers)",
        description="11 points on [-2.3, 2.25], shape (11, 1)",
        shape=(11, 1),
    )
)


# ------------------------------------------------------------- synthetic datasets
def _synthetic(
    name: str,
    sampler: Callable,
    size: tuple[int, int],
    description: str,
    source: str,
    log_prob: Callable | None = None,
    labelled: bool = True,
) -> None:
    register(
        Dataset(
            name=name,
            loader=lambda: _draw(name, size[0], GENERATION_SEED)[0],
            kind="continuous",
            source=source,
            licence="generated by ppgen (MIT)",
            description=description,
            shape=size,
            log_prob=log_prob,
            sampler=sampler,
        )
    )
    if labelled:
        _LABELLED_SYNTHETIC.add(name)


_GAN_BENCH = "mode-collapse benchmark (Metz et al. 2017 unrolled GANs; Srivastava et al. 2017 VEEGAN)"

_synthetic(
    "ring8",
    _toy.mixture_sampler(_toy.RING8_MEANS, _toy.RING8_STD, np.full(8, 1 / 8)),
    (2000, 2),
    f"8 equal Gaussians on a circle of radius {_toy.RING8_RADIUS}, std {_toy.RING8_STD}; labels = component",
    _GAN_BENCH,
    _toy.mixture_log_prob(_toy.RING8_MEANS, _toy.RING8_STD, np.full(8, 1 / 8)),
)
_synthetic(
    "grid25",
    _toy.mixture_sampler(_toy.GRID25_MEANS, _toy.GRID25_STD, np.full(25, 1 / 25)),
    (2500, 2),
    f"25 equal Gaussians at {{-4,-2,0,2,4}}^2, std {_toy.GRID25_STD}; labels = component",
    _GAN_BENCH,
    _toy.mixture_log_prob(_toy.GRID25_MEANS, _toy.GRID25_STD, np.full(25, 1 / 25)),
)
_synthetic(
    "moons",
    _toy.moons,
    (2000, 2),
    "two interleaved half circles, Gaussian noise 0.1; labels = moon",
    "as scikit-learn make_moons",
)
_synthetic(
    "pinwheel",
    _toy.pinwheel,
    (2000, 2),
    "five curved arms; labels = arm",
    "Johnson et al. 2016 (SVAE); scale as in FFJORD (Grathwohl et al. 2019)",
)
_synthetic(
    "checkerboard",
    _toy.checkerboard,
    (2000, 2),
    "uniform on 8 of 16 squares of side 2 in [-4, 4]^2",
    "FFJORD toy data (Grathwohl et al. 2019)",
    _toy.checkerboard_log_prob,
    labelled=False,
)
_synthetic(
    "spirals",
    _toy.spirals,
    (2000, 2),
    "two interleaved spirals; labels = spiral",
    "FFJORD toy data '2spirals' (Grathwohl et al. 2019)",
)
_synthetic(
    "bimodal1d",
    _toy.mixture_sampler(_toy.BIMODAL1D["means"], _toy.BIMODAL1D["stds"], _toy.BIMODAL1D["weights"]),
    (1000, 1),
    "0.3 N(-2, 0.5^2) + 0.7 N(1.5, 0.8^2); labels = component",
    "ppgen",
    _toy.mixture_log_prob(_toy.BIMODAL1D["means"], _toy.BIMODAL1D["stds"], _toy.BIMODAL1D["weights"]),
)
