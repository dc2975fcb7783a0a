"""ppgen — generative modeling as Pyro programs.

Write a generative story as a Pyro program, fit it every sensible way with one call,
and compare the answers::

    import ppgen
    from ppgen.models import Gaussian
    fit = ppgen.fit(Gaussian(dim=2), ppgen.data.load("faithful"), method="exact")
"""

__version__ = "0.1.0"

from ppgen import data, divergences, metrics, models, plots  # noqa: E402
from ppgen.api import applicable_methods, compare, fit, methods  # noqa: E402
from ppgen.checks import prior_predictive  # noqa: E402
from ppgen.core import GenerativeModel, ImplicitModel, as_model, bayesian  # noqa: E402
from ppgen.errors import (  # noqa: E402
    ConvergenceWarning,
    DataError,
    FitFileError,
    ImplicitModelError,
    MethodError,
    NonFiniteLossError,
    OptionError,
    PpgenError,
)
from ppgen.results import Fit, load  # noqa: E402

__all__ = [
    "fit",
    "compare",
    "prior_predictive",
    "load",
    "methods",
    "applicable_methods",
    "bayesian",
    "as_model",
    "Fit",
    "GenerativeModel",
    "ImplicitModel",
    "PpgenError",
    "DataError",
    "MethodError",
    "OptionError",
    "ImplicitModelError",
    "NonFiniteLossError",
    "FitFileError",
    "ConvergenceWarning",
    "data",
    "divergences",
    "metrics",
    "models",
    "plots",
]
