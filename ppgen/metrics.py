"""Metrics on tensors and fitted models: held-out likelihood, sample-based distances,
mode coverage and memorisation tests. Pure functions; no plotting."""

from __future__ import annotations

import math

import torch

__all__ = ["heldout_nll", "bits_per_dim"]


# ------------------------------------------------------------- likelihood-based
def heldout_nll(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats per example from per-example ``log p(x_i)``."""
    return float(-log_prob.mean())


def bits_per_dim(log_prob: torch.Tensor, dim: int) -> float:
    """``-mean log p(x) / (D ln 2)``: the NLL in bits per dimension."""
    return float(-log_prob.mean() / (dim * math.log(2.0)))


# ---------------------------------------------------------------- sample-based
