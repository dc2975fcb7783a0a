"""Kernel density estimation: pick a training point uniformly, then add kernel noise.

``p̂(x) = (1/n) Σ_i |L|⁻¹ K(L⁻¹(x − x_i))`` with bandwidth matrix ``H = L Lᵀ = h² S``, where
``S`` is the identity, the data's diagonal variances, or its full covariance.

As a Pyro program the story is a mixture with one component per training point::

    i ~ Categorical(1/n, ..., 1/n)          # which training point (enumerated)
    x ~ Kernel(loc=x_i, scale_tril=L)       # Gaussian or Epanechnikov noise around it

``log_prob`` sums the component out exactly by a chunked log-sum-exp whose memory stays
bounded (``max_elements`` kernel values at a time) for any number of points.
"""

from __future__ import annotations

import math
import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints
from tqdm.auto import tqdm

from ppgen.core import GenerativeModel, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import ConvergenceWarning, DataError, OptionError

__all__ = ["KDE", "Epanechnikov", "KERNELS", "BANDWIDTH_RULES", "COVARIANCES"]

KERNELS = ("gaussian", "epanechnikov")
BANDWIDTH_RULES = ("scott", "silverman", "cv")
COVARIANCES = ("identity", "diag", "full")
MAX_ELEMENTS = 2**22  # kernel values held at once (32 MiB in float64)
SPEED_BLOCK = 2**16  # kernel values per block for speed (fits in cache)
_HEADROOM = 60.0  # rows whose kernel sum is below tiny·e^60 are redone in log space


def _log_norm(kernel: str, d: int) -> float:
    """Log normaliser of the unit kernel: Gaussian ``(2π)^{-d/2}``, Epanechnikov ``(d+2) / (2 V_d)``."""
    if kernel == "gaussian":
        return -0.5 * d * math.log(2 * math.pi)
    log_volume = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)  # unit ball V_d
    return math.log(d + 2) - math.log(2) - log_volume


def _log_kernel(sq: torch.Tensor, kernel: str) -> torch.Tensor:
    """Unnormalised log kernel of a squared whitened distance ``sq = |u|²``."""
    if kernel == "gaussian":
        return -0.5 * sq
    return torch.where(sq < 1, torch.log1p(-sq.clamp(max=1)), -math.inf)


class Epanechnikov(TorchDistribution):
    """Multivariate Epanechnikov noise: ``p(x) = c_d (1 − |L⁻¹(x − loc)|²)₊ / |det L|``.

    Draws are ``loc + L u`` with ``u`` uniform in direction and ``|u|² ~ Beta(d/2, 2)``.
    """

    arg_constraints = {"loc": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale_tril: torch.Tensor, validate_args: bool | None = None):
        self.loc, self.scale_tril = loc, scale_tril
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=validate_args)

    def sample(self, sample_shape: torch.Size | tuple = ()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        d = shape[-1]
        with torch.no_grad():
            g = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
            concentration = torch.tensor([0.5 * d, 2.0], dtype=self.loc.dtype, device=self.loc.device)
            r2 = torch.distributions.Beta(*concentration).sample(shape[:-1])
            u = g / g.norm(dim=-1, keepdim=True) * r2.sqrt().unsqueeze(-1)
            return self.loc + u @ self.scale_tril.transpose(-1, -2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        d = self.loc.shape[-1]
        diff = (value - self.loc).unsqueeze(-1)
        L = self.scale_tril.expand(diff.shape[:-2] + self.scale_tril.shape[-2:])
        u = torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)
        log_det = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return _log_kernel((u**2).sum(-1), "epanechnikov") + _log_norm("epanechnikov", d) - log_det


class KDE(GenerativeModel):
    """Kernel density estimate; ``ppgen.fit(KDE(...), x, method="exact")`` selects the bandwidth.

    Arguments:
        bandwidth: ``h`` as a positive number, or a rule: ``"scott"`` (``h = n^{-1/(d+4)} σ``),
            ``"silverman"`` (``h = (n(d+2)/4)^{-1/(d+4)} σ``) or ``"cv"`` (maximise the
            leave-one-out log-likelihood over ``grid``). With ``covariance="identity"`` the
            rules scale by the data's spread ``σ = sqrt(tr Σ̂ / d)`` (unbiased Σ̂); otherwise
            ``S`` carries the spread and ``σ = 1`` (exactly ``scipy.stats.gaussian_kde``).
            For the Epanechnikov kernel ``h`` is the support radius and the rules give the
            radius ``sqrt(d+4)·h`` of the kernel with the same standard deviation.
        kernel: ``"gaussian"`` or ``"epanechnikov"`` (``h`` means as in scikit-learn).
        covariance: shape ``S`` of the bandwidth matrix ``H = h² S``: ``"identity"``,
            ``"diag"`` (per-dimension variances) or ``"full"`` (data covariance, as scipy).
        grid: candidate ``h`` values for ``"cv"``; default 40 log-spaced values from 0.05 to 3
            times Scott's ``h``.
        max_elements: kernel values computed at once; bounds the memory of ``log_prob``.

    Example:
        >>> import ppgen
        >>> fit = ppgen.fit(KDE(bandwidth="silverman"), ppgen.data.load("toy11"), method="exact")
        >>> round(float(fit.params["bandwidth"]), 3)
        0.967
    """

    has_local_latents = True

    def __init__(
        self,
        bandwidth: float | str = "scott",
        kernel: str = "gaussian",
        covariance: str = "identity",
        *,
        grid: torch.Tensor | None = None,
        max_elements: int = MAX_ELEMENTS,
    ):
        super().__init__()
        if isinstance(bandwidth, str):
            if bandwidth not in BANDWIDTH_RULES:
                raise OptionError(
                    f"Expected bandwidth > 0 or one of {BANDWIDTH_RULES}, but got {bandwidth!r}."
                )
        elif isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) or not bandwidth > 0:
            raise OptionError(f"Expected bandwidth > 0 or one of {BANDWIDTH_RULES}, but got {bandwidth!r}.")
        if kernel not in KERNELS:
            raise OptionError(f"Expected kernel in {KERNELS}, but got {kernel!r}.")
        if covariance not in COVARIANCES:
            raise OptionError(f"Expected covariance in {COVARIANCES}, but got {covariance!r}.")
        if grid is not None:
            grid = torch.as_tensor(grid, dtype=torch.float64).flatten()
            if grid.numel() == 0 or not (grid > 0).all() or not torch.isfinite(grid).all():
                raise OptionError(f"Expected a grid of positive bandwidths, but got {grid.tolist()}.")
        if isinstance(max_elements, bool) or not isinstance(max_elements, int) or max_elements < 1:
            raise OptionError(f"Expected max_elements to be a positive integer, but got {max_elements!r}.")
        self.bandwidth, self.kernel, self.covariance = bandwidth, kernel, covariance
        self.grid, self.max_elements = grid, max_elements
        self.register_buffer("points", None)  # (n, d) training data, set by fit_exact
        self.register_buffer("scale_tril", None)  # (d, d) L with H = L Lᵀ
        self.cv_grid_: torch.Tensor | None = None
        self.cv_loglik_: torch.Tensor | None = None

    # ----------------------------------------------------------------- the story
    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        points, scale_tril = self._fitted()
        self._check_dim(x)
        logits = torch.zeros(points.shape[0], dtype=points.dtype, device=points.device)
        with self.data_plate(x, n):
            i = pyro.sample("i", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
            return pyro.sample("x", self._noise(points[i], scale_tril), obs=x)

    def _noise(self, loc: torch.Tensor, scale_tril: torch.Tensor) -> dist.Distribution:
        if self.kernel == "gaussian":
            return dist.MultivariateNormal(loc, scale_tril=scale_tril)
        return Epanechnikov(loc, scale_tril)

    # ------------------------------------------------------------------ density
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p̂(x_j) = logsumexp_i log K(L⁻¹(x_j − x_i)) − log n − log|L|``, shape ``(m,)``."""
        points, scale_tril = self._fitted()
        x = as_tensor(x, name="x", ndim=2, dtype=points.dtype)
        self._check_dim(x)
        centre = points.mean(0)
        a = self._whiten(x - centre, scale_tril)  # (m, d)
        b = self._whiten(points - centre, scale_tril)  # (n, d)
        log_det = scale_tril.diagonal().log().sum()
        lse = _chunked_logsumexp(a, b, self.kernel, self.max_elements)
        return lse - math.log(points.shape[0]) - log_det + _log_norm(self.kernel, x.shape[1])

    # ------------------------------------------------------------- exact "fit"
    def fit_exact(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Keep the training points and choose ``h`` by the configured rule; returns ``h`` and ``H``."""
        x = as_tensor(x, name="x", ndim=2)
        n, d = x.shape
        if n < 2:
            raise DataError(f"Expected at least 2 training points for a KDE, but got {n}.")
        shape_tril, spread = self._shape(x)
        if isinstance(self.bandwidth, (int, float)):
            h = float(self.bandwidth)
        else:
            rule = "scott" if self.bandwidth == "cv" else self.bandwidth
            h = (
                rule_of_thumb(n, d, rule)
                * spread
                * (math.sqrt(d + 4) if self.kernel == "epanechnikov" else 1)
            )
            if self.bandwidth == "cv":
                grid = (
                    self.grid
                    if self.grid is not None
                    else h * torch.logspace(math.log10(0.05), math.log10(3), 40)
                )
                h = self._cross_validate(x, shape_tril, grid.to(x.dtype))
        if not math.isfinite(h) or not bool(torch.isfinite(shape_tril).all()):
            raise DataError(
                f"Expected data whose spread gives a finite bandwidth, but got h={h} (values up to "
                f"{float(x.abs().max()):.3g} overflow the variance); standardise the data."
            )
        self.points = x.detach().clone()
        self.scale_tril = h * shape_tril
        return {
            "bandwidth": torch.tensor(h, dtype=x.dtype),
            "bandwidth_matrix": self.scale_tril @ self.scale_tril.T,
        }

    def loo_log_likelihood(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Mean leave-one-out log-likelihood ``(1/n) Σ_j log p̂_{−j}(x_j)`` for every ``h`` in ``grid``."""
        x = as_tensor(x, name="x", ndim=2)
        shape_tril, _ = self._shape(x)
        grid = torch.as_tensor(grid, dtype=x.dtype).flatten()
        return _loo(x, shape_tril, grid, self.kernel, self.max_elements)

    def _cross_validate(self, x: torch.Tensor, shape_tril: torch.Tensor, grid: torch.Tensor) -> float:
        scores = _loo(x, shape_tril, grid, self.kernel, self.max_elements)
        self.cv_grid_, self.cv_loglik_ = grid, scores
        if not torch.isfinite(scores).any():
            raise DataError(
                "Expected some bandwidth in the grid to give every point a neighbour, but all leave-one-out "
                "log-likelihoods are -inf; use larger grid values or the Gaussian kernel."
            )
        best = int(torch.argmax(scores))
        if best in (0, grid.numel() - 1) and grid.numel() > 2:
            warnings.warn(
                "Expected the cross-validated bandwidth inside the grid, but it is at the edge "
                f"(h={float(grid[best]):.4g}); widen the grid.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return float(grid[best])

    def _shape(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Cholesky factor of ``S`` and the spread ``σ`` the rules of thumb multiply by."""
        n, d = x.shape
        centred = x - x.mean(0)
        cov = centred.T @ centred / (n - 1)  # unbiased, as scipy
        if self.covariance == "identity":
            spread = math.sqrt(float(cov.diagonal().mean()))
            if spread == 0:
                raise DataError(
                    "Expected training data with some spread for a KDE, but every point is the same."
                )
            return torch.eye(d, dtype=x.dtype), spread
        if self.covariance == "diag":
            var = cov.diagonal()
            if (var <= 0).any():
                raise DataError(
                    f"Expected spread in every dimension for covariance='diag', but dims "
                    f"{(var <= 0).nonzero().flatten().tolist()} are constant; drop them or use 'identity'."
                )
            return torch.diag(var.sqrt()), 1.0
        chol, info = torch.linalg.cholesky_ex(cov)
        # Round-off can let Cholesky pass on an exactly singular covariance (collinear columns):
        # a pivot below d·eps of the largest variance is zero at this precision.
        tiny = chol.diagonal().square().min() <= d * torch.finfo(cov.dtype).eps * cov.diagonal().max()
        if info != 0 or tiny:
            raise DataError(
                f"Expected a non-singular data covariance for covariance='full', but got a singular one "
                f"(n={n}, d={d}); use covariance='diag' or 'identity'."
            )
        return chol, 1.0

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _whiten(x: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve_triangular(scale_tril, x.T, upper=False).T

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.points is None:
            raise DataError(
                "Expected a fitted KDE, but it has no training points yet; "
                "use ppgen.fit(KDE(...), x, method='exact') or kde.fit_exact(x)."
            )
        return self.points, self.scale_tril

    def _check_dim(self, x: torch.Tensor | None) -> None:
        if x is not None and self.points is not None and (x.ndim != 2 or x.shape[1] != self.points.shape[1]):
            raise DataError(f"Expected x of shape (N, {self.points.shape[1]}), but got {tuple(x.shape)}.")


def rule_of_thumb(n: int, d: int, rule: str) -> float:
    """Scott ``n^{-1/(d+4)}`` or Silverman ``(n(d+2)/4)^{-1/(d+4)}`` bandwidth factor."""
    if rule == "scott":
        return n ** (-1.0 / (d + 4))
    if rule == "silverman":
        return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    raise OptionError(f"Expected rule in ('scott', 'silverman'), but got {rule!r}.")


def _chunked_logsumexp(a: torch.Tensor, b: torch.Tensor, kernel: str, max_elements: int) -> torch.Tensor:
    """``log Σ_i exp(log K(a_j − b_i))`` for every row ``a_j``, at most ``max_elements`` values at once.

    One matmul per block gives ``q = −|a − b|²/2`` directly (augmented coordinates); the
    Gaussian sum ``Σ exp(q)`` needs no max-shift because ``q ≤ 0``. Rows whose sum would
    underflow (points far from all data) are redone with a shifted log-sum-exp.
    """
    m, n = a.shape[0], b.shape[0]
    ones_a, ones_b = a.new_ones(m, 1), b.new_ones(n, 1)
    a_aug = torch.cat([a, ones_a, -0.5 * (a**2).sum(1, keepdim=True)], 1)  # (m, d+2)
    b_aug = torch.cat([b, -0.5 * (b**2).sum(1, keepdim=True), ones_b], 1).T.contiguous()  # (d+2, n)
    block = min(max_elements, SPEED_BLOCK)  # small blocks stay in cache; max_elements bounds memory
    cols = min(n, block)
    rows = max(1, block // cols)
    out = torch.empty(m, dtype=a.dtype, device=a.device)
    # exp below log(tiny) gives subnormals (slow, inexact): clamp there. Each clamped term adds
    # at most e²·tiny, negligible next to any sum above tiny·e^60; smaller sums are redone exactly.
    floor = math.log(torch.finfo(a.dtype).tiny) + 2.0
    for start in tqdm(range(0, m, rows), desc="kde log_prob", leave=False, disable=m * n < 5e8):
        stop = min(start + rows, m)
        total = torch.zeros(stop - start, dtype=a.dtype, device=a.device)
        for col in range(0, n, cols):
            q = a_aug[start:stop] @ b_aug[:, col : col + cols]  # (r, c) = −|a − b|²/2
            if kernel == "gaussian":
                total += q.clamp_(min=floor, max=0).exp_().sum(1)
            else:
                total += q.mul_(2).add_(1).clamp_(min=0).sum(1)  # (1 − |u|²)₊
        out[start:stop] = total.log()
    if kernel == "gaussian":
        far = (out < floor + _HEADROOM).nonzero().flatten()
        if far.numel():
            out[far] = _shifted_logsumexp(a_aug[far], b_aug, cols)
    return out


def _shifted_logsumexp(a_aug: torch.Tensor, b_aug: torch.Tensor, cols: int) -> torch.Tensor:
    """The Gaussian sum in log space with a max-shift, streamed over training blocks (rare rows)."""
    acc = None
    for col in range(0, b_aug.shape[1], cols):
        block = torch.logsumexp(a_aug @ b_aug[:, col : col + cols], dim=1)
        acc = block if acc is None else torch.logaddexp(acc, block)
    return acc


def _loo(x: torch.Tensor, shape_tril: torch.Tensor, grid: torch.Tensor, kernel: str, max_elements: int):
    """Mean leave-one-out log-likelihood for every bandwidth in ``grid``, shape ``(G,)``."""
    n, d = x.shape
    w = KDE._whiten(x - x.mean(0), shape_tril)  # (n, d) in the units of S
    sq_norm = (w**2).sum(1)
    rows = max(1, max_elements // (n * grid.numel()))
    inv_h2 = grid.pow(-2)[:, None, None]  # (G, 1, 1)
    total = torch.zeros(grid.numel(), dtype=x.dtype, device=x.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sq = (sq_norm[start:stop, None] + sq_norm[None] - 2 * w[start:stop] @ w.T).clamp_(min=0)  # (r, n)
        idx = torch.arange(start, stop, device=x.device)
        sq[idx - start, idx] = math.inf  # leave point j out of its own estimate
        log_k = _log_kernel(sq[None] * inv_h2, kernel)  # (G, r, n)
        total += torch.logsumexp(log_k, dim=2).sum(1)
    log_det = shape_tril.diagonal().log().sum() + d * grid.log()  # log|L| for each h
    return total / n - math.log(n - 1) - log_det + _log_norm(kernel, d)
