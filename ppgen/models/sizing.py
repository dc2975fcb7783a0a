"""Sizes the data determines: ``VAE(latent_dim=8)`` takes ``data_dim`` from the data it is fitted to.

A model built without such a size holds one placeholder
:class:`~torch.nn.parameter.UninitializedParameter` (PyTorch's marker for a parameter whose
shape is not known yet, as in ``nn.LazyLinear``), so backends see a model with parameters to
fit. :func:`ppgen.fit` calls the model's ``setup(x, covariates)`` before the backend; that
builds the real parameters for ``x.shape[1]`` features and drops the placeholder. Used before
then, the model raises :func:`unsized`; an explicit size that disagrees with the data raises
the DataError of :func:`check_features`.

Weights built later are drawn under a seed taken from the global RNG when the model is
constructed (:func:`defer`), so a lazily sized model is as reproducible as an explicitly
sized one: its initial weights are fixed when it is built, as they would have been.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.parameter import UninitializedParameter

from ppgen.core import PLACEHOLDER
from ppgen.errors import DataError, OptionError

__all__ = ["optional_size", "defer", "built", "seeded", "check_features", "unsized", "check_categories"]


def optional_size(value, name: str) -> int | None:
    """``None`` (take it from the data) or a positive integer; anything else is an OptionError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(
            f"Expected {name} to be a positive integer or None (taken from the data), but got {value!r}."
        )
    return value


def defer(model: torch.nn.Module) -> int:
    """Mark ``model`` as waiting for its size; returns the seed its deferred weights are drawn with."""
    setattr(model, PLACEHOLDER, UninitializedParameter())
    return int(torch.randint(0, 2**62, ()))


def built(model: torch.nn.Module) -> None:
    """Drop the placeholder once the real parameters exist."""
    if PLACEHOLDER in model._parameters:
        delattr(model, PLACEHOLDER)


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Draw inside the block from ``seed`` without touching the global RNG (no-op for ``None``)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_features(model: torch.nn.Module, x: torch.Tensor, size: int | None, name: str) -> int:
    """The number of features of ``x`` (N, D), checked against an explicit ``size``."""
    cls = type(model).__name__
    if x.ndim != 2:
        expected = "D" if size is None else size
        raise DataError(
            f"Expected rows of {expected} features for {cls}, x of shape (N, {expected}), but got shape "
            f"{tuple(x.shape)}; reshape the data to one row per observation."
        )
    if size is not None and x.shape[1] != size:
        raise DataError(
            f"Expected rows of {size} features for {cls}({name}={size}), x of shape (N, {size}), but got "
            f"shape {tuple(x.shape)}; pass data with {size} columns, or leave {name} out to take it "
            "from the data."
        )
    return int(x.shape[1])


def unsized(model: torch.nn.Module, name: str) -> DataError:
    """The error of a model used before its size is known."""
    cls = type(model).__name__
    return DataError(
        f"Expected a {cls} whose {name} is known, but it was built without {name} and has not seen "
        f"data yet; pass {name}= to {cls}(...) or fit it first (ppgen.fit takes {name} from the data)."
    )


def check_categories(
    likelihood: str, num_categories: int | None, levelled: tuple[str, ...] = ("categorical",)
) -> int | None:
    """``num_categories`` is required (≥ 2) with a likelihood over levels ``0..C-1`` and refused otherwise."""
    if likelihood in levelled:
        if isinstance(num_categories, bool) or not isinstance(num_categories, int) or num_categories < 2:
            raise OptionError(
                f"Expected num_categories >= 2 for likelihood={likelihood!r}, but got {num_categories!r}."
            )
    elif num_categories is not None:
        raise OptionError(
            f"Expected num_categories only with likelihood in {list(levelled)}, but got "
            f"likelihood={likelihood!r}."
        )
    return num_categories
