"""Gradient backends: ``svi`` (ELBO) and ``map`` (``mle`` in :mod:`ppgen.inference.mle`).

All three run the shared loop of :mod:`ppgen.inference.loop` with a torch optimiser
and ``*_ELBO().differentiable_loss`` — not ``pyro.infer.SVI``, which fails with
module-local parameters (PYRO_NOTES 2).

``mle`` is SVI with the empty guide. For a story without latents the ELBO with the empty
guide *is* the log-likelihood, so when the model offers ``log_prob`` we optimise that
directly (same objective, verified in the tests) and skip Pyro's tracing overhead.
"""

from __future__ import annotations

import time

import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO

from ppgen.core import GenerativeModel, global_latent_sites, is_program, untransformable_priors
from ppgen.errors import MethodError, OptionError
from ppgen.inference.autoguide import (
    POSTERIOR_DRAWS,
    attach_draws,
    attach_guide_posterior,
    build_autoguide,
    build_parameters,
    laplace,
    start_leaves,
)
from ppgen.inference.compiled import CompiledLoss
from ppgen.inference.loop import TrainConfig, train, training_mode
from ppgen.inference.minibatches import Minibatches
from ppgen.inference.options import check_options
from ppgen.inference.polish import finish_point_fit, polishable, polishes
from ppgen.inference.posterior import kept_after_training
from ppgen.inference.renyi import renyi_loss
from ppgen.inference.restarts import best_of_starts, feasible_start
from ppgen.inference.standard_errors import estimates_of
from ppgen.inference.validation import Validation, split_validation
from ppgen.result import Fit

__all__ = ["SVI", "MAP"]

GUIDES = ("model", "delta", "normal", "mvn", "laplace")
LOSSES = ("auto", "elbo", "enum", "iwae")
_TRAIN_KEYS = set(TrainConfig.__dataclass_fields__)


def _has_enumeration(model: GenerativeModel, x, covariates, guide=None) -> bool:
    """A site marked for enumeration in the model, or in the user's guide (Pyro's ss_vae_M2.py passes
    ``config_enumerate(guide)``: the guide's ``y`` is summed out, which takes ``TraceEnum_ELBO``)."""
    programs = [model.model] + ([guide] if guide is not None else [])
    with torch.no_grad(), poutine.block():
        traces = [poutine.trace(program).get_trace(x, **covariates) for program in programs]
    return any(
        site["infer"].get("enumerate")
        for trace in traces
        for site in trace.nodes.values()
        if site["type"] == "sample"
    )


def _check_trainable(model: GenerativeModel, method: str) -> None:
    density_free = getattr(model, "density_free_methods", None)
    if density_free is not None and method not in density_free:
        # An implicit model's story has no density for x (x = g(z)): an ELBO with an empty guide
        # would train on nonsense while only warning "Found vars in model but not guide".
        raise MethodError(
            f"Expected an explicit model for method={method!r}, but {type(model).__name__} is implicit "
            f"(a sampler x = g(z) without a density); use method in {list(density_free)}."
        )
    if not model.is_bayesian and not any(True for _ in model.parameters()):
        raise MethodError(
            f"Expected a model with parameters to optimise for method={method!r}, but "
            f"{type(model).__name__} has none."
        )


def _compile(options: dict, traceable: bool) -> str | None:
    """None to trace the loss (the default for Pyro ELBOs), else why not (``fit.extras["compiled"]``)."""
    value = options.get("compile", True)
    if not isinstance(value, bool):
        raise OptionError(f"Expected compile=True or False, but got {value!r}.")
    if not value:
        return "off (compile=False)"
    return None if traceable else "not needed (the model's own log_prob or loss, no Pyro ELBO)"


def _tracker(held, rows_loss, options: dict, *modules) -> Validation | None:
    """The loop's early-stopping state on the held-out rows (``rows_loss`` at scale 1), or None."""
    if held is None:
        return None
    score = lambda: rows_loss(held.x, held.covariates, 1.0, held.n)  # noqa: E731
    return Validation(score, seed=options.get("seed") or 0, modules=list(modules))


class SVI:
    """Variational inference: maximise the ELBO over model parameters and a guide.

    ``guide``: ``"model"`` (the model's own guide; local latents only), ``"delta"``,
    ``"normal"``, ``"mvn"`` (Pyro autoguides over the *global* latents, combined with the
    model's own guide for local ones), or a callable guide.
    ``loss``: ``"auto"`` (TraceEnum when the story marks discrete sites for enumeration; the
    model's own closed-form ``loss(x)`` when it offers one and ``guide="model"``),
    ``"elbo"``, ``"enum"``, ``"iwae"`` (importance-weighted bound, ``num_particles``).
    ``init``: where an autoguide starts, ``{site: value}`` or a ``Fit`` (its point estimates,
    e.g. an EM or MLE fit of the same model); sites not given start at the prior median.
    Mixtures need it: from the prior median every component starts alike and never separates.
    """

    name = "svi"
    options = _TRAIN_KEYS | {
        "seed",
        "guide",
        "loss",
        "num_particles",
        "max_plate_nesting",
        "init_scale",
        "init",
        "n_init",
        "polish",
        "validation",
        "compile",
    }

    def check(self, model: GenerativeModel) -> None:
        _check_trainable(model, self.name)
        bad = untransformable_priors(model)
        if bad:
            raise MethodError(
                f"Expected global latents that Pyro's Normal autoguides can transform, but {sorted(bad)} "
                f"have supports without a bijection ({list(bad.values())}); use method='exact' or 'map'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        return self._starts(model, x, covariates, options)

    def _starts(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, options: dict) -> Fit:
        """``n_init`` restarts; exchangeable globals start at data-driven points (inference/restarts.py)."""
        guide_name = _guide_name(model, options)
        automatic = model.is_bayesian and isinstance(guide_name, str) and guide_name != "model"
        if options.get("n_init", 1) != 1 and not automatic and not is_program(model):
            raise OptionError(
                f"Expected n_init= only for a program or a model with priors and an autoguide, but "
                f"{type(model).__name__} with guide={guide_name!r} starts from its own parameters; "
                "set them on the model instead."
            )
        return best_of_starts(
            lambda m, o: self._fit(m, x, covariates, **o), model, x, covariates, options, automatic=automatic
        )

    def _fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        own_guide = getattr(model, "user_guide", None) is not None
        guide_name = _guide_name(model, options)
        loss_name = options.get("loss", "auto")
        if loss_name not in LOSSES:
            raise OptionError(f"Expected loss in {LOSSES}, but got {loss_name!r}.")
        if isinstance(guide_name, str) and guide_name not in GUIDES:
            raise OptionError(f"Expected guide in {GUIDES} or a callable, but got {guide_name!r}.")
        config = TrainConfig.from_options(options)
        x, covariates, held = split_validation(model, x, covariates, options)
        globals_ = global_latent_sites(model, x, covariates)
        if guide_name == "model" and own_guide and callable(getattr(model, "check_guide", None)):
            model.check_guide(covariates)  # a user's guide must draw every latent of the program
        elif guide_name == "model" and globals_:
            raise OptionError(
                f"Expected a guide for the global latents {sorted(globals_)}, but got guide='model' "
                "(which covers local latents only); use guide='normal', 'mvn' or 'delta'."
            )
        user_guide = model.guide if guide_name == "model" and own_guide else None
        enumerate_ = _has_enumeration(model, x, covariates, user_guide)
        # A model may offer ``loss(x, **covariates)``: the negative ELBO of its own guide with
        # closed-form terms (same objective, no tracing). "auto" uses it; loss="elbo" forces Trace_ELBO.
        model_loss = (
            loss_name == "auto"
            and guide_name == "model"
            and not enumerate_
            and callable(getattr(model, "loss", None))
        )
        if loss_name == "auto":
            loss_name = "enum" if enumerate_ else "elbo"
        plates = _plate_nesting(model, options)
        elbo = {
            "elbo": lambda: Trace_ELBO(num_particles=options.get("num_particles", 1)),
            "enum": lambda: TraceEnum_ELBO(max_plate_nesting=plates),
            "iwae": lambda: RenyiELBO(alpha=0.0, num_particles=options.get("num_particles", 8)),
        }[loss_name]()

        batches = Minibatches(x, covariates, config.batch_size, options.get("seed"))
        _check_minibatch(model, covariates, batches)
        auto = None
        if callable(guide_name):
            guide = guide_name
        elif guide_name == "model":
            guide = model.guide
        else:
            auto, guide = build_autoguide(
                model, guide_name, own_guide, globals_, options, batches, x, covariates
            )

        if options.get("init") is not None and auto is None:
            raise OptionError(
                "Expected init= only with an autoguide over global latents (a model with priors, "
                f"guide in {GUIDES[1:]}), but this fit has none; set the model's parameters instead "
                "(e.g. GaussianMixture.initialize)."
            )
        n = x.shape[0]
        if auto is not None:
            build_parameters(auto, model, guide_name, x, covariates)
        params = list(model.parameters()) + (list(auto.parameters()) if auto is not None else [])
        if isinstance(guide, torch.nn.Module) and guide is not auto:
            params += [p for p in guide.parameters() if all(p is not q for q in params)]

        def rows_loss(xb, cov, scale, n):
            if model_loss:
                return model.loss(xb, **cov) * scale / n
            with batches.scaled(scale, model.unit_plate):
                if loss_name == "iwae" and torch.is_grad_enabled():
                    return renyi_loss(elbo, model.model, guide, xb, cov) / n
                if loss_name == "iwae":  # held-out rows: the bound's value, no gradients
                    return torch.tensor(elbo.loss(model.model, guide, xb, **cov)) / n
                return elbo.differentiable_loss(model.model, guide, xb, **cov) / n

        def whole_loss():  # every unit at once, uncompiled: the start's check and the Hessian's
            return rows_loss(x, covariates, batches.weight, n)

        redraws = 0
        if auto is not None and options.get("init") is None:
            with training_mode(model, auto, guide):
                redraws = feasible_start(whole_loss, start_leaves(auto), options.get("seed"))
        track = _tracker(held, rows_loss, options, model, auto, guide)
        traceable = not model_loss and loss_name in ("elbo", "enum")
        step_loss = CompiledLoss(rows_loss, params, batches, _compile(options, traceable))
        start = time.perf_counter()
        with training_mode(model, auto, guide):
            history, converged = train(
                lambda: step_loss(*batches.next(), n),
                params,
                config,
                desc=self.name,
                batches=batches,
                validation=track,
            )
        batches.indices = None  # the fitted guide describes every unit again
        stopping = config.stopping(history)
        history, converged, finish = finish_point_fit(
            polishes(options)
            and polishable(guide_name, params, is_program(model))
            and config.finished(history, converged)
            and track is None
            and traceable,
            lambda: step_loss(x, covariates, batches.weight, n),
            params,
            history,
            converged,
            (model, auto, guide),
            estimates_of(model, auto, x, covariates),
            n,
            exact_loss=whole_loss,
            method=f"{self.name} fit",
            latents=list(auto.parameters()) if auto is not None else (),
        )
        elapsed = time.perf_counter() - start
        fit = Fit(
            model=model,
            method=self.name,
            params=model.point_estimates(),
            history=history,
            converged=converged,
            elapsed=elapsed,
            options=options,
            guide=auto if auto is not None else guide,
            covariates=covariates,
            n_train=n,
            extras={
                **(track.extras(held) if track is not None else {}),
                "compiled": step_loss.state,
                **({"start_redraws": redraws} if redraws else {}),
                **finish,
                **stopping,
            },
        )
        if auto is not None:
            if guide_name == "laplace":
                fit.guide = auto = laplace(auto, model.model, x, covariates)
            with kept_after_training("the posterior draws of the fitted guide"):
                attach_guide_posterior(fit, auto, x, covariates, point=guide_name == "delta")
        elif own_guide and callable(getattr(model, "guide_draws", None)):
            with kept_after_training("the posterior draws of the fitted guide"):
                attach_draws(fit, model.guide_draws(covariates, POSTERIOR_DRAWS), x, covariates)
        return fit


class MAP(SVI):
    """Maximum a posteriori: SVI with ``AutoDelta`` on a model with priors."""

    name = "map"
    options = _TRAIN_KEYS | {"seed", "loss", "max_plate_nesting", "init", "n_init", "polish"}

    def check(self, model: GenerativeModel) -> None:
        if not model.is_bayesian:
            raise MethodError(
                f"Expected a model with priors for method='map', but {type(model).__name__} has none; "
                "use method='mle' (or give priors with ppgen.bayesian)."
            )

    def fit(self, model, x, covariates, **options):
        check_options(options, self.options, self.name)
        return self._starts(model, x, covariates, {**options, "guide": "delta"})


def _guide_name(model: GenerativeModel, options: dict):
    """``guide=``, else ``"normal"`` for a model with priors and no guide of its own, else ``"model"``."""
    own_guide = getattr(model, "user_guide", None) is not None
    return options.get("guide", "normal" if model.is_bayesian and not own_guide else "model")


def _plate_nesting(model: GenerativeModel, options: dict) -> int:
    """``max_plate_nesting`` for TraceEnum: the option, else what the program's trace showed (at least 1)."""
    return options.get("max_plate_nesting", max(1, getattr(model, "max_plate_nesting", 1)))


def _check_minibatch(model: GenerativeModel, covariates: dict, batches: Minibatches) -> None:
    """A program minibatches only when its units' plate follows the sliced arguments."""
    if batches.batch_size is None or not callable(getattr(model, "check_minibatch", None)):
        return
    model.check_minibatch(covariates, batches.batch_size)
