"""Generative stories, one per file."""

from ppgen.models.conjugate import (
    BetaBernoulli,
    DirichletCategorical,
    GammaPoisson,
    NormalInverseGamma,
    NormalInverseWishart,
    NormalKnownScale,
)
from ppgen.models.gaussian import Gaussian

__all__ = [
    "Gaussian",
    "NormalKnownScale",
    "NormalInverseGamma",
    "NormalInverseWishart",
    "BetaBernoulli",
    "DirichletCategorical",
    "GammaPoisson",
]
