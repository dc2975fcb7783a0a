"""Factor analysis and probabilistic PCA: a continuous hidden cause behind every observation.

``z ~ N(0, I_q)``, ``x = mu + W z + eps``, ``eps ~ N(0, Psi)`` — a linear decoder plus
noise (the VAE's ancestor; ``W`` is the source text's ``Λ``). The marginal is Gaussian,
``x ~ N(mu, W Wᵀ + Psi)``, and the posterior of ``z`` given ``x`` is Gaussian too, so
``log_prob`` is exact, EM has closed-form steps and the model's own guide *is* the exact
posterior (its ELBO equals the log-likelihood). ``PPCA`` ties the noise, ``Psi = sigma² I``,
which gives a closed-form MLE from the eigendecomposition of the sample covariance.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import GenerativeModel, PyroParam, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_features, defer, unsized

__all__ = ["FactorAnalysis", "PPCA"]

_NOISE_FLOOR = 1e-12


class FactorAnalysis(GenerativeModel):
    """``x = mu + W z + eps`` with ``z ~ N(0, I)``, ``eps ~ N(0, diag(psi))``; ``p(x) = N(mu, W Wᵀ + Psi)``.

    Arguments:
        n_factors: latent dimension ``q``.
        dim: observed dimension ``d`` (``None``: taken from the data at fit time, for every method).

    Example:
        >>> import ppgen, torch
        >>> x = torch.randn(300, 2, dtype=torch.float64) @ torch.randn(2, 5, dtype=torch.float64)
        >>> fit = ppgen.fit(FactorAnalysis(2), x + 0.1 * torch.randn(300, 5), method="em", progress=False)
        >>> fit.params["W"].shape
        torch.Size([5, 2])
    """

    has_local_latents = True
    init_methods = ("pca", "random", "given")
    default_init = "pca"

    def __init__(self, n_factors: int, dim: int | None = None):
        super().__init__()
        if isinstance(n_factors, bool) or not isinstance(n_factors, int) or n_factors < 1:
            raise OptionError(f"Expected n_factors to be a positive integer, but got {n_factors!r}.")
        self.n_factors = n_factors
        self.dim = None
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, int) or dim <= n_factors:
                raise OptionError(f"Expected an integer dim > n_factors={n_factors}, but got {dim!r}.")
            self._build(dim, torch.get_default_dtype(), None)
        else:
            defer(self)

    # ------------------------------------------------------------------ setup
    def _build(self, dim: int, dtype, device) -> None:
        kw = {"dtype": dtype, "device": device}
        self.dim = dim
        self.mu = PyroParam(torch.zeros(dim, **kw), event_dim=1)
        self.W = PyroParam(torch.eye(dim, self.n_factors, **kw), event_dim=2)
        self._build_noise(dim, kw)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the parameters for rows of ``x``'s width (``ppgen.fit`` calls this first), or check
        that ``x`` has the ``dim`` given to the constructor."""
        self._check(x, build=True)

    def _build_noise(self, dim, kw) -> None:
        self.psi = PyroParam(torch.ones(dim, **kw), constraints.positive, 1)

    def _noise_var(self) -> torch.Tensor:
        """The diagonal of Psi, shape ``(d,)``."""
        return self.psi

    def _set_noise(self, var: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"psi": var}

    def _sized(self) -> None:
        if self.dim is None:
            raise unsized(self, "dim")

    def _check(self, x: torch.Tensor, build: bool = False) -> torch.Tensor:
        width = check_features(self, x, self.dim, "dim")
        if self.dim is None:
            if not build:
                raise unsized(self, "dim")
            if width <= self.n_factors:
                raise DataError(
                    f"Expected more features than n_factors={self.n_factors}, but got {width}; use fewer "
                    "factors."
                )
            self._build(width, x.dtype, x.device)
        return x

    # ------------------------------------------------------------------ story
    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        if x is not None:
            self._check(x, build=True)
        self._sized()
        mu, W, noise = self.mu, self.W, self._noise_var().sqrt()  # globals before the plate
        zeros = torch.zeros(self.n_factors, dtype=mu.dtype, device=mu.device)
        with self.data_plate(x, n):
            z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            return pyro.sample("x", dist.Normal(mu + z @ W.T, noise).to_event(1), obs=x)

    @pyro_method
    def guide(self, x: torch.Tensor | None = None, n: int | None = None) -> None:
        """The exact posterior ``q(z | x) = N(G Wᵀ Psi⁻¹ (x - mu), G)``, ``G = (I + Wᵀ Psi⁻¹ W)⁻¹``."""
        if x is None:
            return
        mean, cov = self._posterior(self._check(x))
        with self.data_plate(x):
            pyro.sample("z", dist.MultivariateNormal(mean, scale_tril=torch.linalg.cholesky(cov)))

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, W, var = self.mu, self.W, self._noise_var()
        Wp = W / var[:, None]  # Psi^-1 W, (d, q)
        eye = torch.eye(self.n_factors, dtype=x.dtype, device=x.device)
        G = torch.linalg.inv(eye + W.T @ Wp)  # (q, q)
        G = 0.5 * (G + G.T)
        return (x - mu) @ Wp @ G, G  # (N, q), (q, q)

    # --------------------------------------------------------------- density
    def marginal(self) -> dist.Distribution:
        """``N(mu, W Wᵀ + Psi)`` as a low-rank multivariate normal."""
        self._sized()
        return dist.LowRankMultivariateNormal(self.mu, self.W, self._noise_var())

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact marginal ``log N(x_i | mu, W Wᵀ + Psi)``, shape ``(N,)``."""
        return self.marginal().log_prob(self._check(x))

    def transform(self, x) -> torch.Tensor:
        """Posterior mean of the factors ``E[z | x_i]``, shape ``(N, q)``."""
        self._sized()
        x = self._check(as_tensor(x, name="x", ndim=2, dtype=self.W.dtype))
        with torch.no_grad():
            return self._posterior(x)[0]

    def reconstruct(self, x) -> torch.Tensor:
        """``mu + W E[z | x_i]``: each row projected through its factors, shape ``(N, d)``."""
        with torch.no_grad():
            return self.mu + self.transform(x) @ self.W.T

    # -------------------------------------------------------------------- EM
    @pyro_method
    def e_step(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Posterior moments ``E[z|x_i]`` (N, q) and ``Cov[z|x_i] = G`` (q, q), plus ``log p(x_i)``."""
        x = self._check(x, build=True)
        mean, G = self._posterior(x)
        return {"mean": mean, "cov": G}, self.log_prob(x)

    def m_step(self, x: torch.Tensor, stats: dict[str, torch.Tensor]) -> None:
        """Regress ``x`` on ``[E z, 1]``: ``[W mu] = (Σ x E[z̃]ᵀ)(Σ E[z̃z̃ᵀ])⁻¹``; Psi: diag of the residual."""
        x = self._check(x, build=True)
        with torch.no_grad():
            n, q = x.shape[0], self.n_factors
            xbar = x.mean(0)
            xs = x - xbar  # translation-equivariant; centring avoids cancellation in Psi
            Ez = stats["mean"]
            ones = torch.ones(n, 1, dtype=x.dtype, device=x.device)
            Ezt = torch.cat([Ez, ones], 1)  # (N, q+1)
            A = xs.T @ Ezt  # (d, q+1)
            B = Ezt.T @ Ezt
            B[:q, :q] += n * stats["cov"]
            Wt = torch.linalg.solve(B, A.T).T  # (d, q+1)
            var = ((xs * xs).sum(0) - (Wt * A).sum(1)) / n
            values = {"mu": Wt[:, q] + xbar, "W": Wt[:, :q]}
            self.set_params(**values, **self._set_noise(var.clamp_min(_NOISE_FLOOR)))

    def initialize(self, x, init: str = "pca", seed: int | None = None) -> FactorAnalysis:
        """``"pca"``: the pPCA closed form; ``"random"``: random loadings at the data's scale."""
        if init not in self.init_methods:
            raise OptionError(f"Expected init in {self.init_methods}, but got {init!r}.")
        dtype = self.W.dtype if self.dim is not None else None
        x = self._check(as_tensor(x, name="x", ndim=2, dtype=dtype), build=True)
        if init == "given":
            return self
        if init == "pca":
            values = _ppca_mle(x, self.n_factors)
            var = values.pop("sigma") ** 2 * torch.ones(self.dim, dtype=x.dtype, device=x.device)
        else:
            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
            var = x.var(0, unbiased=False).clamp_min(_NOISE_FLOOR)
            W = torch.randn(self.dim, self.n_factors, generator=gen, dtype=x.dtype).to(x.device)
            values = {"mu": x.mean(0), "W": W * (var.sqrt() / self.n_factors**0.5)[:, None]}
        self.set_params(**values, **self._set_noise(var))
        return self


class PPCA(FactorAnalysis):
    """Probabilistic PCA: factor analysis with isotropic noise ``Psi = sigma² I``.

    The MLE is closed form (Tipping & Bishop 1999): with sample-covariance eigenvalues
    ``λ_1 ≥ … ≥ λ_d`` and eigenvectors ``U``, ``sigma² = mean(λ_{q+1..d})`` and
    ``W = U_q (Λ_q − sigma² I)^{1/2}``, so ``method="exact"`` needs no iterations;
    ``"em"``, ``"mle"`` and ``"svi"`` reach the same log-likelihood.

    Arguments:
        n_components: latent dimension ``q``.
        dim: observed dimension ``d``.
    """

    def __init__(self, n_components: int, dim: int | None = None):
        super().__init__(n_components, dim)

    def _build_noise(self, dim, kw) -> None:
        self.sigma = PyroParam(torch.ones((), **kw), constraints.positive, 0)

    def _noise_var(self) -> torch.Tensor:
        return (self.sigma**2).expand(self.dim)

    def _set_noise(self, var: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sigma": var.mean().sqrt()}

    def fit_exact(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Closed-form MLE by eigendecomposition of the sample covariance (divisor ``N``)."""
        x = self._check(as_tensor(x, name="x", ndim=2), build=True)
        return _ppca_mle(x, self.n_factors)


def _ppca_mle(x: torch.Tensor, q: int) -> dict[str, torch.Tensor]:
    n, d = x.shape
    if n < 2:
        raise DataError(f"Expected at least 2 rows for a PCA fit, but got {n}.")
    mu = x.mean(0)
    xs = x - mu
    eigvals, eigvecs = torch.linalg.eigh(xs.T @ xs / n)  # ascending
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    sigma2 = eigvals[q:].mean()
    if not sigma2 > 10 * d * torch.finfo(x.dtype).eps * eigvals[0]:  # zero up to round-off
        raise DataError(
            f"Expected data with variance outside the top {q} principal directions, but the remaining "
            "eigenvalues are zero; use fewer components."
        )
    W = eigvecs[:, :q] * (eigvals[:q] - sigma2).clamp_min(0).sqrt()
    return {"mu": mu, "W": W, "sigma": sigma2.sqrt()}
