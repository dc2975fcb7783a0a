"""Did a point fit stop at an optimum? The estimates along which it did not.

A MAP or MLE exists only where the objective rises away from it. It does not when a hierarchical
scale grows toward the complete-pooling limit (baseball's ``kappa`` → ∞, where the log joint rises
without bound), a variance or a mixture weight collapses to 0, or nothing in the objective reaches a
parameter at all (the upper levels of a hierarchy once ``mle`` drops their priors). The optimiser
then stops where its steps or float32's precision end, and the number it returns estimates nothing.
The same test catches a fit that stopped short of an optimum that exists, on data whose scale
float32 cannot resolve (a mean near 2·10⁵: the per-row objective changes by 10⁻⁸ a unit).
Pyro's ``AutoDelta`` does not say so; Stan's optimiser reports a mode on the boundary.

The test uses the gradient ``g`` and Hessian ``H`` of the total objective at the fit's end, in the
optimiser's unconstrained coordinates, one coordinate ``j`` at a time, so it does not depend on the
units of the data:

- ``g_j = 0`` and ``H_j· = 0`` exactly: nothing in the objective depends on it (**flat**);
- ``H_jj ≤ 0``: the objective does not curve up along it (a saddle or a ridge's edge);
- ``|g_j| > NEWTON_SDS · √H_jj``: one Newton step along ``j`` alone would move it more than
  ``NEWTON_SDS`` local standard deviations, so the fit stopped short of any optimum along it.

At a polished optimum ``|g_j| / √H_jj`` is float32 noise (below 0.01 in this project's tests).
"""

from __future__ import annotations

import torch

__all__ = ["unbounded_estimates", "unread_estimates", "describe_unbounded", "NEWTON_SDS"]

#: A coordinate whose one-dimensional Newton step exceeds this many local sds is not at an optimum.
NEWTON_SDS = 1.0


def unbounded_estimates(
    gradient: torch.Tensor,
    hessian: torch.Tensor,
    params: list[torch.Tensor],
    estimates_fn,
) -> dict[str, str]:
    """``{estimate: "grows" | "shrinks" | "flat" | "saddle"}``: the estimates that move with a
    coordinate not at an optimum. ``gradient``, ``hessian``: of the objective in ``params``' flattened
    entries, in order. "grows"/"shrinks": the objective improves as the estimate does so; "flat" only
    when no coordinate of the estimate reaches the objective (a masked-out entry of an otherwise
    identified estimate is not one)."""
    diagonal = hessian.diagonal()
    kinds: list[str | None] = []
    for j in range(gradient.numel()):
        g, h = float(gradient[j]), float(diagonal[j])
        if g == 0.0 and bool((hessian[j] == 0).all()):
            kinds.append("flat")
        elif h <= 0.0 and g == 0.0:
            kinds.append("saddle")
        elif h <= 0.0 or abs(g) > NEWTON_SDS * h**0.5:
            kinds.append("up" if g < 0 else "down")  # the direction that lowers the objective
        else:
            kinds.append(None)
    if not any(kinds):
        return {}
    return _named(kinds, params, estimates_fn)


def unread_estimates(params: list[torch.Tensor], estimates_fn) -> dict[str, str]:
    """``{estimate: "flat"}`` for the estimates moved by parameters the objective never reads."""
    if not params:
        return {}
    return _named(["flat"] * sum(p.numel() for p in params), params, estimates_fn)


def describe_unbounded(found: dict[str, str], method: str) -> str:
    """One warning's text for :func:`unbounded_estimates`' answer."""
    words = {
        "grows": "keeps improving as it increases",
        "shrinks": "keeps improving as it decreases",
        "flat": "does not depend on it (nothing identifies it)",
        "saddle": "curves down along it (a saddle)",
    }
    parts = "; ".join(f"{name}: the objective {words[kind]}" for name, kind in sorted(found.items()))
    return (
        f"The {method} stopped short of an optimum along some estimates ({parts}); their values are where "
        "the optimiser stopped (fit.extras['unbounded'] lists them). Either there is no finite optimum "
        "(a hierarchical scale at its complete-pooling limit, a variance or weight collapsing to 0, a "
        "parameter no data reach): fit the posterior instead (method='mcmc' or 'svi'), or give it a "
        "prior that keeps it off the boundary; or the optimiser could not get there: data on a scale "
        "far from 1 (standardise them: float32 cannot resolve the objective's change) or too few steps "
        "(num_steps=, init=)."
    )


def _named(kinds: list[str | None], params: list[torch.Tensor], estimates_fn) -> dict[str, str]:
    """Coordinates → the estimates that move when each is nudged, with the direction carried over."""
    found: dict[str, str] = {}
    moved_by: dict[str, list[str | None]] = {}  # estimate → the kinds of every coordinate moving it
    flat = [(p, i) for p in params for i in range(p.numel())]
    with torch.random.fork_rng():
        before = _estimates(estimates_fn)
        for (param, i), kind in zip(flat, kinds):
            for name, change in _moved(param, i, before, estimates_fn).items():
                moved_by.setdefault(name, []).append(kind)
                if kind in ("up", "down"):  # the estimate moves with the coordinate, or against it
                    found.setdefault(name, "grows" if (change > 0) == (kind == "up") else "shrinks")
                elif kind == "saddle":
                    found.setdefault(name, kind)
    for name, seen in moved_by.items():
        if name not in found and all(kind == "flat" for kind in seen):
            found[name] = "flat"
    return found


def _moved(param: torch.Tensor, i: int, before: dict, estimates_fn) -> dict[str, float]:
    """``{estimate: signed relative change}`` when entry ``i`` of ``param`` is nudged up."""
    view = param.data.view(-1)
    original = view[i].clone()
    step = 0.01 * max(1.0, abs(float(original)))  # a float32 step the value can resolve
    try:
        with torch.no_grad():
            view[i] = original + step
        after = _estimates(estimates_fn)
    finally:
        with torch.no_grad():
            view[i] = original
    changes = {name: _change(old, after.get(name)) for name, old in before.items()}
    return {name: change for name, change in changes.items() if change is not None}


def _estimates(estimates_fn) -> dict[str, torch.Tensor]:
    return {
        name: value.detach().clone()
        for name, value in estimates_fn().items()
        if torch.is_tensor(value) and value.is_floating_point()
    }


def _change(old: torch.Tensor, new: torch.Tensor | None) -> float | None:
    """The signed relative change of the entry that moved most for its size (a simplex's collapsing
    weight, not its constant sum); None when nothing moved."""
    if new is None or new.shape != old.shape or torch.equal(new, old):
        return None
    relative = (new.double() - old.double()) / (old.double().abs() + 1e-12)
    return float(relative.reshape(-1)[relative.abs().argmax()])
