"""Generators and true densities of ppgen's synthetic 2-D and 1-D datasets.

Samplers take ``(n, rng)`` with a ``numpy.random.Generator`` and return ``(x, labels or None)``;
densities take a tensor ``(N, d)`` and return ``log p(x)`` of shape ``(N,)``. Registered by
:mod:`ppgen.data`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ppgen.data.validation import as_tensor
from ppgen.errors import DataError

__all__ = [
    "mixture_log_prob",
    "mixture_sampler",
    "moons",
    "pinwheel",
    "checkerboard",
    "checkerboard_log_prob",
    "spirals",
    "RING8_RADIUS",
    "RING8_STD",
    "RING8_MEANS",
    "GRID25_STD",
    "GRID25_MEANS",
    "BIMODAL1D",
]


def mixture_log_prob(means: np.ndarray, std: float | np.ndarray, weights: np.ndarray):
    """``log Σ_k w_k N(x | m_k, diag(s_k²))`` for isotropic components (shared or per-component std)."""
    means_ = torch.as_tensor(means, dtype=torch.float64)  # (K, D)
    std_ = torch.as_tensor(np.broadcast_to(std, (means.shape[0],)).copy(), dtype=torch.float64)  # (K,)
    log_w = torch.as_tensor(np.log(weights), dtype=torch.float64)  # (K,)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        x = as_tensor(x, name="x", ndim=2)
        if x.shape[1] != means_.shape[1]:
            raise DataError(f"Expected x of shape (N, {means_.shape[1]}), but got {tuple(x.shape)}.")
        m, s, w = (t.to(x.dtype) for t in (means_, std_, log_w))
        sq = ((x[:, None, :] - m[None]) ** 2).sum(-1)  # (N, K)
        d = x.shape[1]
        comp = -0.5 * sq / s**2 - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi)
        return torch.logsumexp(comp + w, dim=1)

    return log_prob


def mixture_sampler(means: np.ndarray, std: float | np.ndarray, weights: np.ndarray):
    std_k = np.broadcast_to(std, (means.shape[0],))

    def sampler(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.choice(means.shape[0], size=n, p=weights)
        x = means[labels] + std_k[labels, None] * rng.standard_normal((n, means.shape[1]))
        return x, labels.astype(np.int64)

    return sampler


RING8_RADIUS, RING8_STD = 2.0, 0.02
RING8_MEANS = RING8_RADIUS * np.stack(
    [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], axis=1
)
GRID25_STD = 0.05
GRID25_MEANS = np.array([(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)])
BIMODAL1D = {
    "weights": np.array([0.3, 0.7]),
    "means": np.array([[-2.0], [1.5]]),
    "stds": np.array([0.5, 0.8]),
}


def moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (as scikit-learn's makemoons) with random angles, noise 0.1."""
    labels = rng.integers(0, 2, size=n)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1)
    x = np.where(labels[:, None] == 0, upper, lower) + 0.1 * rng.standard_normal((n, 2))
    return x, labels.astype(np.int64)


def pinwheel(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Five curved arms (Johnson et al. 2016): radial std 0.3, tangential std 0.1, rate 0.25, x2."""
    labels = rng.integers(0, 5, size=n)
    features = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    angles = labels * (2 * np.pi / 5) + 0.25 * np.exp(features[:, 0])
    cos, sin = np.cos(angles), np.sin(angles)
    x = np.stack(
        [features[:, 0] * cos - features[:, 1] * sin, features[:, 0] * sin + features[:, 1] * cos], 1
    )
    return 2.0 * x, labels.astype(np.int64)


def checkerboard(n: int, rng: np.random.Generator) -> tuple[np.ndarray, None]:
    """Uniform on the 8 dark 2x2 squares of a 4x4 board over [-4, 4]^2 (density 1/32 there)."""
    u1 = rng.uniform(-2.0, 2.0, size=n)
    u2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(u1) % 2
    return 2.0 * np.stack([u1, u2], 1), None


def checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    x = as_tensor(x, name="x", ndim=2)
    if x.shape[1] != 2:
        raise DataError(f"Expected x of shape (N, 2), but got {tuple(x.shape)}.")
    u = x / 2.0
    inside = ((u >= -2.0) & (u < 2.0)).all(1) & (torch.floor(u).sum(1).remainder(2) == 0)
    out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
    out[inside] = -math.log(32.0)
    return out


def spirals(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (1.5 turns), jittered, scaled by 1/3, plus N(0, 0.1²) noise."""
    labels = rng.integers(0, 2, size=n)
    t = np.sqrt(rng.uniform(size=n)) * 3 * np.pi
    arm = np.stack([-np.cos(t) * t, np.sin(t) * t], 1) + 0.5 * rng.uniform(size=(n, 2))
    sign = np.where(labels == 0, 1.0, -1.0)[:, None]
    return sign * arm / 3.0 + 0.1 * rng.standard_normal((n, 2)), labels.astype(np.int64)
