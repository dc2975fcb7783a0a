"""What a fit receives: ``as_data`` splits user data (or a dataset's name) into ``x`` and covariates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ppgen.data.registry import load
from ppgen.data.validation import as_tensor
from ppgen.errors import DataError

__all__ = ["as_data"]


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
