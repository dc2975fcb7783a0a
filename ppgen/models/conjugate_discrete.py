"""Conjugate families for discrete data: binary vectors, category labels and counts.

:class:`BetaBernoulli`, :class:`DirichletCategorical` and :class:`GammaPoisson`; their posteriors
update by counting. The shared machinery is :mod:`ppgen.models.conjugate_base`.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ppgen.core import PyroSample, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError
from ppgen.models.conjugate_base import Conjugate, ConjugatePosterior, positive_hyper

__all__ = ["BetaBernoulli", "DirichletCategorical", "GammaPoisson"]


class BetaBernoulli(Conjugate):
    """``probs_j ~ Beta(α, β)``, ``x_j ~ Bernoulli(probs_j)`` for binary vectors."""

    def __init__(self, dim: int = 1, alpha=1.0, beta=1.0):
        super().__init__()
        self.dim = dim
        self.alpha = positive_hyper("alpha", alpha) * torch.ones(dim)
        self.beta = positive_hyper("beta", beta) * torch.ones(dim)
        self.probs = PyroSample(lambda self: dist.Beta(self.alpha, self.beta).to_event(1))

    def _hyper_args(self):
        return {"dim": self.dim}

    @pyro_method
    def model(self, x=None, n=None):
        probs = self.probs
        with self.data_plate(x, n):
            return pyro.sample("x", dist.Bernoulli(probs).to_event(1), obs=x)

    def _validate(self, x):
        x = super()._validate(x)
        if ((x != 0) & (x != 1)).any():
            raise DataError("Expected binary data (0/1) for a Bernoulli likelihood, but got other values.")
        return x

    def conjugate_posterior(self, x):
        x = self._validate(x)
        heads = x.sum(0)
        a, b = self.alpha.to(x) + heads, self.beta.to(x) + x.shape[0] - heads
        marginal = dist.Beta(a, b)
        return ConjugatePosterior(
            hyper={"alpha": a, "beta": b},
            marginals={"probs": marginal},
            predictive=dist.Bernoulli(a / (a + b)).to_event(1),
            draw=lambda num: {"probs": marginal.sample((num,))},
        )


class DirichletCategorical(Conjugate):
    """``probs ~ Dirichlet(α)``, ``x ~ Categorical(probs)`` with integer labels ``0..K-1``."""

    def __init__(self, num_categories: int = 2, alpha=1.0):
        super().__init__()
        self.num_categories = num_categories
        self.alpha = positive_hyper("alpha", alpha) * torch.ones(num_categories)
        self.probs = PyroSample(lambda self: dist.Dirichlet(self.alpha))

    def _hyper_args(self):
        return {"num_categories": self.num_categories}

    @pyro_method
    def model(self, x=None, n=None):
        probs = self.probs
        if x is not None and x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]  # a column of codes, as read from a CSV file
        with self.data_plate(x, n):
            return pyro.sample("x", dist.Categorical(probs), obs=x)

    def _validate(self, x):
        x = as_tensor(x, name="x", ndim=(1, 2), dtype=torch.float64)
        if x.ndim == 2:
            if x.shape[1] != 1:
                raise DataError(f"Expected category labels of shape (N,), but got {tuple(x.shape)}.")
            x = x[:, 0]
        if (x != x.round()).any() or (x < 0).any() or (x >= self.num_categories).any():
            raise DataError(f"Expected integer labels in 0..{self.num_categories - 1}, but got other values.")
        return x

    def conjugate_posterior(self, x):
        x = self._validate(x)
        counts = torch.bincount(x.long(), minlength=self.num_categories).to(x)
        a = self.alpha.to(x) + counts
        marginal = dist.Dirichlet(a)
        return ConjugatePosterior(
            hyper={"alpha": a},
            marginals={"probs": marginal},
            predictive=_Codes(a / a.sum()),
            draw=lambda num: {"probs": marginal.sample((num,))},
        )


class _Codes(dist.Categorical):
    """A categorical predictive that also scores codes given as an ``(N, 1)`` column."""

    def log_prob(self, value):
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        return super().log_prob(value)


class GammaPoisson(Conjugate):
    """``rate_j ~ Gamma(α, β)`` (shape, rate), ``x_j ~ Poisson(rate_j)`` for counts."""

    def __init__(self, dim: int = 1, alpha=1.0, beta=1.0):
        super().__init__()
        self.dim = dim
        self.alpha = positive_hyper("alpha", alpha) * torch.ones(dim)
        self.beta = positive_hyper("beta", beta) * torch.ones(dim)
        self.rate = PyroSample(lambda self: dist.Gamma(self.alpha, self.beta).to_event(1))

    def _hyper_args(self):
        return {"dim": self.dim}

    @pyro_method
    def model(self, x=None, n=None):
        rate = self.rate
        with self.data_plate(x, n):
            return pyro.sample("x", dist.Poisson(rate).to_event(1), obs=x)

    def _validate(self, x):
        x = super()._validate(x)
        if (x != x.round()).any() or (x < 0).any():
            raise DataError("Expected non-negative integer counts for a Poisson likelihood.")
        return x

    def conjugate_posterior(self, x):
        x = self._validate(x)
        a, b = self.alpha.to(x) + x.sum(0), self.beta.to(x) + x.shape[0]
        marginal = dist.Gamma(a, b)
        # Gamma-Poisson predictive = NegativeBinomial(r=a, p=1/(b+1)) in torch's convention.
        predictive = dist.NegativeBinomial(total_count=a, probs=1 / (b + 1)).to_event(1)
        return ConjugatePosterior(
            hyper={"alpha": a, "beta": b},
            marginals={"rate": marginal},
            predictive=predictive,
            draw=lambda num: {"rate": marginal.sample((num,))},
        )
