"""Information criteria over a fit's units: PSIS-LOO and WAIC through ArviZ.

A program with several observed sites carries one ``log_likelihood`` variable per site plus their
sum (``total``): the criteria use the sum, the log-likelihood of a whole unit. A program whose
observed sites sit in no plate has one unit, and leaving one unit out of one is not an estimate of
anything: the criteria are refused there with the reason.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ppgen.core import TOTAL
from ppgen.errors import MethodError


def _pointwise(fit: Any) -> tuple[Any, str]:
    posterior = fit.posterior
    if posterior is None or "log_likelihood" not in posterior.groups():
        raise MethodError(
            f"Expected a fit with posterior draws and pointwise log-likelihoods for LOO/WAIC, but the "
            f"{fit.method!r} fit has none; fit with method='mcmc' (or 'svi' on a model with priors)."
        )
    group = posterior.log_likelihood
    names = list(group.data_vars)
    var = TOTAL if TOTAL in names else names[0]
    units = int(np.prod(group[var].shape[2:]))
    if units < 2:
        raise MethodError(
            "Expected several units for LOO/WAIC, but this program's observed sites sit in no plate: "
            "the data are one unit and leaving it out leaves nothing to predict it from. Put the "
            "observations in a pyro.plate (one entry per unit), or compare held-out scores instead."
        )
    return posterior, var


def loo(fit: Any, pointwise: bool = True):
    """PSIS-LOO (``az.loo``) over the fit's units: ``elpd_loo = Σ_i log p(y_i | y_-i)``, estimated."""
    import arviz as az

    posterior, var = _pointwise(fit)
    return az.loo(posterior, pointwise=pointwise, var_name=var)


def waic(fit: Any, pointwise: bool = True):
    """WAIC (``az.waic``) over the fit's units."""
    import arviz as az

    posterior, var = _pointwise(fit)
    return az.waic(posterior, pointwise=pointwise, var_name=var)


def information_criteria(fit: Any) -> dict[str, Any]:
    """ELPD by PSIS-LOO with its Pareto ``k`` diagnostics, and WAIC; NaN (with the reason) where refused."""
    try:
        with warnings.catch_warnings():
            # ArviZ warns on high Pareto k (and WAIC's variance check); the table reports k instead.
            warnings.simplefilter("ignore")
            psis = loo(fit)
            widely = waic(fit)
    except MethodError as err:
        names = ("elpd_loo", "loo_pareto_k_max", "loo_pareto_k_bad", "elpd_waic")
        no_draws = fit.posterior is None or "log_likelihood" not in fit.posterior.groups()
        return {**dict.fromkeys(names, math.nan), **({} if no_draws else {"note": str(err).split(":")[0]})}
    # k > 0.7: that point's LOO estimate is unreliable (Vehtari et al. 2017, https://arxiv.org/abs/1507.04544;
    # ArviZ's own threshold is min(0.7, 1 - 1/log10(draws))).
    k = np.asarray(psis["pareto_k"], dtype=float)
    return {
        "elpd_loo": float(psis["elpd_loo"]),
        "loo_pareto_k_max": float(np.nanmax(k)) if np.isfinite(k).any() else math.nan,
        "loo_pareto_k_bad": int((k > 0.7).sum()),
        "elpd_waic": float(widely["elpd_waic"]),
    }
