"""EM for full-covariance Gaussian mixtures on sufficient statistics: two skinny GEMMs per pass.

With ``u_i = x_i - x̄`` and the features ``phi_i = [vech(u_i u_iᵀ), u_i, 1]`` (``F = d(d+1)/2 + d + 1``),
both halves of an EM iteration are linear in ``phi``:

* E-step: ``log pi_k + log N(x_i; mu_k, Sigma_k) = phi_i · a_k`` with ``a_k`` holding ``-P_k / 2``
  (off-diagonal entries doubled), ``P_k m_k`` and the constant, ``P_k = Sigma_k^-1``,
  ``m_k = mu_k - x̄``: one ``(c, F) x (F, K)`` product per block of rows instead of whitening every
  row for every component (``(c, d) x (d, K d)`` and a square-and-sum over ``(c, K d)``).
* M-step: ``sum_i r_ik phi_i = [sum r u uᵀ, sum r u, N_k]`` — one ``(K, c) x (c, F)`` product.

Both products use the block of features while it is in cache, so a pass reads the data once.
Moments are about the data mean as in the responsibility M-step (same cancellation); the
E-step's expanded quadratic form loses a few more bits than whitening (``|u|² / sigma²`` against
the Mahalanobis distance), harmless in float64 (which is the only dtype that takes this path).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["Centred", "Moments", "accurate", "centre", "e_step_moments", "mean_and_covariance"]


#: Largest ``eps · R² / sigma²_min`` for which the expanded quadratic form is used: its error in
#: ``log p(x_i)`` is about that much (``R`` the largest ``|x_i - x̄|``); a component collapsed onto
#: a few points (``sigma² ≈ reg_covar``) sends EM back to whitening (``e_step``) for that iteration.
MAX_RELATIVE_ERROR = 1e-11


class Centred(NamedTuple):
    """The rows about their mean, transposed once per fit: ``u`` (d, N) = ``(x - xbar)ᵀ``."""

    u: torch.Tensor
    xbar: torch.Tensor  # (d,)
    radius2: float  # max_i |x_i - xbar|²


def centre(x: torch.Tensor) -> Centred:
    """``(x - x̄)ᵀ`` contiguous (every EM iteration reads its blocks) and ``x̄``."""
    xbar = x.mean(0)
    u = (x - xbar).T.contiguous()
    return Centred(u, xbar, float(u.square().sum(0).max()))


def accurate(data: Centred, min_variance: float) -> bool:
    """Whether the expanded quadratic form keeps ``log p`` within :data:`MAX_RELATIVE_ERROR`."""
    eps = torch.finfo(data.u.dtype).eps
    return eps * data.radius2 <= MAX_RELATIVE_ERROR * max(min_variance, torch.finfo(data.u.dtype).tiny)


class Moments(NamedTuple):
    """Sufficient statistics of one E-step, about the data mean ``xbar``."""

    nk: torch.Tensor  # (K,) sum_i r_ik
    first: torch.Tensor  # (K, d) sum_i r_ik (x_i - xbar)
    second: torch.Tensor  # (K, d, d) sum_i r_ik (x_i - xbar)(x_i - xbar)ᵀ
    xbar: torch.Tensor  # (d,)
    n: int


def _layout(d: int) -> list[tuple[int, int]]:
    """Column ranges of ``u_j * u_{j:}`` inside ``vech(u uᵀ)`` (row ``j`` of the upper triangle)."""
    spans, start = [], 0
    for j in range(d):
        spans.append((start, start + d - j))
        start += d - j
    return spans


def _features(u: torch.Tensor, out: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """``[vech(u uᵀ), u, 1]`` for the columns ``u`` (d, c) into ``out`` (F, c).

    Features run along rows: each product ``u_j * u_{j:}`` writes contiguous rows (building
    them column-wise, ``(c, F)``, is 2-3x slower: narrow strided writes)."""
    d = u.shape[0]
    for j, (a, b) in enumerate(spans):
        torch.mul(u[j : j + 1], u[j:], out=out[a:b])
    q = spans[-1][1]
    out[q : q + d] = u
    out[q + d] = 1.0
    return out


def _coefficients(log_pi, mu, tril, xbar) -> torch.Tensor:
    """``A`` (F, K) with ``phi_i · A[:, k] = log pi_k + log N(x_i; mu_k, L_k L_kᵀ)``."""
    k, d = mu.shape
    eye = torch.eye(d, dtype=mu.dtype, device=mu.device)
    inv = torch.linalg.solve_triangular(tril.expand(k, d, d), eye, upper=False)  # L^-1 (K, d, d)
    precision = inv.transpose(-1, -2) @ inv  # P = L^-T L^-1 (K, d, d)
    m = mu - xbar  # (K, d)
    pm = torch.einsum("kij,kj->ki", precision, m)  # (K, d)
    log_det = torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1).expand(k)  # (K,)
    quad = torch.cat([precision[:, j, j:] for j in range(d)], 1)  # (K, d(d+1)/2): vech(P_k)
    # uᵀPu = sum_j P_jj u_j² + 2 sum_{j<l} P_jl u_j u_l: off-diagonal entries count twice
    twice = torch.cat([torch.tensor([1.0] + [2.0] * (d - 1 - j)) for j in range(d)]).to(mu)
    const = -0.5 * d * math.log(2 * math.pi) - log_det - 0.5 * (m * pm).sum(1) + log_pi  # (K,)
    return torch.cat([-0.5 * quad * twice, pm, const[:, None]], 1).T.contiguous()  # (F, K)


def e_step_moments(
    data: Centred, pi: torch.Tensor, mu: torch.Tensor, tril: torch.Tensor, chunk_size: int
) -> tuple[Moments, torch.Tensor]:
    """Sufficient statistics of the responsibilities and ``log p(x_i)`` (N,), block by block."""
    (d, n), k, xbar = data.u.shape, mu.shape[0], data.xbar
    spans = _layout(d)
    coef = _coefficients(torch.log(pi), mu, tril, xbar).T.contiguous()  # (K, F)
    width = coef.shape[1]
    stats = torch.zeros(k, width, dtype=xbar.dtype, device=xbar.device)
    buffer = torch.empty(width, min(chunk_size, n), dtype=xbar.dtype, device=xbar.device)  # (F, c)
    loglik = torch.empty(n, dtype=xbar.dtype, device=xbar.device)
    for start in range(0, n, chunk_size):
        u = data.u[:, start : start + chunk_size]  # (d, c)
        c = u.shape[1]
        phi = _features(u, buffer[:, :c], spans)  # (F, c)
        joint = coef @ phi  # (K, c): log pi_k + log N(x_i | k)
        norm = torch.logsumexp(joint, 0, keepdim=True)  # (1, c)
        loglik[start : start + c] = norm.squeeze(0)
        stats.addmm_(joint.sub_(norm).exp_(), phi.T)  # (K, F): sum_i r_ik phi_i
    q = spans[-1][1]
    second = stats.new_zeros(k, d, d)
    for j, (a, b) in enumerate(spans):
        second[:, j, j:] = stats[:, a:b]
        second[:, j:, j] = stats[:, a:b]
    return Moments(stats[:, q + d], stats[:, q : q + d], second, xbar, n), loglik


def mean_and_covariance(moments: Moments, floor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(N_k, mu_k, S_k)`` from the statistics; ``floor`` keeps an empty component finite."""
    nk = moments.nk + floor
    delta = moments.first / nk[:, None]  # mu_k - xbar
    cov = moments.second / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
    return nk, moments.xbar + delta, cov
