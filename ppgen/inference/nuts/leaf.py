"""A NUTS leaf as one compiled call: leapfrog, energy error, checkpoint update and U-turn checks.

:mod:`~ppgen.inference.nuts.trajectory` builds the tree in numpy around a compiled ``U, ∇U``; per
leapfrog step that costs the potential's call plus ~20 numpy operations (~1 µs each). Here the
step's whole arithmetic is one function of tensors, captured with the potential into one graph
(:mod:`~ppgen.inference.nuts.potential`), so a leaf is one call that returns the new state and a
4-vector ``(U, H, ΔH, turning)``; Python keeps only the scalar control flow (multinomial choice,
divergence and U-turn breaks), drawing from the chain's numpy generator in the same order as the
numpy reference, which :func:`fused_nuts_transition` equals to rounding (tests/inference/nuts).

The U-turn checks of leaf ``n`` against the stored checkpoints ``idx_min..idx_max`` (NumPyro's) run
vectorised over all ``max_depth`` checkpoint rows, masked to that range; the checkpoint row
``idx_max`` is written on even leaves. ``ctrl = (idx_min, idx_max, first, even)`` is a small int
tensor per leaf index, built once (:func:`controls`), so no tensor is made per call.

Measured (benchmarks' programs, one chain on one thread, process CPU time per leapfrog step, the
2-core machine shared at load ≈ 9): eight schools 0.036 ms (numpy tree around the compiled
potential) → 0.024 ms (fused leaf); kidiq 0.036 → 0.022 ms (:data:`MEASURED`). Of a fused leaf's
cost the kernel is ~0.003 ms; the rest is inductor's generated Python ``call`` (20 buffer
allocations for kidiq's reductions) and this loop. Several leaves per call (speculative
sub-trees) were not built: the call's fixed cost is now that of the potential alone, a sub-tree
stopped early would waste its remaining gradients, and the per-leaf multinomial choice would have
to move into the graph with pre-drawn uniforms (another random stream than the reference's).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ppgen.inference.nuts.trajectory import Transition, is_turning

__all__ = ["make_leaf", "controls", "fused_nuts_transition", "fused_hmc_transition", "MEASURED"]

#: ms per leapfrog step, one chain on one thread: (numpy tree + compiled U, fused leaf).
MEASURED = {"eight schools": (0.036, 0.024), "kidiq": (0.036, 0.022)}

LeafFn = Callable[..., tuple[torch.Tensor, ...]]


def make_leaf(potential64: Callable, max_depth: int, dense: bool) -> LeafFn:
    """The leaf as a function of tensors (eager; captured and compiled by ``Potential``).

    ``leaf(q, p, grad, eps, inv_mass, energy0, p_ckpts, p_sum_ckpts, sub_p_sum, ctrl)`` →
    ``(q, p, grad, sub_p_sum, p_ckpts, p_sum_ckpts, [U, H, ΔH, turning])``; ``potential64(q)`` gives
    ``U, ∇U`` in float64. ``eps = 0`` with ``p = grad = 0`` leaves ``q`` as it is: ``U, ∇U`` at ``q``.
    """

    def velocity(p: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
        return p @ inv_mass if dense else p * inv_mass  # Σ is symmetric: p Σ = (Σ p)ᵀ

    def leaf(q, p, grad, eps, inv_mass, energy0, p_ckpts, p_sum_ckpts, sub_p_sum, ctrl):
        half = 0.5 * eps
        p = p - half * grad
        q = q + eps * velocity(p, inv_mass)
        u, grad = potential64(q)
        p = p - half * grad
        v = velocity(p, inv_mass)
        energy = u + 0.5 * (p * v).sum()
        delta = energy - energy0
        delta = torch.where(torch.isnan(delta), torch.full_like(delta, math.inf), delta)
        idx_min, idx_max, first, even = ctrl[0], ctrl[1], ctrl[2], ctrl[3]
        sub_p_sum = torch.where(first > 0, p, sub_p_sum + p)
        rows = torch.arange(max_depth)
        write = ((rows == idx_max) & (even > 0))[:, None]
        p_ckpts = torch.where(write, p, p_ckpts)
        p_sum_ckpts = torch.where(write, sub_p_sum, p_sum_ckpts)
        # the sub-tree from checkpoint i to this leaf: ρ = its momentum sum less half its end momenta
        rho = sub_p_sum - p_sum_ckpts + p_ckpts - 0.5 * (p_ckpts + p)
        turns = ((velocity(p_ckpts, inv_mass) * rho).sum(-1) <= 0) | ((v * rho).sum(-1) <= 0)
        turning = (turns & (rows >= idx_min) & (rows <= idx_max)).any()
        scalars = torch.stack([u, energy, delta, turning.to(u.dtype)])
        return q, p, grad, sub_p_sum, p_ckpts, p_sum_ckpts, scalars

    return leaf


_CONTROLS: dict[int, list[torch.Tensor]] = {}
#: A leaf that checks nothing and writes no checkpoint (static HMC, potential-only calls).
NO_CHECKS = torch.tensor([1, 0, 1, 0])


def controls(max_depth: int) -> list[torch.Tensor]:
    """``ctrl`` of leaves ``0 .. 2**(max_depth-1) - 1``: ``(idx_min, idx_max, first, even)``."""
    if max_depth not in _CONTROLS:
        rows = []
        for leaf in range(2 ** max(max_depth - 1, 0)):
            idx_max = (leaf >> 1).bit_count()
            closes = ((~leaf & (leaf + 1)) - 1).bit_count()
            rows.append(torch.tensor([idx_max - closes + 1, idx_max, int(leaf == 0), int(leaf % 2 == 0)]))
        _CONTROLS[max_depth] = rows
    return _CONTROLS[max_depth]


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def fused_nuts_transition(
    q: np.ndarray,
    potential_value: float,
    grad: np.ndarray,
    leaf: LeafFn,
    metric,
    step_size: float,
    rng: np.random.Generator,
    max_depth: int = 10,
    max_delta_energy: float = 1000.0,
) -> Transition:
    """One NUTS transition as :func:`~ppgen.inference.nuts.trajectory.nuts_transition`, by fused leaves."""
    p_np = metric.sample_momentum(rng)
    energy0 = potential_value + metric.kinetic(p_np)
    inv_mass, energy0_t = _tensor(metric.inverse_mass), torch.tensor(energy0, dtype=torch.float64)
    steps = (torch.tensor(step_size, dtype=torch.float64), torch.tensor(-step_size, dtype=torch.float64))
    start = (_tensor(q), _tensor(p_np), _tensor(grad))
    left = right = start
    tree_p_sum, tree_log_weight = start[1], 0.0
    proposal, proposal_u, proposal_energy = start, potential_value, energy0
    p_ckpts = torch.zeros(max_depth, q.shape[0], dtype=torch.float64)
    p_sum_ckpts = torch.zeros_like(p_ckpts)
    ctrl = controls(max_depth)
    depth, n_steps, sum_accept = 0, 0, 0.0
    turning = diverging = False
    while depth < max_depth and not turning and not diverging:
        going_right = rng.random() < 0.5
        edge = right if going_right else left
        eps = steps[0] if going_right else steps[1]
        sub_left = sub_right = sub_proposal = None
        sub_p_sum, sub_log_weight, sub_u, sub_energy = start[1], -math.inf, 0.0, 0.0
        for i in range(2**depth):
            q_e, p_e, g_e, sub_p_sum, p_ckpts, p_sum_ckpts, scalars = leaf(
                *edge, eps, inv_mass, energy0_t, p_ckpts, p_sum_ckpts, sub_p_sum, ctrl[i]
            )
            u, energy, delta, turned = scalars.tolist()
            edge = (q_e, p_e, g_e)
            n_steps += 1
            sum_accept += math.exp(min(0.0, -delta))
            if delta > max_delta_energy:
                diverging = True
                break
            if i == 0:
                sub_left, sub_proposal, sub_log_weight, sub_u, sub_energy = edge, edge, -delta, u, energy
            else:
                new_log_weight = np.logaddexp(sub_log_weight, -delta)
                if rng.random() < math.exp(-delta - new_log_weight):  # progressive uniform sampling
                    sub_proposal, sub_u, sub_energy = edge, u, energy
                sub_log_weight = float(new_log_weight)
            sub_right = edge
            if turned:
                turning = True
                break
        depth += 1
        if turning or diverging:
            break  # the sub-tree is discarded: its proposal and edges never join the trajectory
        if rng.random() < math.exp(min(0.0, sub_log_weight - tree_log_weight)):
            proposal, proposal_u, proposal_energy = sub_proposal, sub_u, sub_energy
        if going_right:
            right = sub_right
        else:
            left = sub_left
        tree_p_sum = tree_p_sum + sub_p_sum
        tree_log_weight = float(np.logaddexp(tree_log_weight, sub_log_weight))
        p_left, p_right = left[1].numpy(), right[1].numpy()
        turning = is_turning(
            metric.velocity(p_left), metric.velocity(p_right), p_left, p_right, tree_p_sum.numpy()
        )
    return Transition(
        proposal[0].numpy(), proposal_u, proposal[2].numpy(), proposal_energy,
        sum_accept / n_steps, n_steps, depth, diverging,
    )  # fmt: skip


def fused_hmc_transition(
    q: np.ndarray,
    potential_value: float,
    grad: np.ndarray,
    leaf: LeafFn,
    metric,
    step_size: float,
    rng: np.random.Generator,
    num_steps: int,
    max_depth: int = 10,
    max_delta_energy: float = 1000.0,
) -> Transition:
    """Static HMC, as :func:`~ppgen.inference.nuts.trajectory.hmc_transition`, by fused leaves."""
    p_np = metric.sample_momentum(rng)
    energy0 = potential_value + metric.kinetic(p_np)
    inv_mass, energy0_t = _tensor(metric.inverse_mass), torch.tensor(energy0, dtype=torch.float64)
    eps = torch.tensor(step_size, dtype=torch.float64)
    state = (_tensor(q), _tensor(p_np), _tensor(grad))
    ckpts = torch.zeros(max_depth, q.shape[0], dtype=torch.float64)
    u, energy = potential_value, energy0
    for _ in range(num_steps):
        q_e, p_e, g_e, _, _, _, scalars = leaf(
            *state, eps, inv_mass, energy0_t, ckpts, ckpts, state[1], NO_CHECKS
        )
        state = (q_e, p_e, g_e)
        u, energy = scalars[:2].tolist()
    delta = energy - energy0
    if math.isnan(delta):
        delta = math.inf
    accept_prob = math.exp(min(0.0, -delta))
    if rng.random() < accept_prob:
        return Transition(state[0].numpy(), u, state[2].numpy(), energy, accept_prob, num_steps, 0, False)
    return Transition(q, potential_value, grad, energy0, accept_prob, num_steps, 0, delta > max_delta_energy)
