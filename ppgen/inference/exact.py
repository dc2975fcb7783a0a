"""``exact``: closed-form MLE (``fit_exact``) or the exact conjugate posterior
(``conjugate_posterior``) — no iterations, no approximation."""

from __future__ import annotations

import time

import torch

from ppgen.core import GenerativeModel
from ppgen.errors import MethodError
from ppgen.inference.options import check_options
from ppgen.inference.posterior import inference_data
from ppgen.result import Fit

__all__ = ["Exact"]

_POSTERIOR_DRAWS = 4000


class Exact:
    name = "exact"
    options = {"seed", "num_draws"}

    def check(self, model: GenerativeModel) -> None:
        caps = model.capabilities
        if model.is_bayesian and "conjugate_posterior" not in caps:
            raise MethodError(
                f"Expected conjugate priors for method='exact', but {type(model).__name__}'s posterior has "
                "no closed form; use method='mcmc', 'svi' or 'map'."
            )
        if not model.is_bayesian and "fit_exact" not in caps:
            raise MethodError(
                f"Expected a model with a closed-form MLE for method='exact', but {type(model).__name__} "
                "has none."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if covariates:
            raise MethodError("Expected plain data for method='exact', but got covariates.")
        start = time.perf_counter()
        if model.is_bayesian:
            return self._posterior(model, x, options, start)
        # fit_exact returns the estimates; those named like PyroParams are set here, other
        # state (a KDE's bandwidth and training points) the model keeps itself.
        values = dict(model.fit_exact(x) or {})
        learned = {k: v for k, v in values.items() if k in model.param_names}
        if learned:
            model.set_params(**learned)
        fit = Fit(
            model=model,
            method=self.name,
            params={**values, **model.point_estimates()},
            history=[],
            converged=True,
            elapsed=time.perf_counter() - start,
            options=options,
            n_train=x.shape[0],
        )
        if "log_prob" in model.capabilities:
            with torch.no_grad():
                fit.train_log_lik = float(model.log_prob(x).sum())
        return fit

    def _posterior(self, model, x, options, start) -> Fit:
        post = model.conjugate_posterior(x)
        num = int(options.get("num_draws", _POSTERIOR_DRAWS))
        draws = {k: v.detach() for k, v in post.draw(num).items()}
        fit = Fit(
            model=model,
            method=self.name,
            params=post.mean(),
            draws=draws,
            exact_posterior=post,
            history=[],
            converged=True,
            options=options,
            n_train=x.shape[0],
        )
        by_chain = {k: v.unsqueeze(0) for k, v in draws.items()}
        fit.posterior = inference_data(model, x, by_chain, max_draws_for_loglik=500)
        fit.elapsed = time.perf_counter() - start
        return fit
