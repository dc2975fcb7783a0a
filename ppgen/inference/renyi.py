"""The importance-weighted bound (``loss="iwae"``) through the shared loop: Pyro's ``RenyiELBO``
computes its own gradients (``loss_and_grads``) and exposes no differentiable loss."""

from __future__ import annotations

import torch
from pyro.infer import RenyiELBO

__all__ = ["renyi_loss"]


def renyi_loss(elbo: RenyiELBO, model, guide, x, covariates) -> torch.Tensor:
    """RenyiELBO exposes no ``differentiable_loss``; take its surrogate through autograd."""
    loss = elbo.loss_and_grads(model, guide, x, **covariates)
    return _ZeroGradLoss.apply(torch.tensor(loss))


class _ZeroGradLoss(torch.autograd.Function):
    """Carries an already-backpropagated loss value through the loop's ``backward()``."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return None
