"""Gaussian mixtures: pick a hidden cause ``z ~ Categorical(pi)``, then draw ``x ~ N(mu_z, Sigma_z)``.

``p(x) = sum_k pi_k N(x | mu_k, Sigma_k)``. The story marks ``z`` for parallel enumeration,
so TraceEnum_ELBO and NUTS sum it out exactly; ``log_prob`` is the same marginal by
log-sum-exp, and ``e_step``/``m_step`` give the EM backend its closed-form updates (the
same formulas as scikit-learn, blocked so the intermediates stay in cache).
The binary and categorical pixel mixtures live in :mod:`ppgen.models.pixel_mixture`.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import PyroParam
from ppgen.errors import DataError, OptionError
from ppgen.models.gaussian_moments import (
    Centred,
    Moments,
    accurate,
    centre,
    e_step_moments,
    mean_and_covariance,
)
from ppgen.models.mixture_base import Mixture, OrderedMeans, kmeans_plusplus
from ppgen.models.pixel_mixture import BernoulliMixture, CategoricalMixture

__all__ = [
    "Mixture",
    "GaussianMixture",
    "BernoulliMixture",
    "CategoricalMixture",
    "OrderedMeans",
    "kmeans_plusplus",
]

COVARIANCES = ("full", "diag", "spherical", "tied")


class GaussianMixture(Mixture):
    """``x ~ sum_k pi_k N(mu_k, Sigma_k)``: pick a hidden cause, then draw from its Gaussian.

    Arguments:
        n_components: number of components ``K``.
        dim: dimension of one observation (``None``: taken from the first data).
        covariance: ``"full"`` (``scale_tril`` (K, d, d), Cholesky factor of each Sigma_k),
            ``"tied"`` (one ``scale_tril`` (d, d)), ``"diag"`` (``scale`` (K, d), standard
            deviations) or ``"spherical"`` (``scale`` (K,)).
        reg_covar: added to the diagonal of every covariance in the M-step, keeping each
            Sigma_k positive definite when a component collapses onto few points. The M-step
            then maximises ``Q - (reg_covar / 2) sum_k N_k tr(Sigma_k^-1)`` exactly (for every
            covariance type), so EM increases that penalised objective, not ``log p(x)`` alone
            (see :meth:`em_penalty`).

    Example:
        >>> import ppgen, torch
        >>> x = torch.cat([torch.randn(100, 2) - 3, torch.randn(100, 2) + 3]).double()
        >>> fit = ppgen.fit(GaussianMixture(2), x, method="em", seed=0, progress=False)
        >>> sorted(fit.params["mu"][:, 0].round().tolist())
        [-3.0, 3.0]
    """

    def __init__(
        self,
        n_components: int,
        dim: int | None = None,
        covariance: str = "full",
        *,
        reg_covar: float = 1e-6,
        chunk_size: int = 4096,
        prior: dict | None = None,
    ):
        if covariance not in COVARIANCES:
            raise OptionError(f"Expected covariance in {COVARIANCES}, but got {covariance!r}.")
        if not reg_covar >= 0:
            raise OptionError(f"Expected reg_covar >= 0, but got {reg_covar!r}.")
        self.covariance = covariance
        self.reg_covar = float(reg_covar)
        super().__init__(n_components, dim, chunk_size=chunk_size, prior=prior)

    def _build_components(self, dim, dtype, device):
        k, kw = self.n_components, {"dtype": dtype, "device": device}
        self.mu = PyroParam(torch.zeros(k, dim, **kw), event_dim=2)
        if self.covariance == "full":
            self.scale_tril = PyroParam(
                torch.eye(dim, **kw).expand(k, dim, dim).clone(), constraints.lower_cholesky, 3
            )
        elif self.covariance == "tied":
            self.scale_tril = PyroParam(torch.eye(dim, **kw), constraints.lower_cholesky, 2)
        elif self.covariance == "diag":
            self.scale = PyroParam(torch.ones(k, dim, **kw), constraints.positive, 2)
        else:
            self.scale = PyroParam(torch.ones(k, **kw), constraints.positive, 1)

    def _read(self):
        if self.covariance in ("full", "tied"):
            return {"mu": self.mu, "scale_tril": self.scale_tril}
        return {"mu": self.mu, "scale": self.scale}

    def _component(self, params, z):
        mu = params["mu"][z]
        if self.covariance == "full":
            return dist.MultivariateNormal(mu, scale_tril=params["scale_tril"][z])
        if self.covariance == "tied":
            return dist.MultivariateNormal(mu, scale_tril=params["scale_tril"])
        scale = params["scale"][z]
        scale = scale if self.covariance == "diag" else scale.unsqueeze(-1).expand_as(mu)
        return dist.Normal(mu, scale).to_event(1)

    def _prepare(self, params, x):
        mu, d = params["mu"], self.dim  # (K, d)
        const = -0.5 * d * math.log(2 * math.pi)
        if self.covariance not in ("full", "tied"):
            return {**params, "const": const}
        tril = params["scale_tril"].expand(self.n_components, d, d)
        # y = (x - mu_k) L_k^{-T} for all k in one matrix product: x @ wide - shift.
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        prec = torch.linalg.solve_triangular(tril, eye, upper=False).transpose(-1, -2)  # (K, d, d)
        log_det = torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        return {
            "wide": prec.permute(1, 0, 2).reshape(d, -1),  # (d, K*d)
            "shift": torch.einsum("ki,kij->kj", mu, prec).reshape(-1),  # (K*d,)
            "offset": const - log_det,  # (K,)
        }

    def _component_log_prob(self, x, params):
        mu, d, const = params.get("mu"), self.dim, params.get("const")
        if self.covariance in ("full", "tied"):
            y = torch.addmm(-params["shift"], x, params["wide"])  # (c, K*d)
            if torch.is_grad_enabled():
                return params["offset"] - 0.5 * (y * y).reshape(x.shape[0], self.n_components, d).sum(-1)
            maha = y.square_().reshape(x.shape[0], self.n_components, d).sum(-1)  # (c, K)
            return maha.mul_(-0.5).add_(params["offset"])
        scale = params["scale"]
        if self.covariance == "diag":
            precision = scale.pow(-2)  # (K, d)
            maha = (mu * mu * precision).sum(1) - 2 * x @ (mu * precision).T + (x * x) @ precision.T
            return const - torch.log(scale).sum(1) - 0.5 * maha
        precision = scale.pow(-2)  # (K,)
        maha = (
            (mu * mu).sum(1) * precision
            - 2 * x @ (mu.T * precision)
            + (x * x).sum(1, keepdim=True) * precision
        )
        return const - d * torch.log(scale) - 0.5 * maha

    def _fit_components(self, x, resp, nk):
        k, d, n = self.n_components, self.dim, x.shape[0]
        sum_rx = resp.T @ x  # (K, d)
        mu = sum_rx / nk[:, None]
        # Second moments about the data mean (less cancellation than raw moments), in blocks
        # small enough to stay in cache.
        xbar = sum_rx.sum(0) / resp.sum()
        delta = mu - xbar  # (K, d)
        reg = self.reg_covar
        if self.covariance == "diag" or self.covariance == "spherical":
            sq = torch.zeros(k, d, dtype=x.dtype, device=x.device)
            for start in range(0, n, self.chunk_size):
                xs = x[start : start + self.chunk_size] - xbar
                sq += resp[start : start + self.chunk_size].T @ (xs * xs)
            var = sq / nk[:, None] - delta * delta + reg
            var = var if self.covariance == "diag" else var.mean(1)
            return {"mu": mu, "scale": var.clamp_min(torch.finfo(x.dtype).tiny).sqrt()}
        if self.covariance == "tied":
            scatter = torch.zeros(d, d, dtype=x.dtype, device=x.device)
            for start in range(0, n, self.chunk_size):
                xs = x[start : start + self.chunk_size] - xbar
                scatter += xs.T @ xs
            cov = (scatter - (nk[:, None] * delta).T @ delta) / nk.sum()
        else:
            scatter = torch.zeros(d, k * d, dtype=x.dtype, device=x.device)
            for start in range(0, n, self.chunk_size):
                xs = x[start : start + self.chunk_size] - xbar  # (c, d)
                r = resp[start : start + self.chunk_size]  # (c, K)
                # sum_i xs_i (r_ik xs_i)ᵀ for every k at once: one (d, c) x (c, K*d) product.
                scatter.addmm_(xs.T, (r[:, :, None] * xs[:, None, :]).reshape(xs.shape[0], k * d))
            scatter = scatter.reshape(d, k, d).transpose(0, 1)  # (K, d, d)
            cov = scatter / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        return self._factored(mu, cov)

    def _factored(self, mu: torch.Tensor, cov: torch.Tensor) -> dict:
        """``mu`` and the Cholesky factor of ``cov + reg_covar I`` (symmetrised), or a DataError."""
        d, reg = self.dim, self.reg_covar
        cov = 0.5 * (cov + cov.transpose(-1, -2)) + reg * torch.eye(d, dtype=cov.dtype, device=cov.device)
        tril, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise DataError(
                "Expected positive-definite component covariances, but the M-step produced a singular "
                f"one (a component collapsed onto too few points); increase reg_covar (now {reg:g}), "
                "use covariance='diag', or fewer components."
            )
        return {"mu": mu, "scale_tril": tril}

    # ------------------------------------ EM on sufficient statistics (see gaussian_moments)
    def moments_apply(self, x: torch.Tensor) -> bool:
        """Whether EM may run on :meth:`e_step_moments` (full covariances, float64 rows)."""
        return self.covariance == "full" and x.ndim == 2 and x.dtype == torch.float64

    def moments_accurate(self, data: Centred) -> bool:
        """Whether :meth:`e_step_moments` is accurate at the current parameters (no component
        collapsed far below the data's spread; see ``gaussian_moments.MAX_RELATIVE_ERROR``)."""
        with torch.no_grad():
            return accurate(data, self.em_min_variance())

    def moments_data(self, x: torch.Tensor) -> Centred:
        """The rows as :meth:`e_step_moments` reads them (centred and transposed, once per fit)."""
        return centre(self._check(x, build=True))

    def e_step_moments(self, data: Centred | torch.Tensor) -> tuple[Moments, torch.Tensor]:
        """The E-step as the M-step's sufficient statistics (not the (N, K) responsibilities) and
        ``log p(x_i)`` (N,): what :meth:`e_step` followed by :meth:`m_step` computes, in one pass."""
        data = self.moments_data(data) if isinstance(data, torch.Tensor) else data
        with torch.no_grad():
            pi, params = self._params(data.u)
            return e_step_moments(data, pi, params["mu"], params["scale_tril"], self.chunk_size)

    def m_step_moments(self, moments: Moments) -> None:
        """The closed-form M-step from :meth:`e_step_moments`' statistics."""
        with torch.no_grad():
            nk, mu, cov = mean_and_covariance(moments, 10 * torch.finfo(moments.nk.dtype).eps)
            self.set_params(pi=nk / nk.sum(), **self._factored(mu, cov))

    def em_min_variance(self) -> float:
        """The smallest variance of any component along any direction (EM's round-off scale)."""
        params = self._read()
        if "scale_tril" in params:
            tril = params["scale_tril"]
            return float(torch.linalg.eigvalsh(tril @ tril.transpose(-1, -2)).min())
        return float(params["scale"].square().min())

    def _component_penalty(self, nk):
        """``-(reg / 2) sum_k N_k tr(Sigma_k^-1)``, exactly maximised by the M-step ``Sigma_k = S_k + reg I``.

        ``-(N_k / 2) [log|Sigma| + tr(Sigma^-1 S_k)] - (reg / 2) N_k tr(Sigma^-1)`` is
        ``-(N_k / 2) [log|Sigma| + tr(Sigma^-1 (S_k + reg I))]``, maximal at ``S_k + reg I``
        (``mu_k`` is unaffected: the penalty does not involve it). The same holds within
        each family: ``tied`` sums to ``N tr(Sigma^-1)`` with the pooled ``S``, ``diag`` is
        per coordinate (``s_kj + reg``), ``spherical`` gives ``mean_j s_kj + reg``.
        """
        if self.reg_covar == 0:
            return 0.0
        params = self._read()
        if self.covariance in ("full", "tied"):
            tril = params["scale_tril"]
            eye = torch.eye(self.dim, dtype=tril.dtype, device=tril.device)
            inv = torch.linalg.solve_triangular(tril, eye, upper=False)  # L^-1; tr(Sigma^-1) = |L^-1|_F^2
            trace = inv.square().sum((-2, -1)).expand(self.n_components)  # (K,)
        elif self.covariance == "diag":
            trace = params["scale"].pow(-2).sum(1)
        else:
            trace = self.dim * params["scale"].pow(-2)
        return -0.5 * self.reg_covar * (nk.to(trace) * trace).sum()

    def _count_component_params(self):
        k, d = self.n_components, self.dim
        cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
        return k * d + cov[self.covariance]

    def covariances(self) -> torch.Tensor:
        """Component covariances ``Sigma_k`` as full matrices, shape ``(K, d, d)``."""
        with torch.no_grad():
            params = self._read()
            if self.covariance in ("full", "tied"):
                tril = params["scale_tril"].expand(self.n_components, self.dim, self.dim)
                return tril @ tril.transpose(-1, -2)
            var = params["scale"] ** 2
            var = var if self.covariance == "diag" else var[:, None].expand(-1, self.dim)
            return torch.diag_embed(var)
