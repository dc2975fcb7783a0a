"""Gradient backends: ``mle`` (maximum likelihood), ``svi`` (ELBO) and ``map``.

All three run the shared loop of :mod:`ppgen.inference.loop` with a torch optimiser
and ``*_ELBO().differentiable_loss`` — not ``pyro.infer.SVI``, which fails with
module-local parameters (PYRO_NOTES 2).

``mle`` is SVI with the empty guide. For a story without latents the ELBO with the empty
guide *is* the log-likelihood, so when the model offers ``log_prob`` we optimise that
directly (same objective, verified in the tests) and skip Pyro's tracing overhead.
"""

from __future__ import annotations

import time
from typing import Any

import pyro
import pyro.infer.autoguide as autoguides
import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO

from ppgen.core import GenerativeModel, global_latent_sites, in_data_plate, untransformable_priors
from ppgen.errors import MethodError, OptionError
from ppgen.inference.loop import Minibatches, TrainConfig, train, training_mode
from ppgen.inference.validation import Validation, split_validation
from ppgen.results import Fit, check_options, inference_data

__all__ = ["MLE", "SVI", "MAP"]

GUIDES = ("model", "delta", "normal", "mvn", "laplace")
LOSSES = ("auto", "elbo", "enum", "iwae")
_TRAIN_KEYS = set(TrainConfig.__dataclass_fields__)
_POSTERIOR_DRAWS = 1000


def _train_config(options: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**{k: v for k, v in options.items() if k in _TRAIN_KEYS})


def _has_enumeration(model: GenerativeModel, x, covariates) -> bool:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model.model).get_trace(x, **covariates)
    return any(site["infer"].get("enumerate") for site in trace.nodes.values() if site["type"] == "sample")


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


class MLE:
    """Maximum likelihood by stochastic gradients (minibatches through the data plate)."""

    name = "mle"
    options = _TRAIN_KEYS | {"seed", "validation", "num_particles"}

    def check(self, model: GenerativeModel) -> None:
        _check_trainable(model, self.name)
        if model.is_bayesian and _is_program(model):
            model.check_transformable(self.name)  # its per-unit latents are integrated by the ELBO
            return
        if model.is_bayesian:
            raise MethodError(
                f"Expected a model without priors for method='mle', but {type(model).__name__} has priors "
                f"on {model.prior_names}; use method='map', 'svi' or 'mcmc' (latent sites need a guide or "
                "a posterior)."
            )
        # A model whose log_prob is a Monte Carlo estimate (VAE: IWAE) is not fitted through it.
        estimate = getattr(model, "log_prob_is_estimate", False)
        if getattr(model, "has_local_latents", False) and ("log_prob" not in model.capabilities or estimate):
            raise MethodError(
                f"Expected a model without local latents for method='mle', but {type(model).__name__} has "
                "them; use method='svi' (ELBO) or 'em'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        config = _train_config(options)
        if model.is_bayesian and _is_program(model):  # priors dropped, per-unit latents integrated
            from ppgen.inference.marginal import fit_marginal_mle

            return fit_marginal_mle(model, x, covariates, options)
        x, covariates, held = split_validation(model, x, covariates, options)
        batches = Minibatches(x, covariates, config.batch_size, options.get("seed"))
        n = x.shape[0]
        use_log_prob = "log_prob" in model.capabilities and not covariates
        # Enumerated discrete latents are summed out: TraceEnum with the empty guide is the likelihood.
        elbo = (
            TraceEnum_ELBO(max_plate_nesting=_plate_nesting(model, options))
            if _has_enumeration(model, x, covariates)
            else Trace_ELBO()
        )
        _check_minibatch(model, covariates, batches)

        def rows_loss(xb, cov, scale, n):
            if use_log_prob:
                return -model.log_prob(xb).sum() * scale / n
            with batches.scaled(scale, model.unit_plate):
                return elbo.differentiable_loss(model.model, model.guide, xb, **cov) / n

        track = _tracker(held, rows_loss, options, model)
        start = time.perf_counter()
        with training_mode(model):
            history, converged = train(
                lambda: rows_loss(*batches.next(), n),
                list(model.parameters()),
                config,
                desc="mle",
                batches=batches,
                validation=track,
            )
        return Fit(
            model=model,
            method=self.name,
            params=model.point_estimates(),
            history=history,
            converged=converged,
            elapsed=time.perf_counter() - start,
            options=options,
            covariates=covariates,
            n_train=n,
            extras=track.extras(held) if track is not None else {},
        )


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
        "validation",
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
        return self._fit(model, x, covariates, **options)

    def _fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        own_guide = getattr(model, "user_guide", None) is not None
        guide_name = options.get("guide", "normal" if model.is_bayesian and not own_guide else "model")
        loss_name = options.get("loss", "auto")
        if loss_name not in LOSSES:
            raise OptionError(f"Expected loss in {LOSSES}, but got {loss_name!r}.")
        if isinstance(guide_name, str) and guide_name not in GUIDES:
            raise OptionError(f"Expected guide in {GUIDES} or a callable, but got {guide_name!r}.")
        config = _train_config(options)
        x, covariates, held = split_validation(model, x, covariates, options)
        globals_ = global_latent_sites(model, x, covariates)
        if guide_name == "model" and own_guide and callable(getattr(model, "check_guide", None)):
            model.check_guide(covariates)  # a user's guide must draw every latent of the program
        elif guide_name == "model" and globals_:
            raise OptionError(
                f"Expected a guide for the global latents {sorted(globals_)}, but got guide='model' "
                "(which covers local latents only); use guide='normal', 'mvn' or 'delta'."
            )
        enumerate_ = _has_enumeration(model, x, covariates)
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
            # The autoguide covers the globals; local latents belong to the model's own guide
            # (or are enumerated). A plain Pyro program without a guide gets them all covered.
            own_locals = model.guides_own_locals or own_guide

            def hidden(msg):
                enumerated = msg["infer"].get("enumerate") == "parallel"
                return (
                    msg["is_observed"] or enumerated or (own_locals and in_data_plate(msg, model.unit_plate))
                )

            blocked = poutine.block(model.model, hide_fn=hidden)
            cls = {
                "delta": autoguides.AutoDelta,
                "normal": autoguides.AutoNormal,
                "laplace": autoguides.AutoLaplaceApproximation,  # MAP, then a Gaussian from the Hessian
            }.get(guide_name, autoguides.AutoMultivariateNormal)
            # Start at the prior median (Pyro's AutoNormal default starts at 0 in the
            # unconstrained space, which for a prior centred far away costs thousands of steps).
            median = autoguides.init_to_median(num_samples=15)
            start = _init_values(options.get("init"), globals_)
            kwargs = {
                "init_loc_fn": autoguides.init_to_value(values=start, fallback=median) if start else median
            }
            if "init_scale" in options:
                kwargs["init_scale"] = options["init_scale"]
            if cls in (autoguides.AutoDelta, autoguides.AutoNormal):
                # Per-unit latents under minibatches: the guide's plate subsamples the batch's rows
                kwargs["create_plates"] = lambda *a, **k: _batch_plate(auto, model.unit_plate, batches)
            elif config.batch_size is not None and _local_latents(model, blocked, x, covariates):
                raise OptionError(
                    "Expected guide='normal' or 'delta' for batch_size= with per-unit latents "
                    f"({_local_latents(model, blocked, x, covariates)}): a joint Gaussian over them cannot "
                    "follow a minibatch; use guide='normal', or full batches."
                )
            auto = cls(blocked, **kwargs)
            auto = auto.to(x.dtype)

            def guide(*args, **kwargs):
                values = auto(*args, **kwargs)
                model.guide(*args, **kwargs)
                return values

        if options.get("init") is not None and auto is None:
            raise OptionError(
                "Expected init= only with an autoguide over global latents (a model with priors, "
                f"guide in {GUIDES[1:]}), but this fit has none; set the model's parameters instead "
                "(e.g. GaussianMixture.initialize)."
            )
        n = x.shape[0]
        if auto is not None:
            try:
                with torch.no_grad():
                    auto(x, **covariates)  # autoguides build their parameters lazily
            except NotImplementedError as err:  # e.g. a positive-definite support has no bijection
                raise MethodError(
                    f"Expected global latents whose support Pyro's autoguides can transform, but got: "
                    f"{err}; use method='exact' (conjugate) instead."
                ) from None
            except RuntimeError as err:
                if "no latent variables" not in str(err):
                    raise
                raise OptionError(
                    f"Expected latent sites for guide={guide_name!r}, but {type(model).__name__} has none "
                    "(nothing for a joint Gaussian to cover); use method='mle'."
                ) from None
        params = list(model.parameters()) + (list(auto.parameters()) if auto is not None else [])
        if isinstance(guide, torch.nn.Module) and guide is not auto:
            params += [p for p in guide.parameters() if all(p is not q for q in params)]

        def rows_loss(xb, cov, scale, n):
            if model_loss:
                return model.loss(xb, **cov) * scale / n
            with batches.scaled(scale, model.unit_plate):
                if loss_name == "iwae" and torch.is_grad_enabled():
                    return _renyi_loss(elbo, model.model, guide, xb, cov) / n
                if loss_name == "iwae":  # held-out rows: the bound's value, no gradients
                    return torch.tensor(elbo.loss(model.model, guide, xb, **cov)) / n
                return elbo.differentiable_loss(model.model, guide, xb, **cov) / n

        track = _tracker(held, rows_loss, options, model, auto, guide)
        start = time.perf_counter()
        with training_mode(model, auto, guide):
            history, converged = train(
                lambda: rows_loss(*batches.next(), n),
                params,
                config,
                desc=self.name,
                batches=batches,
                validation=track,
            )
        batches.indices = None  # the fitted guide describes every unit again
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
            extras=track.extras(held) if track is not None else {},
        )
        if auto is not None:
            if guide_name == "laplace":
                fit.guide = auto = _laplace(auto, model.model, x, covariates)
            _attach_guide_posterior(fit, auto, x, covariates, point=guide_name == "delta")
        elif own_guide and callable(getattr(model, "guide_draws", None)):
            _attach_draws(fit, model.guide_draws(covariates, _POSTERIOR_DRAWS), x, covariates)
        return fit


class MAP(SVI):
    """Maximum a posteriori: SVI with ``AutoDelta`` on a model with priors."""

    name = "map"
    options = _TRAIN_KEYS | {"seed", "loss", "max_plate_nesting", "init"}

    def check(self, model: GenerativeModel) -> None:
        if not model.is_bayesian:
            raise MethodError(
                f"Expected a model with priors for method='map', but {type(model).__name__} has none; "
                "use method='mle' (or give priors with ppgen.bayesian)."
            )

    def fit(self, model, x, covariates, **options):
        check_options(options, self.options, self.name)
        return self._fit(model, x, covariates, guide="delta", **options)


def _plate_nesting(model: GenerativeModel, options: dict) -> int:
    """``max_plate_nesting`` for TraceEnum: the option, else what the program's trace showed (at least 1)."""
    return options.get("max_plate_nesting", max(1, getattr(model, "max_plate_nesting", 1)))


def _batch_plate(auto, plate: str | None, batches: Minibatches) -> list:
    """The units' plate of an autoguide, subsampled to the rows of the current minibatch.

    The model sees the batch's rows as its whole plate (the arguments are sliced); the guide keeps a
    parameter per unit of the full data and picks the batch's (Pyro's ``PyroParam`` subsampling)."""
    frame = auto._prototype_frames.get(plate) if plate is not None else None
    if frame is None or batches.indices is None:
        return []
    return [pyro.plate(plate, batches.n, dim=frame.dim, subsample=batches.indices)]


def _local_latents(model: GenerativeModel, blocked, x: torch.Tensor, covariates: dict) -> list[str]:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(blocked).get_trace(x, **covariates)
    return sorted(
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and in_data_plate(site, model.unit_plate)
    )


def _is_program(model: GenerativeModel) -> bool:
    return callable(getattr(model, "bind", None))


def _check_minibatch(model: GenerativeModel, covariates: dict, batches: Minibatches) -> None:
    """A program minibatches only when its units' plate follows the sliced arguments."""
    if batches.batch_size is None or not callable(getattr(model, "check_minibatch", None)):
        return
    model.check_minibatch(covariates, batches.batch_size)


def _init_values(init, sites: dict) -> dict[str, torch.Tensor]:
    """``init=`` as ``{site: tensor}`` for the global latents, checked against their shapes and supports."""
    if init is None:
        return {}
    if isinstance(init, Fit):
        init = {k: v for k, v in init.params.items() if k in sites}
        if not init:
            raise OptionError(
                f"Expected a fit with point estimates for {sorted(sites)} as init, but it has none."
            )
    if not isinstance(init, dict):
        raise OptionError(f"Expected init as a dict {{site: value}} or a Fit, but got {type(init).__name__}.")
    unknown = sorted(set(init) - set(sites))
    if unknown:
        raise OptionError(f"Expected init values for the global latents {sorted(sites)}, but got {unknown}.")
    values = {}
    for name, value in init.items():
        fn = sites[name]["fn"]
        shape = tuple(sites[name]["value"].shape)
        value = torch.as_tensor(value).detach().to(sites[name]["value"].dtype)
        if tuple(value.shape) != shape:
            raise OptionError(f"Expected init[{name!r}] of shape {shape}, but got {tuple(value.shape)}.")
        if not bool(torch.isfinite(value).all()) or not bool(fn.support.check(value).all()):
            raise OptionError(f"Expected init[{name!r}] inside the support of its prior ({fn.support}).")
        values[name] = value
    return values


def _renyi_loss(elbo: RenyiELBO, model, guide, x, covariates) -> torch.Tensor:
    """RenyiELBO exposes no ``differentiable_loss``; take its surrogate through autograd."""
    loss = elbo.loss_and_grads(model, guide, x, **covariates)
    return _ZeroGradLoss.apply(torch.tensor(loss))


class _ZeroGradLoss(torch.autograd.Function):
    """Carries an already-backpropagated loss value through the loop's ``backward()``."""

    @staticmethod
    def forward(ctx, value):
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        return None


def _laplace(auto, story, x, covariates):
    """Pyro's ``laplace_approximation`` with the Hessian of the *whole* story's log joint.

    (Pyro's own differentiates ``auto.model``, which here hides the observed sites so the autoguide
    covers latents only; its Hessian would be the prior's.) ``H = -∇² log p(y, z)`` at the MAP in the
    unconstrained space; the Gaussian ``N(ẑ, H⁻¹)`` is returned as an ``AutoMultivariateNormal``."""
    from pyro.ops.hessian import hessian

    guide_trace = poutine.trace(auto).get_trace(x, **covariates)
    model_trace = poutine.trace(poutine.replay(story, trace=guide_trace)).get_trace(x, **covariates)
    loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
    curvature = hessian(loss, auto.loc)
    with torch.no_grad():
        cov = torch.linalg.inv(curvature)
        scale = cov.diagonal().sqrt()
        if not torch.isfinite(scale).all():
            raise MethodError(
                "Expected a MAP with a positive-definite Hessian for guide='laplace', but the curvature "
                "there is singular or negative; the posterior is not locally Gaussian — use guide='mvn'."
            )
        correlation_tril = torch.linalg.cholesky(cov / scale[:, None] / scale[None, :])
    gaussian = autoguides.AutoMultivariateNormal(auto.model)
    gaussian._setup_prototype(x, **covariates)
    del gaussian.loc, gaussian.scale, gaussian.scale_tril
    gaussian.register_buffer("loc", auto.loc.detach().clone())
    gaussian.register_buffer("scale", scale)
    gaussian.register_buffer("scale_tril", correlation_tril)
    return gaussian.to(x.dtype)


def _attach_guide_posterior(fit: Fit, auto, x, covariates, point: bool) -> None:
    """Posterior draws (and InferenceData) from a fitted autoguide."""
    with torch.no_grad():
        if point:
            fit.draws = {k: v.detach().unsqueeze(0) for k, v in auto.median(x, **covariates).items()}
            fit.params.update({k: v[0] for k, v in fit.draws.items()})
            return
        samples = [auto(x, **covariates) for _ in range(_POSTERIOR_DRAWS)]
    _attach_draws(fit, {k: torch.stack([s[k] for s in samples]).detach() for k in samples[0]}, x, covariates)


def _attach_draws(fit: Fit, draws: dict[str, torch.Tensor], x, covariates) -> None:
    """Posterior draws ``{site: (S, ...)}``: ``fit.draws``, their means in ``fit.params``, InferenceData."""
    if not draws:
        return
    fit.draws = draws
    fit.params.update({k: v.mean(0) for k, v in draws.items()})
    by_chain = {k: v.unsqueeze(0) for k, v in draws.items()}
    fit.posterior = inference_data(fit.model, x, by_chain, covariates)
