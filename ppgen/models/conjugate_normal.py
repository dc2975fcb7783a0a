"""Conjugate families for real data: a normal mean, and a normal mean with its (co)variance.

:class:`NormalKnownScale` (normal prior on the mean), :class:`NormalInverseGamma` (1-D) and
:class:`NormalInverseWishart` (d-D), with the inverse-Wishart distribution the latter needs; the
shared machinery is :mod:`ppgen.models.conjugate_base`.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import PyroSample, pyro_method
from ppgen.errors import DataError, OptionError
from ppgen.models.conjugate_base import Conjugate, ConjugatePosterior, as_hyper, positive_hyper

__all__ = ["NormalKnownScale", "NormalInverseGamma", "NormalInverseWishart", "InverseWishart"]


class NormalKnownScale(Conjugate):
    """``loc ~ N(prior_loc, prior_scale²)``, ``x ~ N(loc, scale²)`` with ``scale`` known."""

    def __init__(self, dim: int = 1, scale: float = 1.0, prior_loc: float = 0.0, prior_scale: float = 10.0):
        super().__init__()
        self.dim = dim
        self.scale = positive_hyper("scale", scale) * torch.ones(dim)
        self.prior_loc = as_hyper(prior_loc) * torch.ones(dim)
        self.prior_scale = positive_hyper("prior_scale", prior_scale) * torch.ones(dim)
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


class NormalInverseGamma(Conjugate):
    """``σ² ~ InvGamma(α₀, β₀)``, ``loc | σ² ~ N(μ₀, σ²/κ₀)``, ``x ~ N(loc, σ²)`` in 1-D.

    The sites are ``scale`` (= σ) and ``loc``, named as in :class:`~ppgen.models.Gaussian`.
    """

    def __init__(self, mu0: float = 0.0, kappa0: float = 1.0, alpha0: float = 1.0, beta0: float = 1.0):
        super().__init__()
        self.dim = 1
        self.mu0 = as_hyper(mu0).reshape(1)
        self.kappa0 = positive_hyper("kappa0", kappa0).reshape(1)
        self.alpha0 = positive_hyper("alpha0", alpha0).reshape(1)
        self.beta0 = positive_hyper("beta0", beta0).reshape(1)
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


class NormalInverseWishart(Conjugate):
    """``Σ ~ IW(ν₀, Ψ₀)``, ``loc | Σ ~ N(μ₀, Σ/κ₀)``, ``x ~ N(loc, Σ)`` in d dimensions."""

    def __init__(self, dim: int = 2, mu0=None, kappa0: float = 1.0, nu0: float | None = None, psi0=None):
        super().__init__()
        self.dim = dim
        self.mu0 = torch.zeros(dim) if mu0 is None else as_hyper(mu0)
        self.kappa0 = positive_hyper("kappa0", kappa0)
        self.nu0 = as_hyper(dim + 2.0 if nu0 is None else nu0)
        if self.nu0 <= dim - 1:
            raise OptionError(f"Expected nu0 > dim - 1 = {dim - 1}, but got {float(self.nu0)}.")
        self.psi0 = torch.eye(dim) if psi0 is None else as_hyper(psi0)
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
