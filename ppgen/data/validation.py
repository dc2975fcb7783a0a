"""User data in, validated: ``as_tensor`` checks shape, dtype and finiteness and names what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ppgen.errors import DataError

__all__ = ["as_tensor"]


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
        tensor = torch.from_numpy(np.require(array, requirements=["C", "W"]))
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
    # A finite sum proves every entry finite without a data-sized mask; only a NaN/inf (or an
    # overflowing sum of huge finite values) pays for the element-wise check.
    if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).reshape(tensor.shape[0], -1).any(1).nonzero().flatten()
        raise DataError(
            f"Expected finite {name}, but got NaN or inf in {len(bad)} row(s) (first at row "
            f"{int(bad[0])}); drop or impute those rows first."
        )
    return tensor
