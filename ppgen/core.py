"""The model contract: every ppgen model is a Pyro program.

A :class:`GenerativeModel` is a ``PyroModule`` whose ``model`` method tells the generative
story (globals, then the ``"data"`` plate, local latents, the observed site ``"x"``) and
whose ``guide`` method gives the posterior over *local* latents (empty by default).
Global parameters are ``PyroParam`` (point estimates, fitted by maximum likelihood) until
:func:`~ppgen.models.priors.bayesian` gives them priors; then they are ``PyroSample`` sites and the same
story has a Bayesian posterior.

Backends learn what a model can do from :attr:`GenerativeModel.capabilities` — they
never test for a model class.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import pyro
import torch
from pyro import poutine
from pyro.nn import PyroModule, PyroParam, PyroSample, pyro_method

# Pyro's per-module call context; ppgen's models use a subclass that scopes module_local_params.
from pyro.nn.module import _Context as _PyroModuleContext
from pyro.poutine.util import prune_subsample_sites

from ppgen.errors import DataError, ImplicitModelError, OptionError

__all__ = [
    "GenerativeModel",
    "ImplicitModel",
    "pyro_method",
    "PyroParam",
    "PyroSample",
    "DATA_SITE",
    "DATA_PLATE",
]

P = ParamSpec("P")
T = TypeVar("T")

DATA_SITE = "x"
DATA_PLATE = "data"
#: The per-unit sum over a program's observed sites in ``log_likelihood`` (``az.loo(..., var_name=TOTAL)``).
TOTAL = "total"
#: Attribute of a model whose sizes come from the data (``ppgen.models.sizing``) until it sees them.
PLACEHOLDER = "unsized"


def local_params() -> contextlib.AbstractContextManager:
    """Pyro's ``module_local_params`` on for the block, restored on exit (never left on globally).

    Without module-local parameters two instances of one model class share their parameters
    through Pyro's global param store (PYRO_NOTES 2): fitting one silently overwrites the other,
    which would make every side-by-side comparison a lie. Set globally, the same setting breaks
    the user's own Pyro code (EasyGuide, a PyroModule with a global ``pyro.param``: PYRO_NOTES 11),
    so ppgen turns it on only inside its own calls.
    """
    return pyro.settings.context(module_local_params=True)


def with_local_params(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` (a ppgen entry point) under :func:`local_params`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with local_params():
            return fn(*args, **kwargs)

    return wrapper


class _LocalParamsContext(_PyroModuleContext):
    """A ``PyroModule`` call context that runs its module with ``module_local_params`` on.

    Every call of a ppgen model's ``pyro_method`` (``model``, ``guide``, ``sample``, ``log_prob``)
    enters its module's context; switching the setting on there (and back on leaving) keeps each
    model's parameters its own wherever the model is called from — inside ppgen or from the user's
    own Pyro code — without changing Pyro's setting for anything else.
    """

    def __init__(self) -> None:
        with local_params():
            super().__init__()  # builds the module's own parameter state

    def __enter__(self) -> None:
        if not self.active:
            self._setting = local_params()
            self._setting.__enter__()
        super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if not self.active:
            setting, self._setting = self._setting, None
            setting.__exit__(*exc)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_setting"}


class GenerativeModel(PyroModule):
    """Base class of every explicit generative story.

    Subclasses write ``model(x=None, n=None)`` as a ``@pyro_method`` that reads its
    globals first, then opens ``self.data_plate(x, n)`` and observes site ``"x"``.

    Optional capabilities a backend may look for:
    ``fit_exact(x)`` (closed-form MLE), ``conjugate_posterior(x)`` (exact posterior),
    ``e_step(x)`` / ``m_step(x, resp)`` (EM), ``log_prob(x)`` (exact density).
    """

    #: True when the story has latents inside the data plate (mixture labels, VAE codes).
    #: Such a model overrides ``log_prob`` with the marginal and guides (or enumerates)
    #: its own locals; autoguides then cover only the globals.
    has_local_latents: bool = False
    #: The plate whose entries are the units of the data (rows); programs discover theirs.
    unit_plate: str | None = DATA_PLATE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pyro_context = _LocalParamsContext()  # the model's parameters stay its own

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if not isinstance(self._pyro_context, _LocalParamsContext):  # a model pickled by ppgen 0.1
            context = _LocalParamsContext()
            context.param_state = getattr(self._pyro_context, "param_state", context.param_state)
            self._pyro_context = context

    # ----------------------------------------------------------------- the story
    def data_plate(self, x: torch.Tensor | None = None, n: int | None = None) -> pyro.plate:
        """The ``"data"`` plate over ``len(x)`` observations, or ``n`` when sampling."""
        if x is not None:
            return pyro.plate(DATA_PLATE, x.shape[0])
        if n is None:
            raise DataError("Expected either data x or a sample count n, but got neither.")
        return pyro.plate(DATA_PLATE, int(n))

    @pyro_method
    def model(self, x: torch.Tensor | None = None, n: int | None = None):
        raise NotImplementedError(f"{type(self).__name__} must define model(x=None, n=None).")

    @pyro_method
    def guide(self, x: torch.Tensor | None = None, n: int | None = None):
        """Posterior over local latents; empty for stories without them."""

    # --------------------------------------------------------------- sampling
    @pyro_method
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling: run the story forward and return ``n`` draws of ``x``."""
        n = _check_count(n)
        with torch.no_grad():
            trace = poutine.trace(self.model).get_trace(n=n)
        return trace.nodes[DATA_SITE]["value"]

    # ---------------------------------------------------------------- density
    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example log density ``log p(x_i)``, shape ``(N,)``.

        The default reads it off the story, which is exact only when the story has no
        local latents; models with latents override it with the marginal.
        """
        if self.has_local_latents:
            raise NotImplementedError(
                f"{type(self).__name__} has local latents; it must override log_prob with "
                "the marginal density."
            )
        trace = poutine.trace(self.model).get_trace(x)
        site = trace.nodes[DATA_SITE]
        return site["fn"].log_prob(site["value"])

    # ----------------------------------------------------------- introspection
    @property
    def guides_own_locals(self) -> bool:
        """Whether the model's own guide covers its local latents (autoguides then cover the globals only)."""
        return self.has_local_latents

    @property
    def capabilities(self) -> set[str]:
        """Names of the optional methods this model offers."""
        names = ("fit_exact", "conjugate_posterior", "e_step", "m_step", "log_prob")
        caps = {name for name in names if callable(getattr(self, name, None))}
        if self.has_local_latents and type(self).log_prob is GenerativeModel.log_prob:
            caps.discard("log_prob")
        return caps

    @property
    def prior_names(self) -> list[str]:
        """Attributes that carry a prior (``PyroSample``), top level only."""
        return list(self._pyro_samples.keys())

    @property
    def is_bayesian(self) -> bool:
        return bool(self.prior_names)

    @property
    def param_names(self) -> list[str]:
        """Attributes that are point estimates (``PyroParam``), top level only."""
        return list(self._pyro_params.keys())

    def point_estimates(self) -> dict[str, torch.Tensor]:
        """Current constrained values of the top-level ``PyroParam`` attributes."""
        with torch.no_grad():
            return {name: getattr(self, name).detach().clone() for name in self.param_names}

    def set_params(self, **values: torch.Tensor) -> GenerativeModel:
        """Set ``PyroParam`` attributes to constrained values (used by closed-form fits)."""
        for name, value in values.items():
            if name not in self._pyro_params:
                raise OptionError(
                    f"Expected a parameter of {type(self).__name__} ({self.param_names}), but got {name!r}."
                )
            constraint, event_dim = self._pyro_params[name]
            setattr(self, name, PyroParam(torch.as_tensor(value).detach().clone(), constraint, event_dim))
        return self

    # ------------------------------------------------------ checks at the door
    def check_support(self, x: torch.Tensor, covariates: dict) -> None:
        """One validated trace of the story on the data, before any work: data outside the
        likelihood's support or shape (non-binary rows for a Bernoulli, counts below 0) is a
        DataError here rather than a Pyro ValueError from inside a backend."""
        try:
            with torch.no_grad(), poutine.block(), pyro.validation_enabled(True):
                poutine.trace(self.model).get_trace(x, **covariates).compute_log_prob()
        except ValueError as err:
            detail = " ".join(str(err).split())[:300]
            raise DataError(
                f"Expected data that {type(self).__name__} can observe at site 'x' (its shape and support), "
                f"but Pyro refused it: {detail}"
            ) from None
        except Exception:  # noqa: BLE001 - anything else is the backend's to report
            pass

    def prior_dtype(self, x: torch.Tensor, covariates: dict) -> torch.dtype | None:
        """The floating dtype of the priors' draws (a Bayesian story computes in it)."""
        sites = global_latent_sites(self, x.to(torch.get_default_dtype()), covariates)
        for site in sites.values():
            if torch.is_floating_point(site["value"]):
                return site["value"].dtype
        return None

    # ------------------------------------------------ per-draw likelihoods
    def draw_log_likelihood(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], covariates: dict | None = None
    ) -> torch.Tensor:
        """Pointwise ``log p(x_i | θ_s)`` for every posterior draw, shape ``(S, N)``.

        Each draw conditions the story's global sites; the model's own ``log_prob`` then
        marginalises any local latents, so enumerated mixtures score correctly.
        """
        covariates = covariates or {}
        total = next(iter(draws.values())).shape[0]
        if not self.has_local_latents:
            vectorised = _vectorised_log_likelihood(self, x, draws, covariates, total)
            if vectorised is not None:
                return vectorised
        return _looped_log_likelihood(self, x, draws, covariates, total)

    def log_likelihood_by_site(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], covariates: dict | None = None
    ) -> dict[str, torch.Tensor]:
        """``{site: (S, N)}`` for the ``log_likelihood`` group: one entry ``"x"`` for a ppgen model."""
        return {DATA_SITE: self.draw_log_likelihood(x, draws, covariates)}

    def observed_data(self, x: torch.Tensor, covariates: dict | None = None) -> dict[str, torch.Tensor]:
        """The observed values by site (the ``observed_data`` group)."""
        return {DATA_SITE: x.detach()}

    def extra_repr(self) -> str:
        parts = [f"{n}=PyroParam{tuple(getattr(self, n).shape)}" for n in self.param_names]
        parts += [f"{n}=PyroSample" for n in self.prior_names]
        return ", ".join(parts)


class ImplicitModel(GenerativeModel):
    """A model that can only sample: ``z ~ N(0, I)``, ``x = g(z)`` (a GAN generator).

    Its density is not available in closed form (``g`` need not be invertible, the
    pushforward may live on a low-dimensional manifold), so ``log_prob`` raises.
    """

    #: Methods that work without a density.
    density_free_methods = ("adversarial",)

    @pyro_method
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise ImplicitModelError(
            f"Expected an explicit model, but {type(self).__name__} is implicit: it defines a "
            "sampler x = g(z) and no density. Fit it with method='adversarial', and compare it "
            "with sample-based metrics (ppgen.metrics.mmd, energy_distance, sliced_wasserstein)."
        )

    @property
    def capabilities(self) -> set[str]:
        return super().capabilities - {"log_prob"}


def _check_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, torch.Tensor)) and not hasattr(n, "__index__"):
        raise DataError(f"Expected a positive integer sample count, but got {n!r}.")
    n = int(n)
    if n < 1:
        raise DataError(f"Expected a positive integer sample count, but got {n}.")
    return n


# --------------------------------------------------------------------- helpers
def set_seed(seed: Any) -> None:
    """``pyro.set_rng_seed(seed)`` for an integer seed (``None``: leave the random state alone)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"Expected seed to be an integer, but got {seed!r}.")
    pyro.set_rng_seed(seed)


def is_program(model: Any) -> bool:
    """Whether ``model`` is a user's Pyro program (a :class:`~ppgen.programs.Program`: it binds its data)."""
    return callable(getattr(model, "bind", None))


def in_data_plate(msg: dict, plate: str | None = DATA_PLATE) -> bool:
    """Whether a Pyro message belongs to a site inside the units' plate (``"data"`` for ppgen models)."""
    return plate is not None and any(frame.name == plate for frame in msg.get("cond_indep_stack", ()))


def global_latent_sites(model: GenerativeModel, x: torch.Tensor, covariates: dict) -> dict[str, dict]:
    """Unobserved sample sites outside the data plate (the globals a posterior is over)."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model.model).get_trace(x, **covariates)
    # A plate records its subsample indices as an unobserved sample site named after the plate.
    trace = prune_subsample_sites(trace)
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not in_data_plate(site, model.unit_plate)
    }


def _looped_log_likelihood(model, x, draws, covariates, total) -> torch.Tensor:
    rows = []
    for s in range(total):
        with poutine.condition(data={k: v[s] for k, v in draws.items()}):
            rows.append(model.log_prob(x, **covariates))
    return torch.stack(rows)


def _vectorised_log_likelihood(model, x, draws, covariates, total) -> torch.Tensor | None:
    """All draws in one pass: a ``"_draws"`` plate left of the data plate batches the globals.

    Works for stories written with plates and ``to_event`` (the Pyro way); anything else
    (a story that fixes its own batch shapes) returns None and is scored draw by draw.
    """
    try:
        global_names = set(global_latent_sites(model, x, covariates))
        data = {k: v.reshape(total, 1, *v.shape[1:]) if k in global_names else v for k, v in draws.items()}
        with pyro.plate("_draws", total, dim=-2), poutine.condition(data=data):
            trace = poutine.trace(model.model).get_trace(x, **covariates)
        site = trace.nodes[DATA_SITE]
        log_lik = site["fn"].log_prob(site["value"])
    except (RuntimeError, ValueError, KeyError, IndexError):
        return None
    if log_lik.shape != (total, x.shape[0]):
        return None
    return log_lik


def untransformable_priors(model: GenerativeModel) -> dict[str, Any]:
    """Global latents whose support has no bijection to an unconstrained space.

    NUTS and Pyro's Normal-family autoguides need ``biject_to(support)``; a positive-definite
    matrix site has none. Found from the prior (a story run with ``n=2``), so backends can
    refuse such a model before any work. Stories that cannot run without data report none.
    """
    if not model.is_bayesian:
        return {}
    try:
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(model.model).get_trace(n=2)
    except Exception:  # noqa: BLE001 - a story that needs data is checked at fit time instead
        return {}
    found = {}
    for name, site in prune_subsample_sites(trace).nodes.items():
        if site["type"] != "sample" or site["is_observed"] or in_data_plate(site):
            continue
        try:
            torch.distributions.biject_to(site["fn"].support)
        except NotImplementedError:
            found[name] = site["fn"].support
    return found
