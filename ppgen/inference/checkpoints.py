"""Checkpoint files of the long-running backends (loop, adversarial, mcmc): one format, written
atomically, read back with a clear error for a missing, corrupt or foreign file."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ppgen.errors import FitFileError, OptionError

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_checkpoint_options",
    "write_checkpoint",
    "read_checkpoint",
    "check_shapes",
]

CHECKPOINT_FORMAT = "ppgen-checkpoint"


def check_checkpoint_options(checkpoint, checkpoint_every, resume) -> None:
    """The ``checkpoint=``, ``checkpoint_every=``, ``resume=`` options every long-running backend takes."""
    every = checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise OptionError(f"Expected checkpoint_every to be a positive integer, but got {every!r}.")
    for key, value in (("checkpoint", checkpoint), ("resume", resume)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise OptionError(f"Expected {key} to be a file path or None, but got {value!r}.")


def write_checkpoint(path, kind: str, payload: dict) -> None:
    """Write a training state of backend ``kind`` atomically (temporary file, then rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save({"format": CHECKPOINT_FORMAT, "kind": kind, **payload}, partial)
    os.replace(partial, path)


def read_checkpoint(path, kind: str) -> dict:
    """A checkpoint of backend ``kind`` written by :func:`write_checkpoint`, or a FitFileError."""
    path = Path(path)
    if not path.is_file():
        raise FitFileError(f"Expected a checkpoint file to resume from, but {str(path)!r} does not exist.")
    try:
        saved = torch.load(path, weights_only=False)
    except Exception as err:  # any unpickling failure means "not a checkpoint"
        raise FitFileError(
            f"Expected a checkpoint written by ppgen, but {str(path)!r} could not be read "
            f"({type(err).__name__}); it is truncated, corrupt or not a torch file."
        ) from err
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise FitFileError(f"Expected a ppgen checkpoint, but {str(path)!r} holds something else.")
    found = saved.get("kind", "loop")
    if found != kind:
        raise FitFileError(
            f"Expected a checkpoint of a {kind!r} run, but {str(path)!r} was written by a {found!r} run; "
            "resume with the method that wrote it."
        )
    return saved


def check_shapes(path, expected: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    shapes = [tuple(p.shape) for p in expected]
    found = [tuple(v.shape) for v in saved]
    if shapes != found:
        raise OptionError(
            f"Expected a checkpoint of this model (parameter shapes {shapes}), but {str(path)!r} holds "
            f"{found}; resume with the same model and options."
        )
