"""L-BFGS after Adam on a deterministic objective: Adam's noisy last steps polished to the
optimiser's precision (a marginal MLE with every latent summed out; a MAP with point guides).

Adam moves each parameter by about ``lr`` a step, so a MAP started at a prior median six units
from the optimum is still 3 units away after 300 steps at lr 0.01; L-BFGS with a strong-Wolfe line
search finishes the job in a handful of evaluations when the loss has no sampling noise. At that
optimum the objective's curvature gives the fit's standard errors (:mod:`.standard_errors`).
"""

from __future__ import annotations

import warnings

import torch

from ppgen.errors import ConvergenceWarning, OptionError
from ppgen.inference import distributed
from ppgen.inference.loop import training_mode
from ppgen.inference.standard_errors import point_errors
from ppgen.inference.unbounded import describe_unbounded

__all__ = ["polish", "polishes", "polishable", "is_deterministic", "finish_point_fit"]

#: A maximum likelihood fit of a program's own parameters (no latents to guide) is polished up to
#: this many numbers: a GLM's or a mixture's handful reach the exact optimum (scikit-learn's and
#: statsmodels' answers) in a few L-BFGS iterations, where a network's would spend minutes.
POLISH_MAX_PARAMETERS = 400


def polishes(options: dict) -> bool:
    """``polish=`` (default True) asks for L-BFGS after Adam; data-parallel runs skip it: each rank
    holds a shard, and the ranks' line searches would part ways."""
    value = options.get("polish", True)
    if not isinstance(value, bool):
        raise OptionError(f"Expected polish to be True or False, but got {value!r}.")
    return value and not distributed.is_distributed()


def polishable(guide_name: str, params: list[torch.Tensor], program: bool) -> bool:
    """A MAP (point guides over the latents), or a maximum likelihood fit of a Pyro program's own
    small set of parameters (no guide: nothing but enumerated latents between them and the data)."""
    small = sum(p.numel() for p in params) <= POLISH_MAX_PARAMETERS
    return guide_name == "delta" or (guide_name == "model" and program and small)


def is_deterministic(loss_fn) -> bool:
    """Two evaluations at the same parameters agree bit for bit (no sampled latents, no subsampling)."""
    with torch.random.fork_rng():  # Pyro's differentiable losses refuse to run under no_grad
        first, second = loss_fn().detach(), loss_fn().detach()
    return bool(torch.equal(first, second)) and bool(torch.isfinite(first).all())


def polish(loss_fn, params, history: list[float], converged: bool) -> tuple[list[float], bool]:
    """L-BFGS on a deterministic objective, from where Adam stopped (kept only if it improves)."""
    before = [p.detach().clone() for p in params]
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward(retain_graph=True)  # as loop._backward: a graph a program caches stays usable
        return loss

    start = float(loss_fn().detach())
    try:
        optimizer.step(closure)
        end = float(loss_fn().detach())
    except (RuntimeError, ValueError):  # a step outside the support: keep Adam's answer
        end = float("nan")
    if not end <= start:  # NaN, or worse than Adam's end
        with torch.no_grad():
            for p, b in zip(params, before):
                p.copy_(b)
        return history, converged
    return [*history, end], True


def finish_point_fit(
    applies: bool,
    loss_fn,
    params,
    history,
    converged,
    parts,
    estimates_fn,
    scale: float,
    exact_loss=None,
    method: str = "point fit",
    latents=(),
) -> tuple[list[float], bool, dict]:
    """A point fit over every unit with nothing sampled has a deterministic objective: L-BFGS finishes
    it, its curvature gives standard errors, and its gradient and curvature along each coordinate find
    the estimates it left short of an optimum (warned, :mod:`.unbounded`).

    Returns ``(history, converged, extras)``, where ``extras`` holds ``"polish"``,
    ``"sd"``/``"sd_skipped"`` and ``"unbounded"`` (when any) when it applied.

    ``parts``: the modules the loss trains (in training mode meanwhile); ``scale · loss`` is the
    objective over every unit; ``latents``: the parameters standing for latent sites (see
    :func:`~.standard_errors.point_errors`); ``exact_loss`` (default ``loss_fn``): the same objective
    uncompiled, for the Hessian's double backward, which a traced loss may not give."""
    if not applies or not is_deterministic(loss_fn):
        return history, converged, {}
    with training_mode(*parts):
        history, converged = polish(loss_fn, params, history, converged)
        errors = point_errors(exact_loss or loss_fn, params, estimates_fn, scale, latents)
    if errors.get("unbounded"):
        warnings.warn(describe_unbounded(errors["unbounded"], method), ConvergenceWarning, stacklevel=3)
    return history, converged, {"polish": "lbfgs", **errors}
