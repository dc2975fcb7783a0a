"""A program run over many parameter draws at once: pointwise log-likelihoods, predictive draws at the
training or new inputs, and the values of its deterministic sites.

Draws are substituted for the program's latent sites inside a ``"_draws"`` plate placed left of
every plate the program opens (Pyro's ``Predictive`` does the same; :mod:`~ppgen.programs.vectorise`
checks that the one trace computed what one run per draw computes), so one trace scores or samples
every draw. Per-unit latents are reused only when the data describe the same units (as many as in
training, in the same order — Pyro's ``Predictive`` semantics, e.g. the same players' rest of
season); for new units, and for any latent whose shape the new inputs change, they are drawn from
their conditional prior given the globals.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppgen.core import TOTAL
from ppgen.errors import OptionError
from ppgen.programs.contraction import contracted_log_likelihood, recycles_enumeration
from ppgen.programs.sites import plate_size
from ppgen.programs.subsampling import unit_chunks
from ppgen.programs.vectorise import LAYOUTS, draws_plate, free, reshaped, run_draws

__all__ = [
    "site_log_likelihood",
    "predictive_draws",
    "predictive_sites",
    "deterministic_draws",
    "joint_draws",
    "guide_samples",
    "site_draws",
    "draw_count",
    "TOTAL",
]


def site_log_likelihood(
    program, args: dict, draws: dict[str, torch.Tensor] | None, *, same_units: bool | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``log p(y_site,i | θ_s)`` per observed site and unit, each ``(S, N)``, and their sum over sites;
    a plate with Pyro's ``subsample_size=`` is scored chunk by chunk, so every unit is scored once."""
    parts = []
    for context, kept, unscale in unit_chunks(program):
        with context:
            terms, _ = _site_log_likelihood(program, args, draws, same_units)
        parts.append(terms if kept is None else {k: v[:, kept] * unscale for k, v in terms.items()})
    terms = {k: torch.cat([part[k] for part in parts], -1) for k in parts[0]}
    return terms, sum(terms.values())


def _site_log_likelihood(
    program, args: dict, draws: dict[str, torch.Tensor] | None, same_units: bool | None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``log p(y_site,i | θ_s)`` per observed site and unit, each ``(S, N)``, and their sum over sites.

    Enumerated discrete latents are summed out exactly (``log Σ_z p(z | ·) p(y | z, ·)``); the
    observed sites that depend on them are reported jointly under their names joined by ``+``.
    Without ``draws`` the program's current parameters give one row (``S = 1``).
    """
    total = 1 if draws is None else next(iter(draws.values())).shape[0]
    draws = _usable(program, draws or {}, args, same_units)
    if recycles_enumeration(program, args):  # pyro.markov chains: Pyro's contraction, draw by draw
        terms = contracted_log_likelihood(program, args, draws)
        return terms, sum(terms.values())
    for layout in LAYOUTS if draws else LAYOUTS[:1]:
        try:
            terms = _pointwise(program, args, draws, total, layout)
        except (RuntimeError, ValueError, IndexError, AssertionError, NotImplementedError, _NotVectorisable):
            continue
        first = _pointwise(program, args, {k: v[:1] for k, v in draws.items()}, 1, None) if draws else terms
        if all(_close(terms[k][0], first[k][0]) for k in first):
            return terms, sum(terms.values())
    terms = _vmapped(program, args, draws, total)
    if terms is not None:
        return terms, sum(terms.values())
    try:
        rows = [
            _pointwise(program, args, {k: v[s : s + 1] for k, v in draws.items()}, 1, None)
            for s in range(total)
        ]
    except (AssertionError, NotImplementedError):
        if not any(site["enumerated"] for site in program.latent_sites.values()):
            raise
        terms = contracted_log_likelihood(program, args, draws)  # enumeration coupled across plates
        return terms, sum(terms.values())
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
    sites = program.observed_sites
    values = predictive_sites(program, n, args, draws, return_sites=sites, same_units=same_units)
    return values[sites[0]] if len(sites) == 1 else values


def predictive_sites(
    program,
    n: int,
    args: dict | None = None,
    draws: dict[str, torch.Tensor] | None = None,
    *,
    return_sites=None,
    same_units=None,
) -> dict[str, torch.Tensor]:
    """``{site: (n, *shape)}``: the program run forward on ``args`` (default: the training ones) with its
    observed sites drawn, run ``i`` on posterior draw ``i mod S`` (Pyro's ``Predictive``).

    ``return_sites`` picks any sample or deterministic sites; by default the training fit's observed
    sites, then its deterministic ones.
    """
    takes_n = "n" in program.signature.parameters
    # With draws, a program that takes n draws n one-row replicates: each row from its own draw.
    args = program.sampling_arguments(
        program.train_args if args is None else args, (1 if draws else n) if takes_n else None
    )
    # uncondition innermost: it frees the observed sites, then the draws condition the latents (the
    # other order would free the draws too and sample the prior)
    forward = free(program)
    with torch.no_grad(), poutine.block():
        one = poutine.trace(forward).get_trace(None, **args)
    names = _return_names(program, one, return_sites)
    if draws:
        count = next(iter(draws.values())).shape[0]
        which = torch.arange(n) % count if n >= count else torch.randperm(count)[:n]
        draws = _usable(program, {k: v[which] for k, v in draws.items()}, args, same_units, one)
    if takes_n and not draws:
        trace = poutine.trace(forward).get_trace(None, **args)
        return {site: trace.nodes[site]["value"] for site in names}
    shapes = {s: tuple(one.nodes[s]["value"].shape) for s in names}
    values = run_draws(program, forward, args, draws or {}, n, shapes)
    if takes_n:  # n one-row replicates: n rows
        values = {
            s: v.reshape(n, *v.shape[2:]) if v.ndim > 1 and v.shape[1] == 1 else v for s, v in values.items()
        }
    return values


def deterministic_draws(program, args: dict, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The deterministic sites' values at each posterior draw, ``{site: (S, *shape)}``, on the training
    arguments with the observed sites observed (a residual ``y - mu`` uses the data)."""
    names = program.structure.get("deterministic", ())
    if not names or not draws:
        return {}
    total = next(iter(draws.values())).shape[0]
    with torch.no_grad(), poutine.block():
        one = poutine.trace(program.model).get_trace(None, **args)
    draws = _usable(program, draws, args, True, one)
    shapes = {s: tuple(one.nodes[s]["value"].shape) for s in names if s in one.nodes}
    return run_draws(program, program.model, args, draws, total, shapes)


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
        with poutine.block(), draws_plate(n, nesting):
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
    story = free(program)
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


def _return_names(program, trace: poutine.Trace, return_sites) -> tuple[str, ...]:
    found = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site) and not name.startswith("_")
    ]
    if isinstance(trace.nodes.get("_RETURN", {}).get("value"), torch.Tensor):
        found.append("_RETURN")  # the program's return value, as Pyro's Predictive names it
    if return_sites is None:
        # Pyro's Predictive: what the posterior does not fix. The training fit's observed sites that
        # this run has, then sites training never saw (a forecast's obs_5, S2I_5 in Pyro's sir_hmc.py,
        # whose sites are named by time step), then the deterministic sites
        structure = program.structure
        known = {*structure["observed"], *structure["latent"], *structure["conditioned"]}
        observed = [s for s in program.observed_sites if s in found]
        computed = [s for s in found if trace.nodes.get(s, {}).get("infer", {}).get("_deterministic")]
        # a conditioned one is data (a generator's output), returned with the observed sites
        deterministic = [s for s in computed if s not in structure["conditioned"]]
        new = [s for s in found if s not in known and s not in deterministic and s != "_RETURN"]
        return tuple(observed + new + deterministic)
    if isinstance(return_sites, str):
        return_sites = [return_sites]
    unknown = [s for s in return_sites if s not in found]
    if unknown or not return_sites:
        raise OptionError(
            f"Expected return_sites among the program's sites {found}, but got {list(return_sites)!r}."
        )
    return tuple(return_sites)


def _usable(program, draws: dict, args: dict, same_units: bool | None, trace=None) -> dict:
    """The draws of latent sites to condition on: per-unit ones only for the training units, and only
    those whose shape the arguments keep (the others are drawn from their conditional prior)."""
    if not draws:
        return {}
    if trace is None:
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(free(program)).get_trace(None, **args)
    latent = program.latent_sites
    if same_units is None:
        same_units = plate_size(trace, program.unit_plate) == program.structure["n_units"]
    shapes = {
        name: tuple(site["value"].shape) for name, site in trace.nodes.items() if site["type"] == "sample"
    }
    return {
        k: v
        for k, v in draws.items()
        if k in latent and (same_units or not latent[k]["local"]) and shapes.get(k) == tuple(v.shape[1:])
    }


def _vmapped(program, args: dict, draws: dict, total: int) -> dict[str, torch.Tensor] | None:
    """One plain run per draw, batched by ``torch.func.vmap`` (a program that indexes or multiplies a
    latent by position, ``a[group]`` or ``X @ beta``, follows no draws plate but maps cleanly); kept
    only where its first and last rows equal plain runs on those draws, else None (the loop runs)."""
    if not draws or any(site["enumerated"] for site in program.latent_sites.values()):
        return None

    def one(draw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = _pointwise(program, args, {k: v.unsqueeze(0) for k, v in draw.items()}, 1, None)
        return {k: v[0] for k, v in terms.items()}

    try:
        with torch.no_grad(), pyro.validation_enabled(False):  # checks read values: no batched tensor
            terms = torch.func.vmap(one)(draws)
    except Exception:  # noqa: BLE001 - any failure of the mapped run means "run draw by draw"
        return None
    for s in {0, total - 1}:
        plain = _pointwise(program, args, {k: v[s : s + 1] for k, v in draws.items()}, 1, None)
        if set(plain) != set(terms) or not all(_close(terms[k][s], plain[k][0]) for k in plain):
            return None
    return terms


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-3, equal_nan=True))


def _pointwise(program, args: dict, draws: dict, total: int, layout: str | None) -> dict[str, torch.Tensor]:
    """Per observed site, ``(S, N)``: one trace in the draws plate (``layout``), or of one draw (None)."""
    vectorised = layout is not None
    nesting = program.max_plate_nesting
    enumerated = [n for n, s in program.latent_sites.items() if s["enumerated"]]
    data = reshaped(program, draws, total, layout) if vectorised else {k: v[0] for k, v in draws.items()}
    model = poutine.condition(program.model, data=data)
    lead = 1 if vectorised else 0  # the draws dimension
    if enumerated:
        model = poutine.enum(model, first_available_dim=-(nesting + lead) - 1)
    with draws_plate(total if vectorised else None, nesting):
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
            if not enumerated:  # dimensions left of the draws': the program's arithmetic mixed draws
                raise _NotVectorisable(name)
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
