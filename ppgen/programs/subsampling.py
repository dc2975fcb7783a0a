"""Plates that subsample (Pyro's own minibatching: ``pyro.plate("data", N, subsample_size=B)``).

Each run of such a program scores a random part of the data, scaled up by ``N / B``: an unbiased
but noisy log-likelihood. Stochastic-gradient methods (``mle``, ``svi``, ``map``) are built for it;
NUTS needs the exact log-density at every leapfrog step (Pyro's HMC refuses subsample sites), and
importance weights built on a random part of the data are not the posterior's.
"""

from __future__ import annotations

import torch
from pyro import poutine

__all__ = ["subsampled_plates"]


def subsampled_plates(program) -> dict[str, tuple[int, int]]:
    """``{plate: (subsample_size, size)}`` of the plates that subsample (computed once per program)."""
    cached = program.__dict__.get("_subsampled_plates")
    if cached is not None:
        return dict(cached)
    found: dict[str, tuple[int, int]] = {}
    args = getattr(program, "train_args", None)
    if args is not None:
        with torch.no_grad(), poutine.block(), torch.random.fork_rng():
            trace = poutine.trace(program.model).get_trace(None, **args)
        for site in trace.nodes.values():
            for frame in site.get("cond_indep_stack", ()):
                full = getattr(frame, "full_size", None)
                if full is not None and frame.size is not None and frame.size < full:
                    found[frame.name] = (int(frame.size), int(full))
    program.__dict__["_subsampled_plates"] = tuple(found.items())
    return found
