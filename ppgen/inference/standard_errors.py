"""Standard errors of point estimates from the curvature of the objective at the optimum.

For an MLE the observed information ``I = −∇² log p(y | θ̂)`` gives ``Var θ̂ ≈ I⁻¹`` (Wald, as
statsmodels reports it); for a MAP the same Hessian of the negative log joint is the precision of
the Laplace approximation. Both are taken in the optimiser's unconstrained coordinates ``u`` and
carried to the reported estimate ``c = T(u)`` by the delta method, ``Cov c ≈ J I⁻¹ Jᵀ`` with
``J = ∂c/∂u`` (a positive scale ``c = eᵘ`` gets ``sd c ≈ c · sd u``).

The Hessian comes from autograd (one double-backward per parameter); where the loss cannot be
differentiated twice it falls back to central differences of the gradient. ``J`` is taken by
central differences of the estimates themselves, so any constraint Pyro knows (simplex, ordered,
Cholesky factors) is carried without a case per transform.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from ppgen.inference.unbounded import unbounded_estimates, unread_estimates

__all__ = ["point_errors", "curvature", "estimates_of", "MAX_PARAMETERS"]

#: Above this many unconstrained numbers the Hessian (n² entries, n backward passes) is skipped.
MAX_PARAMETERS = 400
#: Central-difference step in unconstrained units (the estimates' Jacobian; the Hessian fallback).
STEP = 1e-3


def curvature(loss_fn, params: list[torch.Tensor], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(∇, ∇²)`` of ``scale · loss_fn()`` in the flattened unconstrained coordinates (float64)."""
    with torch.random.fork_rng():  # leave the caller's random stream where it was
        gradient, hessian = _hessian(loss_fn, params)
    hessian = hessian * scale
    return gradient * scale, 0.5 * (hessian + hessian.T)


def _free(params: list[torch.Tensor]) -> tuple[list[torch.Tensor], str | None]:
    params = [p for p in params if p.requires_grad]
    size = sum(p.numel() for p in params)
    if size == 0:
        return params, "no free parameters"
    if size > MAX_PARAMETERS:
        return params, f"{size} parameters: the Hessian is computed only up to {MAX_PARAMETERS}"
    return params, None


def _errors(hessian: torch.Tensor, params, estimates_fn) -> tuple[dict[str, torch.Tensor], str | None]:
    with torch.random.fork_rng():
        jacobian, estimates = _estimates_jacobian(estimates_fn, params)
    if not bool(torch.isfinite(hessian).all()):
        return {}, "the Hessian at the estimate is not finite"
    factor, info = torch.linalg.cholesky_ex(hessian)
    if int(info) != 0:
        return {}, "the Hessian at the estimate is not positive definite (a saddle, a ridge or a boundary)"
    covariance = torch.cholesky_inverse(factor)
    variance = torch.einsum("ij,jk,ik->i", jacobian, covariance, jacobian).clamp_min(0.0)
    sd = variance.sqrt()
    sd[(jacobian == 0).all(1)] = float("nan")  # an estimate the optimiser never moved
    result, start = {}, 0
    for name, value in estimates.items():
        result[name] = sd[start : start + value.numel()].reshape(value.shape).to(value.dtype)
        start += value.numel()
    return result, None


def _flat_grad(loss: torch.Tensor, params: list[torch.Tensor], create_graph: bool) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def used_parameters(loss_fn, params: list[torch.Tensor]) -> list[bool]:
    """Which of ``params`` the objective reads at all (a user's guide's parameters, which a MAP's
    autoguide replaces, are trained by nothing and estimate nothing)."""
    with torch.enable_grad(), torch.random.fork_rng():
        grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
    return [g is not None for g in grads]


def _hessian(loss_fn, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient and Hessian of ``loss_fn()`` (float64)."""
    try:
        with torch.enable_grad():
            gradient = _flat_grad(loss_fn(), params, create_graph=True)
            rows = []
            for i in range(gradient.numel()):
                if not gradient[i].requires_grad:  # constant in every parameter (e.g. linear)
                    rows.append(torch.zeros_like(gradient))
                    continue
                rows.append(_flat_grad(gradient[i], params, create_graph=False))
        return gradient.detach().double(), torch.stack(rows).double()
    except RuntimeError:  # a loss that autograd cannot differentiate twice (a compiled graph)
        return _hessian_by_differences(loss_fn, params)


def _hessian_by_differences(loss_fn, params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    def gradient() -> torch.Tensor:
        with torch.enable_grad():
            return _flat_grad(loss_fn(), params, create_graph=False).double()

    columns = [(plus - minus) / (2 * STEP) for plus, minus in _nudged(params, gradient)]
    return gradient(), torch.stack(columns, 1)


def _estimates_jacobian(estimates_fn, params: list[torch.Tensor]):
    estimates = {
        name: value.detach()
        for name, value in estimates_fn().items()
        if torch.is_tensor(value) and value.is_floating_point()
    }

    def flat() -> torch.Tensor:
        values = estimates_fn()
        return torch.cat([values[name].detach().double().reshape(-1) for name in estimates])

    columns = [(plus - minus) / (2 * STEP) for plus, minus in _nudged(params, flat)]
    return torch.stack(columns, 1), estimates


def _nudged(params: list[torch.Tensor], evaluate):
    """``(f(u + h e_j), f(u − h e_j))`` for every unconstrained coordinate ``j``; ``u`` is restored."""
    for param in params:
        for index in itertools.product(*map(range, param.shape)):
            original = param.data[index].clone()
            with torch.no_grad():
                param.data[index] = original + STEP
                plus = evaluate()
                param.data[index] = original - STEP
                minus = evaluate()
                param.data[index] = original
            yield plus, minus


def point_errors(loss_fn, params, estimates_fn, scale: float, latents=()) -> dict:
    """The ``extras`` of a point fit with a deterministic objective: ``{"sd": {name: sd}}`` or
    ``{"sd_skipped": reason}``, and ``{"unbounded": {name: kind}}`` for the estimates the optimiser
    left short of an optimum (:mod:`.unbounded`). ``latents``: the parameters that stand for latent
    sites (a MAP's point guide, an MLE's dropped-prior globals); one the objective does not read is
    an estimate nothing identifies, where any other unread parameter (a user's guide's, which a MAP's
    autoguide replaces) estimates nothing and is left out."""
    params = [p for p in params if p.requires_grad]
    try:
        used = used_parameters(loss_fn, params) if params else []
        # the Hessian over what the objective reads: a MAP's model may register guide networks (Pyro's
        # dmm.py: 100 of 264 numbers, then a 26x slower fit for nothing)
        read, reason = _free([p for p, u in zip(params, used) if u])
        if reason is not None:
            return {"sd_skipped": reason}
        gradient, hessian = curvature(loss_fn, read, scale)
        errors, reason = _errors(hessian, read, estimates_fn)
    except (RuntimeError, ValueError) as error:  # the fit stands; only its errors are missing
        return {"sd_skipped": f"the Hessian could not be computed ({error})"}
    extras: dict = {"sd": errors} if reason is None else {"sd_skipped": reason}
    unread = [p for p, u in zip(params, used) if not u and any(p is q for q in latents)]
    unbounded = unbounded_estimates(gradient, hessian, read, estimates_fn)
    unbounded.update(unread_estimates(unread, estimates_fn))
    if unbounded:
        extras["unbounded"] = unbounded
    return extras


def estimates_of(model, auto, x, covariates: dict) -> Callable[[], dict[str, torch.Tensor]]:
    """The reported estimates of an ELBO point fit: the model's parameters and, with ``AutoDelta``
    over the latents (MAP), the guide's constrained point values."""

    def estimates() -> dict[str, torch.Tensor]:
        values = dict(model.point_estimates())
        if auto is not None:
            values.update(auto.median(x, **covariates))
        return values

    return estimates
