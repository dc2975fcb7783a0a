"""Data in, validated: ``as_tensor`` for user data, ``load`` for embedded datasets.

Every dataset ships inside the package (or comes from a PyPI package): nothing is
downloaded at run time.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch

from ppgen.errors import DataError

__all__ = ["as_tensor", "as_data", "load", "register", "datasets", "Dataset", "train_test_split"]


def as_tensor(
    data: Any,
    *,
    name: str = "data",
    dtype: torch.dtype | None = None,
    ndim: int | tuple[int, ...] | None = (1, 2),
    allow_empty: bool = False,
) -> torch.Tensor:
    """Convert numpy / torch / list / pandas data to a validated floating tensor.

    Arguments:
        data: the observations, one row per example.
        name: how the data is called in error messages.
        dtype: target floating dtype; by default float64 stays float64 and everything
            else becomes ``torch.get_default_dtype()``.
        ndim: allowed numbers of dimensions (``None`` allows any rank ≥ 1).
        allow_empty: accept zero rows.

    Raises:
        DataError: wrong type, non-numeric values, wrong rank, no rows, NaN or inf.
    """
    if isinstance(data, torch.Tensor):
        tensor = data.detach()
    else:
        if hasattr(data, "to_numpy"):  # pandas DataFrame / Series
            data = data.to_numpy()
        if isinstance(data, (str, bytes)) or data is None or isinstance(data, Mapping):
            raise DataError(f"Expected {name} as an array of numbers, but got {type(data).__name__}.")
        try:
            array = np.asarray(data)
        except (ValueError, TypeError) as err:
            raise DataError(f"Expected {name} as a rectangular array of numbers, but got {err}.") from err
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise DataError(
                f"Expected {name} to hold numbers, but got values of dtype {array.dtype}; "
                "convert strings/categories to numbers first."
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_complex():
        raise DataError(f"Expected real-valued {name}, but got complex dtype {tensor.dtype}.")
    if dtype is None:
        dtype = tensor.dtype if tensor.dtype in (torch.float64, torch.float32) else torch.get_default_dtype()
    tensor = tensor.to(dtype)
    if tensor.ndim == 0:
        raise DataError(f"Expected {name} with one row per example, but got a scalar; wrap it as [value].")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if tensor.ndim not in allowed:
            raise DataError(
                f"Expected {name} with {' or '.join(map(str, allowed))} dimensions (rows × features), "
                f"but got shape {tuple(tensor.shape)}."
            )
    if tensor.shape[0] == 0 and not allow_empty:
        raise DataError(
            f"Expected at least one row of {name}, but got an empty array of shape {tuple(tensor.shape)}."
        )
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(1).nonzero().flatten()
        raise DataError(
            f"Expected finite {name}, but got NaN or inf in {len(bad)} row(s) (first at row "
            f"{int(bad[0])}); drop or impute those rows first."
        )
    return tensor


def as_data(data: Any, *, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Split user data into the observed ``x`` and named covariates.

    A tensor-like is bound to ``x``; a mapping must hold ``"x"`` plus covariates that are
    passed to the model as keyword arguments.
    """
    if isinstance(data, str):
        data = load(data)
    if isinstance(data, Mapping):
        if "x" not in data:
            raise DataError(
                f"Expected a dict of data with key 'x' (the observed site), but got keys {sorted(data)}."
            )
        x = as_tensor(data["x"], name="x", dtype=dtype, ndim=None)
        covariates = {}
        for key, value in data.items():
            if key == "x":
                continue
            if isinstance(value, (int, float)):
                covariates[key] = value
                continue
            if isinstance(value, torch.Tensor) and not value.is_floating_point():
                covariates[key] = value
                continue
            array = np.asarray(value) if not isinstance(value, torch.Tensor) else None
            if array is not None and np.issubdtype(array.dtype, np.integer):
                covariates[key] = torch.as_tensor(array)
                continue
            covariates[key] = as_tensor(value, name=repr(key), dtype=x.dtype, ndim=None)
        return x, covariates
    x = as_tensor(data, name="x", dtype=dtype)
    return x, {}


# ------------------------------------------------------------------ embedded datasets
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


_REGISTRY: dict[str, Dataset] = {}
SPLITS = ("all", "train", "test")


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
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"Expected 0 < test_fraction < 1, but got {test_fraction}.")
    n = x.shape[0]
    n_test = max(1, int(round(n * test_fraction)))
    if n_test >= n:
        raise DataError(f"Expected at least 2 rows to split, but got {n}.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return x[order[n_test:]], x[order[:n_test]]


def load(
    name: str,
    split: str = "all",
    *,
    test_fraction: float = 0.25,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Load an embedded dataset by name.

    Arguments:
        name: a registered name (see :func:`datasets`), e.g. ``"faithful"``.
        split: ``"all"``, ``"train"`` or ``"test"`` (a reproducible shuffle with ``seed``).
        test_fraction: share of rows in the test split.
        seed: seed of the shuffle that defines the split.
        dtype: floating dtype of the returned tensor.

    Example:
        >>> load("faithful").shape
        torch.Size([272, 2])
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise DataError(f"Expected a dataset name in {sorted(_REGISTRY)}, but got {name!r}.")
    if split not in SPLITS:
        raise DataError(f"Expected split in {SPLITS}, but got {split!r}.")
    x = torch.as_tensor(np.asarray(_REGISTRY[name].loader()), dtype=dtype)
    if split == "all":
        return x
    train, test = train_test_split(x, test_fraction, seed)
    return train if split == "train" else test


def _read_csv(filename: str) -> np.ndarray:
    with resources.files("ppgen.datafiles").joinpath(filename).open("r", encoding="utf-8") as handle:
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
