"""Pointwise log-likelihoods of programs whose enumerated latents form chains (``pyro.markov``).

Summing every enumerated site's factors and then log-sum-exp over the enumeration dims is right
when each enumerated latent explains its own observations (a mixture). Under ``pyro.markov`` Pyro
recycles enumeration dims — ``z_t`` and ``z_{t+2}`` share one — so that sum would treat two states
as one variable and give a wrong number without an error. Here Pyro's own ``TraceEnum_ELBO``
contracts the factors (variable elimination along the chain), with the latents' draws conditioned
and their priors masked, so the empty guide's ELBO is exactly ``log p(y | θ)``.

Per unit: the same factors are contracted to a tensor that keeps the units' plate
(``pyro.ops.contract.contract_to_tensor`` with the plate as target ordinal, as Pyro's own
``TraceEnum_ELBO.compute_marginals`` does for enumerated marginals), so one contraction per draw
gives every unit's ``log p(y_i | θ)``. This reads two private helpers of Pyro 1.9's
``traceenum_elbo`` (``_get_traces``, ``_compute_model_factors``); the tests compare with brute-force
enumeration, so a change in Pyro shows at once.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.infer.traceenum_elbo import _compute_model_factors
from pyro.ops.contract import contract_to_tensor

from ppgen.core import TOTAL
from ppgen.programs.sites import plate_size
from ppgen.programs.vectorise import _DRAWS, LAYOUTS, draws_plate, reshaped

__all__ = ["recycles_enumeration", "contracted_log_likelihood"]


def recycles_enumeration(program, args: dict) -> bool:
    """Whether two enumerated sites of one run share an enumeration dim (``pyro.markov`` chains): a
    fact of the program's structure, found by one enumerated run and kept with the program."""
    known = program.__dict__.get("_recycles_enumeration")
    if known is None:
        known = program.__dict__["_recycles_enumeration"] = _recycles(program, args)
    return known


def _recycles(program, args: dict) -> bool:
    enumerated = [n for n, s in program.latent_sites.items() if s["enumerated"]]
    if len(enumerated) < 2:
        return False
    model = poutine.enum(program.model, first_available_dim=-program.max_plate_nesting - 1)
    with torch.no_grad(), poutine.block(), torch.random.fork_rng():
        trace = poutine.trace(model).get_trace(None, **args)
    dims = [trace.nodes[n]["infer"].get("_enumerate_dim") for n in enumerated if n in trace.nodes]
    return len(set(dims)) < len(dims)


class _ScoreOnly(poutine.messenger.Messenger):
    """Latents fixed at one draw, their priors masked out: what is left is ``log p(y, z | θ)``."""

    def __init__(self, values: dict):
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg):
        if msg["name"] in self.values and not msg["is_observed"]:
            msg["value"], msg["is_observed"], msg["mask"] = self.values[msg["name"]], True, False


def contracted_log_likelihood(program, args: dict, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{"site+site": (S, N)}``: every observed site's ``log p(y_i | θ_s)`` jointly, chains contracted."""
    with torch.no_grad(), poutine.block(), torch.random.fork_rng():
        units = plate_size(poutine.trace(program.model).get_trace(None, **args), program.unit_plate)
    plate = program.unit_plate if units > 1 else None  # a plate of one is dropped from packed tensors
    elbo = TraceEnum_ELBO(max_plate_nesting=max(1, program.max_plate_nesting))
    total = next(iter(draws.values())).shape[0] if draws else 1
    vectorised = _vectorised(program, args, draws, plate, units, total) if plate and total > 1 else None
    rows = [] if vectorised is None else list(vectorised)
    for s in range(len(rows), total):
        scored = _ScoreOnly({k: v[s] for k, v in draws.items()})(program.model)
        if plate is None:  # one unit: the contracted log-likelihood itself
            rows.append(torch.tensor([-elbo.loss(scored, _empty_guide, None, **args)], dtype=torch.float64))
        else:
            with torch.no_grad():
                rows.append(_per_unit(elbo, scored, args, plate, units))
    first = next(iter(draws.values()), None)
    stacked = torch.stack(rows)
    if first is not None and first.is_floating_point():
        stacked = stacked.to(first.dtype)
    sites = program.observed_sites  # one joint term; a chain's many sites read as "total"
    return {"+".join(sites) if len(sites) <= 3 else TOTAL: stacked}


def _per_unit(
    elbo, scored, args: dict, plate: str, units: int, draws: tuple[str, int] | None = None
) -> torch.Tensor:
    """``(N,)``: the factors contracted over everything but the units' plate; ``(S, N)`` with
    ``draws=(plate name, S)``, the draws' plate kept too (left)."""
    model_trace, guide_trace = next(elbo._get_traces(scored, _empty_guide, (None,), args))
    costs, log_factors, _, sum_dims, _ = _compute_model_factors(model_trace, guide_trace)
    symbol = model_trace.plate_to_symbol[plate]
    kept_symbols = [symbol] if draws is None else [model_trace.plate_to_symbol[draws[0]], symbol]
    target = frozenset(kept_symbols)
    terms = [contract_to_tensor(log_factors, sum_dims, target_ordinal=target)] if log_factors else []
    terms += [term for ordinal, group in costs.items() if symbol in ordinal for term in group]
    shape = (units,) if draws is None else (draws[1], units)
    total = torch.zeros(shape, dtype=torch.float64)
    for term in terms:
        dims = term._pyro_dims
        summed = tuple(i for i, d in enumerate(dims) if d not in kept_symbols)
        kept = term.sum(summed) if summed else term  # sum(()) would sum every dim
        order = [d for d in dims if d in kept_symbols]
        for name in kept_symbols:  # a term without a kept dim broadcasts along it
            if name not in order:
                kept, order = kept.unsqueeze(-1), order + [name]
        kept = kept.permute(*[order.index(name) for name in kept_symbols]) if len(order) > 1 else kept
        total = total + kept.double().reshape(tuple(kept.shape)).expand(shape)
    return total


def _vectorised(program, args: dict, draws: dict, plate: str, units: int, total: int) -> torch.Tensor | None:
    """``(S, N)`` from one contraction with every draw in a plate left of the program's plates (a chain
    scored draw by draw took S traces: a minute for a capture-recapture chain); ``None`` when the
    program does not broadcast over that plate (plain indexing of a parameter by enumerated states), as
    a two-draw trial shows by failing or by differing from the first draw scored alone."""
    first = _per_unit(
        TraceEnum_ELBO(max_plate_nesting=max(1, program.max_plate_nesting)),
        _ScoreOnly({k: v[0] for k, v in draws.items()})(program.model),
        args,
        plate,
        units,
    )
    for layout in LAYOUTS:
        trial = _in_draws_plate(program, args, {k: v[:2] for k, v in draws.items()}, plate, units, 2, layout)
        if trial is not None and torch.allclose(trial[0], first, rtol=1e-4, atol=1e-4):
            return _in_draws_plate(program, args, draws, plate, units, total, layout)
    return None


def _in_draws_plate(
    program, args: dict, draws: dict, plate: str, units: int, total: int, layout: str
) -> torch.Tensor | None:
    nesting = program.max_plate_nesting
    scored = _ScoreOnly(reshaped(program, draws, total, layout))(program.model)

    def model(*a, **k):
        with draws_plate(total, nesting):
            return scored(*a, **k)

    try:
        with torch.no_grad():
            elbo = TraceEnum_ELBO(max_plate_nesting=nesting + 1)
            return _per_unit(elbo, model, args, plate, units, (_DRAWS, total))
    except (RuntimeError, ValueError, IndexError, AssertionError, NotImplementedError, KeyError):
        return None


def _empty_guide(*args, **kwargs) -> None:
    return None
