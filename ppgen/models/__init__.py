"""Generative stories, one per file."""

from ppgen.models.char_rnn import CharRNN
from ppgen.models.conjugate_discrete import BetaBernoulli, DirichletCategorical, GammaPoisson
from ppgen.models.conjugate_normal import NormalInverseGamma, NormalInverseWishart, NormalKnownScale
from ppgen.models.empirical import Empirical
from ppgen.models.factor import PPCA, FactorAnalysis
from ppgen.models.flow import Flow
from ppgen.models.gan import MLPCritic, MLPGenerator
from ppgen.models.gaussian import Gaussian
from ppgen.models.kde import KDE
from ppgen.models.made import MADE
from ppgen.models.mixture import BernoulliMixture, CategoricalMixture, GaussianMixture
from ppgen.models.pushforward import Pushforward
from ppgen.models.vae import VAE, ConditionalVAE

__all__ = [
    "Empirical",
    "KDE",
    "Pushforward",
    "MADE",
    "CharRNN",
    "Flow",
    "VAE",
    "ConditionalVAE",
    "MLPGenerator",
    "MLPCritic",
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
