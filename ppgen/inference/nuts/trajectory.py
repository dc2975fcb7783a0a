"""One NUTS transition, the tree built iteratively (no recursion), as NumPyro's ``hmc_util`` and
Stan define it — and the static HMC transition that ``kernel="hmc"`` uses.

The trajectory doubles in a random direction until the generalised U-turn criterion holds
between the two ends of any balanced sub-tree, the energy error passes ``max_delta_energy``
(a divergence) or the depth reaches ``max_depth``. Within a new sub-tree leaves are chosen by
progressive multinomial sampling (``P(new) = w_new / (w_old + w_new)``, ``w = e^{−H}``); the
sub-tree replaces the proposal with the biased probability ``min(1, w_sub / w_tree)`` (Betancourt
2017, A.3). The U-turn checks of a sub-tree built leaf by leaf need only ``max_depth`` stored
momenta and momentum sums (NumPyro's checkpoints): leaf ``n`` closes the balanced sub-trees whose
left ends are the checkpoints ``idx_min..idx_max`` computed from the bits of ``n``.

References: Hoffman & Gelman (2014), https://arxiv.org/abs/1111.4246; Betancourt (2017),
https://arxiv.org/abs/1701.02434.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ppgen.inference.nuts.integrator import Point, PotentialFn, leapfrog

__all__ = ["Transition", "nuts_transition", "hmc_transition", "is_turning", "checkpoint_range"]


class Transition(NamedTuple):
    """The chosen point and the statistics ArviZ reads (``sample_stats``)."""

    q: np.ndarray
    potential: float
    grad: np.ndarray
    energy: float  # H of the chosen point
    accept_prob: float  # mean min(1, e^{−ΔH}) over the trajectory's leaves (drives the step size)
    n_steps: int
    tree_depth: int
    diverging: bool


def is_turning(velocity_left: np.ndarray, velocity_right: np.ndarray, p_left, p_right, p_sum) -> bool:
    """Generalised U-turn: ``v_left·ρ' ≤ 0`` or ``v_right·ρ' ≤ 0``, ``ρ' = ρ − (p_left + p_right)/2``."""
    rho = p_sum - 0.5 * (p_left + p_right)
    return bool(velocity_left @ rho <= 0.0) or bool(velocity_right @ rho <= 0.0)


def checkpoint_range(leaf: int) -> tuple[int, int]:
    """Checkpoints ``idx_min..idx_max`` that leaf ``leaf`` (0-based) of a sub-tree is checked against.

    ``idx_max`` = the number of 1-bits of ``leaf >> 1``; the number of trailing 1-bits of ``leaf``
    is how many balanced sub-trees this leaf closes."""
    idx_max = (leaf >> 1).bit_count()
    closes = ((~leaf & (leaf + 1)) - 1).bit_count()
    return idx_max - closes + 1, idx_max


class _Tree:
    """The growing trajectory: its two edges, momentum sum, log weight and proposal."""

    __slots__ = ("left", "right", "p_sum", "log_weight", "proposal", "proposal_energy")

    def __init__(self, left: Point, right: Point, p_sum, log_weight: float, proposal: Point, energy: float):
        self.left, self.right, self.p_sum, self.log_weight = left, right, p_sum, log_weight
        self.proposal, self.proposal_energy = proposal, energy


def nuts_transition(
    q: np.ndarray,
    potential_value: float,
    grad: np.ndarray,
    potential: PotentialFn,
    metric,
    step_size: float,
    rng: np.random.Generator,
    max_depth: int = 10,
    max_delta_energy: float = 1000.0,
) -> Transition:
    """One NUTS transition from ``q`` (with its cached ``U(q)``, ``∇U(q)``)."""
    p = metric.sample_momentum(rng)
    start = Point(q, p, potential_value, grad)
    energy0 = potential_value + metric.kinetic(p)
    tree = _Tree(start, start, p, 0.0, start, energy0)
    size = q.shape[0]
    p_ckpts = np.zeros((max_depth, size))  # momentum at each checkpoint's leaf
    p_sum_ckpts = np.zeros((max_depth, size))  # momentum sum up to and including that leaf
    depth, n_steps, sum_accept = 0, 0, 0.0
    turning = diverging = False
    while depth < max_depth and not turning and not diverging:
        going_right = rng.random() < 0.5
        edge = tree.right if going_right else tree.left
        signed_step = step_size if going_right else -step_size
        # --- build a sub-tree of 2**depth leaves from the edge, leaf by leaf
        sub_left = sub_right = sub_proposal = None
        sub_p_sum, sub_log_weight, sub_energy = None, -math.inf, 0.0
        for leaf in range(2**depth):
            edge = leapfrog(edge, signed_step, metric, potential)
            velocity = metric.velocity(edge.p)
            energy = edge.potential + metric.kinetic(edge.p, velocity)
            delta = energy - energy0
            if math.isnan(delta):
                delta = math.inf
            n_steps += 1
            sum_accept += math.exp(min(0.0, -delta))
            if delta > max_delta_energy:
                diverging = True
                break
            if leaf == 0:
                sub_left, sub_proposal, sub_p_sum, sub_log_weight, sub_energy = (
                    edge,
                    edge,
                    edge.p,
                    -delta,
                    energy,
                )
            else:
                new_log_weight = np.logaddexp(sub_log_weight, -delta)
                # progressive uniform sampling within the sub-tree: P(leaf) = w_leaf / w_sub
                if rng.random() < math.exp(-delta - new_log_weight):
                    sub_proposal, sub_energy = edge, energy
                sub_log_weight = float(new_log_weight)
                sub_p_sum = sub_p_sum + edge.p
            sub_right = edge
            idx_min, idx_max = checkpoint_range(leaf)
            if leaf % 2 == 0:
                p_ckpts[idx_max], p_sum_ckpts[idx_max] = edge.p, sub_p_sum
            for i in range(idx_max, idx_min - 1, -1):
                p_first = p_ckpts[i]
                closed_sum = sub_p_sum - p_sum_ckpts[i] + p_first
                if is_turning(metric.velocity(p_first), velocity, p_first, edge.p, closed_sum):
                    turning = True
                    break
            if turning:
                break
        depth += 1
        if turning or diverging:
            break  # the sub-tree is discarded: its proposal and edges never join the trajectory
        # --- the sub-tree joins the trajectory; biased transition to its proposal
        if rng.random() < math.exp(min(0.0, sub_log_weight - tree.log_weight)):
            tree.proposal, tree.proposal_energy = sub_proposal, sub_energy
        if going_right:
            tree.right = sub_right
        else:
            tree.left = sub_left
        tree.p_sum = tree.p_sum + sub_p_sum
        tree.log_weight = float(np.logaddexp(tree.log_weight, sub_log_weight))
        left, right = tree.left, tree.right
        turning = is_turning(metric.velocity(left.p), metric.velocity(right.p), left.p, right.p, tree.p_sum)
    chosen = tree.proposal
    return Transition(
        chosen.q,
        chosen.potential,
        chosen.grad,
        tree.proposal_energy,
        sum_accept / n_steps,
        n_steps,
        depth,
        diverging,
    )


def hmc_transition(
    q: np.ndarray,
    potential_value: float,
    grad: np.ndarray,
    potential: PotentialFn,
    metric,
    step_size: float,
    rng: np.random.Generator,
    num_steps: int,
    max_delta_energy: float = 1000.0,
) -> Transition:
    """Static HMC: ``num_steps`` leapfrog steps, accepted with probability ``min(1, e^{−ΔH})``."""
    p = metric.sample_momentum(rng)
    point = Point(q, p, potential_value, grad)
    energy0 = potential_value + metric.kinetic(p)
    for _ in range(num_steps):
        point = leapfrog(point, step_size, metric, potential)
    energy = point.potential + metric.kinetic(point.p)
    delta = energy - energy0
    if math.isnan(delta):
        delta = math.inf
    accept_prob = math.exp(min(0.0, -delta))
    if rng.random() < accept_prob:
        return Transition(point.q, point.potential, point.grad, energy, accept_prob, num_steps, 0, False)
    return Transition(q, potential_value, grad, energy0, accept_prob, num_steps, 0, delta > max_delta_energy)
