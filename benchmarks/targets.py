"""The speed targets the issues set, and what limits each one where a run does not reach it.

``run.py`` puts :func:`verdict` beside each ratio it reports, so the README's table says for every
claim whether the last run met its target and, if not, what stands in the way (each limit is a
measurement written down when it was made, see the benchmark's own docstring).
"""

from __future__ import annotations

#: name -> (goal, "min" when the ratio must reach the goal from above, "max" from below, limit)
TARGETS: dict[str, tuple[float, str, str]] = {
    "em": (
        5.0,
        "min",
        "the E- and M-step GEMMs are skinny (K = 8 columns), so a pass is bound by reading the "
        "153 × n feature block twice, not by arithmetic; the ratio moves ±25 % between runs of "
        "this machine as scikit-learn's per-row cost does",
    ),
    "mle": (
        1.2,
        "max",
        "a 1,000-row step is 0.3 ms of which PyTorch's own Adam, autograd and dispatch are most; "
        "ppgen's per-step guards (finite loss and gradients, history, convergence) cost ≈ 20 µs",
    ),
    "program": (
        1.3,
        "max",
        "AutoNormal keeps a loc, a scale, a transform and a log-density per site where the hand "
        "loop has one vector, and the trace replays each small op through TorchScript's "
        "interpreter; the CPU fuser that would merge them needs LLVM, which the CPU wheel lacks",
    ),
}


def verdict(name: str, ratio: float) -> str:
    """``"target ≤ 1.2×: met"`` or ``"target ≥ 5×: not met (limit: …)"`` for a measured ratio."""
    goal, direction, limit = TARGETS[name]
    sign = "≥" if direction == "min" else "≤"
    met = ratio >= goal if direction == "min" else ratio <= goal
    text = f"target {sign} {goal:g}×: "
    return text + ("met" if met else f"not met (limit: {limit})")
