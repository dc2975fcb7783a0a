"""Generative stories, one per file."""

from ppgen.models.autoregressive import MADE, CharRNN
from ppgen.models.conjugate import (
    BetaBernoulli,
    DirichletCategorical,
    GammaPoisson,
    NormalInverseGamma,
    NormalInverseWishart,
    NormalKnownScale,
)
from ppgen.models.flow import Flow
from ppgen.models.gaussian import Gaussian
from ppgen.models.vae import VAE, ConditionalVAE

__all__ = [
    "MADE",
    "CharRNN",
    "Flow",
    "VAE",
    "ConditionalVAE",
    "Gaussian",
    "NormalKnownScale",
    "NormalInverseGamma",
    "NormalInverseWishart",
    "BetaBernoulli",
    "DirichletCategorical",
    "GammaPoisson",
]
