"""One run of a program for many parameter draws at once, and the check that it computed what one run
per draw computes.

Draws ``(S, *shape)`` are substituted inside a ``"_draws"`` plate left of every plate the program
opens. Where the draws dimension goes is a guess about the program's arithmetic, so two layouts are
tried: by the site's batch shape (``(S, 1, ..., *batch, *event)``: right for a site's own
distribution) and, as Pyro's ``Predictive`` does, by its whole value (``(S, 1, ..., *value)``: right
for a global vector used alongside a plate, ``mu + tau * eta`` with ``eta`` of shape ``(8,)`` in a
plate of 8). Broadcasting can mix draws silently (``(S, 1)`` against ``(S, 1, 8)`` gives ``(S, S,
8)``), so a layout is kept only when its first draw agrees with one plain run of the program on that
draw — same values where the site is deterministic, same log-density elsewhere; when neither layout
agrees, the program runs once per draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = ["LAYOUTS", "draws_plate", "reshaped", "run_draws", "free"]

#: Where the draws dimension goes: by each site's batch shape, or by its whole value (Pyro's way).
LAYOUTS = ("batch", "value")
_DRAWS = "_draws"
_SHAPE_ERRORS = (RuntimeError, ValueError, IndexError)


class _Free(poutine.messenger.Messenger):
    """``poutine.uncondition`` that keeps each ``pyro.deterministic`` site's computed value (Pyro's
    ``Delta(value, event_dim=value.ndim)`` inside a plate would be drawn with the plate's dimensions
    added: ``theta`` of shape ``(8,)`` in a plate of 8 drawn as ``(8, 8)``); a generator's output
    conditioned on data (``conditioned``) gets its generated value back."""

    def __init__(self, conditioned: tuple[str, ...]):
        super().__init__()
        self.conditioned = set(conditioned)

    def _pyro_sample(self, msg):
        if msg["infer"].get("_deterministic"):
            if msg["name"] in self.conditioned:
                fn = msg["fn"]
                while not isinstance(fn, dist.Delta) and hasattr(fn, "base_dist"):
                    fn = fn.base_dist
                msg["value"] = fn.v
            msg["is_observed"] = False
        elif msg["is_observed"]:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["infer"]["obs"] = msg["value"]
            msg["value"] = None
            msg["done"] = False


def free(program) -> Callable:
    """``program.model`` with its observed sites drawn, not observed (its deterministic sites computed)."""
    conditioned = () if program.structure is None else program.structure.get("conditioned", ())
    return _Free(tuple(conditioned))(program.model)


def draws_plate(size: int | None, nesting: int):
    """The draws plate left of the program's plates (a no-op without a size)."""
    if size is None:
        return contextlib.nullcontext()
    return pyro.plate(_DRAWS, size, dim=-nesting - 1)


def reshaped(program, draws: dict, total: int, layout: str) -> dict:
    """``(S, *shape)`` draws as ``(S, 1, ..., *shape)``: the draws dimension left of the program's plates."""
    nesting = program.max_plate_nesting
    out = {}
    for name, value in draws.items():
        if layout == "batch":
            lead = len(program.latent_sites[name]["batch_shape"])
        else:
            lead = value.ndim - 1
        out[name] = value.reshape(total, *(1,) * max(nesting - lead, 0), *value.shape[1:])
    return out


def run_draws(
    program, base: Callable, args: dict, draws: dict, n: int, shapes: dict[str, tuple]
) -> dict[str, torch.Tensor]:
    """``{site: (n, *shape)}`` for the sites in ``shapes``: ``base`` (the program, its observed sites
    observed or freed) run with draw ``i`` of ``draws`` substituted in row ``i``; one trace when a
    layout agrees with a plain run of the first draw, else one trace per draw."""
    nesting = program.max_plate_nesting
    for layout in LAYOUTS if draws else LAYOUTS[:1]:
        try:
            with torch.no_grad(), poutine.block(), draws_plate(n, nesting):
                trace = poutine.trace(
                    poutine.condition(base, data=reshaped(program, draws, n, layout))
                ).get_trace(None, **args)
            values = {s: trace.nodes[s]["value"].reshape(n, *shape) for s, shape in shapes.items()}
            if _agrees(base, args, trace, draws, n, nesting):
                return values
        except _SHAPE_ERRORS:
            continue
    rows = []
    for i in range(n):
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(
                poutine.condition(base, data={k: v[i] for k, v in draws.items()})
            ).get_trace(None, **args)
        rows.append({s: trace.nodes[s]["value"] for s in shapes})
    return {s: torch.stack([row[s] for row in rows]) for s in shapes}


def _agrees(base: Callable, args: dict, trace: poutine.Trace, draws: dict, n: int, nesting: int) -> bool:
    """Whether row 0 of a vectorised ``trace`` is what one plain run of ``base`` gives on the first draw
    and the values row 0 drew: the same values at deterministic sites, the same log-density at the others."""
    sites = {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site) and name not in draws
    }
    first = {k: v[0] for k, v in draws.items()}
    for name, site in sites.items():
        row = _first_row(site["value"], len(site["fn"].event_shape), n, nesting)
        if row is None:
            return False
        first[name] = row
    conditioned = {k: v for k, v in first.items() if k in draws or not _is_delta(sites[k])}
    with torch.no_grad(), poutine.block():
        single = poutine.trace(poutine.condition(base, data=conditioned)).get_trace(None, **args)
    scored = lambda name, site: name in sites  # noqa: E731
    trace.compute_log_prob(scored)
    single.compute_log_prob(scored)
    for name, site in sites.items():
        other = single.nodes.get(name)
        if other is None or other["type"] != "sample":
            return False
        if _is_delta(site):
            if not _close(first[name].reshape(-1), other["value"].reshape(-1)):
                return False
            continue
        log_prob = _first_row(site["log_prob"], 0, n, nesting)
        if log_prob is None or not _close(log_prob.sum(), other["log_prob"].sum()):
            return False
    return True


def _first_row(value: torch.Tensor, event_dim: int, n: int, nesting: int) -> torch.Tensor | None:
    """Row 0 of the draws dimension (None when the value has more batch dimensions than plates)."""
    width = nesting + 1 + event_dim
    value = value.reshape((1,) * max(width - value.ndim, 0) + tuple(value.shape))
    if value.ndim > width or value.shape[0] not in (1, n):
        return None
    return value[0]


def _is_delta(site: dict) -> bool:
    fn = site["fn"]
    while isinstance(fn, (dist.MaskedDistribution, dist.Independent, dist.ExpandedDistribution)):
        fn = fn.base_dist
    return site["infer"].get("_deterministic", False) or isinstance(fn, dist.Delta)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        try:
            a = a.reshape(b.shape)
        except RuntimeError:
            return False
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-3, equal_nan=True))
