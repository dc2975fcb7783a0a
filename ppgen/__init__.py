"""ppgen — generative modeling as Pyro programs.

Write a generative story as a Pyro program, fit it every sensible way with one call,
and compare the answers::

    import ppgen
    from ppgen.models import Gaussian
    fit = ppgen.fit(Gaussian(dim=2), ppgen.data.load("faithful"), method="exact")

Names load on first use (PEP 562), so ``import ppgen`` and the ``ppgen`` command start without
importing torch, Pyro or ArviZ, and importing ppgen changes nothing in them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_NAMES = {
    "fit": "ppgen.api",
    "compare": "ppgen.api",
    "methods": "ppgen.api",
    "applicable_methods": "ppgen.api",
    "prior_predictive": "ppgen.programs.predictive",
    "calibrate": "ppgen.calibration.runner",
    "Calibration": "ppgen.calibration.result",
    "as_model": "ppgen.programs.door",
    "bayesian": "ppgen.models.priors",
    "GenerativeModel": "ppgen.core",
    "ImplicitModel": "ppgen.core",
    "Fit": "ppgen.result",
    "load": "ppgen.result",
    "PpgenError": "ppgen.errors",
    "DataError": "ppgen.errors",
    "MethodError": "ppgen.errors",
    "OptionError": "ppgen.errors",
    "ImplicitModelError": "ppgen.errors",
    "NonFiniteLossError": "ppgen.errors",
    "FitFileError": "ppgen.errors",
    "ConvergenceWarning": "ppgen.errors",
    "IncompleteFitWarning": "ppgen.errors",
}
#: Short module names the README uses -> where the module lives.
_MODULES = {
    "plots": "ppgen.app.plots",
    "metrics": "ppgen.measures.metrics",
    "divergences": "ppgen.measures.divergences",
    "probability": "ppgen.measures.probability",
    "dequantize": "ppgen.measures.dequantize",
    "criteria": "ppgen.measures.criteria",
    "distributed": "ppgen.inference.distributed",
}

__all__ = [
    "fit",
    "compare",
    "methods",
    "applicable_methods",
    "prior_predictive",
    "calibrate",
    "Calibration",
    "as_model",
    "bayesian",
    "GenerativeModel",
    "ImplicitModel",
    "Fit",
    "load",
    "PpgenError",
    "DataError",
    "MethodError",
    "OptionError",
    "ImplicitModelError",
    "NonFiniteLossError",
    "FitFileError",
    "ConvergenceWarning",
    "IncompleteFitWarning",
    "data",
    "models",
    "plots",
    "metrics",
    "divergences",
    "probability",
    "dequantize",
    "criteria",
    "distributed",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    else:
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what static tools see; at run time the names above load on first use
    from ppgen import data, models
    from ppgen.api import applicable_methods, compare, fit, methods
    from ppgen.app import plots
    from ppgen.calibration import Calibration, calibrate
    from ppgen.core import GenerativeModel, ImplicitModel
    from ppgen.errors import (
        ConvergenceWarning,
        DataError,
        FitFileError,
        ImplicitModelError,
        IncompleteFitWarning,
        MethodError,
        NonFiniteLossError,
        OptionError,
        PpgenError,
    )
    from ppgen.inference import distributed
    from ppgen.measures import criteria, dequantize, divergences, metrics, probability
    from ppgen.models.priors import bayesian
    from ppgen.programs.door import as_model
    from ppgen.programs.predictive import prior_predictive
    from ppgen.result import Fit, load
