"""Embedded datasets: the registry, ``load`` with its splits, and fresh draws of the synthetic sets.

Every dataset ships inside the package (or comes from a PyPI package): nothing is downloaded at
run time. The built-in entries are declared in :mod:`ppgen.data.catalog`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ppgen.errors import DataError

__all__ = [
    "load",
    "load_labels",
    "generate",
    "register",
    "datasets",
    "registry_table",
    "Dataset",
    "train_test_split",
    "GENERATION_SEED",
    "SPLITS",
]

#: Seed of the fixed draw that ``load`` returns for every synthetic dataset.
GENERATION_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """A registry entry: how to build a dataset and what it is."""

    name: str
    loader: Callable[[], np.ndarray]
    kind: str  # "continuous" | "binary" | "discrete"
    source: str
    licence: str
    description: str = ""
    shape: tuple[int, ...] | None = None
    log_prob: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, compare=False)
    #: Integer labels aligned with the rows of ``loader()`` (class, mixture component), if any.
    labels: Callable[[], np.ndarray] | None = field(default=None, compare=False)
    #: For synthetic sets: ``sampler(n, rng) -> (x, labels or None)`` draws fresh data.
    sampler: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray | None]] | None = field(
        default=None, compare=False
    )
    #: Fixed, unshuffled splits as ``{"train": (start, stop), "val": ..., "test": ...}`` row ranges
    #: (the published protocol of a data set); ``test_fraction`` and ``seed`` do not apply.
    splits: dict[str, tuple[int, int]] | None = field(default=None, compare=False)
    #: For tables with named (and text) columns: ``table() -> pandas.DataFrame``; ``load`` returns it.
    table: Callable[[], Any] | None = field(default=None, compare=False)


_REGISTRY: dict[str, Dataset] = {}
SPLITS = ("all", "train", "val", "test")


def register(dataset: Dataset) -> Dataset:
    """Add a dataset to the registry used by :func:`load`."""
    _REGISTRY[dataset.name] = dataset
    return dataset


def datasets() -> dict[str, Dataset]:
    """All registered datasets by name."""
    return dict(_REGISTRY)


def train_test_split(
    x: torch.Tensor, test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle rows with ``seed`` and split off ``test_fraction`` of them."""
    train, test = _split_index(x.shape[0], test_fraction, seed)
    return x[train], x[test]


def _split_index(n: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (train, test) of the reproducible shuffle used by every split."""
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise DataError(f"Expected 0 < test_fraction < 1, but got {test_fraction!r}.")
    n_test = max(1, int(round(n * test_fraction)))
    if n_test >= n:
        raise DataError(f"Expected at least 2 rows to split, but got {n}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_test:], order[:n_test]


def _entry(name: Any) -> Dataset:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise DataError(
            f"Expected a dataset name in {sorted(_REGISTRY)}, but got {name!r}; "
            "see ppgen.data.registry_table()."
        )
    return _REGISTRY[name]


def _select(rows: np.ndarray, split: str, test_fraction: float, seed: int) -> np.ndarray:
    if split not in SPLITS:
        raise DataError(f"Expected split in {SPLITS}, but got {split!r}.")
    if split == "all":
        return rows
    if split == "val":
        raise DataError(
            "Expected split in ('all', 'train', 'test') for a dataset without a fixed validation split, "
            "but got 'val'; hold out rows of the train split yourself, e.g. with train_test_split."
        )
    train, test = _split_index(rows.shape[0], test_fraction, seed)
    return rows[(train if split == "train" else test).numpy()]


def _select_entry(
    entry: Dataset, rows: np.ndarray, split: str, test_fraction: float, seed: int
) -> np.ndarray:
    if entry.splits is not None and split != "all":
        start, stop = entry.splits[split]
        return rows[start:stop]
    return _select(rows, split, test_fraction, seed)


def load(
    name: str,
    split: str = "all",
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    n: int | None = None,
    return_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Load an embedded dataset by name.

    Arguments:
        name: a registered name (see :func:`datasets` / :func:`registry_table`), e.g. ``"faithful"``.
        split: ``"all"``, ``"train"`` or ``"test"`` (a reproducible shuffle with ``seed``);
            datasets with fixed splits (``"digits-17"``) also have ``"val"`` and ignore the shuffle.
        test_fraction: share of rows in the test split.
        seed: seed of the shuffle that defines the split.
        dtype: floating dtype of the returned tensor.
        n: synthetic sets only: number of rows before splitting (default: the registered size),
            drawn with the fixed :data:`GENERATION_SEED`.
        return_labels: also return the integer labels (class or mixture component) of the
            same rows, as ``(x, labels)``; see :func:`load_labels`.

    Tables with named columns (``"baseball"``, ``"rugged"``) come back as a ``pandas.DataFrame``
    with the file's column names (the splits pick its rows); their columns are a program's
    arguments, e.g. ``{"at_bats": t["At-Bats"].to_numpy(), "hits": t["Hits"].to_numpy()}``.

    Example:
        >>> load("faithful").shape
        torch.Size([272, 2])
        >>> load("baseball")[["At-Bats", "Hits"]].shape
        (18, 2)
        >>> x, y = load("digits", "train", return_labels=True)
        >>> x.shape[0] == y.shape[0]
        True
    """
    entry = _entry(name)
    if split not in SPLITS:
        raise DataError(f"Expected split in {SPLITS}, but got {split!r}.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise DataError(f"Expected a floating dtype such as torch.float64, but got {dtype!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"Expected seed to be an integer, but got {seed!r}.")
    if entry.table is not None:
        table = entry.table()
        rows = _select_entry(entry, np.arange(len(table)), split, test_fraction, seed)
        return table.iloc[rows].reset_index(drop=True)
    x, labels = _rows(entry, n)
    x = torch.as_tensor(_select_entry(entry, x, split, test_fraction, seed), dtype=dtype)
    if not return_labels:
        return x
    if labels is None:
        raise DataError(_no_labels(name))
    return x, torch.as_tensor(_select_entry(entry, labels, split, test_fraction, seed), dtype=torch.long)


def load_labels(
    name: str, split: str = "all", *, test_fraction: float = 0.25, seed: int = 0, n: int | None = None
) -> torch.Tensor:
    """Integer labels (digit class, mixture component, ...) aligned with ``load(name, split, ...)``.

    Example:
        >>> load_labels("digits", "test")[:5].tolist()  # doctest: +SKIP
        [6, 9, 3, 7, 2]
    """
    return load(name, split, test_fraction=test_fraction, seed=seed, n=n, return_labels=True)[1]


def generate(name: str, n: int, seed: int = 0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Fresh draws of a synthetic dataset: ``n`` rows from its generator seeded with ``seed``."""
    entry = _entry(name)
    if entry.sampler is None:
        raise DataError(f"Expected a synthetic dataset ({_synthetic_names()}), but {name!r} is fixed data.")
    x, _ = _draw(name, _count(n), int(seed))
    return torch.tensor(x, dtype=dtype)


def registry_table():
    """A ``pandas.DataFrame`` of every dataset: name, shape, kind, source, licence, true density."""
    import pandas as pd

    rows = [
        {
            "name": d.name,
            "shape": d.shape,
            "kind": d.kind,
            "true log_prob": d.log_prob is not None,
            "labels": d.labels is not None or d.name in _LABELLED_SYNTHETIC,
            "source": d.source,
            "licence": d.licence,
            "description": d.description,
        }
        for d in _REGISTRY.values()
    ]
    return pd.DataFrame(rows)


def _rows(entry: Dataset, n: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    if entry.sampler is not None:
        size = entry.shape[0] if n is None else _count(n)
        x, labels = _draw(entry.name, size, GENERATION_SEED)
        return x.copy(), None if labels is None else labels.copy()
    if n is not None:
        raise DataError(
            f"Expected n only for synthetic datasets ({_synthetic_names()}), but {entry.name!r} is fixed "
            "data; drop n or take rows with x[:n]."
        )
    x = np.asarray(entry.loader())
    return x, None if entry.labels is None else np.asarray(entry.labels())


@lru_cache(maxsize=32)
def _draw(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    x, labels = _REGISTRY[name].sampler(n, np.random.default_rng(seed))
    x.setflags(write=False)
    if labels is not None:
        labels.setflags(write=False)
    return x, labels


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise DataError(f"Expected an integer number of rows n >= 2, but got {n!r}.")
    return int(n)


def _synthetic_names() -> list[str]:
    return sorted(k for k, d in _REGISTRY.items() if d.sampler is not None)


def _no_labels(name: str) -> str:
    have = sorted(k for k, d in _REGISTRY.items() if d.labels is not None or k in _LABELLED_SYNTHETIC)
    return f"Expected a dataset with labels ({have}), but {name!r} has none."


#: Synthetic datasets whose draws come with labels (the catalog adds to it).
_LABELLED_SYNTHETIC: set[str] = set()
