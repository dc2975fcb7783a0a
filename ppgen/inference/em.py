"""``em``: maximum likelihood by expectation–maximisation, for every model that offers
``e_step(x) -> (stats, loglik (N,))`` and ``m_step(x, stats)``.

One loop (as scikit-learn's ``BaseMixture.fit``): initialise, then alternate an E-step
(posterior of the local latents, e.g. responsibilities) and a closed-form M-step until
the mean log-likelihood changes by less than ``tol``; ``n_init`` restarts keep the best.
EM never decreases what its M-step maximises, so a decrease beyond round-off is a bug and
raises. That is the log-likelihood for an exact M-step; a model whose M-step is regularised
(``reg_covar``) offers ``em_penalty(stats)`` and the check is the exact inequality
``L(theta_new) + P(theta_new; stats) >= L(theta_old) + P(theta_old; stats)``. The history
reports the plain log-likelihood either way.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings

import torch
from tqdm.auto import tqdm

from ppgen.core import GenerativeModel
from ppgen.errors import ConvergenceWarning, DataError, MethodError, OptionError, PpgenError
from ppgen.inference.options import check_options
from ppgen.result import Fit

__all__ = ["EM", "EMDecreaseError"]


class EMDecreaseError(PpgenError, ArithmeticError):
    """EM's objective (log-likelihood plus the M-step's penalty) went down by more than round-off:
    an E/M-step is wrong."""


#: Below this many data values the loop runs on one thread: thread hand-off costs more than
#: the work (and on a loaded machine spinning threads make it tens of times slower).
_SMALL = 1 << 18

#: A decrease of the mean log-likelihood larger than this (relative to 1 + |loglik|) raises.
_ROUNDOFF = {torch.float64: 1e-9, torch.float32: 1e-4}


class EM:
    """The EM backend.

    Options:
        max_iter: most EM iterations per restart (default 100).
        tol: stop when the mean log-likelihood changes by less than this (default 1e-3).
        n_init: restarts from different initialisations; the best log-likelihood is kept.
        init: ``"kmeans++"``, ``"random"``, ``"given"`` (start from the model's current
            parameters) or another name the model lists in ``init_methods``; default: the
            model's ``default_init``.
        device: ``"cpu"``, ``"cuda"``... where the data and model live during the fit.
        progress: show a tqdm bar (default True).
        seed: seeds the initialisations (restart ``r`` uses ``seed + r``).
    """

    name = "em"
    options = {"max_iter", "tol", "n_init", "init", "device", "progress", "seed"}

    def check(self, model: GenerativeModel) -> None:
        caps = model.capabilities
        if "e_step" not in caps or "m_step" not in caps:
            raise MethodError(
                f"Expected a model with e_step/m_step for method='em', but {type(model).__name__} has "
                "no closed-form EM updates."
            )
        if model.is_bayesian:
            raise MethodError(
                f"Expected a model without priors for method='em' (EM finds the MLE), but "
                f"{type(model).__name__} has priors on {model.prior_names}; use method='mcmc' or 'map'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if covariates:
            raise MethodError("Expected plain data for method='em', but got covariates.")
        if not torch.isfinite((x.double() ** 2).sum()):
            raise DataError(
                "Expected data whose squared distances are finite (|x| below ~1e150), but got values so "
                "large that they overflow; standardise the data first."
            )
        max_iter = options.get("max_iter", 100)
        tol = options.get("tol", 1e-3)
        n_init = options.get("n_init", 1)
        init = options.get("init", getattr(model, "default_init", "given"))
        for key, value in (("max_iter", max_iter), ("n_init", n_init)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(f"Expected {key} to be a positive integer, but got {value!r}.")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise OptionError(f"Expected tol >= 0, but got {tol!r}.")
        allowed = tuple(getattr(model, "init_methods", ("given",)))
        if init not in allowed:
            raise OptionError(f"Expected init in {allowed} for {type(model).__name__}, but got {init!r}.")
        if init == "given" and n_init > 1:
            raise OptionError("Expected n_init=1 with init='given' (every restart would be identical).")
        k = getattr(model, "n_components", None)
        if k is not None and x.shape[0] < k:
            raise DataError(
                f"Expected n_samples >= n_components, but got {x.shape[0]} < {k}; use fewer components."
            )
        device = options.get("device")
        if device is not None:
            x, model = x.to(device), model.to(device)
        seed = int(options.get("seed") or 0)
        progress = bool(options.get("progress", True))

        start = time.perf_counter()
        best = None
        with _threads_for(x):
            for restart in range(n_init):
                if init != "given":
                    model.initialize(x, init=init, seed=seed + restart)
                history, converged = self._run(model, x, max_iter, tol, progress, restart, n_init)
                if best is None or history[-1] > best[1][-1]:
                    best = (model.point_estimates(), history, converged, restart)
        params, history, converged, restart = best
        model.set_params(**params)
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={max_iter} iterations (last change of the mean "
                f"log-likelihood {history[-1] - history[-2]:.3g} > tol={tol:g}); increase max_iter, "
                "loosen tol, standardise the data or try init='kmeans++'.",
                ConvergenceWarning,
                stacklevel=3,
            )
        fit = Fit(
            model=model,
            method=self.name,
            params=model.point_estimates(),
            history=history,
            converged=converged,
            elapsed=time.perf_counter() - start,
            options=options,
            n_train=x.shape[0],
            train_log_lik=history[-1] * x.shape[0],
        )
        fit.extras.update(n_iter=len(history) - 1, best_restart=restart, init=init)
        return fit

    @staticmethod
    def _run(model, x, max_iter, tol, progress, restart, n_init) -> tuple[list[float], bool]:
        """One EM run; history[t] is the mean log-likelihood after t M-steps."""
        slack = _ROUNDOFF.get(x.dtype, 1e-4)
        penalty = getattr(model, "em_penalty", None)
        rounding = _moment_rounding(model, x)
        # A model may run EM on sufficient statistics (one pass, no (N, K) responsibilities).
        moments = getattr(model, "moments_apply", None)
        if callable(moments) and moments(x):
            data = model.moments_data(x)  # e.g. centred and transposed once, not per iteration

            def e_step(x):  # statistics while they are accurate, responsibilities otherwise
                return model.e_step_moments(data) if model.moments_accurate(data) else model.e_step(x)

            def m_step(stats):
                return model.m_step_moments(stats) if hasattr(stats, "nk") else model.m_step(x, stats)

        else:
            e_step, m_step = model.e_step, lambda stats: model.m_step(x, stats)
        history: list[float] = []
        # (before, after): L(theta_t) + P(theta_t; stats_t), and P(theta_{t+1}; stats_t).
        objective = (math.nan, 0.0)
        converged = False
        desc = "em" if n_init == 1 else f"em {restart + 1}/{n_init}"
        with torch.no_grad():
            bar = tqdm(range(max_iter), desc=desc, disable=not progress, leave=False)
            for step in bar:
                stats, loglik = e_step(x)
                history.append(_mean(loglik, step))
                _check_increase(objective[0], history[-1] + objective[1], step, slack, rounding())
                before = history[-1] + (penalty(stats) if penalty else 0.0)
                m_step(stats)
                objective = (before, penalty(stats) if penalty else 0.0)
                del stats, loglik  # free (N, K) before the next E-step allocates its own
                bar.set_postfix(loglik=f"{history[-1]:.6g}")
                if step > 0 and abs(history[-1] - history[-2]) < tol:
                    converged = True
                    break
            bar.close()
            _, loglik = e_step(x)  # the log-likelihood of the final parameters
            history.append(_mean(loglik, len(history)))
            _check_increase(objective[0], history[-1] + objective[1], len(history) - 1, slack, rounding())
        return history, converged


@contextlib.contextmanager
def _threads_for(x: torch.Tensor):
    """Run small CPU problems single-threaded; restore the thread count afterwards."""
    if x.device.type != "cpu" or x.numel() >= _SMALL:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mean(loglik: torch.Tensor, step: int) -> float:
    value = float(loglik.mean())
    if not math.isfinite(value):
        raise DataError(
            f"Expected a finite log-likelihood, but got {value} at EM iteration {step}; the data has "
            "points no component can explain (e.g. a binary feature never seen on) — check the data, "
            "raise the model's regularisation (reg_covar, min_prob) or standardise."
        )
    return value


def _moment_rounding(model, x: torch.Tensor):
    """The objective's round-off from a Gaussian M-step's second moments, as a function of the
    current parameters (0 for models without Gaussian components).

    Variances come from moments about the data mean, ``S = E[(x - x̄)²] - (μ - x̄)²``: its absolute
    error is about ``eps·R²`` (``R`` the data's largest distance from its mean), so for a component
    whose variance ``σ²`` is tiny (collapsed onto repeated points, ``σ² ≈ reg_covar``) the objective
    carries a relative error near ``d·eps·R²/σ²``, well above float64's ``1e-9`` slack."""
    smallest = getattr(model, "em_min_variance", None)
    if smallest is None:
        return lambda: 0.0
    spread = float((x - x.mean(0)).square().sum(-1).max())
    eps = torch.finfo(x.dtype).eps
    dim = x.shape[-1] if x.ndim > 1 else 1
    return lambda: 10 * dim * eps * spread / max(smallest(), torch.finfo(x.dtype).tiny)


def _check_increase(before: float, after: float, step: int, slack: float, rounding: float = 0.0) -> None:
    """Raise when the M-step's objective fell by more than round-off (``before`` NaN: first step)."""
    if after < before - max(slack * (1 + abs(before)), rounding):
        raise EMDecreaseError(
            f"Expected the EM objective (mean log-likelihood plus the M-step's penalty) never to "
            f"decrease, but it fell from {before:.12g} to {after:.12g} at iteration {step}; the model's "
            "e_step/m_step are inconsistent — please report this with the data."
        )
