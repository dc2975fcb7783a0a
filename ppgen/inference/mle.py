"""``method="mle"`` of a model without priors: its own parameters by stochastic gradients (a program
with priors goes to :mod:`ppgen.inference.marginal`, empirical Bayes).

A program's small set of parameters (a GLM's, a mixture's) is finished by L-BFGS on the full-data
objective and gets standard errors from the observed information, as statsmodels reports them.
"""

from __future__ import annotations

import time

import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

from ppgen.core import GenerativeModel, is_program
from ppgen.errors import MethodError, OptionError
from ppgen.inference.compiled import CompiledLoss
from ppgen.inference.direct import direct_total_log_prob
from ppgen.inference.loop import TrainConfig, train, training_mode
from ppgen.inference.marginal import fit_marginal_mle
from ppgen.inference.minibatches import Minibatches
from ppgen.inference.options import check_options
from ppgen.inference.polish import finish_point_fit, polishable, polishes
from ppgen.inference.restarts import best_of_starts
from ppgen.inference.svi import (
    _TRAIN_KEYS,
    _check_minibatch,
    _check_trainable,
    _compile,
    _has_enumeration,
    _plate_nesting,
    _tracker,
)
from ppgen.inference.validation import split_validation
from ppgen.result import Fit

__all__ = ["MLE"]


class MLE:
    """Maximum likelihood by stochastic gradients (minibatches through the data plate)."""

    name = "mle"
    options = _TRAIN_KEYS | {"seed", "validation", "num_particles", "compile", "init", "n_init", "polish"}

    def check(self, model: GenerativeModel) -> None:
        _check_trainable(model, self.name)
        if model.is_bayesian and is_program(model):
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
        if model.is_bayesian and is_program(model):  # priors dropped, per-unit latents integrated
            return best_of_starts(
                lambda m, o: fit_marginal_mle(m, x, covariates, o), model, x, covariates, options
            )
        if options.get("init") is not None or options.get("n_init", 1) != 1:
            raise OptionError(
                f"Expected init= and n_init= only for a program with priors (its global latents start "
                f"there), but {type(model).__name__} fits its own parameters; set them on the model "
                "(e.g. GaussianMixture.initialize), or use method='em' for a mixture's restarts."
            )
        if "polish" in options and not is_program(model):
            raise OptionError(
                f"Expected polish= only for a Pyro program, but {type(model).__name__} is a built-in model "
                "(trained by its own loss); drop polish=."
            )
        config = TrainConfig.from_options(options)
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

        total_log_prob = direct_total_log_prob(model) if use_log_prob else None

        def rows_loss(xb, cov, scale, n):
            if use_log_prob:
                return total_log_prob(xb) * (-scale / n)
            with batches.scaled(scale, model.unit_plate):
                return elbo.differentiable_loss(model.model, model.guide, xb, **cov) / n

        track = _tracker(held, rows_loss, options, model)
        params = list(model.parameters())
        step_loss = CompiledLoss(rows_loss, params, batches, _compile(options, not use_log_prob))
        start = time.perf_counter()
        with training_mode(model):
            history, converged = train(
                lambda: step_loss(*batches.next(), n),
                params,
                config,
                desc="mle",
                batches=batches,
                validation=track,
            )
            # a program's handful of parameters (a GLM's): the exact optimum and its standard errors
            history, converged, finish = finish_point_fit(
                track is None
                and polishes(options)
                and config.finished(history, converged)
                and polishable("model", params, is_program(model)),
                lambda: rows_loss(x, covariates, batches.weight, n),
                params,
                history,
                converged,
                (),
                model.point_estimates,
                n,
                method="mle fit",
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
            extras={
                **(track.extras(held) if track is not None else {}),
                "compiled": step_loss.state,
                **finish,
                **config.stopping(history),
            },
        )
