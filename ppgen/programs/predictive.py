"""Prior and posterior predictive checks, as ArviZ groups so ArviZ's plots work on them.

- :func:`prior_predictive` — draws of every latent and observed site from the prior:
  ``InferenceData`` with ``prior``, ``prior_predictive`` and ``observed_data`` (``az.plot_ppc(...,
  group="prior")``).
- :func:`predict` (``Fit.predict``) — replicated data ``y_rep ~ p(y | θ_s)``: one replicate per
  posterior draw (Bayesian fits), or replicates from the plug-in parameters (point fits). On the
  training data it also adds the ``posterior_predictive`` group to ``fit.posterior``, laid out like
  its ``log_likelihood`` (same chains and draws), so ``az.plot_ppc`` and ``az.loo_pit`` work. At new
  inputs (a program's arguments with the observed ones left out) it is Pyro's
  ``Predictive(model, posterior_samples)(x_new)``: the observed sites are the training fit's, new
  units draw their per-unit latents from the conditional prior, deterministic sites come along.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pyro import poutine

from ppgen.core import is_program, set_seed, with_local_params
from ppgen.data import as_data
from ppgen.errors import OptionError
from ppgen.programs.door import as_fit_model
from ppgen.programs.draws import joint_draws

__all__ = ["prior_predictive", "predict"]

#: Replicates a point fit draws when ``num_samples`` is not given.
POINT_REPLICATES = 500


def _check_count(num_samples: Any, name: str = "num_samples") -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise OptionError(f"Expected {name} to be a positive integer, but got {num_samples!r}.")
    return num_samples


@with_local_params
def prior_predictive(
    model: Any,
    data: Any,
    num_samples: int = 500,
    seed: int | None = None,
    *,
    observed: dict | None = None,
):
    """Draws from the prior of every latent site and of the data, ``θ_s ~ p(θ)``, ``y_s ~ p(y | θ_s)``.

    ``model`` is a Pyro program (bound to ``data`` as :func:`ppgen.fit` binds it) or a ppgen model
    with priors; ``data`` gives the arguments and the observed values (``observed_data`` group).
    Returns ``arviz.InferenceData`` with ``prior``, ``prior_predictive`` and ``observed_data``.
    """
    import arviz as az

    num_samples = _check_count(num_samples)
    set_seed(seed)
    fitted = as_fit_model(model, observed)
    with torch.no_grad():
        if is_program(fitted):
            _, args = fitted.bind(data, observed=observed)
            latents, values = joint_draws(fitted, args, num_samples)
            observed_data = fitted.observed_values(args)
        else:
            x, covariates = as_data(data)
            latents, values = _model_joint_draws(fitted, x, covariates, num_samples)
            observed_data = {"x": x}
    return az.from_dict(
        prior=_by_chain(latents),
        prior_predictive=_by_chain(values),
        observed_data={k: v.detach().cpu().numpy() for k, v in observed_data.items()},
    )


def _model_joint_draws(model, x: torch.Tensor, covariates: dict, n: int):
    """A ppgen model's prior draws: one trace of its story per draw (the data replaced)."""
    rows = []
    for _ in range(n):
        trace = poutine.trace(poutine.uncondition(model.model)).get_trace(x, **covariates)
        rows.append(
            {
                name: site["value"]
                for name, site in trace.nodes.items()
                if site["type"] == "sample" and not name.startswith("_") and site["value"] is not None
            }
        )
    stacked = {name: torch.stack([row[name] for row in rows]) for name in rows[0]}
    values = {"x": stacked.pop("x")}
    return stacked, values


def _by_chain(draws: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().unsqueeze(0).numpy() for k, v in draws.items()}


def predict(
    fit, data: Any = None, num_samples: int | None = None, seed: int | None = None, return_sites=None
) -> dict:
    """Predictive draws ``{site: (S, *shape)}`` under ``fit`` (see the module docstring): the observed
    sites, then a program's deterministic sites, or the sites ``return_sites`` names."""
    if num_samples is not None:
        _check_count(num_samples)
    set_seed(seed)
    draws, layout = _predictive_parameters(fit, num_samples if data is not None else None)
    total = next(iter(draws.values())).shape[0] if draws else 0
    count = num_samples or (total if total > 1 else POINT_REPLICATES)  # a point fit (MAP: one draw)
    with torch.no_grad():
        if is_program(fit.model):
            args = fit.data if data is None else fit.model.bind_inputs(data, dtype=fit._dtype())
            replicates = fit.model.predictive_sites(count, args, draws, return_sites)
            observed = fit.model.observed_sites
        else:
            if return_sites not in (None, "x", ["x"], ("x",)):
                raise OptionError(
                    f"Expected return_sites=['x'] for {type(fit.model).__name__} (its one observed site), "
                    f"but got {return_sites!r}."
                )
            replicates, observed = _model_replicates(fit, data, draws, count), ("x",)
    if data is None and num_samples is None:
        _attach(fit, {k: v for k, v in replicates.items() if k in observed}, layout)
    return replicates


def _predictive_parameters(fit, num_samples: int | None) -> tuple[dict | None, tuple[int, int] | None]:
    """The draws replicates are conditioned on, and their (chain, draw) layout in ``fit.posterior``."""
    if fit.exact_posterior is not None and fit.draws is None:
        return fit.exact_posterior.draw(num_samples or POINT_REPLICATES), None
    draws = fit.draws
    if draws is None or fit.posterior is None or "log_likelihood" not in fit.posterior.groups():
        return draws, None
    sizes = fit.posterior.log_likelihood.sizes
    chains, per_chain = int(sizes["chain"]), int(sizes["draw"])
    total = next(iter(draws.values())).shape[0]
    if total == chains * per_chain:
        return draws, (chains, per_chain)
    if total % chains:
        return draws, None
    # log_likelihood was thinned (inference_data's max_draws_for_loglik): the same draws, evenly spaced
    keep = torch.linspace(0, total // chains - 1, per_chain).round().long()
    thinned = {
        k: v.reshape(chains, total // chains, *v.shape[1:])[:, keep].reshape(-1, *v.shape[1:])
        for k, v in draws.items()
    }
    return thinned, (chains, per_chain)


def _model_replicates(fit, data, draws, count: int) -> dict[str, torch.Tensor]:
    """A ppgen model's replicated data sets, each as many rows as ``data`` (or the training data)."""
    if data is None:
        x, covariates = fit.data, fit.covariates
    else:
        x, covariates = fit._as_data(data, {})
    rows = x.shape[0]
    if draws is None:
        return {"x": fit.model.sample(count * rows, **covariates).reshape(count, rows, *x.shape[1:])}
    total = next(iter(draws.values())).shape[0]
    out = []
    for s in range(count):
        with poutine.condition(data={k: v[s % total] for k, v in draws.items()}):
            out.append(fit.model.sample(rows, **covariates))
    return {"x": torch.stack(out)}


def _attach(fit, replicates: dict[str, torch.Tensor], layout: tuple[int, int] | None) -> None:
    """Add ``posterior_predictive`` (and ``observed_data``) to ``fit.posterior`` (created for point fits)."""
    import arviz as az

    if not replicates:
        return
    if layout is None:
        count = next(iter(replicates.values())).shape[0]
        layout = (1, count)
    group = {k: v.detach().cpu().reshape(*layout, *v.shape[1:]).numpy() for k, v in replicates.items()}
    if fit.posterior is None:
        observed = _observed(fit)
        fit.posterior = az.from_dict(posterior_predictive=group, observed_data=observed)
        return
    addition = az.from_dict(posterior_predictive=group)
    if "posterior_predictive" in fit.posterior.groups():
        del fit.posterior.posterior_predictive
    fit.posterior.extend(addition)


def _observed(fit) -> dict[str, np.ndarray]:
    if is_program(fit.model):
        return {k: v.cpu().numpy() for k, v in fit.model.observed_values(fit.data).items()}
    return {"x": fit.data.detach().cpu().numpy()}
