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

__all__ = ["latents_without_gradient_path", "globals_mle_leaves_unread"]


def latents_without_gradient_path(program) -> list[str]:
    """The continuous latent sites that no other site's log-density depends on differentiably
    (computed once per program; ``[]`` when the program cannot be run this way, which claims nothing)."""
    return _once(program, "_latents_without_gradient_path", _find)


def _find(program) -> list[str]:
    args = getattr(program, "train_args", None)
    if args is None:
        return []
    names = [
        name for name, site in program.latent_sites.items() if not site["enumerated"] and not site["discrete"]
    ]
    return _cut(program, names, args) if names else []


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


def globals_mle_leaves_unread(program) -> list[str]:
    """The global continuous latents that ``method="mle"`` cannot identify: with their priors dropped
    (mle's parameters), no site whose density it keeps — the observations, ``pyro.factor`` terms and
    the per-unit or summed-out latents — depends on them, so nothing moves them (Pyro's cjs.py model_3:
    ``phi_mean`` and ``phi_sigma`` enter only the prior of ``phi_t``, itself a global). ``[]`` when the
    program cannot be run this way, which claims nothing; computed once per program."""
    return _once(program, "_globals_mle_leaves_unread", _unread_without_priors)


def _once(program, key: str, find) -> list[str]:
    """``find(program)``, kept on the program; run on the program's traced arguments with gradient
    leaves, where "converting a tensor with requires_grad to a scalar" is the point, and with the
    user's random stream left where it was (a seeded fit draws the same numbers with or without the
    check). ``[]`` when the program cannot run this way, which claims nothing."""
    cached = program.__dict__.get(key)
    if cached is None:
        try:
            with warnings.catch_warnings(), torch.random.fork_rng():
                warnings.simplefilter("ignore")
                cached = tuple(find(program))
        except Exception:  # noqa: BLE001 - a program that cannot run with gradient leaves: no claim
            cached = ()
        program.__dict__[key] = cached
    return list(cached)


def _unread_without_priors(program) -> list[str]:
    args = getattr(program, "train_args", None)
    sites = program.latent_sites
    globals_ = [
        name
        for name, site in sites.items()
        if not site["local"] and not site["enumerated"] and not site["discrete"]
    ]
    if args is None or not globals_:
        return []
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(program.model).get_trace(None, **args)
    leaves = {
        name: trace.nodes[name]["value"].detach().clone().requires_grad_()
        for name in globals_
        if trace.nodes[name]["value"].is_floating_point()
    }
    with torch.enable_grad():
        terms = _log_densities(program, leaves, args)
        kept = [term for site, term in terms.items() if site not in globals_ and term.requires_grad]
        if not kept:
            return list(leaves)
        grads = torch.autograd.grad(sum(kept), list(leaves.values()), allow_unused=True)
    return [name for name, grad in zip(leaves, grads) if grad is None]
