"""Mixtures: pick a hidden cause ``z ~ Categorical(pi)``, then draw ``x`` from component ``z``.

``p(x) = sum_k pi_k p(x | z=k)``. The story marks ``z`` for parallel enumeration, so
TraceEnum_ELBO and NUTS sum it out exactly; ``log_prob`` is the same marginal by
log-sum-exp, and ``e_step``/``m_step`` give the EM backend its closed-form updates.

A new family is a thin subclass of :class:`Mixture` that says how to build its component
parameters, score data under every component and re-fit them from responsibilities.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints
from torch.distributions.transforms import ComposeTransform, ReshapeTransform

from ppgen.core import GenerativeModel, PyroParam, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError

__all__ = [
    "Mixture",
    "GaussianMixture",
    "BernoulliMixture",
    "CategoricalMixture",
    "OrderedMeans",
    "kmeans_plusplus",
]

COVARIANCES = ("full", "diag", "spherical", "tied")
INITS = ("kmeans++", "random", "given")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"Expected {name} to be a positive integer, but got {value!r}.")
    return value


class Mixture(GenerativeModel):
    """Base of every mixture ``p(x) = sum_k pi_k p(x | theta_k)``; subclasses give the components.

    Arguments:
        n_components: number of hidden causes ``K``.
        dim: dimension of one observation; ``None`` builds the parameters at the first data seen.
        chunk_size: rows per block in the vectorised E/M passes (keeps intermediates in cache).
    """

    has_local_latents = True
    init_methods = INITS
    default_init = "kmeans++"

    def __init__(self, n_components: int, dim: int | None = None, *, chunk_size: int = 4096):
        super().__init__()
        self.n_components = _positive_int(n_components, "n_components")
        self.chunk_size = _positive_int(chunk_size, "chunk_size")
        self.dim = None
        if dim is not None:
            self._build(_positive_int(dim, "dim"), torch.get_default_dtype(), None)

    # ------------------------------------------------------------ subclass hooks
    def _build_components(self, dim: int, dtype, device) -> None:
        raise NotImplementedError

    def _read(self) -> dict[str, torch.Tensor]:
        """Read every component parameter once (a PyroSample is sampled where it is read)."""
        raise NotImplementedError

    def _component(self, params: dict, z: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def _prepare(self, params: dict, x: torch.Tensor) -> dict:
        """Quantities derived from the parameters once per pass (e.g. precision factors)."""
        return params

    def _component_log_prob(self, x: torch.Tensor, prepared: dict) -> torch.Tensor:
        """``log p(x_i | z=k)`` for one block of rows, shape ``(c, K)``."""
        raise NotImplementedError

    def _fit_components(self, x: torch.Tensor, resp: torch.Tensor, nk: torch.Tensor) -> dict:
        raise NotImplementedError

    def _count_component_params(self) -> int:
        raise NotImplementedError

    def _check_values(self, x: torch.Tensor) -> None:
        """Raise DataError when ``x`` lies outside the component's support."""

    # ------------------------------------------------------------------- setup
    def _build(self, dim: int, dtype, device) -> None:
        self.dim = dim
        k = self.n_components
        self.pi = PyroParam(torch.full((k,), 1.0 / k, dtype=dtype, device=device), constraints.simplex, 1)
        self._build_components(dim, dtype, device)

    def _check(self, x: torch.Tensor, build: bool = False) -> torch.Tensor:
        if x.ndim != 2:
            raise DataError(f"Expected x of shape (N, dim), but got shape {tuple(x.shape)}.")
        if self.dim is None:
            if not build:
                raise DataError(
                    f"Expected a fitted or initialised {type(self).__name__}, but its dim is unknown; "
                    "pass dim= or fit it first."
                )
            self._build(x.shape[1], x.dtype, x.device)
        if x.shape[1] != self.dim:
            raise DataError(f"Expected x of shape (N, {self.dim}), but got {tuple(x.shape)}.")
        self._check_values(x)
        return x

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        pi = self.pi
        params = {k: v.to(x) for k, v in self._read().items()}
        return pi.to(x), params

    # ------------------------------------------------------------------ story
    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None) -> torch.Tensor:
        if x is not None:
            self._check(x, build=True)
        elif self.dim is None:
            raise DataError(f"Expected dim= for sampling an unfitted {type(self).__name__}.")
        pi, params = self.pi, self._read()  # globals first, then the plate (PYRO_NOTES 6)
        with self.data_plate(x, n):
            z = pyro.sample("z", dist.Categorical(pi), infer={"enumerate": "parallel"})
            return pyro.sample("x", self._component(params, z), obs=None if x is None else self._observed(x))

    def _observed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    # --------------------------------------------------------------- density
    def _log_joint_blocks(self, x: torch.Tensor):
        """Yield ``log pi_k + log p(x_i | z=k)`` block by block, shape ``(c, K)``."""
        pi, params = self._params(x)
        log_pi = torch.log(pi)
        prepared = self._prepare(params, x)
        for start in range(0, x.shape[0], self.chunk_size):
            yield self._component_log_prob(x[start : start + self.chunk_size], prepared) + log_pi

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact marginal ``log p(x_i) = logsumexp_k (log pi_k + log p(x_i | z=k))``, shape ``(N,)``."""
        x = self._check(x)
        return torch.cat([torch.logsumexp(block, 1) for block in self._log_joint_blocks(x)])

    @pyro_method
    def e_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Responsibilities ``r_ik = pi_k p(x_i|k) / sum_j pi_j p(x_i|j)`` (N, K) and ``log p(x_i)`` (N,)."""
        x = self._check(x, build=True)
        if torch.is_grad_enabled():
            blocks = list(self._log_joint_blocks(x))
            norm = torch.cat([torch.logsumexp(b, 1) for b in blocks])
            return torch.exp(torch.cat(blocks) - norm[:, None]), norm
        resp = torch.empty(x.shape[0], self.n_components, dtype=x.dtype, device=x.device)
        loglik = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
        start = 0
        for block in self._log_joint_blocks(x):  # in place, block by block: stays in cache
            top = block.max(1, keepdim=True).values  # (c, 1)
            block.sub_(top).exp_()
            total = block.sum(1, keepdim=True)
            stop = start + block.shape[0]
            torch.div(block, total, out=resp[start:stop])
            loglik[start:stop] = (top + total.log()).squeeze(1)
            start = stop
        return resp, loglik

    def responsibilities(self, x) -> torch.Tensor:
        """Posterior ``p(z=k | x_i)`` for every row, shape ``(N, K)``; rows sum to one."""
        with torch.no_grad():
            return self.e_step(as_tensor(x, name="x", ndim=2, dtype=self._dtype()))[0]

    def predict(self, x) -> torch.Tensor:
        """Most responsible component ``argmax_k r_ik`` per row, shape ``(N,)``."""
        return self.responsibilities(x).argmax(1)

    def m_step(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        """Closed-form update: ``pi_k = N_k / N`` and the component parameters from ``resp``."""
        x = self._check(x, build=True)
        if resp.shape != (x.shape[0], self.n_components):
            raise DataError(
                f"Expected responsibilities of shape {(x.shape[0], self.n_components)}, but got "
                f"{tuple(resp.shape)}."
            )
        with torch.no_grad():
            # The tiny floor (as scikit-learn) keeps an empty component finite instead of NaN.
            nk = resp.sum(0) + 10 * torch.finfo(resp.dtype).eps  # (K,)
            values = self._fit_components(x, resp, nk)
            self.set_params(pi=nk / nk.sum(), **values)

    def initialize(self, x, init: str = "kmeans++", seed: int | None = None) -> Mixture:
        """Initial parameters: hard k-means++ assignments or random responsibilities, then one M-step."""
        if init not in INITS:
            raise OptionError(f"Expected init in {INITS}, but got {init!r}.")
        x = self._check(as_tensor(x, name="x", ndim=2, dtype=self._dtype()), build=True)
        if init == "given":
            return self
        if x.shape[0] < self.n_components:
            raise DataError(
                f"Expected n_samples >= n_components, but got {x.shape[0]} < {self.n_components}; "
                "use fewer components or more data."
            )
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        if init == "random":
            resp = torch.rand(x.shape[0], self.n_components, generator=gen, dtype=x.dtype).to(x.device)
            resp = resp / resp.sum(1, keepdim=True)
        else:
            centers = kmeans_plusplus(x, self.n_components, gen)
            labels = torch.cdist(x, centers).argmin(1)
            resp = torch.nn.functional.one_hot(labels, self.n_components).to(x.dtype)
        self.m_step(x, resp)
        return self

    def _dtype(self) -> torch.dtype | None:
        return self.pi.dtype if self.dim is not None else None

    # ------------------------------------------------------------ model choice
    def n_parameters(self) -> int:
        """Free parameters: ``K - 1`` weights plus the components'."""
        return self.n_components - 1 + self._count_component_params()

    def bic(self, x) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better)."""
        x = as_tensor(x, name="x", ndim=2, dtype=self._dtype())
        with torch.no_grad():
            return float(-2 * self.log_prob(x).sum() + self.n_parameters() * math.log(x.shape[0]))

    def aic(self, x) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        x = as_tensor(x, name="x", ndim=2, dtype=self._dtype())
        with torch.no_grad():
            return float(-2 * self.log_prob(x).sum() + 2 * self.n_parameters())


class GaussianMixture(Mixture):
    """``x ~ sum_k pi_k N(mu_k, Sigma_k)``: pick a hidden cause, then draw from its Gaussian.

    Arguments:
        n_components: number of components ``K``.
        dim: dimension of one observation (``None``: taken from the first data).
        covariance: ``"full"`` (``scale_tril`` (K, d, d), Cholesky factor of each Sigma_k),
            ``"tied"`` (one ``scale_tril`` (d, d)), ``"diag"`` (``scale`` (K, d), standard
            deviations) or ``"spherical"`` (``scale`` (K,)).
        reg_covar: added to the diagonal of every covariance in the M-step, keeping each
            Sigma_k positive definite when a component collapses onto few points.

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
    ):
        if covariance not in COVARIANCES:
            raise OptionError(f"Expected covariance in {COVARIANCES}, but got {covariance!r}.")
        if not reg_covar >= 0:
            raise OptionError(f"Expected reg_covar >= 0, but got {reg_covar!r}.")
        self.covariance = covariance
        self.reg_covar = float(reg_covar)
        super().__init__(n_components, dim, chunk_size=chunk_size)

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
        cov = 0.5 * (cov + cov.transpose(-1, -2)) + reg * torch.eye(d, dtype=x.dtype, device=x.device)
        tril, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise DataError(
                "Expected positive-definite component covariances, but the M-step produced a singular "
                f"one (a component collapsed onto too few points); increase reg_covar (now {reg:g}), "
                "use covariance='diag', or fewer components."
            )
        return {"mu": mu, "scale_tril": tril}

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


class BernoulliMixture(Mixture):
    """``x ~ sum_k pi_k prod_j Bernoulli(x_j | p_kj)`` for binary vectors (binarized images).

    Arguments:
        n_components: number of components ``K``.
        dim: number of binary features (``None``: taken from the first data).
        min_prob: M-step probabilities are kept in ``[min_prob, 1 - min_prob]`` so a pixel
            never seen on gives a finite log-likelihood on new data (EM stays monotone).
    """

    def __init__(self, n_components: int, dim: int | None = None, *, min_prob: float = 1e-6, chunk_size=4096):
        if not 0 <= min_prob < 0.5:
            raise OptionError(f"Expected 0 <= min_prob < 0.5, but got {min_prob!r}.")
        self.min_prob = float(min_prob)
        super().__init__(n_components, dim, chunk_size=chunk_size)

    def _build_components(self, dim, dtype, device):
        init = torch.full((self.n_components, dim), 0.5, dtype=dtype, device=device)
        self.probs = PyroParam(init, constraints.unit_interval, 2)

    def _read(self):
        return {"probs": self.probs}

    def _check_values(self, x):
        if not bool(((x == 0) | (x == 1)).all()):
            raise DataError(
                f"Expected binary data (0/1) for {type(self).__name__}, but got other values; threshold "
                "it first, e.g. (x > 0.5).double()."
            )

    def _component(self, params, z):
        return dist.Bernoulli(probs=params["probs"][z]).to_event(1)

    def _component_log_prob(self, x, params):
        p = params["probs"]  # (K, d)
        return x @ torch.log(p).T + (1 - x) @ torch.log1p(-p).T

    def _fit_components(self, x, resp, nk):
        probs = (resp.T @ x) / nk[:, None]
        return {"probs": probs.clamp(self.min_prob, 1 - self.min_prob)}

    def _count_component_params(self):
        return self.n_components * self.dim


class CategoricalMixture(Mixture):
    """``x ~ sum_k pi_k prod_j Categorical(x_j | p_kj)``: per-pixel categories ``0..C-1``.

    Arguments:
        n_components: number of components ``K``.
        num_categories: values each feature can take, ``C``.
        dim: number of features.
        min_prob: floor of every M-step probability (then renormalised).
    """

    def __init__(
        self,
        n_components: int,
        num_categories: int,
        dim: int | None = None,
        *,
        min_prob=1e-6,
        chunk_size=4096,
    ):
        self.num_categories = _positive_int(num_categories, "num_categories")
        self.min_prob = float(min_prob)
        super().__init__(n_components, dim, chunk_size=chunk_size)

    def _build_components(self, dim, dtype, device):
        c = self.num_categories
        init = torch.full((self.n_components, dim, c), 1.0 / c, dtype=dtype, device=device)
        self.probs = PyroParam(init, constraints.simplex, 3)

    def _read(self):
        return {"probs": self.probs}

    def _check_values(self, x):
        if not bool(((x >= 0) & (x < self.num_categories) & (x == x.round())).all()):
            raise DataError(
                f"Expected integer categories 0..{self.num_categories - 1}, but got other values; "
                "quantise the data first."
            )

    def _one_hot(self, x):
        return torch.nn.functional.one_hot(x.long(), self.num_categories).to(x.dtype).reshape(x.shape[0], -1)

    def _component(self, params, z):
        return dist.Categorical(probs=params["probs"][z]).to_event(1)

    def _observed(self, x):
        return x.long()

    def _component_log_prob(self, x, params):
        log_p = torch.log(params["probs"]).reshape(self.n_components, -1)  # (K, d*C)
        return self._one_hot(x) @ log_p.T

    def _fit_components(self, x, resp, nk):
        counts = torch.zeros(
            self.n_components, self.dim * self.num_categories, dtype=x.dtype, device=x.device
        )
        for start in range(0, x.shape[0], self.chunk_size):
            counts += resp[start : start + self.chunk_size].T @ self._one_hot(
                x[start : start + self.chunk_size]
            )
        probs = (counts / nk[:, None]).reshape(self.n_components, self.dim, -1).clamp_min(self.min_prob)
        return {"probs": probs / probs.sum(-1, keepdim=True)}

    def _count_component_params(self):
        return self.n_components * self.dim * (self.num_categories - 1)


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means++ seeding: each new center drawn with probability ``∝ D(x)^2``, shape ``(k, d)``."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [x[first]]
    closest = ((x - x[first]) ** 2).sum(1)  # (N,)
    for _ in range(1, k):
        weights = closest.cpu() if float(closest.sum()) > 0 else torch.ones(n, dtype=x.dtype)
        index = int(torch.multinomial(weights, 1, generator=generator))
        centers.append(x[index])
        closest = torch.minimum(closest, ((x - x[index]) ** 2).sum(1))
    return torch.stack(centers)


class _OrderedFirstColumn(constraints.Constraint):
    """Matrices ``(K, 1)`` whose column is strictly increasing (ordered 1-D component means)."""

    event_dim = 2

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def check(self, value):
        column = value[..., 0]
        return (column[..., 1:] > column[..., :-1]).all(-1)


@torch.distributions.constraint_registry.biject_to.register(_OrderedFirstColumn)
@torch.distributions.constraint_registry.transform_to.register(_OrderedFirstColumn)
def _ordered_bijection(constraint: _OrderedFirstColumn):
    return ComposeTransform(
        [dist.transforms.OrderedTransform(), ReshapeTransform((constraint.k,), (constraint.k, 1))]
    )


class OrderedMeans(dist.TransformedDistribution):
    """Prior on 1-D component means ``mu_1 < ... < mu_K``, shape ``(K, 1)``; removes label switching.

    ``mu_1 ~ N(loc, scale)``, ``log(mu_k - mu_{k-1}) ~ N(loc, scale)``: an ordering
    constraint, so the K! relabellings of one posterior mode become one mode and
    posterior summaries per component are meaningful.
    """

    arg_constraints: dict = {}

    def __init__(self, n_components: int, loc: float = 0.0, scale: float = 10.0, dtype=torch.float64):
        self.k = _positive_int(n_components, "n_components")
        base = dist.Normal(torch.tensor(loc, dtype=dtype), torch.tensor(scale, dtype=dtype))
        base = base.expand([self.k]).to_event(1)
        super().__init__(base, [dist.transforms.OrderedTransform(), ReshapeTransform((self.k,), (self.k, 1))])

    @property
    def support(self):
        return _OrderedFirstColumn(self.k)
