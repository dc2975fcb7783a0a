"""Which latents of a program reach the rest of the program only as numbers, not through gradients.

A simulator reads a latent as a Python number (``float(mu)``, ``mu.item()``, a NumPy call) and
builds the likelihood from it: autograd sees no path from the latent to the data. NUTS, SVI, MAP
and marginal MLE move latents by gradients, so such a latent moves by its prior alone and the fit
answers silently wrong (the inclined-plane simulator: NUTS 0.61, SVI 0.49, the posterior mean 0.125).
The check: with every continuous latent a leaf that requires gradients, the log-density of every
*other* site of the program must depend on it (``autograd.grad`` reports ``None`` when it does not).
"""

from __future__ import annotations

import warnings

import torch
from pyro import poutine

__all__ = ["latents_without_gradient_path"]


def latents_without_gradient_path(program) -> list[str]:
    """The continuous latent sites that no other site's log-density depends on differentiably
    (computed once per program; ``[]`` when the program cannot be run this way, which claims nothing)."""
    cached = program.__dict__.get("_latents_without_gradient_path")
    if cached is not None:
        return list(cached)
    found = _find(program)
    program.__dict__["_latents_without_gradient_path"] = tuple(found)
    return found


def _find(program) -> list[str]:
    args = getattr(program, "train_args", None)
    if args is None:
        return []
    names = [
        name for name, site in program.latent_sites.items() if not site["enumerated"] and not site["discrete"]
    ]
    if not names:
        return []
    try:
        # "converting a tensor with requires_grad to a scalar" is the point; the user's random stream
        # is left where it was, so a seeded fit draws the same numbers with or without this check.
        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore")
            return _cut(program, names, args)
    except Exception:  # noqa: BLE001 - a program that cannot run with gradient leaves: no claim
        return []


def _cut(program, names: list[str], args: dict) -> list[str]:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(program.model).get_trace(None, **args)
    values = {
        n: trace.nodes[n]["value"].detach() for n in names if trace.nodes[n]["value"].is_floating_point()
    }
    leaves = {name: value.clone().requires_grad_() for name, value in values.items()}
    with torch.enable_grad():
        try:
            terms = _log_densities(program, leaves, args)
        except RuntimeError as error:
            if "requires grad" not in str(error):
                raise
            return _refusing_gradients(program, values, args)
        unreached = []
        for name, leaf in leaves.items():
            others = [term for site, term in terms.items() if site != name and term.requires_grad]
            grad = None
            if others:
                (grad,) = torch.autograd.grad(sum(others), leaf, allow_unused=True, retain_graph=True)
            if grad is None:
                unreached.append(name)
    # Unreached by autograd: either unused (an imputed missing value, a draw nothing reads: its
    # prior is its posterior, gradients are right) or read as a number. A new value tells them apart.
    before = {site: float(term) for site, term in terms.items()}
    cut = []
    for name in unreached:
        moved = dict(values, **{name: _elsewhere(trace.nodes[name])})
        with torch.no_grad():
            after = _log_densities(program, moved, args)
        changed = [
            site for site in before if site != name and site in after and float(after[site]) != before[site]
        ]
        if changed or set(after) != set(before):
            cut.append(name)
    return cut


def _refusing_gradients(program, values: dict, args: dict) -> list[str]:
    """The latents the program cannot run with as gradient leaves at all (``mu.numpy()`` in Pyro's
    inclined-plane simulator raises on a tensor that requires grad): each is read as a number."""
    cut = []
    for name in values:
        leaves = dict(values, **{name: values[name].clone().requires_grad_()})
        try:
            with torch.enable_grad():
                _log_densities(program, leaves, args)
        except RuntimeError as error:
            if "requires grad" not in str(error):
                raise
            cut.append(name)
    return cut


def _log_densities(program, values: dict, args: dict) -> dict:
    """Each sample site's summed log-density with the latents fixed at ``values``."""
    with poutine.block():
        trace = poutine.trace(poutine.condition(program.model, data=values)).get_trace(None, **args)
    return {
        name: site["fn"].log_prob(site["value"]).sum()
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample"
    }


def _elsewhere(site: dict) -> torch.Tensor:
    """Another value of the site inside its support: a fresh prior draw (off the user's stream)."""
    with torch.no_grad():
        for _ in range(10):
            value = site["fn"].sample()
            if not torch.equal(value, site["value"]):
                return value
    return value
