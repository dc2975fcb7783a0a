"""The leapfrog (velocity Verlet) integrator of ``H(q, p) = U(q) + K(p)``.

One step of size ``ε``: ``p ← p − ε/2 ∇U(q)``, ``q ← q + ε Σ p``, ``p ← p − ε/2 ∇U(q)``. It is
symplectic and reversible, so the energy error stays bounded (O(ε²)) instead of drifting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Point", "leapfrog", "PotentialFn"]

#: ``U, ∇U = potential(q)``: the negative log density (and its gradient) in unconstrained space.
PotentialFn = Callable[[np.ndarray], tuple[float, np.ndarray]]


class Point(NamedTuple):
    """A point of phase space with its cached potential and gradient."""

    q: np.ndarray
    p: np.ndarray
    potential: float
    grad: np.ndarray


def leapfrog(point: Point, step_size: float, metric, potential: PotentialFn) -> Point:
    """One leapfrog step (``step_size`` < 0 integrates backwards in time)."""
    half = 0.5 * step_size
    p = point.p - half * point.grad
    q = point.q + step_size * metric.velocity(p)
    u, grad = potential(q)
    return Point(q, p - half * grad, u, grad)
