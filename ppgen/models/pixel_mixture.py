"""Pixel mixtures for discrete images: each component is a grid of independent pixels.

``BernoulliMixture``: ``p(x) = sum_k pi_k prod_j p_kj^x_j (1 - p_kj)^(1 - x_j)`` for binary
vectors; ``CategoricalMixture``: the same with ``C`` grey levels per pixel. Both are thin
variants of :class:`~ppgen.models.mixture_base.Mixture` (story, marginal, EM).
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from ppgen.core import PyroParam
from ppgen.errors import DataError, OptionError
from ppgen.models.mixture_base import Mixture, _positive_int

__all__ = ["BernoulliMixture", "CategoricalMixture"]


class BernoulliMixture(Mixture):
    """``x ~ sum_k pi_k prod_j Bernoulli(x_j | p_kj)`` for binary vectors (binarized images).

    Arguments:
        n_components: number of components ``K``.
        dim: number of binary features (``None``: taken from the first data).
        min_prob: M-step probabilities are kept in ``[min_prob, 1 - min_prob]`` so a pixel
            never seen on gives a finite log-likelihood on new data (EM stays monotone).
    """

    def __init__(
        self,
        n_components: int,
        dim: int | None = None,
        *,
        min_prob: float = 1e-6,
        chunk_size=4096,
        prior=None,
    ):
        if not 0 <= min_prob < 0.5:
            raise OptionError(f"Expected 0 <= min_prob < 0.5, but got {min_prob!r}.")
        self.min_prob = float(min_prob)
        super().__init__(n_components, dim, chunk_size=chunk_size, prior=prior)

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
        min_prob: floor of every M-step probability (``< 1 / num_categories``); the M-step is
            the exact maximiser under that floor (see :func:`floored_simplex_mle`), so EM
            never decreases the likelihood.
    """

    def __init__(
        self,
        n_components: int,
        num_categories: int,
        dim: int | None = None,
        *,
        min_prob=1e-6,
        chunk_size=4096,
        prior=None,
    ):
        self.num_categories = _positive_int(num_categories, "num_categories")
        if not 0 <= min_prob < 1 / self.num_categories:
            raise OptionError(
                f"Expected 0 <= min_prob < 1/num_categories = {1 / self.num_categories:.4g}, but got "
                f"{min_prob!r}; no distribution over {self.num_categories} categories has every "
                "probability that large."
            )
        self.min_prob = float(min_prob)
        super().__init__(n_components, dim, chunk_size=chunk_size, prior=prior)

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
        weights = counts.reshape(self.n_components, self.dim, -1)
        return {"probs": floored_simplex_mle(weights, self.min_prob)}

    def _count_component_params(self):
        return self.n_components * self.dim * (self.num_categories - 1)


def floored_simplex_mle(counts: torch.Tensor, floor: float) -> torch.Tensor:
    """``argmax_p sum_c counts_c log p_c`` over the simplex with every ``p_c >= floor`` (last dim).

    KKT: ``p_c = max(floor, counts_c / lam)`` with ``lam`` making the sum 1. With counts sorted
    in decreasing order and the top ``j`` categories free, ``lam_j = S_j / (1 - (C - j) floor)``
    (``S_j`` the partial sum); the solution's ``j`` is the largest with
    ``counts_(j) >= floor * lam_j``. Clamping then renormalising is *not* this maximiser, and
    EM built on it can decrease the likelihood.
    """
    c = counts.shape[-1]
    if floor == 0:
        return counts / counts.sum(-1, keepdim=True)
    ordered, _ = counts.sort(-1, descending=True)
    free = torch.arange(1, c + 1, dtype=counts.dtype, device=counts.device)
    lam = ordered.cumsum(-1) / (1 - (c - free) * floor)
    admissible = ordered >= floor * lam
    j = (admissible * free).argmax(-1, keepdim=True)  # index of the largest admissible j
    probs = torch.maximum(counts / lam.gather(-1, j), torch.full_like(counts, floor))
    return probs / probs.sum(-1, keepdim=True)  # exact already; this only removes round-off
