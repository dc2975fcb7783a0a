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
from ppgen.models.factor import PPCA, FactorAnalysis
from ppgen.models.gaussian import Gaussian
from ppgen.models.mixture import BernoulliMixture, CategoricalMixture, GaussianMixture
from ppgen.models.kde import KDE
from ppgen.models.pushforward import Pushforward

__all__ = [
    "Empirical",
    "KDE",
    "Pushforward",
    "Gaussian",
    "GaussianMixture",
    "BernoulliMixture",
    "CategoricalMixture",
    "FactorAnalysis",
    "PPCA",
    "NormalKnownScale",
    "NormalInverseGamma",
    "NormalInverseWishart",
    "BetaBernoulli",
    "DirichletCategorical",
    "GammaPoisson",
]
