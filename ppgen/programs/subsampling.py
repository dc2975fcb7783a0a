"""Plates that subsample (Pyro's own minibatching: ``pyro.plate("data", N, subsample_size=B)``).

Each run of such a program scores a random part of the data, scaled up by ``N / B``: an unbiased
but noisy log-likelihood. Stochastic-gradient methods (``mle``, ``svi``, ``map``) are built for it;
NUTS needs the exact log-density at every leapfrog step (Pyro's HMC refuses subsample sites), and
importance weights built on a random part of the data are not the posterior's.
"""

from __future__ import annotations

import contextlib

import torch
from pyro import poutine

__all__ = ["subsampled_plates", "unit_chunks"]


def subsampled_plates(program) -> dict[str, tuple[int, int]]:
    """``{plate: (subsample_size, size)}`` of the plates that subsample, as the program's first run
    showed them (:func:`ppgen.programs.sites.structure`)."""
    return dict((program.structure or {}).get("subsampled", {}))


class _Indices(poutine.messenger.Messenger):
    """A subsampling plate draws its indices from a ``_Subsample`` site named after it: fixing that
    site picks which units one run scores (Pyro checks that there are ``subsample_size`` of them)."""

    def __init__(self, plate: str, indices: torch.Tensor):
        super().__init__()
        self.plate, self.indices = plate, indices

    def _pyro_sample(self, msg):
        if msg["name"] == self.plate and type(msg["fn"]).__name__ == "_Subsample":
            msg["value"], msg["is_observed"] = self.indices, True


def unit_chunks(program) -> list[tuple[contextlib.AbstractContextManager, torch.Tensor | None, float]]:
    """Runs that together score every unit once: ``(context, units kept, unscale)`` per run (Pyro
    scales a subsampled plate's log-densities by ``size / subsample_size``; ``unscale`` undoes it).

    One run per ``subsample_size`` consecutive units; the last run takes the final
    ``subsample_size`` units and keeps those no earlier run scored. Without a subsampling plate of
    the units: one plain run.
    """
    plates = subsampled_plates(program)
    plate = program.unit_plate
    if plate not in plates:
        return [(contextlib.nullcontext(), None, 1.0)]
    size, full = plates[plate]
    runs = []
    for start in range(0, full, size):
        indices = (
            torch.arange(start, start + size) if start + size <= full else torch.arange(full - size, full)
        )
        kept = torch.arange(start, min(start + size, full))
        runs.append((_Indices(plate, indices), kept - int(indices[0]), size / full))
    return runs
