"""Stan's windowed warm-up: dual averaging of the step size, the mass matrix from slow windows.

Warm-up ``0..W-1`` is split as Stan does: a fast initial buffer (75), slow windows of 25, 50,
100, ... (the last one stretched to the end), a fast terminal buffer (50); short warm-ups scale
to 15% / 75% / 10%. Every iteration updates the step size by dual averaging towards
``target_accept_prob``; positions in the slow windows feed a Welford (co)variance which becomes
the inverse mass matrix at each window's end (dense: its diagonal while a window holds no more
draws than dimensions, where the estimate is singular), where the step size is searched afresh and dual
averaging restarts at ``μ = log(10 ε)``. The last warm-up iteration fixes ``ε = exp(x̄)``.

``adapt_mass="gradient"`` (diagonal only) keeps this schedule and the step size's dual averaging but
estimates the mass as nutpie does (Seyboldt et al., nutpie's "diagonal mass matrix adaptation using
gradients"): ``σ²ᵢ = √(Var(qᵢ) / Var(∂ᵢU))`` over a window's draws and their gradients (exact for a
Gaussian from few draws), and ``σ²ᵢ = 1/|∂ᵢU(q₀)|`` from the initial point until the first window ends.
``adapt_mass="gradient_sliding"`` uses the same estimate on nutpie's schedule instead of Stan's
windows (see ``WindowAdaptation._slide``). Both are options, not the default: on benchmarks/nuts.py
they cut steps per draw (kidiq 86 → 53–62) but not the smallest ESS per gradient evaluation on
every program (kidiq and baseball lose), see benchmarks/results.md's NUTS section.

References: Stan Reference Manual, "HMC algorithm parameters"; Hoffman & Gelman (2014), §3.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppgen.inference.nuts.integrator import Point, PotentialFn, leapfrog
from ppgen.inference.nuts.metrics import GradientWelford, Welford, gradient_mass, make_metric

__all__ = [
    "DualAveraging",
    "adaptation_windows",
    "find_reasonable_step_size",
    "WindowAdaptation",
    "MASS_ADAPTATIONS",
    "ADAPT_MASS_DEFAULT",
    "auto_dense",
    "AUTO_DENSE_MAX",
]

#: ``adapt_mass`` choices: Stan's ``Var(q)``, or nutpie's ``√(Var(q) / Var(∇U))`` (diagonal only) on
#: Stan's windows or on nutpie's sliding ones.
MASS_ADAPTATIONS = ("stan", "gradient", "gradient_sliding")
#: The diagonal default (``dense_mass=True`` always takes Stan's).
ADAPT_MASS_DEFAULT = "stan"
#: ``dense_mass="auto"`` (the default) adapts a dense mass matrix for at most this many unconstrained
#: dimensions, and a diagonal one above (:func:`auto_dense`).
AUTO_DENSE_MAX = 25
#: ... and only where the last slow window holds this many draws per dimension (a covariance
#: estimated from n draws errs by about √(D/n) in its correlations: 0.22 at 20 draws a dimension).
AUTO_DENSE_DRAWS_PER_DIM = 20


def auto_dense(size: int, num_warmup: int) -> bool:
    """``dense_mass="auto"``: a dense metric for small models whose warm-up can estimate it.

    A diagonal metric leaves correlations to the trajectory: on unstandardised regressions (kidiq,
    D = 5) and autoregressions (arK, D = 7) benchmarks/nuts.py measured 5.8× and 2.2× the smallest
    ESS with a dense one, at no loss on eight schools, baseball or logistic regression; a velocity
    ``Σ p`` costs D² multiply-adds a step, nothing beside the gradient for D ≤ 25. Larger models keep
    Stan's diagonal default (a dense estimate needs many more draws than dimensions)."""
    slow = adaptation_windows(num_warmup)[1:-1]
    if not slow:
        return False
    last = slow[-1][1] - slow[-1][0] + 1
    return size <= AUTO_DENSE_MAX and last >= AUTO_DENSE_DRAWS_PER_DIM * size


@dataclass
class DualAveraging:
    """Nesterov dual averaging of ``x = log ε``: ``ḡ_t = (1 − 1/(t+t0)) ḡ_{t−1} + g_t/(t+t0)``,
    ``x_t = μ − √t/γ · ḡ_t``, ``x̄_t = t^{−κ} x_t + (1 − t^{−κ}) x̄_{t−1}``."""

    prox_center: float
    t0: float = 10.0
    kappa: float = 0.75
    gamma: float = 0.05
    t: int = 0
    g_avg: float = 0.0
    x: float = 0.0
    x_avg: float = 0.0

    def update(self, g: float) -> None:
        """``g`` = target − accept_prob (positive: steps too long, so ``x`` goes down)."""
        self.t += 1
        t = self.t
        self.g_avg = (1.0 - 1.0 / (t + self.t0)) * self.g_avg + g / (t + self.t0)
        self.x = self.prox_center - math.sqrt(t) / self.gamma * self.g_avg
        weight = t ** (-self.kappa)
        self.x_avg = weight * self.x + (1.0 - weight) * self.x_avg


def adaptation_windows(num_warmup: int) -> list[tuple[int, int]]:
    """Stan's windows ``[(start, end), ...]`` (inclusive): initial buffer, slow windows, terminal buffer."""
    if num_warmup < 20:
        return [(0, num_warmup - 1)] if num_warmup > 0 else []
    start_buffer, end_buffer, window = 75, 50, 25
    if start_buffer + end_buffer + window > num_warmup:
        start_buffer, end_buffer = int(0.15 * num_warmup), int(0.1 * num_warmup)
        window = num_warmup - start_buffer - end_buffer
    windows = [(0, start_buffer - 1)]
    end_start = num_warmup - end_buffer
    start, size = start_buffer, window
    while start < end_start:
        if 3 * size <= end_start - start:
            next_size = 2 * size
        else:
            size, next_size = end_start - start, size
        windows.append((start, start + size - 1))
        start, size = start + size, next_size
    windows.append((end_start, num_warmup - 1))
    return windows


def find_reasonable_step_size(
    point: Point, step_size: float, metric, potential: PotentialFn, rng: np.random.Generator
) -> float:
    """Double or halve ``ε`` until one leapfrog step's acceptance ``e^{−ΔH}`` crosses 0.8 (NumPyro's rule)."""
    log_target = math.log(0.8)
    direction, last = 0, 0
    tiny, huge = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    while True:
        step_size = (2.0**direction) * step_size
        p = metric.sample_momentum(rng)
        energy0 = point.potential + metric.kinetic(p)
        new = leapfrog(Point(point.q, p, point.potential, point.grad), step_size, metric, potential)
        delta = new.potential + metric.kinetic(new.p) - energy0
        last, direction = direction, (1 if log_target < -delta else -1)  # NaN → -1: shrink
        extreme = (step_size <= tiny and direction < 0) or (step_size >= huge and direction > 0)
        if extreme or (last != 0 and direction != last):
            return float(step_size)


class WindowAdaptation:
    """Step size and mass matrix during warm-up (see the module docstring for the schedule)."""

    adapt_mass = "stan"  # checkpoints written before the option existed

    def __init__(
        self,
        num_warmup: int,
        size: int,
        dense: bool,
        target_accept_prob: float,
        adapt_mass: str = "stan",
        initial_grad: np.ndarray | None = None,
    ) -> None:
        self.num_warmup, self.dense, self.target = num_warmup, dense, target_accept_prob
        self.adapt_mass = "stan" if dense else adapt_mass  # the gradient estimate is diagonal
        self.windows = adaptation_windows(num_warmup)
        self.window = 0
        self.welford = self._estimator(size)
        inverse_mass = np.eye(size) if dense else np.ones(size)
        self.background = self._estimator(size) if self.adapt_mass == "gradient_sliding" else None
        if self.adapt_mass != "stan" and initial_grad is not None and num_warmup > 0:
            inverse_mass = gradient_mass(None, np.square(initial_grad), inverse_mass)
        self.metric = make_metric(inverse_mass)
        self.step_size = 1.0
        self.averaging = DualAveraging(prox_center=0.0)

    def _estimator(self, size: int) -> Welford | GradientWelford:
        return GradientWelford(size) if self.adapt_mass != "stan" else Welford(size, self.dense)

    def start(self, point: Point, potential: PotentialFn, rng: np.random.Generator, step_size: float) -> None:
        """Pick the first step size from ``step_size`` and start dual averaging at ``log(10 ε)``."""
        self.step_size = find_reasonable_step_size(point, step_size, self.metric, potential, rng)
        self.averaging = DualAveraging(prox_center=math.log(10.0) + math.log(self.step_size))

    def _slow(self) -> bool:
        return 0 < self.window < len(self.windows) - 1

    def update(self, t: int, accept_prob: float, point: Point, potential, rng: np.random.Generator) -> None:
        """After warm-up iteration ``t`` (0-based) that accepted ``accept_prob`` and moved to ``point``."""
        self.averaging.update(self.target - accept_prob)
        x = self.averaging.x_avg if t == self.num_warmup - 1 else self.averaging.x
        self.step_size = float(np.clip(math.exp(min(x, 709.0)), np.finfo(np.float64).tiny, None))
        if self.adapt_mass == "gradient_sliding":
            self._slide(t, point, potential, rng)
            return
        if self._slow():
            if self.adapt_mass == "gradient":
                self.welford.update(point.q, point.grad)
            else:
                self.welford.update(point.q)
        if self.window < len(self.windows) and t == self.windows[self.window][1]:
            if self._slow():
                self.metric = make_metric(self._estimate(len(point.q)))
                self.welford = self._estimator(len(point.q))
                self.start(point, potential, rng, self.step_size)
            self.window += 1

    def _slide(self, t: int, point: Point, potential, rng: np.random.Generator) -> None:
        """nutpie's schedule: two estimators fed every draw until the last 15% of warm-up; when the
        younger holds ``freq`` draws (10 in the first 30%, 80 after) the older sets the metric and the
        younger takes its place; step size dual averaging restarts at each change."""
        w = self.num_warmup
        final_start, early_end = w - int(0.15 * w), int(0.3 * w)
        if t >= final_start:
            return
        self.welford.update(point.q, point.grad)
        self.background.update(point.q, point.grad)
        freq = 10 if t < early_end else 80
        if self.background.n >= freq or (t == final_start - 1 and self.welford.n > 1):
            self.metric = make_metric(self._estimate(len(point.q)))
            self.welford, self.background = self.background, self._estimator(len(point.q))
            self.start(point, potential, rng, self.step_size)

    def _estimate(self, size: int) -> np.ndarray:
        """The inverse mass from the window just ended."""
        if self.adapt_mass != "stan":
            previous = self.metric.inverse_mass
            return self.welford.inverse_mass(previous) if self.welford.n > 1 else previous
        cov = self.welford.covariance()
        if self.dense and self.welford.n <= size:
            # n ≤ D draws give a singular covariance (only shrinkage in the null space):
            # trees would run to max depth until the next window. Keep its diagonal.
            cov = np.diag(np.diag(cov))
        return cov
