"""The mixture skeleton every family shares: ``p(x) = sum_k pi_k p(x | z=k)``.

:class:`Mixture` owns the story (``z ~ Categorical(pi)`` marked for parallel enumeration,
then ``x`` from component ``z``), the exact marginal ``log_prob`` by log-sum-exp, the
blocked E-step, the M-step for ``pi``, initialisation (k-means++ or random
responsibilities), BIC and AIC. A family is a thin subclass that builds its component
parameters, scores a block of rows under every component and refits them from
responsibilities (see :mod:`ppgen.models.mixture` and :mod:`ppgen.models.pixel_mixture`).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints
from torch.distributions.transforms import ComposeTransform, ReshapeTransform

from ppgen.core import GenerativeModel, PyroParam, PyroSample, pyro_method
from ppgen.data import as_tensor
from ppgen.errors import DataError, OptionError
from ppgen.models.sizing import built, check_features, defer, unsized

__all__ = ["Mixture", "OrderedMeans", "kmeans_plusplus", "INITS"]

INITS = ("kmeans++", "random", "given")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"Expected {name} to be a positive integer, but got {value!r}.")
    return value


class Mixture(GenerativeModel):
    """Base of every mixture ``p(x) = sum_k pi_k p(x | theta_k)``; subclasses give the components.

    Arguments:
        n_components: number of hidden causes ``K``.
        dim: dimension of one observation; ``None`` builds the parameters at the first data seen
            (``ppgen.fit`` sizes the model from the data for every method; priors need ``dim``
            up front).
        chunk_size: rows per block in the vectorised E/M passes (keeps intermediates in cache).
        prior: optional priors by parameter name (needs ``dim``), e.g. ``{"pi": Dirichlet(...)}``;
            the same as :func:`ppgen.bayesian`, fitted by ``mcmc``, ``map`` or ``svi``.
    """

    has_local_latents = True
    init_methods = INITS
    default_init = "kmeans++"

    def __init__(
        self,
        n_components: int,
        dim: int | None = None,
        *,
        chunk_size: int = 4096,
        prior: dict[str, dist.Distribution] | None = None,
    ):
        super().__init__()
        self.n_components = _positive_int(n_components, "n_components")
        self.chunk_size = _positive_int(chunk_size, "chunk_size")
        self.dim = None
        if dim is not None:
            self._build(_positive_int(dim, "dim"), torch.get_default_dtype(), None)
        else:
            defer(self)
        if prior:
            self._set_priors(prior)

    def _set_priors(self, prior: dict[str, dist.Distribution]) -> None:
        """Turn named parameters into ``PyroSample`` sites (as :func:`ppgen.bayesian` does)."""
        if self.dim is None:
            raise OptionError(
                "Expected dim= together with prior= (the priors' shapes depend on it), but got None."
            )
        for name, p in prior.items():
            if name not in self._pyro_params:
                raise OptionError(f"Expected priors for {self.param_names}, but got {name!r}.")
            shape, draw = tuple(getattr(self, name).shape), tuple(p.batch_shape + p.event_shape)
            if draw != shape:
                raise OptionError(
                    f"Expected a prior for {name!r} with draws of shape {shape}, but got {draw}; use "
                    f".expand({list(shape)}).to_event({len(shape)})."
                )
            delattr(self, name)
            setattr(self, name, PyroSample(p))

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

    def _component_penalty(self, nk: torch.Tensor) -> torch.Tensor | float:
        """The penalty (summed over rows) whose ``Q + penalty`` the M-step maximises exactly;
        0 for a family whose M-step is the plain maximiser of ``Q``."""
        return 0.0

    def _check_values(self, x: torch.Tensor) -> None:
        """Raise DataError when ``x`` lies outside the component's support."""

    # ------------------------------------------------------------------- setup
    def _build(self, dim: int, dtype, device) -> None:
        self.dim = dim
        k = self.n_components
        self.pi = PyroParam(torch.full((k,), 1.0 / k, dtype=dtype, device=device), constraints.simplex, 1)
        self._build_components(dim, dtype, device)
        built(self)

    def setup(self, x: torch.Tensor, covariates: dict) -> None:
        """Build the parameters for rows of ``x``'s width (``ppgen.fit`` calls this first), or check
        that ``x`` has the ``dim`` given to the constructor."""
        self._check(x, build=True)

    def _check(self, x: torch.Tensor, build: bool = False) -> torch.Tensor:
        width = check_features(self, x, self.dim, "dim")
        if self.dim is None:
            if not build:
                raise unsized(self, "dim")
            self._build(width, x.dtype, x.device)
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
            raise unsized(self, "dim")
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
            nk = _counts(resp)  # (K,)
            values = self._fit_components(x, resp, nk)
            self.set_params(pi=nk / nk.sum(), **values)

    def em_penalty(self, resp: torch.Tensor) -> float:
        """Mean penalty ``P(theta; N)`` per row at the current parameters, with ``N_k = sum_i r_ik``.

        The M-step maximises ``Q(theta | resp) + P(theta; N)`` exactly, so by Jensen
        ``L(theta_new) + P(theta_new; N) >= L(theta_old) + P(theta_old; N)`` for the ``N`` of the
        E-step at ``theta_old``: the inequality the EM backend checks (a regularised M-step is
        not the maximiser of ``Q`` alone, so ``L`` by itself may fall slightly).
        """
        with torch.no_grad():
            if hasattr(resp, "nk"):  # sufficient statistics (GaussianMixture.e_step_moments)
                counts, n = resp.nk + 10 * torch.finfo(resp.nk.dtype).eps, resp.n
            else:
                counts, n = _counts(resp), resp.shape[0]
            return float(self._component_penalty(counts)) / n

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


def _counts(resp: torch.Tensor) -> torch.Tensor:
    """``N_k = sum_i r_ik`` (K,); the tiny floor (as scikit-learn) keeps an empty component finite."""
    return resp.sum(0) + 10 * torch.finfo(resp.dtype).eps


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
