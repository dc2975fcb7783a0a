"""Inference backends: one class per method, each with ``check(model)`` (fails fast with
:class:`~ppgen.errors.MethodError`) and ``fit(model, x, covariates, **options) -> Fit``."""

from ppgen.inference.adversarial import Adversarial
from ppgen.inference.em import EM
from ppgen.inference.exact import Exact
from ppgen.inference.importance import Importance
from ppgen.inference.mcmc import MCMCBackend
from ppgen.inference.mle import MLE
from ppgen.inference.svi import MAP, SVI

BACKENDS = {
    "exact": Exact(),
    "em": EM(),
    "mle": MLE(),
    "svi": SVI(),
    "map": MAP(),
    "mcmc": MCMCBackend(),
    "importance": Importance(),
    "adversarial": Adversarial(),
}

__all__ = ["BACKENDS", "Exact", "EM", "MLE", "SVI", "MAP", "MCMCBackend", "Importance", "Adversarial"]
