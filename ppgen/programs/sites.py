"""What one trace tells about a user's program, and how its arguments are bound.

The observed sites are those with values (``obs=`` or conditioned from outside); the units are the
entries of the outermost plate around all of them (the leftmost dim the user chose, or the plate
entered first where Pyro allocated the dims); latent sites are classified as per-unit or global,
enumerated or not.
``pyro.deterministic`` sites are recorded by name: never data (unless conditioned with ``observed=``),
latents or parameters, only values computed from them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine import runtime

from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError

__all__ = [
    "structure",
    "signature",
    "is_frame",
    "argument",
    "float_dtype",
    "observed_arguments",
    "plate_size",
]


def structure(
    trace: poutine.Trace,
    plate_choice: str | None,
    conditioned: tuple[str, ...],
    automatic: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Observed sites, the unit plate and its size, latent sites — from one trace of the program
    (``automatic``: the plates whose dim Pyro allocated, see :func:`auto_dims`)."""
    sites = {n: s for n, s in trace.nodes.items() if s["type"] == "sample"}
    # pyro.deterministic records its value as an observation of itself; it is data only when conditioned.
    for name, site in sites.items():
        if site["infer"].get("_deterministic") and name not in conditioned:
            site["is_observed"] = False
    observed = tuple(n for n, s in sites.items() if s["is_observed"])
    missing = [name for name in conditioned if name not in sites]
    if missing:
        raise DataError(
            f"Expected observed= to name sample sites of the program ({sorted(sites)}), but got {missing}."
        )
    if not observed:
        deterministic = sorted(n for n, s in sites.items() if s["infer"].get("_deterministic"))
        hint = (
            f" A pyro.deterministic site ({deterministic}) is a value computed from the latents, not data: "
            "to fit a generator that emits its data through it, condition it with observed={site: values}."
            if deterministic
            else ""
        )
        raise DataError(
            f"Expected a program that observes data, but no sample site received values (sites: "
            f"{sorted(sites)}); pass the observations as the argument the program observes, or condition a "
            f"site from outside with observed={{'site': values}}.{hint}"
        )
    for name in observed:
        _check_observed_shape(name, sites[name])
    frames = [{f.name: f for f in sites[n]["cond_indep_stack"] if f.vectorized} for n in observed]
    common = set(frames[0]).intersection(*frames[1:])
    if plate_choice is not None:
        if plate_choice not in common:
            raise OptionError(
                f"Expected plate= to name a plate around every observed site ({sorted(common)}), but got "
                f"{plate_choice!r}."
            )
        plate = plate_choice
    else:
        plate = _outermost(common, sites[observed[0]]["cond_indep_stack"], automatic)
        plate = _summed_across(plate, common, sites)
    all_dims = [f.dim for s in sites.values() for f in s["cond_indep_stack"] if f.vectorized]
    latent = {}
    for name, site in sites.items():
        if site["is_observed"] or site["infer"].get("_deterministic"):
            continue
        fn = site["fn"]
        latent[name] = {
            "local": plate is not None and any(f.name == plate for f in site["cond_indep_stack"]),
            "enumerated": site["infer"].get("enumerate") == "parallel",
            "sequential": site["infer"].get("enumerate") == "sequential",
            # some entries without a density (obs_mask's imputed site at the observed positions)
            "partly_masked": _partly_masked(site),
            "discrete": bool(getattr(fn, "has_enumerate_support", False)) or fn.support.is_discrete,
            "support": fn.support,
            "distribution": type(fn).__name__,
            "batch_shape": tuple(fn.batch_shape),
            "shape": tuple(site["value"].shape),
            "unplated": _unplated_dims(fn.batch_shape, site["cond_indep_stack"]),
        }
    return {
        "observed": observed,
        "conditioned": conditioned,
        "observed_args": (),
        "plate": plate,
        "plate_dim": frames[0][plate].dim if plate is not None else None,
        "n_units": _full_size(frames[0][plate]) if plate is not None else 1,
        "latent": latent,
        "subsampled": _subsampled(sites),
        "max_plate_nesting": -min(all_dims) if all_dims else 0,
        "observed_shapes": {n: tuple(sites[n]["value"].shape) for n in observed},
        "observed_event_dims": {n: len(sites[n]["fn"].event_shape) for n in observed},
        # observed sites without a density (pyro.deterministic or Delta): a generator's output
        "generated": tuple(n for n in observed if _is_point_mass(sites[n])),
        "deterministic": tuple(
            n for n, s in sites.items() if s["infer"].get("_deterministic") and n not in conditioned
        ),
    }


def observed_arguments(args: dict, trace: poutine.Trace, observed: tuple[str, ...]) -> tuple[str, ...]:
    """The arguments whose values the observed sites receive (``obs=y``, or a view of it: ``obs=y[:, 0]``)."""
    values = [trace.nodes[s]["value"] for s in observed]
    return tuple(k for k, v in args.items() if any(_same_data(v, value) for value in values))


def _same_data(arg: Any, value: Any) -> bool:
    if arg is value:
        return True
    if not (isinstance(arg, torch.Tensor) and isinstance(value, torch.Tensor)) or not arg.numel():
        return False
    return arg.untyped_storage().data_ptr() == value.untyped_storage().data_ptr()


def _outermost(common: set[str], stack, automatic) -> str | None:
    """The units' plate among those around every observed site.

    Dims the user chose describe the data's layout, so the leftmost one is the outermost. Dims Pyro
    allocated do not: it gives the first plate entered -1 and a plate nested inside it -2, so there
    the plate entered first is the outermost (documents, not words, in LDA). Pyro lists a site's
    frames outermost first (each plate prepends its frame as the message passes out through it).
    """
    if not common:
        return None
    frames = [f for f in stack if f.name in common]
    if all(f.name in automatic for f in frames):
        return frames[0].name
    return min(frames, key=lambda f: f.dim).name


def _partly_masked(site: dict) -> bool:
    """Some entries have no density: masked by ``poutine.mask``/``obs_mask`` (the site's mask) or by the
    distribution's own ``.mask(...)`` (Pyro's dmm.py masks each ``z_t`` past a sequence's end so)."""
    if isinstance(site["mask"], torch.Tensor) and not bool(site["mask"].all()):
        return True
    fn = site["fn"]
    while fn is not None:
        mask = getattr(fn, "_mask", None)
        # partly: a prior masked whole (.mask(False), mle_map's masked_model) leaves the likelihood
        if isinstance(mask, torch.Tensor) and bool(mask.any()) and not bool(mask.all()):
            return True
        fn = getattr(fn, "base_dist", None)
    return False


def _summed_across(plate: str | None, common: set[str], sites: dict) -> str | None:
    """The units' plate, widened to the plate of an enumerated latent that several units share.

    Pyro's mixed_hmm: ``e_g`` is enumerated per group, and each group's individuals (the leftmost dim)
    sit inside it. Summing ``e_g`` out ties a group's individuals together, so a per-individual
    log-likelihood does not exist; the groups are the units. (A continuous latent shared that way is
    no obstacle: each posterior draw fixes it.)"""
    if plate is None:
        return plate
    for site in sites.values():
        if site["is_observed"] or site["infer"].get("enumerate") != "parallel":
            continue
        names = [f.name for f in site["cond_indep_stack"] if f.vectorized]
        shared = [name for name in names if name in common]
        if shared and plate not in names:
            return shared[0]  # outermost first
    return plate


@contextlib.contextmanager
def auto_dims():
    """Record the plates entered in the block whose ``dim`` Pyro allocated (``dim=None``)."""
    allocator = runtime._DIM_ALLOCATOR
    original = allocator.allocate
    found: set[str] = set()

    def allocate(name, dim):
        if dim is None:
            found.add(name)
        return original(name, dim)

    allocator.allocate = allocate
    try:
        yield found
    finally:
        del allocator.allocate  # back to the class's method (the instance held none before)
        if allocator.allocate != original:
            allocator.allocate = original


def _unplated_dims(batch_shape: torch.Size, stack) -> tuple[int, ...]:
    """Batch dims of a site that no plate declares (``Normal(zeros(8), 1)`` outside a plate): Pyro's
    ELBOs read every batch dim within ``max_plate_nesting`` as a plate, so they refuse such a site."""
    plated = {f.dim for f in stack if f.vectorized}
    return tuple(-i for i, size in enumerate(reversed(batch_shape), 1) if size != 1 and -i not in plated)


def _subsampled(sites: dict) -> dict[str, tuple[int, int]]:
    """``{plate: (subsample_size, size)}`` of the plates that subsample (Pyro's ``subsample_size=``)."""
    return {
        f.name: (int(f.size), int(f.full_size))
        for site in sites.values()
        for f in site["cond_indep_stack"]
        if getattr(f, "full_size", None) is not None and f.size < f.full_size
    }


def _full_size(frame) -> int:
    """A plate's size; for a subsampling plate (``subsample_size=``), all of its units."""
    return frame.full_size if getattr(frame, "full_size", None) is not None else frame.size


def plate_size(trace: poutine.Trace, plate: str | None) -> int:
    """The size of ``plate`` in ``trace`` (1 without one, as a program with one unit)."""
    for site in trace.nodes.values():
        for frame in site.get("cond_indep_stack", ()):
            if frame.name == plate:
                return _full_size(frame)
    return 1


def _is_point_mass(site: dict) -> bool:
    fn = site["fn"]
    while isinstance(fn, (dist.MaskedDistribution, dist.Independent, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return bool(site["infer"].get("_deterministic")) or isinstance(fn, dist.Delta)


def _check_observed_shape(name: str, site: dict) -> None:
    fn, value = site["fn"], site["value"]
    shape = tuple(fn.batch_shape + fn.event_shape)
    if not isinstance(value, torch.Tensor):
        raise DataError(
            f"Expected observed values at site {name!r} as numbers (a tensor or array of shape {shape}), "
            f"but got {type(value).__name__}; check the data bound to the argument that site observes."
        )
    try:
        broadcast = torch.broadcast_shapes(shape, tuple(value.shape))
    except RuntimeError:
        broadcast = None
    if broadcast != tuple(value.shape):
        raise DataError(
            f"Expected observed values at site {name!r} of shape {shape} (its distribution's), but got "
            f"{tuple(value.shape)}; check the data bound to the argument that site observes."
        )


def signature(fn: Callable) -> inspect.Signature:
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        raise OptionError(f"Expected a Pyro program with an inspectable signature, but got {fn!r}.") from None


def is_frame(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def argument(key: str, value: Any, dtype: torch.dtype | None) -> Any:
    """Tensors, arrays and pandas columns become validated tensors; anything else passes through."""
    if type(value).__name__ == "Series" and hasattr(value, "to_numpy"):
        value = value.to_numpy()
    if isinstance(value, torch.Tensor) or (isinstance(value, np.ndarray) and value.dtype != object):
        if not (
            value.is_floating_point()
            if isinstance(value, torch.Tensor)
            else np.issubdtype(value.dtype, np.floating)
        ):
            # integer and boolean data keep their dtype (a copy: pandas' arrays may be read-only)
            return value if isinstance(value, torch.Tensor) else torch.tensor(value)
        if isinstance(value, np.ndarray) and dtype is None:
            dtype = torch.float64 if value.dtype == np.float64 else torch.get_default_dtype()
        if value.ndim == 0:  # a number, not rows (csis's prior_mean=torch.tensor(1.)): finite, cast
            scalar = torch.as_tensor(value).detach().to(dtype or torch.as_tensor(value).dtype)
            if not torch.isfinite(scalar):
                raise DataError(f"Expected the argument {key!r} to be finite, but got {scalar.item()}.")
            return scalar
        return as_tensor(value, name=repr(key), dtype=dtype or value.dtype, ndim=None)
    return value


def float_dtype(args: dict) -> torch.dtype:
    for value in args.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype
    return torch.get_default_dtype()
