"""The Gaussian story: draw standard noise, then stretch and shift it.

``x = loc + L eps`` with ``eps ~ N(0, I)`` — a pushforward of the standard normal by an
affine map — so ``x ~ N(loc, L Lᵀ)``.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import GenerativeModel, PyroParam, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_features, defer, optional_size, unsized

__all__ = ["Gaussian"]

COVARIANCES = ("full", "diag")
_LOG_2PI = math.log(2 * math.pi)


class Gaussian(GenerativeModel):
    """Multivariate Gaussian ``x ~ N(loc, Σ)`` with parameters named as in ``torch.distributions``.

    Arguments:
        dim: dimension of one observation; ``None`` (default) takes it from ``loc`` / ``scale`` /
            ``scale_tril`` when given, else from the data at fit time.
        covariance: ``"full"`` (parameter ``scale_tril``, lower Cholesky factor of Σ) or
            ``"diag"`` (parameter ``scale``, per-dimension standard deviations).
        loc, scale, scale_tril: optional initial values.

    Example:
        >>> import ppgen, torch
        >>> fit = ppgen.fit(Gaussian(dim=2), torch.randn(100, 2), method="exact")
        >>> fit.params["loc"].shape
        torch.Size([2])
    """

    def __init__(
        self,
        dim: int | None = None,
        covariance: str = "full",
        *,
        loc: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        scale_tril: torch.Tensor | None = None,
    ):
        super().__init__()
        dim = optional_size(dim, "dim")
        if covariance not in COVARIANCES:
            raise OptionError(f"Expected covariance in {COVARIANCES}, but got {covariance!r}.")
        self.dim, self.covariance = None, covariance
        given = [torch.as_tensor(v) for v in (loc, scale, scale_tril) if v is not None]
        if dim is None and given:
            dim = int(given[0].shape[-1]) if given[0].ndim else 1
        if dim is None:
            defer(self)
        else:
            self._build(dim, loc, scale, scale_tril)

    def _build(self, dim: int, loc=None, scale=None, scale_tril=None) -> None:
        self.dim = dim
        self.loc = PyroParam(torch.zeros(dim) if loc is None else torch.as_tensor(loc), event_dim=1)
        if self.covariance == "diag":
            init = torch.ones(dim) if scale is None else torch.as_tensor(scale)
            self.scale = PyroParam(init, constraints.positive, event_dim=1)
        else:
            init = torch.eye(dim) if scale_tril is None else torch.as_tensor(scale_tril)
            self.scale_tril = PyroParam(init, constraints.lower_cholesky, event_dim=2)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Create ``loc`` and the scale for rows of ``x``'s width (``ppgen.fit`` calls this first),
        or check that ``x`` has the ``dim`` given to the constructor."""
        width = check_features(self, x, self.dim, "dim")
        if self.dim is None:
            self._build(width)
            if x.is_floating_point():
                self.to(dtype=x.dtype, device=x.device)

    def _sized(self) -> None:
        if self.dim is None:
            raise unsized(self, "dim")

    def _distribution(self) -> dist.Distribution:
        self._sized()
        if self.covariance == "diag":
            loc, scale = self.loc, self.scale
            return dist.Normal(loc, scale).to_event(1)
        loc, scale_tril = self.loc, self.scale_tril
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        self._check_dim(x)
        # Globals are read before the plate so a prior on them stays global (PYRO_NOTES 6).
        likelihood = self._distribution()
        with self.data_plate(x, n):
            return pyro.sample("x", likelihood, obs=x)

    @pyro_method
    def sample(self, n: int) -> torch.Tensor:
        """The pushforward story made explicit: ``loc + L eps``, ``eps ~ N(0, I)``."""
        self._sized()
        if self.is_bayesian:
            return super().sample(n)
        with torch.no_grad():
            eps = torch.randn(int(n), self.dim, dtype=self.loc.dtype, device=self.loc.device)
            if self.covariance == "diag":
                return self.loc + eps * self.scale
            return self.loc + eps @ self.scale_tril.T

    @pyro_method
    def rsample(self, n: int) -> torch.Tensor:
        """Differentiable draws ``loc + L eps`` (gradients reach loc and L; adversarial fits)."""
        self._sized()
        eps = torch.randn(int(n), self.dim, dtype=self.loc.dtype, device=self.loc.device)
        if self.covariance == "diag":
            return self.loc + eps * self.scale
        return self.loc + eps @ self.scale_tril.T

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log N(x | loc, L Lᵀ) = -½‖L⁻¹(x - loc)‖² - Σ log diag L - (d/2) log 2π``, per row.

        Written out rather than through ``torch.distributions`` (the same density as the story's,
        tested equal): the distribution object's construction and argument checks cost more than
        the arithmetic on small data, and ``mle`` calls this every step."""
        z, log_det = self._whitened(x)
        return -0.5 * (z * z).sum(-1) - log_det - 0.5 * self.dim * _LOG_2PI

    def log_prob_total(self, x: torch.Tensor) -> torch.Tensor:
        """``Σ_n log N(x_n | loc, L Lᵀ) = -½ Σ_n ‖L⁻¹(x_n - loc)‖² - N (Σ log diag L + (d/2) log 2π)``.

        ``mle``'s loss: the per-row constants become one product, so a step touches the data
        four times (difference, scale, square, sum) instead of seven."""
        z, log_det = self._whitened(x)
        return -0.5 * (z * z).sum() - x.shape[0] * (log_det + 0.5 * self.dim * _LOG_2PI)

    def _whitened(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L⁻¹(x - loc) per row, Σ log diag L)``."""
        self._check_dim(x)
        loc = self.loc
        if self.covariance == "diag":
            scale = self.scale
            return (x - loc) / scale, scale.log().sum(-1)
        scale_tril = self.scale_tril
        # All rows in one solve: a (d, N) right-hand side (batches of draws broadcast in front).
        diff = (x - loc).transpose(-1, -2)
        z = torch.linalg.solve_triangular(scale_tril, diff, upper=False).transpose(-1, -2)
        return z, scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def fit_exact(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Closed-form MLE: sample mean and the covariance with divisor ``n`` (not ``n-1``)."""
        x = as_tensor(x, name="x", ndim=2)
        self._check_dim(x)
        n = x.shape[0]
        loc = x.mean(0)
        centred = x - loc
        if self.covariance == "diag":
            var = (centred**2).mean(0)
            if n < 2 or (var <= 0).any():
                raise DataError(
                    f"Expected data with spread in every dimension for a Gaussian MLE, but got "
                    f"{n} row(s) and zero variance in dims {(var <= 0).nonzero().flatten().tolist()}."
                )
            return {"loc": loc, "scale": var.sqrt()}
        cov = centred.T @ centred / n
        chol, info = torch.linalg.cholesky_ex(cov)
        if info != 0 or n <= self.dim:
            raise DataError(
                f"Expected n > dim and a non-singular sample covariance for a full-covariance "
                f"Gaussian MLE, but got n={n}, dim={self.dim}; use covariance='diag' or more data."
            )
        return {"loc": loc, "scale_tril": chol}

    def _check_dim(self, x: torch.Tensor | None) -> None:
        self._sized()
        if x is not None:
            check_features(self, x, self.dim, "dim")
