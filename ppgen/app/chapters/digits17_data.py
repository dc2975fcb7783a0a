"""The 17-level digits the "pixels" chapter scores, and what scoring them as a density means.

``load("digits-17", split)``: 8×8 images with integer grey levels 0..16 in scikit-learn's row
order, fixed splits train 1000 / val 350 / test 447 (:func:`load_splits`, :func:`load_split_labels`).
A PMF scores them exactly; a continuous model only through the dequantized bound
``E_u[-log p(x + u)]``. :func:`pmf_vs_pdf` shows why: a density evaluated at the integers themselves
(:class:`SpikyDensity`) is not a probability and can look arbitrarily "good".
The NLL table built on these data is :func:`ppgen.app.chapters.digits17.nll_table`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pandas as pd
import torch

import ppgen
from ppgen.data import load
from ppgen.measures.dequantize import dequantize, discrete_nll_bound
from ppgen.models import CategoricalMixture, Gaussian

__all__ = [
    "LEVELS",
    "DIM",
    "FLOW_SCALE",
    "FLOW_SHIFT",
    "Splits",
    "load_splits",
    "load_split_labels",
    "SpikyDensity",
    "pmf_vs_pdf",
]

LEVELS, DIM = 17, 64
#: the flow sees y = (x + u - 8.5) / 4.25 in [-2, 2) (inside its spline bound).
FLOW_SCALE, FLOW_SHIFT = 1 / 4.25, -2.0
SPLITS = ("train", "val", "test")


class Splits(NamedTuple):
    """The images of the three fixed splits, ``(N, 64)`` each."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def load_splits(dtype: torch.dtype = torch.float32) -> Splits:
    """The train, val and test images of ``digits-17`` as ``dtype`` (levels 0..16 as numbers)."""
    return Splits(*(load("digits-17", split, dtype=dtype) for split in SPLITS))


def load_split_labels() -> dict[str, torch.Tensor]:
    """The digit (0-9) of every image, by split."""
    return {split: load("digits-17", split, return_labels=True)[1] for split in SPLITS}


class SpikyDensity:
    """A categorical mixture turned into a *density*: each level ``c`` becomes a narrow ``N(c, σ²)``.

    ``p(v) = Σ_k π_k Π_j Σ_c p_kjc N(v_j; c, σ²)`` integrates to one over ``R^D`` like any density,
    yet at the integers ``p(x) ≈ P(x) (σ √(2π))^{-D}``: its "NLL" there beats the PMF it came
    from by ``D log(1 / (σ √(2π)))`` nats and goes to ``-∞`` as ``σ → 0``.
    """

    def __init__(self, mixture: Any, sigma: float):
        model = getattr(mixture, "model", mixture)
        with torch.no_grad():
            self.log_pi, self.log_probs = model.pi.log(), model.probs.log()  # (K,), (K, D, C)
        self.sigma = float(sigma)

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        levels = torch.arange(self.log_probs.shape[-1], dtype=v.dtype)
        kernel = torch.distributions.Normal(levels, self.sigma).log_prob(v[..., None])  # (N, D, C)
        per_pixel = torch.logsumexp(self.log_probs[None] + kernel[:, None], -1)  # (N, K, D)
        return torch.logsumexp(self.log_pi + per_pixel.sum(-1), -1)


def pmf_vs_pdf(
    fast: bool = False, seed: int = 0, sigma: float = 0.05, models: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The same test digits scored three ways: as a PMF, as a dequantized density, naively as a density.

    The naive score evaluates a density at the integers themselves: it is not a probability and
    can be made arbitrarily "good" (:class:`SpikyDensity` with a small ``sigma``), while the
    dequantized bound of that same density exposes it. ``models`` (the second value of
    :func:`nll_table`, same ``seed``) reuses its K=10 mixture and Gaussian instead of refitting them.
    """
    x_train, x_test = load("digits-17", "train"), load("digits-17", "test")
    samples = 4 if fast else 16
    models = models or {}
    mixture, gaussian = models.get("mixture_k10"), models.get("gaussian")
    if mixture is None:
        mixture = ppgen.fit(
            CategoricalMixture(10, LEVELS, min_prob=1e-3), x_train, method="em", seed=seed, progress=False
        )
    if gaussian is None:
        gaussian = ppgen.fit(Gaussian(DIM), dequantize(x_train, seed=seed), method="exact")
    spiky = SpikyDensity(mixture, sigma)
    with torch.no_grad():
        pmf = -float(mixture.log_prob(x_test).mean())
        naive = -float(spiky.log_prob(x_test).mean())
    rows = [
        ("CategoricalMixture(K=10)", "PMF at the integers", "exact NLL", pmf),
        (f"the same, spikes sigma={sigma}", "density at the raw integers", "not a probability", naive),
        (
            f"the same, spikes sigma={sigma}",
            "density of x + u, averaged over u",
            "bound on NLL",
            discrete_nll_bound(spiky, x_test, samples, seed=seed).nll,
        ),
        (
            "Gaussian (full)",
            "density of x + u, averaged over u",
            "bound on NLL",
            discrete_nll_bound(gaussian, x_test, samples, seed=seed).nll,
        ),
    ]
    return pd.DataFrame(rows, columns=["model", "scored as", "meaning", "test 'NLL' (nats/image)"])
