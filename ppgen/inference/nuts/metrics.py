"""The mass matrix as a kinetic energy, and the online (co)variance estimates that adapt it.

A Euclidean metric with inverse mass matrix ``Σ`` (the posterior covariance estimate) gives
``K(p) = ½ pᵀ Σ p``, velocity ``dq/dt = Σ p`` and momenta ``p ~ N(0, Σ⁻¹)``. The sampler works in
float64 numpy: vectors here are a few to a few hundred numbers, where numpy's per-call cost
(~1 µs) is a fraction of torch's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DiagonalMetric", "DenseMetric", "Welford", "GradientWelford", "make_metric", "gradient_mass"]


class DiagonalMetric:
    """``K(p) = ½ Σᵢ σᵢ² pᵢ²`` with ``σ² = inverse_mass`` (a vector)."""

    dense = False

    def __init__(self, inverse_mass: np.ndarray) -> None:
        self.inverse_mass = np.asarray(inverse_mass, dtype=np.float64)
        self._momentum_scale = 1.0 / np.sqrt(self.inverse_mass)  # sd of p ~ N(0, diag(1/σ²))

    def velocity(self, p: np.ndarray) -> np.ndarray:
        return self.inverse_mass * p

    def kinetic(self, p: np.ndarray, velocity: np.ndarray | None = None) -> float:
        return 0.5 * float(p @ (self.velocity(p) if velocity is None else velocity))

    def sample_momentum(self, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(self.inverse_mass.shape[0]) * self._momentum_scale


class DenseMetric:
    """``K(p) = ½ pᵀ Σ p`` with a full ``Σ = inverse_mass``; momenta ``p = L z``, ``L Lᵀ = Σ⁻¹``."""

    dense = True

    def __init__(self, inverse_mass: np.ndarray) -> None:
        self.inverse_mass = np.asarray(inverse_mass, dtype=np.float64)
        # Σ is an SPD estimate regularised towards 1e-3·I (Welford), so inverting it is safe here.
        self._momentum_factor = np.linalg.cholesky(np.linalg.inv(self.inverse_mass))  # L Lᵀ = Σ⁻¹

    def velocity(self, p: np.ndarray) -> np.ndarray:
        return self.inverse_mass @ p

    def kinetic(self, p: np.ndarray, velocity: np.ndarray | None = None) -> float:
        return 0.5 * float(p @ (self.velocity(p) if velocity is None else velocity))

    def sample_momentum(self, rng: np.random.Generator) -> np.ndarray:
        return self._momentum_factor @ rng.standard_normal(self.inverse_mass.shape[0])


def make_metric(inverse_mass: np.ndarray) -> DiagonalMetric | DenseMetric:
    """The metric for an inverse mass matrix: a vector is diagonal, a matrix dense."""
    return DenseMetric(inverse_mass) if np.ndim(inverse_mass) == 2 else DiagonalMetric(inverse_mass)


class Welford:
    """Running mean and (co)variance of positions (Welford), regularised as Stan does:
    ``Σ = n/(n+5) · S + 1e-3 · 5/(n+5) · I`` (shrinks a short window's estimate towards 1e-3·I)."""

    def __init__(self, size: int, dense: bool) -> None:
        self.dense = dense
        self.n = 0
        self.mean = np.zeros(size)
        self.m2 = np.zeros((size, size) if dense else size)

    def update(self, q: np.ndarray) -> None:
        self.n += 1
        delta_pre = q - self.mean
        self.mean = self.mean + delta_pre / self.n
        delta_post = q - self.mean
        self.m2 = self.m2 + (np.outer(delta_post, delta_pre) if self.dense else delta_pre * delta_post)

    def covariance(self) -> np.ndarray:
        n = self.n
        cov = self.m2 / (n - 1)
        shrink = 1e-3 * 5.0 / (n + 5.0)
        scaled = (n / (n + 5.0)) * cov
        return scaled + shrink * np.eye(len(self.mean)) if self.dense else scaled + shrink


#: Bounds of a gradient-based inverse mass (nutpie clips the same way): a zero or infinite gradient
#: component must not make a step size of 0 or ∞ the only stable one.
MASS_BOUNDS = (1e-10, 1e10)


def gradient_mass(var_q: np.ndarray | None, var_grad: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """nutpie's diagonal inverse mass ``σ²ᵢ = √(Var(qᵢ) / Var(∂ᵢU))`` (exact for a Gaussian, where
    ``Var(∂ᵢU) = (Σ⁻¹)ᵢᵢ``: ``σ²ᵢ`` is the geometric mean of the marginal and conditional variances);
    with ``var_q=None``, the initial-point rule ``σ²ᵢ = 1/|∂ᵢU|`` (``var_grad`` then holds ``(∂ᵢU)²``).
    Components that come out non-finite keep ``fallback``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 1.0 / var_grad if var_q is None else var_q / var_grad
        mass = np.sqrt(ratio)
    mass = np.where(np.isfinite(mass) & (mass > 0), mass, fallback)
    return np.clip(mass, *MASS_BOUNDS)


class GradientWelford:
    """Running variances of positions and of potential gradients over one window (no shrinkage:
    the ratio of the two is scale-free); ``inverse_mass()`` is :func:`gradient_mass` of them."""

    def __init__(self, size: int) -> None:
        self.positions, self.gradients = Welford(size, False), Welford(size, False)

    @property
    def n(self) -> int:
        return self.positions.n

    def update(self, q: np.ndarray, grad: np.ndarray) -> None:
        self.positions.update(q)
        self.gradients.update(grad)

    def inverse_mass(self, fallback: np.ndarray) -> np.ndarray:
        n = self.n
        return gradient_mass(self.positions.m2 / (n - 1), self.gradients.m2 / (n - 1), fallback)
