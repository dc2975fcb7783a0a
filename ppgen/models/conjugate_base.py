"""What every conjugate family shares: the exact-posterior record and the closed-under-updating base.

Each family is a :class:`GenerativeModel` whose globals carry their conjugate prior
(``PyroSample``), so ``method="exact"`` returns the exact posterior while ``"map"``,
``"svi"`` and ``"mcmc"`` approximate the *same* story — the exact answer is the
reference every other backend is checked against.

Updating is closed under the family: ``model.posterior_model(x)`` returns the same family
with the posterior hyperparameters, so sequential and batch updating agree. The families
are in :mod:`ppgen.models.conjugate_normal` and :mod:`ppgen.models.conjugate_discrete`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyro.distributions as dist
import torch

from ppgen.core import GenerativeModel
from ppgen.data import as_tensor
from ppgen.errors import OptionError

__all__ = ["ConjugatePosterior", "Conjugate", "as_hyper", "positive_hyper"]


@dataclass
class ConjugatePosterior:
    """An exact posterior: hyperparameters, per-site marginals, joint draws, predictive."""

    hyper: dict[str, torch.Tensor]
    marginals: dict[str, dist.Distribution]
    predictive: dist.Distribution
    draw: object = field(repr=False)  # callable(num) -> {site: (num, *shape)}

    def mean(self) -> dict[str, torch.Tensor]:
        return {k: d.mean for k, d in self.marginals.items()}

    def sd(self) -> dict[str, torch.Tensor]:
        return {k: d.variance.sqrt() for k, d in self.marginals.items()}

    def log_predictive(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example log posterior predictive density ``log p(x_i | data)``."""
        return self.predictive.log_prob(x)


def as_hyper(value) -> torch.Tensor:
    """A hyperparameter as a tensor; tensors keep their dtype (posteriors are float64)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return torch.from_numpy(value.copy())
    return torch.as_tensor(value, dtype=torch.get_default_dtype())


def positive_hyper(name: str, value) -> torch.Tensor:
    """A hyperparameter that must be positive everywhere, else an OptionError naming it."""
    tensor = as_hyper(value)
    if not (tensor > 0).all():
        raise OptionError(f"Expected {name} > 0, but got {value}.")
    return tensor


class Conjugate(GenerativeModel):
    """Shared plumbing: validation and the closed-under-updating constructor."""

    def _hyper_args(self) -> dict:
        raise NotImplementedError

    def conjugate_posterior(self, x: torch.Tensor) -> ConjugatePosterior:
        raise NotImplementedError

    def posterior_model(self, x: torch.Tensor):
        """The same family with the posterior as its prior (for sequential updating)."""
        post = self.conjugate_posterior(x)
        return type(self)(**{**self._hyper_args(), **post.hyper})

    def _validate(self, x: torch.Tensor) -> torch.Tensor:
        return as_tensor(x, name="x", ndim=2, dtype=torch.float64)
