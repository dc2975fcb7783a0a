"""Simulated data sets for calibration: ``θ ~ p(θ)``, then ``y ~ p(y | θ)`` at the user's covariates and
sizes.

The draw is :func:`ppgen.prior_predictive`'s (one joint draw of the program from its prior, with the
observed sites left free), so a simulated data set is exactly what the prior predictive check shows.
The simulated observations replace the ones the user gave: in the argument a site observes whole
(``obs=hits``), or in ``observed={site: values}`` for a program conditioned from outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ppgen.core import global_latent_sites, is_program, with_local_params
from ppgen.data import as_data
from ppgen.errors import DataError, MethodError
from ppgen.programs.door import as_fit_model
from ppgen.programs.predictive import prior_predictive

__all__ = ["Simulator", "derive_seed"]


def derive_seed(seed: int, *keys: int) -> int:
    """A seed for one piece of work, from the run's ``seed`` and the piece's keys (simulation index, ...):
    independent streams for every ``(seed, keys)``, the same on every machine and in every process."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


class Simulator:
    """Binds ``model`` to ``data`` once; :meth:`draw` gives ``(truth, data)`` for one simulation.

    Arguments:
        model: a Pyro program with priors, or a ppgen model with priors.
        data: its arguments (a dict or DataFrame) or its data; the observed values are replaced.
        observed: ``{site: values}`` for a program conditioned from outside, as for :func:`ppgen.fit`.
    """

    def __init__(self, model: Any, data: Any, observed: dict | None = None):
        self.model, self.data, self.observed = model, data, observed
        self.program = _bound(model, data, observed)
        self.globals = self._global_sites()
        if not self.globals:
            raise MethodError(
                "Expected a model with priors on global latents to calibrate (their values are drawn from "
                "the prior, then recovered by each method), but it has none; give its parameters priors."
            )
        if is_program(self.program):
            self.arguments = self._observed_arguments()

    def _global_sites(self) -> dict[str, tuple[int, ...]]:
        """``{site: shape}`` of the latents outside the units' plate, in the program's order."""
        if is_program(self.program):
            return {
                name: tuple(info["shape"])
                for name, info in self.program.latent_sites.items()
                if not info["local"] and not info["discrete"]
            }
        x, covariates = as_data(self.data)
        found = global_latent_sites(self.program, x, covariates)
        return {name: tuple(site["value"].shape) for name, site in found.items()}

    def _observed_arguments(self) -> dict[str, str]:
        """``{observed site: the argument it observes whole}`` (sites conditioned by ``observed=`` absent)."""
        args = self.program.train_args
        values = self.program.observed_values(args)
        found = {}
        for site, value in values.items():
            if self.observed and site in self.observed:
                continue
            names = [
                k
                for k, v in args.items()
                if isinstance(v, torch.Tensor) and v.shape == value.shape and v is value
            ] or [
                k
                for k, v in args.items()
                if isinstance(v, torch.Tensor) and v.shape == value.shape and torch.equal(v, value)
            ]
            if not names:
                raise DataError(
                    f"Expected the observed site {site!r} to receive one argument whole (obs=y) so that "
                    "calibration can replace it by simulated values, but it observes part of one; condition "
                    f"it from outside instead: observed={{{site!r}: values}}."
                )
            found[site] = names[0]
        return found

    @with_local_params
    def draw(self, seed: int) -> tuple[dict[str, np.ndarray], Any]:
        """One simulation: ``({global site: true value}, the data to fit)``."""
        draws = prior_predictive(self.model, self.data, num_samples=1, seed=seed, observed=self.observed)
        truth = {name: np.asarray(draws.prior[name].values[0, 0]) for name in self.globals}
        simulated = {name: draws.prior_predictive[name].values[0, 0] for name in draws.prior_predictive}
        if not is_program(self.program):
            x, covariates = as_data(self.data)
            y = torch.as_tensor(simulated["x"], dtype=x.dtype)
            return truth, (y if not covariates else {"x": y, **covariates})
        data = dict(_mapping(self.data))
        observed = dict(self.observed or {})
        for site, values in simulated.items():
            if site in observed:
                observed[site] = torch.as_tensor(values)
            else:
                data[self.arguments[site]] = torch.as_tensor(values)
        return truth, (data, observed or None)


@with_local_params
def _bound(model: Any, data: Any, observed: dict | None):
    program = as_fit_model(model, observed)
    if is_program(program):
        program.bind(data, observed=observed)
        if not program.is_bayesian:
            raise MethodError(
                f"Expected a program with priors to calibrate, but {program.name} samples no latent; "
                "calibration draws the truth from the prior."
            )
    return program


def _mapping(data: Any) -> Mapping[str, Any]:
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a DataFrame: its columns by name
        return {str(c): data[c].to_numpy() for c in data.columns}
    if isinstance(data, Mapping):
        return data
    return {"x": data}
