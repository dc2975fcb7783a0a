"""A program run over many parameter draws at once: pointwise log-likelihoods and predictive draws.

Draws are substituted for the program's latent sites inside a ``"_draws"`` plate placed left of
every plate the program opens (Pyro's ``Predictive`` does the same), so one trace scores or
samples every draw. Per-unit latents are reused only when the data describe the same units (as
many as in training, in the same order — Pyro's ``Predictive`` semantics, e.g. the same players'
rest of season); for new units they are drawn from their conditional prior given the globals.
Programs that fix their own batch shapes fall back to one trace per draw.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from ppgen.core import TOTAL

__all__ = [
    "site_log_likelihood",
    "predictive_draws",
    "joint_draws",
    "guide_samples",
    "site_draws",
    "draw_count",
    "TOTAL",
]

_DRAWS = "_draws"


def site_log_likelihood(
    program, args: dict, draws: dict[str, torch.Tensor] | None, *, same_units: bool | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``log p(y_site,i | θ_s)`` per observed site and unit, each ``(S, N)``, and their sum over sites.

    Enumerated discrete latents are summed out exactly (``log Σ_z p(z | ·) p(y | z, ·)``); the
    observed sites that depend on them are reported jointly under their names joined by ``+``.
    Without ``draws`` the program's current parameters give one row (``S = 1``).
    """
    total = 1 if draws is None else next(iter(draws.values())).shape[0]
    draws = _usable(program, draws or {}, args, same_units)
    try:
        terms = _pointwise(program, args, draws, total, vectorised=True)
    except (RuntimeError, ValueError, IndexError, _NotVectorisable):
        rows = [
            _pointwise(program, args, {k: v[s : s + 1] for k, v in draws.items()}, 1, vectorised=False)
            for s in range(total)
        ]
        terms = {k: torch.cat([row[k] for row in rows]) for k in rows[0]}
    return terms, sum(terms.values())


def predictive_draws(
    program,
    n: int,
    args: dict | None = None,
    draws: dict[str, torch.Tensor] | None = None,
    *,
    same_units=None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Forward draws of the observed sites: prior predictive (no ``draws``) or posterior predictive
    (draw ``i`` uses posterior draw ``i mod S``).

    A program that takes ``n`` returns ``n`` rows from one run; any other returns ``n`` replicate
    data sets of its arguments' size, shape ``(n, *site_shape)``. One observed site gives a tensor,
    several a dict by site.
    """
    takes_n = "n" in program.signature.parameters
    # With draws, a program that takes n draws n one-row replicates: each row from its own draw.
    args = program.sampling_arguments(
        program.train_args if args is None else args, (1 if draws else n) if takes_n else None
    )
    if draws:
        count = next(iter(draws.values())).shape[0]
        which = torch.arange(n) % count if n >= count else torch.randperm(count)[:n]
        draws = _usable(program, {k: v[which] for k, v in draws.items()}, args, same_units)
    sites = program.observed_sites
    if takes_n and not draws:
        trace = poutine.trace(poutine.uncondition(program.model)).get_trace(None, **args)
        values = {site: trace.nodes[site]["value"] for site in sites}
    else:
        values = _replicates(program, args, draws or {}, n)
        if takes_n:
            values = {site: v.reshape(n, *v.shape[2:]) for site, v in values.items()}
    return values[sites[0]] if len(sites) == 1 else values


def site_draws(fn, n: int, nesting: int, keep, *args, **kwargs) -> dict[str, torch.Tensor]:
    """``n`` independent runs of ``fn(*args, **kwargs)``: ``{site: (n, *shape)}`` for the sample sites
    ``keep(name, site)`` selects. One trace inside a draws plate left of the program's ``nesting``
    plates (Pyro's ``Predictive`` does the same); a program whose shapes ignore that plate is run
    ``n`` times instead."""
    with poutine.block():
        one = poutine.trace(fn).get_trace(*args, **kwargs)
    shapes = {
        name: tuple(site["value"].shape)
        for name, site in one.nodes.items()
        if site["type"] == "sample" and keep(name, site)
    }
    try:
        with poutine.block(), _draws_plate(n, nesting):
            trace = poutine.trace(fn).get_trace(*args, **kwargs)
        return {name: trace.nodes[name]["value"].reshape(n, *shape) for name, shape in shapes.items()}
    except (RuntimeError, ValueError, IndexError):
        pass
    rows = []
    for _ in range(n):
        with poutine.block():
            trace = poutine.trace(fn).get_trace(*args, **kwargs)
        rows.append({name: trace.nodes[name]["value"] for name in shapes})
    return {name: torch.stack([row[name] for row in rows]) for name in shapes}


def draw_count(latent_sites: dict, names, most: int) -> int:
    """How many draws of the sites ``names`` to keep: ``most``, fewer when per-unit sites (a VAE's
    codes) make each draw as large as the data — at most 10⁶ numbers, never below 10 draws."""
    per_draw = sum(math.prod(latent_sites[name]["shape"]) for name in names)
    return max(10, min(most, 10**6 // max(per_draw, 1)))


def joint_draws(program, args: dict, n: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``n`` draws of the whole program from its prior: ``({latent: (n, ...)}, {observed: (n, ...)})``."""
    from pyro.poutine.util import site_is_subsample

    story = poutine.uncondition(program.model)
    values = site_draws(
        story, n, program.max_plate_nesting, lambda _, site: not site_is_subsample(site), None, **args
    )
    observed = set(program.observed_sites)
    return (
        {k: v for k, v in values.items() if k not in observed},
        {k: v for k, v in values.items() if k in observed},
    )


def guide_samples(program, args: dict, num_samples: int) -> dict[str, torch.Tensor]:
    """``num_samples`` draws of every site of the program's guide, ``{site: (S, *shape)}``."""
    return site_draws(
        program.guide,
        num_samples,
        program.max_plate_nesting,
        lambda _, site: not site["is_observed"],
        None,
        **args,
    )


class _NotVectorisable(Exception):
    """The program's shapes do not follow the draws plate."""


def _usable(program, draws: dict, args: dict, same_units: bool | None) -> dict:
    """The draws of latent sites to condition on: per-unit ones only for the training units."""
    latent = program.latent_sites
    if same_units is None:
        same_units = _unit_count(program, args) == program.structure["n_units"]
    return {k: v for k, v in draws.items() if k in latent and (same_units or not latent[k]["local"])}


def _unit_count(program, args: dict) -> int:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(program.model).get_trace(None, **args)
    plate = program.unit_plate
    for site in trace.nodes.values():
        for frame in site.get("cond_indep_stack", ()):
            if frame.name == plate:
                return frame.size
    return 1


def _reshaped(program, draws: dict, total: int) -> dict:
    """``(S, *shape)`` draws as ``(S, 1, ..., *shape)``: the draws plate left of the program's plates."""
    nesting = program.max_plate_nesting
    out = {}
    for name, value in draws.items():
        batch = len(program.latent_sites[name]["batch_shape"])
        out[name] = value.reshape(total, *(1,) * (nesting - batch), *value.shape[1:])
    return out


def _pointwise(program, args: dict, draws: dict, total: int, vectorised: bool) -> dict[str, torch.Tensor]:
    nesting = program.max_plate_nesting
    enumerated = [n for n, s in program.latent_sites.items() if s["enumerated"]]
    data = _reshaped(program, draws, total) if vectorised else {k: v[0] for k, v in draws.items()}
    model = poutine.condition(program.model, data=data)
    lead = 1 if vectorised else 0  # the draws dimension
    if enumerated:
        model = poutine.enum(model, first_available_dim=-(nesting + lead) - 1)
    with _draws_plate(total if vectorised else None, nesting):
        trace = poutine.trace(model).get_trace(None, **args)
    scored = set(program.observed_sites) | set(enumerated)  # conditioned draws look observed too
    trace.compute_log_prob(lambda name, site: name in scored)
    width = nesting + lead
    plain, coupled = {}, {}
    for name, site in trace.nodes.items():
        if name not in scored:
            continue
        log_prob = site["log_prob"]
        log_prob = (
            log_prob.reshape((1,) * (width - log_prob.ndim) + log_prob.shape)
            if log_prob.ndim < width
            else log_prob
        )
        extra = log_prob.ndim - width
        if extra and any(size > 1 for size in log_prob.shape[:extra]):
            coupled[name] = (log_prob, site)
        elif name in program.observed_sites:
            plain[name] = log_prob.reshape(log_prob.shape[extra:])
    if coupled:
        plates = {
            frozenset(f.name for f in s["cond_indep_stack"] if f.vectorized) for _, s in coupled.values()
        }
        if len(plates) > 1:
            raise NotImplementedError(
                "Expected enumerated sites in the same plates as the observations they explain; pointwise "
                "log-likelihoods of this program need Pyro's full contraction, which ppgen does not do yet."
            )
        joint = sum(lp for lp, _ in coupled.values())
        extra = joint.ndim - width
        joint = joint.logsumexp(dim=tuple(range(extra)))
        names = [n for n in coupled if n in program.observed_sites]
        plain["+".join(names)] = joint
    out = {}
    for name, log_prob in plain.items():
        per_unit = _per_unit(program, log_prob, width, lead)
        if vectorised and per_unit.shape[0] != total:
            raise _NotVectorisable(name)
        out[name] = per_unit if vectorised else per_unit.unsqueeze(0)
    return out


def _per_unit(program, log_prob: torch.Tensor, width: int, lead: int) -> torch.Tensor:
    """Sum a site's log-probabilities over every plate but the units': ``(S, N)`` (or ``(N,)``)."""
    log_prob = log_prob.reshape((1,) * (width - log_prob.ndim) + log_prob.shape)
    dim = program.structure["plate_dim"]
    keep = set(range(lead))
    if dim is not None:
        keep.add(log_prob.ndim + dim)
    summed = tuple(i for i in range(log_prob.ndim) if i not in keep)
    out = log_prob.sum(summed) if summed else log_prob
    return out if dim is not None else out.unsqueeze(-1)


def _replicates(program, args: dict, draws: dict, n: int) -> dict[str, torch.Tensor]:
    nesting = program.max_plate_nesting
    with poutine.block():
        shapes = {
            s: tuple(node["value"].shape)
            for s, node in poutine.trace(poutine.uncondition(program.model))
            .get_trace(None, **args)
            .nodes.items()
            if s in program.observed_sites
        }
    # uncondition innermost: it frees the observed sites, then the draws condition the latents (the
    # other order would free the draws too and sample the prior)
    model = poutine.condition(poutine.uncondition(program.model), data=_reshaped(program, draws, n))
    try:
        with _draws_plate(n, nesting):
            trace = poutine.trace(model).get_trace(None, **args)
        return {s: trace.nodes[s]["value"].reshape(n, *shape) for s, shape in shapes.items()}
    except (RuntimeError, ValueError, IndexError):
        pass
    rows = []
    for i in range(n):
        one = poutine.condition(poutine.uncondition(program.model), data={k: v[i] for k, v in draws.items()})
        trace = poutine.trace(one).get_trace(None, **args)
        rows.append({s: trace.nodes[s]["value"] for s in shapes})
    return {s: torch.stack([row[s] for row in rows]) for s in shapes}


def _draws_plate(size: int | None, nesting: int):
    """The draws plate left of the program's plates (a no-op without a size)."""
    import contextlib

    if size is None:
        return contextlib.nullcontext()
    return pyro.plate(_DRAWS, size, dim=-nesting - 1)
