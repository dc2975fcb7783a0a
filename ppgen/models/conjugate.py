"""Conjugate families: stories whose posterior is known in closed form.

Each family is a :class:`GenerativeModel` whose globals carry their conjugate prior
(``PyroSample``), so ``method="exact"`` returns the exact posterior while ``"map"``,
``"svi"`` and ``"mcmc"`` approximate the *same* story — the exact answer is the
reference every other backend is checked against.

Updating is closed under the family: ``model.posterior_model(x)`` returns the same family
with the posterior hyperparameters, so sequential and batch updating agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import GenerativeModel, PyroSample, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError

__all__ = [
    "ConjugatePosterior",
    "NormalKnownScale",
    "NormalInverseGamma",
    "NormalInverseWishart",
    "InverseWishart",
    "BetaBernoulli",
    "DirichletCategorical",
    "GammaPoisson",
]


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


def _hyper(value) -> torch.Tensor:
    """A hyperparameter as a tensor; tensors keep their dtype (posteriors are float64)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return torch.from_numpy(value.copy())
    return torch.as_tensor(value, dtype=torch.get_default_dtype())


def _positive(name: str, value) -> torch.Tensor:
    tensor = _hyper(value)
    if not (tensor > 0).all():
        raise OptionError(f"Expected {name} > 0, but got {value}.")
    return tensor


class _Conjugate(GenerativeModel):
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


class NormalKnownScale(_Conjugate):
    """``loc ~ N(prior_loc, prior_scale²)``, ``x ~ N(loc, scale²)`` with ``scale`` known."""

    def __init__(self, dim: int = 1, scale: float = 1.0, prior_loc: float = 0.0, prior_scale: float = 10.0):
        super().__init__()
        self.dim = dim
        self.scale = _positive("scale", scale) * torch.ones(dim)
        self.prior_loc = _hyper(prior_loc) * torch.ones(dim)
        self.prior_scale = _positive("prior_scale", prior_scale) * torch.ones(dim)
        self.loc = PyroSample(lambda self: dist.Normal(self.prior_loc, self.prior_scale).to_event(1))

    def _hyper_args(self):
        return {"dim": self.dim, "scale": self.scale}

    @pyro_method
    def model(self, x=None, n=None):
        loc = self.loc
        with self.data_plate(x, n):
            return pyro.sample("x", dist.Normal(loc, self.scale.to(loc)).to_event(1), obs=x)

    def conjugate_posterior(self, x):
        x = self._validate(x)
        n, scale = x.shape[0], self.scale.to(x)
        precision = self.prior_scale.to(x) ** -2 + n / scale**2
        mean = (self.prior_loc.to(x) * self.prior_scale.to(x) ** -2 + x.sum(0) / scale**2) / precision
        post_sd = precision.rsqrt()
        marginal = dist.Normal(mean, post_sd)
        predictive = dist.Normal(mean, (scale**2 + post_sd**2).sqrt()).to_event(1)
        return ConjugatePosterior(
            hyper={"prior_loc": mean, "prior_scale": post_sd},
            marginals={"loc": marginal},
            predictive=predictive,
            draw=lambda num: {"loc": marginal.sample((num,))},
        )


class NormalInverseGamma(_Conjugate):
    """``σ² ~ InvGamma(α₀, β₀)``, ``loc | σ² ~ N(μ₀, σ²/κ₀)``, ``x ~ N(loc, σ²)`` in 1-D.

    The sites are ``scale`` (= σ) and ``loc``, named as in :class:`~ppgen.models.Gaussian`.
    """

    def __init__(self, mu0: float = 0.0, kappa0: float = 1.0, alpha0: float = 1.0, beta0: float = 1.0):
        super().__init__()
        self.dim = 1
        self.mu0 = _hyper(mu0).reshape(1)
        self.kappa0 = _positive("kappa0", kappa0).reshape(1)
        self.alpha0 = _positive("alpha0", alpha0).reshape(1)
        self.beta0 = _positive("beta0", beta0).reshape(1)
        self.scale = PyroSample(
            lambda self: dist.TransformedDistribution(
                dist.InverseGamma(self.alpha0, self.beta0), [dist.transforms.PowerTransform(0.5)]
            ).to_event(1)
        )
        self.loc = PyroSample(lambda self: dist.Normal(self.mu0, self.scale / self.kappa0.sqrt()).to_event(1))

    def _hyper_args(self):
        return {}

    @pyro_method
    def model(self, x=None, n=None):
        scale = self.scale
        loc = self.loc
        with self.data_plate(x, n):
            return pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)

    def conjugate_posterior(self, x):
        x = self._validate(x)
        if x.shape[1] != 1:
            raise DataError(f"Expected 1-D data of shape (N, 1), but got {tuple(x.shape)}.")
        n = x.shape[0]
        mu0, k0, a0, b0 = (t.to(x) for t in (self.mu0, self.kappa0, self.alpha0, self.beta0))
        xbar = x.mean(0)
        kn = k0 + n
        mun = (k0 * mu0 + n * xbar) / kn
        an = a0 + n / 2
        bn = b0 + 0.5 * ((x - xbar) ** 2).sum(0) + k0 * n * (xbar - mu0) ** 2 / (2 * kn)
        loc_marginal = dist.StudentT(2 * an, mun, (bn / (an * kn)).sqrt())
        var_marginal = dist.InverseGamma(an, bn)
        predictive = dist.StudentT(2 * an, mun, (bn * (kn + 1) / (an * kn)).sqrt()).to_event(1)

        def draw(num):
            var = var_marginal.sample((num,))
            return {"scale": var.sqrt(), "loc": dist.Normal(mun, (var / kn).sqrt()).sample()}

        scale_marginal = _SqrtInverseGamma(an, bn)
        return ConjugatePosterior(
            hyper={"mu0": mun, "kappa0": kn, "alpha0": an, "beta0": bn},
            marginals={"loc": loc_marginal, "scale": scale_marginal},
            predictive=predictive,
            draw=draw,
        )


class _SqrtInverseGamma(dist.TransformedDistribution):
    """σ when σ² ~ InvGamma(a, b), with its mean and variance in closed form."""

    def __init__(self, concentration, rate):
        self.a, self.b = concentration, rate
        super().__init__(dist.InverseGamma(concentration, rate), [dist.transforms.PowerTransform(0.5)])

    @property
    def mean(self):
        a, b = self.a, self.b
        return b.sqrt() * torch.exp(torch.lgamma(a - 0.5) - torch.lgamma(a))

    @property
    def variance(self):
        return self.b / (self.a - 1) - self.mean**2


class InverseWishart(dist.TorchDistribution):
    """``Σ ~ IW(df, scale_matrix)``: ``Σ⁻¹ ~ Wishart(df, scale_matrix⁻¹)``."""

    arg_constraints = {"df": constraints.positive, "scale_matrix": constraints.positive_definite}
    support = constraints.positive_definite

    def __init__(self, df, scale_matrix, validate_args=None):
        self.df = torch.as_tensor(df, dtype=scale_matrix.dtype)
        self.scale_matrix = scale_matrix
        d = scale_matrix.shape[-1]
        super().__init__(torch.Size(), torch.Size([d, d]), validate_args=validate_args)

    def sample(self, sample_shape=()):
        # Bartlett: W = L A Aᵀ Lᵀ ~ Wishart(ν, Ψ⁻¹) with L = chol(Ψ⁻¹); then Σ = W⁻¹.
        shape = torch.Size(sample_shape)
        d = self.scale_matrix.shape[-1]
        dtype = self.scale_matrix.dtype
        dofs = self.df - torch.arange(d, dtype=dtype)  # ν, ν-1, ..., ν-d+1
        diag = torch.distributions.Chi2(dofs).sample(shape).sqrt()
        lower = torch.randn(*shape, d, d, dtype=dtype).tril(-1) + torch.diag_embed(diag)
        chol = torch.linalg.cholesky(torch.linalg.inv(self.scale_matrix))
        factor = chol @ lower
        return torch.linalg.inv(factor @ factor.transpose(-1, -2))

    def log_prob(self, value):
        d = self.scale_matrix.shape[-1]
        nu, psi = self.df, self.scale_matrix
        chol = torch.linalg.cholesky(value)
        logdet_sigma = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        trace = torch.cholesky_solve(psi.expand_as(value), chol).diagonal(dim1=-2, dim2=-1).sum(-1)
        return (
            0.5 * nu * torch.logdet(psi)
            - 0.5 * nu * d * math.log(2)
            - torch.mvlgamma(nu / 2, d)
            - 0.5 * (nu + d + 1) * logdet_sigma
            - 0.5 * trace
        )

    @property
    def mean(self):
        d = self.scale_matrix.shape[-1]
        return self.scale_matrix / (self.df - d - 1)

    @property
    def variance(self):
        d = self.scale_matrix.shape[-1]
        nu, psi = self.df, self.scale_matrix
        diag = psi.diagonal()
        num = (nu - d + 1) * psi**2 + (nu - d - 1) * torch.outer(diag, diag)
        return num / ((nu - d) * (nu - d - 1) ** 2 * (nu - d - 3))


class NormalInverseWishart(_Conjugate):
    """``Σ ~ IW(ν₀, Ψ₀)``, ``loc | Σ ~ N(μ₀, Σ/κ₀)``, ``x ~ N(loc, Σ)`` in d dimensions."""

    def __init__(self, dim: int = 2, mu0=None, kappa0: float = 1.0, nu0: float | None = None, psi0=None):
        super().__init__()
        self.dim = dim
        self.mu0 = torch.zeros(dim) if mu0 is None else _hyper(mu0)
        self.kappa0 = _positive("kappa0", kappa0)
        self.nu0 = _hyper(dim + 2.0 if nu0 is None else nu0)
        if self.nu0 <= dim - 1:
            raise OptionError(f"Expected nu0 > dim - 1 = {dim - 1}, but got {float(self.nu0)}.")
        self.psi0 = torch.eye(dim) if psi0 is None else _hyper(psi0)
        self.covariance = PyroSample(lambda self: InverseWishart(self.nu0, self.psi0))
        self.loc = PyroSample(
            lambda self: dist.MultivariateNormal(self.mu0, covariance_matrix=self.covariance / self.kappa0)
        )

    def _hyper_args(self):
        return {"dim": self.dim}

    @pyro_method
    def model(self, x=None, n=None):
        covariance = self.covariance
        loc = self.loc
        with self.data_plate(x, n):
            return pyro.sample("x", dist.MultivariateNormal(loc, covariance_matrix=covariance), obs=x)

    def conjugate_posterior(self, x):
        x = self._validate(x)
        if x.shape[1] != self.dim:
            raise DataError(f"Expected x of shape (N, {self.dim}), but got {tuple(x.shape)}.")
        n, d = x.shape
        mu0, k0, nu0, psi0 = (t.to(x) for t in (self.mu0, self.kappa0, self.nu0, self.psi0))
        xbar = x.mean(0)
        centred = x - xbar
        kn, nun = k0 + n, nu0 + n
        mun = (k0 * mu0 + n * xbar) / kn
        diff = (xbar - mu0).unsqueeze(-1)
        psin = psi0 + centred.T @ centred + (k0 * n / kn) * (diff @ diff.T)
        cov_marginal = InverseWishart(nun, psin)
        df_t = nun - d + 1
        loc_marginal = dist.MultivariateStudentT(df_t, mun, torch.linalg.cholesky(psin / (kn * df_t)))
        predictive = dist.MultivariateStudentT(
            df_t, mun, torch.linalg.cholesky(psin * (kn + 1) / (kn * df_t))
        )

        def draw(num):
            cov = cov_marginal.sample((num,))
            return {
                "covariance": cov,
                "loc": dist.MultivariateNormal(mun, covariance_matrix=cov / kn).sample(),
            }

        return ConjugatePosterior(
            hyper={"mu0": mun, "kappa0": kn, "nu0": nun, "psi0": psin},
            marginals={"loc": loc_marginal, "covariance": cov_marginal},
            predictive=predictive,
            draw=draw,
        )


class BetaBernoulli(_Conjugate):
    """``probs_j ~ Beta(α, β)``, ``x_j ~ Bernoulli(probs_j)`` for binary vectors."""

    def __init__(self, dim: int = 1, alpha=1.0, beta=1.0):
        super().__init__()
        self.dim = dim
        self.alpha = _positive("alpha", alpha) * torch.ones(dim)
        self.beta = _positive("beta", beta) * torch.ones(dim)
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


class DirichletCategorical(_Conjugate):
    """``probs ~ Dirichlet(α)``, ``x ~ Categorical(probs)`` with integer labels ``0..K-1``."""

    def __init__(self, num_categories: int = 2, alpha=1.0):
        super().__init__()
        self.num_categories = num_categories
        self.alpha = _positive("alpha", alpha) * torch.ones(num_categories)
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


class GammaPoisson(_Conjugate):
    """``rate_j ~ Gamma(α, β)`` (shape, rate), ``x_j ~ Poisson(rate_j)`` for counts."""

    def __init__(self, dim: int = 1, alpha=1.0, beta=1.0):
        super().__init__()
        self.dim = dim
        self.alpha = _positive("alpha", alpha) * torch.ones(dim)
        self.beta = _positive("beta", beta) * torch.ones(dim)
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
