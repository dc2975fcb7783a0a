"""What a Stan user reads after sampling: one line per failed check, with the remedy.

Checks (Stan's thresholds): split R-hat > 1.01, bulk ESS < 100 per chain, any divergent draw,
draws whose tree hit the maximum depth, E-BFMI < 0.3 in a chain. The lines go to the
``ppgen.mcmc`` logger at WARNING level (printed on stderr unless the user configures logging)
and into ``fit.extras["diagnostics"]``; they are not ``warnings.warn`` because a short run (a
test, a smoke run) fails the ESS check by construction, and a test suite run with
``-W error`` must not turn a diagnosis into a failure.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["diagnose", "LOGGER"]

LOGGER = logging.getLogger("ppgen.mcmc")
RHAT_MAX, ESS_PER_CHAIN, BFMI_MIN = 1.01, 100, 0.3


def _worst(dataset) -> tuple[str, float]:
    """The variable with the smallest finite value of an ArviZ per-variable dataset (ESS) and that value."""
    values = {name: float(np.nanmin(dataset[name].values)) for name in dataset.data_vars}
    name = min(values, key=values.get)
    return name, values[name]


def diagnose(
    posterior, stats: dict[str, np.ndarray] | None, max_tree_depth: int, target_accept_prob: float
) -> list[str]:
    """Run the checks on an InferenceData (``stats``: ``{name: (C, S)}``); log and return the lines."""
    import arviz as az  # already loaded by the InferenceData the fit holds

    chains, draws = posterior.posterior.sizes["chain"], posterior.posterior.sizes["draw"]
    lines = []
    if draws >= 4:
        if chains > 1:
            rhat = az.rhat(posterior)
            values = {n: float(np.nanmax(rhat[n].values)) for n in rhat.data_vars}
            name = max(values, key=values.get)
            if values[name] > RHAT_MAX:
                lines.append(
                    f"R-hat up to {values[name]:.3f} ({name!r}) > {RHAT_MAX}: the chains disagree; "
                    "run longer (warmup_steps, num_samples) or reparameterise."
                )
        name, ess = _worst(az.ess(posterior, method="bulk"))
        if ess < ESS_PER_CHAIN * chains:
            lines.append(
                f"Bulk ESS down to {ess:.0f} ({name!r}) < {ESS_PER_CHAIN * chains} ({ESS_PER_CHAIN} per "
                "chain): means and quantiles are unreliable; draw more (num_samples) or reparameterise."
            )
    if stats is not None:
        divergent = int(np.sum(stats["diverging"]))
        if divergent:
            lines.append(
                f"{divergent} of {chains * draws} draws diverged: the posterior has regions the step size "
                "cannot follow; reparameterise (e.g. non-centred) or raise target_accept_prob (now "
                f"{target_accept_prob})."
            )
        saturated = int(np.sum(stats["tree_depth"] >= max_tree_depth))
        if saturated:
            lines.append(
                f"{saturated} of {chains * draws} draws hit max_tree_depth={max_tree_depth}: trajectories "
                "were cut short; raise max_tree_depth or use dense_mass=True for correlated posteriors."
            )
        if draws >= 4:
            bfmi = az.bfmi(np.asarray(stats["energy"], dtype=np.float64))
            low = [c for c, value in enumerate(np.atleast_1d(bfmi)) if value < BFMI_MIN]
            if low:
                lines.append(
                    f"E-BFMI below {BFMI_MIN} in chain(s) {low} ({np.round(bfmi, 2).tolist()}): the momenta "
                    "explore the energy poorly (heavy tails, funnels); reparameterise."
                )
    for line in lines:
        LOGGER.warning(line)
    return lines
