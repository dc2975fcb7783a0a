"""Generative stories, one per file."""

from ppgen.models.conjugate import (
    BetaBernoulli,
    DirichletCategorical,
    GammaPoisson,
    NormalInverseGamma,
    NormalInverseWishart,
    NormalKnownScale,
)
from ppgen.models.empirical import Empirical
from ppgen.models.gaussian import Gaussian
from ppgen.models.kde import KDE
from ppgen.models.pushforward import Pushforward

__all__ = [
    "Empirical",
    "KDE",
    "Pushforward",
    "Gaussian",
    "NormalKnownScale",
    "NormalInverseGamma",
    "NormalInverseWishart",
    "BetaBernoulli",
    "DirichletCategorical",
    "GammaPoisson",
]
