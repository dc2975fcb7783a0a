"""The normal approximation at a point fit's optimum: the interval a frequentist reports for MLE/MAP.

For ``mle`` and ``map`` SBC needs draws, and a point fit has one. We draw from the Laplace (Wald)
approximation at the optimum, in the unconstrained space where the latents live for NUTS and the
autoguides (log of a scale, logit of a probability; the identity for a real latent)::

    u = T⁻¹(θ)     H = -∇²_u ℓ(u) at û     u ~ N(û, H⁻¹), θ = T(u)

with ``ℓ`` the fit's own objective: for ``map`` the log joint (priors included), for ``mle`` the
log-likelihood with the globals' priors dropped. Per-unit latents (a hierarchy's group effects) are
in the vector too, at their mode given the globals (Newton steps from the fit's values); the globals'
block of ``H⁻¹`` is then the inverse Hessian of the Laplace-marginal likelihood (``mle``: empirical
Bayes) or the Laplace posterior's marginal (``map``: Pyro's ``AutoLaplaceApproximation``). The
interval for a real latent is ``θ̂ ± z·sd`` with ``sd = √(H⁻¹)ᵢᵢ``, the delta method's for others.
A Hessian that is not positive definite (an optimum on a boundary, MAP's funnel) has no interval:
the simulation counts as failed for that method, with the reason.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import biject_to

from ppgen.core import is_program

__all__ = ["normal_approximation", "LaplaceError"]

NEWTON_STEPS = 20


class LaplaceError(ArithmeticError):
    """No normal approximation at this optimum (the reason in the message)."""


def _story(fit) -> tuple[Any, tuple, dict]:
    if is_program(fit.model):
        return fit.model.model, (None,), dict(fit.data)
    return fit.model.model, (fit.data,), dict(fit.covariates)


def normal_approximation(fit, global_sites: dict[str, tuple[int, ...]]) -> dict[str, tuple]:
    """``{site: (mean_u, sd_u, transform)}`` for the global latents of the point fit ``fit``."""
    fn, args, kwargs = _story(fit)
    with torch.no_grad(), poutine.block():
        trace = prune_subsample_sites(poutine.trace(fn).get_trace(*args, **kwargs))
    latents = {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site["infer"].get("_deterministic")
    }
    if any(site["fn"].support.is_discrete for site in latents.values()):
        raise LaplaceError("a discrete latent: the normal approximation needs continuous latents")
    transforms = {name: biject_to(site["fn"].support) for name, site in latents.items()}
    start = {}
    for name, site in latents.items():
        value = _fitted_value(fit, name, site["value"])
        start[name] = transforms[name].inv(value).detach().double()
    names = list(latents)
    shapes = [start[n].shape for n in names]
    sizes = [start[n].numel() for n in names]
    priors_dropped = fit.method == "mle"

    def log_objective(flat: torch.Tensor) -> torch.Tensor:
        values, at = {}, 0
        for name, shape, size in zip(names, shapes, sizes):
            values[name] = transforms[name](flat[at : at + size].reshape(shape))
            at += size
        with poutine.block():
            tr = poutine.trace(poutine.condition(fn, data=values)).get_trace(*args, **kwargs)
        return tr.log_prob_sum(
            lambda name, site: (
                site["type"] == "sample"
                and not site["infer"].get("_deterministic")
                and not (priors_dropped and name in global_sites)
            )
        )

    flat = torch.cat([start[n].reshape(-1) for n in names])
    is_global = torch.cat(
        [torch.full((size,), name in global_sites, dtype=torch.bool) for name, size in zip(names, sizes)]
    )
    flat = _locals_at_mode(log_objective, flat, is_global)
    if priors_dropped and not is_global.all():
        precision = _marginal_precision(log_objective, flat, is_global)
    else:
        hessian = torch.autograd.functional.hessian(log_objective, flat)
        precision = -0.5 * (hessian + hessian.T)
    try:
        covariance = torch.cholesky_inverse(torch.linalg.cholesky(precision))
    except RuntimeError:
        raise LaplaceError("the Hessian at the optimum is not negative definite (no Wald interval)") from None
    if precision.shape[0] != flat.numel():  # the globals' own precision: pad to the whole vector
        full = torch.full((flat.numel(),), float("nan"), dtype=torch.float64)
        full[is_global] = covariance.diagonal()
        covariance = torch.diag_embed(full)
    sd = covariance.diagonal().sqrt()
    if not torch.isfinite(sd[is_global]).all():
        raise LaplaceError("a non-finite variance at the optimum")
    out, at = {}, 0
    for name, shape, size in zip(names, shapes, sizes):
        if name in global_sites:
            out[name] = (
                flat[at : at + size].reshape(shape),
                sd[at : at + size].reshape(shape),
                transforms[name],
            )
        at += size
    return out


def _fitted_value(fit, name: str, prototype: torch.Tensor) -> torch.Tensor:
    """The fit's value of a latent: its point estimate, else the mean of its draws (a local latent)."""
    if name in fit.params:
        return fit.params[name].detach().reshape(prototype.shape).to(prototype.dtype)
    if fit.draws is not None and name in fit.draws:
        return fit.draws[name].detach().mean(0).reshape(prototype.shape).to(prototype.dtype)
    return prototype.detach()


def _marginal_precision(log_objective, flat: torch.Tensor, is_global: torch.Tensor) -> torch.Tensor:
    """``-∇²`` of the Laplace-marginal log-likelihood ``ℓ(u) = f(u, ẑ(u)) - ½ log det(-∇²_z f)`` in the
    globals ``u``, by central differences (``ẑ(u)`` by Newton at each point). The log-determinant is
    what keeps a hierarchy's scale away from 0: without it the joint has no maximum in the scale."""
    local = ~is_global
    where = is_global.nonzero().reshape(-1)

    def marginal(shift: torch.Tensor) -> float:
        point = flat.clone()
        point[is_global] += shift
        point = _locals_at_mode(log_objective, point, is_global)
        hess = torch.autograd.functional.hessian(log_objective, point)[local][:, local]
        sign, logdet = torch.linalg.slogdet(-hess)
        if sign <= 0:
            raise LaplaceError("the local latents have no mode given the globals (no Laplace marginal)")
        return float(log_objective(point)) - 0.5 * float(logdet)

    d = len(where)
    step = 1e-3 * torch.clamp(flat[is_global].abs(), min=1.0)
    centre = marginal(torch.zeros(d, dtype=torch.float64))
    hessian = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d):
        for j in range(i, d):
            ei = torch.zeros(d, dtype=torch.float64)
            ej = torch.zeros(d, dtype=torch.float64)
            ei[i], ej[j] = step[i], step[j]
            if i == j:
                value = (marginal(ei) - 2 * centre + marginal(-ei)) / step[i] ** 2
            else:
                value = (marginal(ei + ej) - marginal(ei - ej) - marginal(ej - ei) + marginal(-ei - ej)) / (
                    4 * step[i] * step[j]
                )
            hessian[i, j] = hessian[j, i] = value
    return -hessian


def _locals_at_mode(log_objective, flat: torch.Tensor, is_global: torch.Tensor) -> torch.Tensor:
    """Newton steps on the non-global coordinates, the globals held at the fit's estimates."""
    if is_global.all():
        return flat
    local = ~is_global
    for _ in range(NEWTON_STEPS):
        flat = flat.detach().requires_grad_(True)
        grad = torch.autograd.grad(log_objective(flat), flat)[0][local]
        hess = torch.autograd.functional.hessian(log_objective, flat.detach())[local][:, local]
        try:
            step = torch.linalg.solve(-hess, grad)
        except RuntimeError:
            break
        if not torch.isfinite(step).all():
            break
        flat = flat.detach().clone()
        flat[local] += step
        if float(step.abs().max()) < 1e-8:
            break
    return flat.detach()


def draws_and_cdf(approx: tuple, truth: torch.Tensor, num_draws: int, generator: torch.Generator):
    """``num_draws`` draws of the approximation (constrained) and its CDF at ``truth``, element-wise."""
    mean, sd, transform = approx
    eps = torch.randn((num_draws, *mean.shape), generator=generator, dtype=torch.float64)
    draws = transform(mean + sd * eps)
    z = (transform.inv(truth.double()) - mean) / sd
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return draws, cdf
