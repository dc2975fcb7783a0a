"""Minibatches of a fit's units: a seeded generator of row indices, per-unit arguments sliced with
them, and the scale N / batch size that keeps the minibatch objective an unbiased estimate of the
full-data one while global sites (priors) count once."""

from __future__ import annotations

import contextlib

import torch
from pyro import poutine

from ppgen.core import DATA_PLATE, in_data_plate
from ppgen.inference import distributed

__all__ = ["Minibatches", "ScaleData"]


class ScaleData(poutine.messenger.Messenger):
    """Scale every site inside the units' plate by ``factor`` (= N / batch size).

    Minibatching then gives an unbiased estimate of the full-data objective while the
    global sites (priors) are counted once — for any story, including users' programs.
    """

    def __init__(self, factor: float, plate: str | None = DATA_PLATE):
        super().__init__()
        self.factor = factor
        self.plate = plate

    def _process_message(self, msg):
        if in_data_plate(msg, self.plate):
            msg["scale"] = msg["scale"] * self.factor


class Minibatches:
    """Random minibatches of ``x`` and its per-row covariates, drawn with a seeded generator.

    Yields ``(x_batch, covariates_batch, scale)`` where ``scale = N / batch`` is what the
    data plate's log-likelihood terms must be multiplied by.

    Under ``torch.distributed`` (see :mod:`ppgen.inference.distributed`) each rank keeps only its
    shard of the rows and ``scale = world_size * n_shard / batch``, so the average over
    ranks of the per-rank losses (and gradients) equals the single-process objective.
    """

    def __init__(self, x: torch.Tensor, covariates: dict, batch_size: int | None, seed: int | None):
        self.weight = 1.0
        seed = 0 if seed is None else seed
        if distributed.is_distributed():
            total, world = x.shape[0], distributed.world_size()
            idx = distributed.shard_indices(total, distributed.rank(), world).to(x.device)
            covariates = _rows(covariates, idx, total)
            x = x[idx]
            self.weight = float(world)  # (1/W) Σ_r W·sum_r = the full-data sum, any shard sizes
            seed += distributed.rank()
        self.x, self.covariates = x, covariates
        self.n = x.shape[0]
        self.batch_size = None if batch_size is None or batch_size >= self.n else batch_size
        self.generator = torch.Generator().manual_seed(seed)
        #: the rows of the last batch (None while batches are the whole data)
        self.indices: torch.Tensor | None = None

    def next(self) -> tuple[torch.Tensor, dict, float]:
        if self.batch_size is None:
            return self.x, self.covariates, self.weight
        idx = torch.randperm(self.n, generator=self.generator)[: self.batch_size].to(self.x.device)
        self.indices = idx
        cov = _rows(self.covariates, idx, self.n)
        return self.x[idx], cov, self.n / self.batch_size * self.weight

    def scaled(self, scale: float, plate: str | None = DATA_PLATE):
        """Scale the terms of the units' plate by ``scale`` (a no-op at 1)."""
        return ScaleData(scale, plate) if scale != 1.0 else contextlib.nullcontext()


def _rows(covariates: dict, idx: torch.Tensor, n: int) -> dict:
    """Per-row covariates (tensors with ``n`` rows) indexed by ``idx``; others unchanged."""
    return {
        k: v[idx] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v
        for k, v in covariates.items()
    }
