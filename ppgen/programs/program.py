"""Users' Pyro programs, fitted as they are written.

A :class:`Program` adapts any Pyro program — a function ``partially_pooled(at_bats, hits)``, a
model/guide pair holding ``pyro.module`` networks and ``pyro.param`` statements, a ``PyroModule``
whose ``forward(x, y=None)`` is the story, a purely generative ``model(sigma)`` conditioned from
outside — to the contract the backends speak. What it finds out by tracing the program once:

- **arguments** bind to the program's signature by name (:meth:`Program.bind`);
- **observed sites**: every site with ``obs=`` values, plus those conditioned with ``observed=``;
- **units**: the outermost plate around every observed site (players, schools, rows), or one unit
  when the observed sites sit in no plate. Pointwise log-likelihoods, LOO/WAIC, minibatches and
  held-out scores are per unit.
- **deterministic sites** (``pyro.deterministic``): recorded beside the latents in posteriors and
  predictive draws, never data (unless conditioned with ``observed=``, as a generator's output is),
  latents or parameters;
- **parameters**: ``pyro.param`` statements and ``pyro.module`` networks are served from the
  program's own store (never Pyro's global one), so two fits of one program are independent and a
  saved fit reloads exactly.

Prediction at new inputs binds the arguments with the observed ones left out
(:meth:`~ppgen.programs.binding.ProgramBinding.bind_inputs`); the observed sites stay the training
fit's. Backends count and slice rows of ``x``. A program's rows are its units, whose data live in the
bound arguments, so the ``x`` a backend receives for a program is an ``(N, 0)`` tensor: ``N`` units
and no columns of their own. Per-unit arguments (tensors whose leading dimension is ``N``) are
minibatched with it.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule

from ppgen.core import TOTAL, GenerativeModel, _check_count
from ppgen.errors import MethodError, OptionError
from ppgen.programs import sites
from ppgen.programs.binding import OBSERVED_PREFIX, ProgramBinding
from ppgen.programs.checks import ProgramChecks
from ppgen.programs.draws import (
    deterministic_draws,
    draw_count,
    guide_samples,
    predictive_draws,
    predictive_sites,
    site_log_likelihood,
)
from ppgen.programs.params import MODULE_DIVIDER, LocalParams, module_values, readable_name
from ppgen.programs.vectorise import free

__all__ = ["Program", "OBSERVED_PREFIX", "readable_name"]


class Program(ProgramBinding, ProgramChecks, GenerativeModel):
    """A user's Pyro program as a ppgen model.

    Arguments:
        fn: the model — a function, a bound method, or a ``PyroModule`` whose ``forward`` is the story.
        guide: optional hand-written guide with the model's signature (``pyro.param``/``pyro.module``
            inside are the fit's own parameters).
        observed: names of sites conditioned from outside (their values come with the data).
        plate: the plate that defines the units, when the outermost common one is not wanted.

    Example:
        >>> def coin(flips):
        ...     p = pyro.sample("p", dist.Beta(2.0, 2.0))
        ...     with pyro.plate("flips", len(flips)):
        ...         pyro.sample("obs", dist.Bernoulli(p), obs=flips)
        >>> program = Program(coin)
        >>> units, args = program.bind({"flips": torch.tensor([1.0, 0.0, 1.0])})
        >>> units.shape, program.observed_sites, program.unit_plate
        (torch.Size([3, 0]), ('obs',), 'flips')
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        guide: Callable[..., Any] | None = None,
        *,
        observed: tuple[str, ...] = (),
        plate: str | None = None,
    ):
        super().__init__()
        if not callable(fn):
            raise OptionError(f"Expected a callable Pyro model, but got {type(fn).__name__}.")
        if guide is not None and not callable(guide):
            raise OptionError(f"Expected a callable guide, but got {type(guide).__name__}.")
        # A PyroModule story or guide is a plain torch child: its parameters train with the fit,
        # and its Pyro names stay its own (PyroModule.add_module would prefix them).
        for role, part in (("story", fn), ("guide_module", guide)):
            if isinstance(part, torch.nn.Module):
                torch.nn.Module.add_module(self, role, part)
            _give_local_state(part)
        self._fn = None if isinstance(fn, torch.nn.Module) else fn
        self._guide = None if isinstance(guide, torch.nn.Module) else guide
        self.signature = sites.signature(fn)
        self.observed_names = tuple(observed)
        self.plate_choice = plate
        # pyro.param / pyro.module values: unconstrained tensors by position, names mapped
        # (a ParameterDict refuses the "." that pyro.module names contain).
        self.local_params = torch.nn.ParameterList()
        self.param_index: dict[str, int] = {}
        self.networks: dict[str, torch.nn.Module] = {}  # pyro.module's networks, by name (params.py)
        self.constraints: dict[str, Any] = {}
        self.structure: dict[str, Any] | None = None  # filled by the first bind
        self.train_args: dict[str, Any] | None = None  # the first bind's arguments (forward runs)

    # ------------------------------------------------------------------ the story
    @property
    def fn(self) -> Callable[..., Any]:
        # Read from _modules: attribute access would make a root PyroModule a named submodule of ours.
        return self._fn if self._fn is not None else self._modules["story"]

    @property
    def user_guide(self) -> Callable[..., Any] | None:
        return self._guide if self._guide is not None else self._modules.get("guide_module")

    def set_guide(self, guide: Callable[..., Any]) -> None:
        """Attach a hand-written guide (``ppgen.fit(program, data, guide=my_guide)``)."""
        _give_local_state(guide)
        if isinstance(guide, torch.nn.Module):
            torch.nn.Module.add_module(self, "guide_module", guide)
            self._guide = None
        else:
            self._guide = guide

    def model(self, units: torch.Tensor | None = None, /, **args: Any):
        """Run the program on its bound arguments, conditioned on any ``observed=`` values."""
        observed = {
            k[len(OBSERVED_PREFIX) :]: args.pop(k) for k in list(args) if k.startswith(OBSERVED_PREFIX)
        }
        with self.parameters_served():
            if observed:
                return poutine.condition(self.fn, data=observed)(**args)
            return self.fn(**args)

    def guide(self, units: torch.Tensor | None = None, /, **args: Any):
        """The user's guide (empty without one)."""
        guide = self.user_guide
        if guide is None:
            return None
        args = {k: v for k, v in args.items() if not k.startswith(OBSERVED_PREFIX)}
        with self.parameters_served():
            return guide(**args)

    def parameters_served(self) -> contextlib.AbstractContextManager:
        """Within this context ``pyro.param`` and ``pyro.module`` use the program's own parameters."""
        return LocalParams(self)

    # ------------------------------------------------------------ what it is
    @property
    def unit_plate(self) -> str | None:  # type: ignore[override]
        return None if self.structure is None else self.structure["plate"]

    @property
    def observed_sites(self) -> tuple[str, ...]:
        return () if self.structure is None else self.structure["observed"]

    @property
    def latent_sites(self) -> dict[str, dict]:
        """Unobserved sites by name: ``{"local": bool, "enumerated": bool, "support": ...}``."""
        return {} if self.structure is None else self.structure["latent"]

    @property
    def max_plate_nesting(self) -> int:
        return 0 if self.structure is None else self.structure["max_plate_nesting"]

    @property
    def has_local_latents(self) -> bool:  # type: ignore[override]
        return any(site["local"] for site in self.latent_sites.values())

    @property
    def guides_own_locals(self) -> bool:  # type: ignore[override]
        return self.user_guide is not None

    @property
    def is_bayesian(self) -> bool:
        """Whether the program has latent sites a posterior is over (enumerated ones are summed out)."""
        return any(not site["enumerated"] for site in self.latent_sites.values())

    @property
    def prior_names(self) -> list[str]:
        """Latent sites a posterior is over (globals and per-unit ones; enumerated ones are summed out)."""
        return [name for name, site in self.latent_sites.items() if not site["enumerated"]]

    @property
    def capabilities(self) -> set[str]:
        # The plug-in density per unit exists when nothing but enumerable latents stand between
        # the parameters and the data.
        return set() if self.is_bayesian else {"log_prob"}

    @property
    def param_names(self) -> list[str]:
        return list(self.point_estimates())

    def point_estimates(self) -> dict[str, torch.Tensor]:
        """The program's parameters, constrained, by Pyro's names (``pyro.module`` ones readable)."""
        with torch.no_grad():
            values = {readable_name(name): self._constrained(name).clone() for name in self.param_index}
            for role in ("story", "guide_module"):
                part = self._modules.get(role)
                if part is not None:
                    values.update(module_values(part))
        return values

    def network(self, name: str | None = None) -> torch.nn.Module:
        """A copy of the network registered as ``pyro.module(name, net)``, or of a ``PyroModule``
        program's submodule at the attribute path ``name`` (the whole module without a name), holding
        this program's (fitted) weights; the user's own network is never changed."""
        story = self._modules.get("story")
        if name not in self.networks:
            found = dict(story.named_modules()).get(name or "") if story is not None else None
            if found is None:
                known = sorted(self.networks) + ([n for n, _ in story.named_modules() if n] if story else [])
                raise OptionError(
                    f"Expected the name a pyro.module call gives its network, or a PyroModule's attribute "
                    f"path, one of {known or 'none'}, but got {name!r}."
                )
            return copy.deepcopy(found)  # a PyroModule program holds its fitted weights itself
        trained = copy.deepcopy(self.networks[name])
        with torch.no_grad():
            for path, param in trained.named_parameters():
                full = f"{name}{MODULE_DIVIDER}{path}"
                if full in self.param_index:
                    param.copy_(self.local_params[self.param_index[full]])
        return trained

    def _constrained(self, name: str) -> torch.Tensor:
        raw = self.local_params[self.param_index[name]]
        constraint = self.constraints[name]
        return (
            raw if constraint is dist.constraints.real else torch.distributions.transform_to(constraint)(raw)
        )

    def _new_param(self, name: str, init: torch.Tensor, constraint) -> None:
        self.constraints[name] = constraint
        self.param_index[name] = len(self.local_params)
        unconstrained = torch.distributions.transform_to(constraint).inv(init.detach())
        self.local_params.append(torch.nn.Parameter(unconstrained.clone()))

    def guide_draws(self, args: dict, num_samples: int) -> dict[str, torch.Tensor]:
        """Draws of the model's latent sites from the user's guide, ``{site: (S, ...)}``.

        Per-unit sites (a VAE's codes) make a draw as large as the data: ``S`` then shrinks so that
        the draws hold at most 10⁶ numbers (but never below 10 draws)."""
        wanted = {n for n, s in self.latent_sites.items() if not s["enumerated"]}
        num_samples = draw_count(self.latent_sites, wanted, num_samples)
        with torch.no_grad():
            draws = guide_samples(self, args, num_samples)
        return {k: v for k, v in draws.items() if k in wanted}

    # --------------------------------------------------------------- sampling
    def rsample(self, n: int) -> torch.Tensor:
        """``n`` draws of the observed site, differentiable in the parameters (adversarial fits)."""
        n = _check_count(n)
        site = self._only_observed_site("method='adversarial'")
        args = self.sampling_arguments(self.train_args, n)
        trace = poutine.trace(free(self)).get_trace(None, **args)
        value = trace.nodes[site]["value"]
        if "n" not in self.signature.parameters:  # the size came from the training arguments
            value = value[torch.randperm(value.shape[0])[:n]]
        return value

    def sample(self, n: int, **args: Any) -> torch.Tensor | dict[str, torch.Tensor]:
        """Draw from the program: with an ``n`` argument, ``n`` rows; otherwise ``n`` replicate
        data sets of the training arguments' size (or of ``args``, the observed ones left out), shape
        ``(n, *site_shape)`` per observed site."""
        n = _check_count(n)
        with torch.no_grad():
            return predictive_draws(self, n, self.bind_inputs(args) if args else None)

    def sampling_arguments(self, args: dict, n: int | None = None) -> dict[str, Any]:
        """The arguments to run the program forward: ``observed=`` values dropped, and with ``n``
        (where the program takes it) the observed arguments set to ``None``."""
        args = {k: v for k, v in args.items() if not k.startswith(OBSERVED_PREFIX)}
        if n is not None and "n" in self.signature.parameters:
            args["n"] = n
            for name in self.structure["observed_args"]:
                args[name] = None
        return args

    def _only_observed_site(self, purpose: str) -> str:
        observed = self.observed_sites
        if len(observed) != 1:
            raise MethodError(
                f"Expected a program with one observed site for {purpose}, but it has {list(observed)}."
            )
        return observed[0]

    def observed_values(self, args: dict) -> dict[str, torch.Tensor]:
        """The values the program observes on ``args``, by site."""
        trace = self._trace(args)
        return {site: trace.nodes[site]["value"].detach() for site in self.observed_sites}

    def training_rows(self, x: torch.Tensor, args: dict) -> torch.Tensor:
        """The observed values as data rows (what an adversarial critic sees)."""
        return self.observed_values(args)[self._only_observed_site("method='adversarial'")]

    def log_prob(self, units: torch.Tensor | None = None, /, **args: Any) -> torch.Tensor:
        """Plug-in log-likelihood per unit, summed over observed sites (enumerated latents summed out)."""
        return site_log_likelihood(self, args, None)[1][0]

    def draw_log_likelihood(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], covariates: dict | None = None
    ) -> torch.Tensor:
        """Per unit, summed over observed sites, per draw: ``(S, N)`` (``covariates``: the arguments)."""
        return site_log_likelihood(self, covariates or {}, draws)[1]

    def log_likelihood_by_site(
        self, x: torch.Tensor, draws: dict[str, torch.Tensor], covariates: dict | None = None
    ) -> dict[str, torch.Tensor]:
        """Each observed site ``(S, N)``, plus their per-unit sum ``"total"`` when there are several."""
        per_site, total = site_log_likelihood(self, covariates or {}, draws)
        return per_site if len(per_site) == 1 else {**per_site, TOTAL: total}

    def observed_data(self, x: torch.Tensor, covariates: dict | None = None) -> dict[str, torch.Tensor]:
        return self.observed_values(covariates or {})

    def predictive_sample(
        self, n: int, args: dict | None, draws: dict[str, torch.Tensor] | None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """``n`` predictive draws on ``args`` (default: the training ones), one per posterior draw."""
        return predictive_draws(self, n, args, draws)

    def predictive_sites(
        self, n: int, args: dict | None, draws: dict[str, torch.Tensor] | None, return_sites=None
    ) -> dict[str, torch.Tensor]:
        """``n`` forward runs on ``args`` (default: the training ones), one per posterior draw:
        ``{site: (n, *shape)}`` for the observed and deterministic sites, or ``return_sites``."""
        return predictive_sites(self, n, args, draws, return_sites=return_sites)

    @property
    def deterministic_sites(self) -> tuple[str, ...]:
        """``pyro.deterministic`` sites: values computed from the latents, never data or latents."""
        return () if self.structure is None else self.structure.get("deterministic", ())

    def deterministic_draws(
        self, draws: dict[str, torch.Tensor], covariates: dict | None = None
    ) -> dict[str, torch.Tensor]:
        """The deterministic sites at each posterior draw on the training data, ``{site: (S, ...)}``
        (what ``fit.posterior`` records beside the latents, as Pyro's ``Predictive`` does)."""
        return deterministic_draws(self, covariates or self.train_args, draws)

    def point_deterministic(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The deterministic sites on the training arguments at a point estimate (``values`` of the
        latent sites: a MAP fit's; parameters are the program's own), ``{site: value}``."""
        if not self.deterministic_sites:
            return {}
        latent = {k: v for k, v in values.items() if k in self.latent_sites}
        with torch.no_grad(), poutine.block():
            model = poutine.condition(self.model, data=latent)
            trace = poutine.trace(model).get_trace(None, **self.train_args)
        return {s: trace.nodes[s]["value"] for s in self.deterministic_sites if s in trace.nodes}

    def extra_repr(self) -> str:
        return f"{self._describe()}, observed={list(self.observed_sites)}, units={self.unit_plate!r}"


def _give_local_state(part: Any) -> None:
    """A user's ``PyroModule`` built while Pyro's ``module_local_params`` was off (the user's default)
    has no module-local parameter state; ppgen runs programs with the setting on, so each module gets
    an empty one, where its own ``PyroParam`` values then live."""
    if not isinstance(part, torch.nn.Module):
        part = getattr(part, "__self__", None)  # a bound method of a PyroModule (model.model)
        if not isinstance(part, torch.nn.Module):
            return
    for module in part.modules():
        context = getattr(module, "_pyro_context", None)
        if isinstance(module, PyroModule) and not hasattr(context, "param_state"):
            context.param_state = {"params": {}, "constraints": {}}
