"""f-divergences: the catalog, their convex conjugates, and three ways to estimate them.

``D_f(P‖Q) = ∫ q(x) f(p(x)/q(x)) dx`` for a convex ``f`` with ``f(1) = 0``. Each entry of
:data:`CATALOG` holds the generator ``f(u)``, its Fenchel conjugate
``f*(t) = sup_u (t u − f(u))`` with the domain where it is finite, and the output
activation ``g_f`` that maps a critic's raw output ``v ∈ ℝ`` into that domain (as in the
f-GAN paper). Estimators:

- closed form: :func:`kl_gaussians`, and :func:`discrete` for probability vectors;
- Monte Carlo from two explicit densities: :func:`monte_carlo`;
- the variational lower bound ``E_P[T] − E_Q[f*(T)]`` from a critic: :func:`variational_bound`
  (and :func:`variational_estimate`, which trains the critic first) — the objective the
  adversarial backend maximises.

References:
    Nowozin, Cseke, Tomioka, "f-GAN: Training Generative Neural Samplers using Variational
    Divergence Minimization", NeurIPS 2016. https://arxiv.org/abs/1606.00709
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ppgen.errors import DataError, OptionError

__all__ = [
    "FDivergence",
    "CATALOG",
    "get",
    "names",
    "discrete",
    "kl_gaussians",
    "monte_carlo",
    "variational_bound",
    "variational_estimate",
]

LOG2 = math.log(2.0)


@dataclass(frozen=True)
class FDivergence:
    """One f-divergence: ``D_f(P‖Q) = E_Q[f(p/q)] = sup_T E_P[T] − E_Q[f*(T)]``.

    Attributes:
        name: catalog key (``"kl"``, ``"js"``, ...).
        f: the convex generator ``f(u)``, ``u ≥ 0`` (elementwise on tensors).
        conjugate: ``f*(t)``, finite on ``domain``.
        domain: the open/closed interval ``(low, high)`` where ``f*`` is finite.
        activation: ``g_f(v)``, maps a raw critic output into ``domain``.
        formula: the divergence in one line.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    domain: tuple[float, float]
    activation: Callable[[torch.Tensor], torch.Tensor]
    formula: str
    #: ``f*(g_f(v))`` simplified by hand, stable where the composition under/overflows.
    conjugate_of_activation: Callable[[torch.Tensor], torch.Tensor] | None = None

    def conjugate_at(self, v: torch.Tensor) -> torch.Tensor:
        """``f*(g_f(v))`` for raw critic outputs ``v`` (the stable fused form where there is one)."""
        fused = self.conjugate_of_activation
        return fused(v) if fused is not None else self.conjugate(self.activation(v))

    def bound_terms(self, v_p: torch.Tensor, v_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample terms ``g_f(v)`` on P-samples and ``f*(g_f(v))`` on Q-samples."""
        return self.activation(v_p), self.conjugate_at(v_q)


def _xlogx(u: torch.Tensor) -> torch.Tensor:
    return torch.xlogy(u, u)


def _js_f(u):
    return 0.5 * (_xlogx(u) - (u + 1) * torch.log((u + 1) / 2))


CATALOG: dict[str, FDivergence] = {
    d.name: d
    for d in [
        FDivergence(
            "kl",
            f=_xlogx,
            conjugate=lambda t: torch.exp(t - 1),
            domain=(-math.inf, math.inf),
            activation=lambda v: v,
            formula="KL(P‖Q) = ∫ p log(p/q)",
        ),
        FDivergence(
            "reverse_kl",
            f=lambda u: -torch.log(u),
            conjugate=lambda t: -1 - torch.log(-t),
            domain=(-math.inf, 0.0),
            activation=lambda v: -torch.exp(-v),
            formula="KL(Q‖P) = ∫ q log(q/p)",
            conjugate_of_activation=lambda v: v - 1,
        ),
        FDivergence(
            "js",
            f=_js_f,
            # (a f)*(t) = a f*(t / a) with a = 1/2 and f*(s) = −log(2 − eˢ) of the unhalved f.
            conjugate=lambda t: -0.5 * torch.log(2 - torch.exp(2 * t)),
            domain=(-math.inf, LOG2 / 2),
            activation=lambda v: 0.5 * (LOG2 - F.softplus(-v)),
            formula="JS(P,Q) = ½ KL(P‖M) + ½ KL(Q‖M), M = (P+Q)/2",
            conjugate_of_activation=lambda v: 0.5 * (F.softplus(v) - LOG2),
        ),
        FDivergence(
            "total_variation",
            f=lambda u: 0.5 * (u - 1).abs(),
            conjugate=lambda t: t,
            domain=(-0.5, 0.5),
            activation=lambda v: 0.5 * torch.tanh(v),
            formula="TV(P,Q) = ½ ∫ |p − q|",
        ),
        FDivergence(
            "pearson",
            f=lambda u: (u - 1) ** 2,
            # sup over u ≥ 0: the maximiser u = 1 + t/2 hits the boundary u = 0 for t < −2.
            conjugate=lambda t: torch.where(t >= -2, t**2 / 4 + t, -torch.ones_like(t)),
            domain=(-math.inf, math.inf),
            activation=lambda v: v,
            formula="χ²_P(P‖Q) = ∫ (p − q)² / q",
        ),
        FDivergence(
            "neyman",
            f=lambda u: (1 - u) ** 2 / u,
            conjugate=lambda t: 2 - 2 * torch.sqrt(1 - t),
            domain=(-math.inf, 1.0),
            activation=lambda v: 1 - torch.exp(-v),
            formula="χ²_N(P‖Q) = ∫ (p − q)² / p",
            conjugate_of_activation=lambda v: 2 - 2 * torch.exp(-v / 2),
        ),
        FDivergence(
            "hellinger",
            f=lambda u: (torch.sqrt(u) - 1) ** 2,
            conjugate=lambda t: t / (1 - t),
            domain=(-math.inf, 1.0),
            activation=lambda v: 1 - torch.exp(-v),
            formula="H²(P,Q) = ∫ (√p − √q)²  (squared Hellinger, no ½)",
            conjugate_of_activation=lambda v: torch.expm1(v),
        ),
        FDivergence(
            "gan",
            # The GAN's u log u − (u+1) log(u+1) shifted by log 4 so that f(1) = 0: D = 2 JS.
            f=lambda u: _xlogx(u) - (u + 1) * torch.log((u + 1) / 2),
            conjugate=lambda t: -torch.log(2 - torch.exp(t)),
            domain=(-math.inf, LOG2),
            activation=lambda v: LOG2 - F.softplus(-v),
            formula="D_GAN(P,Q) = 2 JS(P,Q) = (GAN value at the optimal discriminator) + log 4",
            conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
        ),
    ]
}


def names() -> list[str]:
    """Every catalog key."""
    return list(CATALOG)


def get(name: str | FDivergence) -> FDivergence:
    """The catalog entry ``name`` (an :class:`FDivergence` passes through)."""
    if isinstance(name, FDivergence):
        return name
    if not isinstance(name, str) or name not in CATALOG:
        raise OptionError(f"Expected an f-divergence in {names()}, but got {name!r}.")
    return CATALOG[name]


# ---------------------------------------------------------------- closed forms
def discrete(name: str, p: Any, q: Any) -> float:
    """``D_f(P‖Q) = Σ_k q_k f(p_k / q_k)`` for two probability vectors on the same support.

    Example:
        >>> round(discrete("kl", [0.5, 0.5], [0.9, 0.1]), 4)
        0.5108
    """
    div = get(name)
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    if p.shape != q.shape:
        raise DataError(
            f"Expected p and q of the same length, but got {tuple(p.shape)} and {tuple(q.shape)}."
        )
    if (q == 0).any():
        raise DataError(
            "Expected q > 0 everywhere (D_f uses p/q), but got zeros; smooth q or drop those cells."
        )
    return float((q * div.f(p / q)).sum())


def _probabilities(v: Any, label: str) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.ndim != 1 or not torch.isfinite(v).all() or (v < 0).any():
        raise DataError(f"Expected {label} as a 1-D vector of non-negative finite numbers, but got {v}.")
    if abs(float(v.sum()) - 1.0) > 1e-6:
        raise DataError(f"Expected {label} to sum to 1, but it sums to {float(v.sum()):.6g}; normalise it.")
    return v / v.sum()  # float32 inputs sum to 1 only up to rounding


def kl_gaussians(loc_p: Any, cov_p: Any, loc_q: Any, cov_q: Any) -> torch.Tensor:
    """``KL(N(μ_p, Σ_p) ‖ N(μ_q, Σ_q)) = ½[tr(Σ_q⁻¹Σ_p) + Δᵀ Σ_q⁻¹ Δ − d + log|Σ_q|/|Σ_p|]``, Δ = μ_q − μ_p.

    Example:
        >>> float(kl_gaussians([0.0], [[1.0]], [1.0], [[1.0]]))
        0.5
    """
    loc_p, loc_q = torch.atleast_1d(torch.as_tensor(loc_p)), torch.atleast_1d(torch.as_tensor(loc_q))
    cov_p = torch.as_tensor(cov_p, dtype=loc_p.dtype).reshape(loc_p.shape[-1], -1)
    cov_q = torch.as_tensor(cov_q, dtype=loc_p.dtype).reshape(loc_q.shape[-1], -1)
    d = loc_p.shape[-1]
    if loc_q.shape[-1] != d or cov_p.shape != (d, d) or cov_q.shape != (d, d):
        raise DataError(
            f"Expected means of length d and (d, d) covariances, but got {tuple(loc_p.shape)}, "
            f"{tuple(cov_p.shape)}, {tuple(loc_q.shape)}, {tuple(cov_q.shape)}."
        )
    chol_p, chol_q = torch.linalg.cholesky(cov_p), torch.linalg.cholesky(cov_q)
    solve = torch.linalg.solve_triangular(chol_q, chol_p, upper=False)  # L_q⁻¹ L_p
    delta = torch.linalg.solve_triangular(chol_q, (loc_q - loc_p).unsqueeze(-1), upper=False)
    log_det = 2 * (chol_q.diagonal().log().sum() - chol_p.diagonal().log().sum())
    return 0.5 * ((solve**2).sum() + (delta**2).sum() - d + log_det)


# ------------------------------------------------------------------- Monte Carlo
def monte_carlo(name: str, p: Any, q: Any, n: int = 10_000) -> tuple[float, float]:
    """``D_f(P‖Q) ≈ (1/n) Σ f(exp(log p(x_i) − log q(x_i)))``, ``x_i ~ Q``; returns (estimate, std error).

    ``p`` and ``q`` are explicit models or distributions with ``log_prob``; ``q`` also needs
    ``sample(n)`` (a ``torch.distributions`` object's ``sample((n,))`` works too).
    """
    div = get(name)
    for model, label in ((p, "p"), (q, "q")):
        if not callable(getattr(model, "log_prob", None)):
            raise OptionError(
                f"Expected {label} with a log_prob (an explicit model), but got {type(model).__name__}."
            )
    with torch.no_grad():
        x = _draw(q, int(n))
        ratio = torch.exp(p.log_prob(x) - q.log_prob(x))
        terms = div.f(ratio).to(torch.float64)
    if not torch.isfinite(terms).all():
        raise DataError(f"Expected finite f(p/q) under Q, but got NaN/inf: {name} is infinite or P ⊄ Q.")
    return float(terms.mean()), float(terms.std() / math.sqrt(terms.numel()))


def _draw(model: Any, n: int) -> torch.Tensor:
    if isinstance(model, torch.distributions.Distribution):
        return model.sample((n,))
    return model.sample(n)


# ----------------------------------------------------------------- variational
def variational_bound(name: str, critic: Callable, x_p: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """``E_P[g_f(V(x))] − E_Q[f*(g_f(V(x)))]`` — a lower bound on ``D_f(P‖Q)`` for any critic ``V``.

    Differentiable in the critic's parameters (and in ``x_q`` for a generator).
    """
    div = get(name)
    t_p, conj_q = div.bound_terms(critic(x_p).squeeze(-1), critic(x_q).squeeze(-1))
    return t_p.mean() - conj_q.mean()


def variational_estimate(
    name: str,
    sample_p: Callable[[int], torch.Tensor],
    sample_q: Callable[[int], torch.Tensor],
    *,
    critic: torch.nn.Module | None = None,
    steps: int = 2000,
    batch_size: int = 512,
    lr: float = 1e-3,
    n_eval: int = 50_000,
    seed: int | None = None,
    progress: bool = True,
) -> tuple[float, float, torch.nn.Module]:
    """Train a critic to maximise :func:`variational_bound`, then evaluate it on fresh samples.

    Returns ``(estimate, standard error, critic)``; in expectation the estimate is at most
    ``D_f(P‖Q)``.

    Arguments:
        sample_p, sample_q: ``n -> (n, D)`` samplers of the two distributions.
        critic: an ``nn.Module`` mapping ``(n, D)`` to ``(n, 1)``; default a 2×64 tanh MLP.
    """
    div = get(name)
    if seed is not None:
        torch.manual_seed(seed)
    probe = sample_p(2)
    if critic is None:
        dim = probe.shape[-1]
        critic = torch.nn.Sequential(
            torch.nn.Linear(dim, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, 64),
            torch.nn.Tanh(),
            torch.nn.Linear(64, 1),
        ).to(probe.dtype)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    for _ in tqdm(range(steps), desc=f"critic {name}", disable=not progress, leave=False):
        opt.zero_grad(set_to_none=True)
        loss = -variational_bound(div, critic, sample_p(batch_size), sample_q(batch_size))
        loss.backward()
        opt.step()
    with torch.no_grad():
        t_p, conj_q = div.bound_terms(
            critic(sample_p(n_eval)).squeeze(-1), critic(sample_q(n_eval)).squeeze(-1)
        )
        var = t_p.var() / t_p.numel() + conj_q.var() / conj_q.numel()
        return float(t_p.mean() - conj_q.mean()), float(var.sqrt()), critic
