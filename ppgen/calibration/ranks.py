"""One simulation: fit the simulated data by every method and rank the true values among each fit's draws.

SBC (Talts et al. 2018, https://arxiv.org/abs/1804.06788): if ``θ ~ p(θ)``, ``y ~ p(y | θ)`` and
``θ_1..θ_L ~ q(θ | y)``, the rank ``#{l : θ_l < θ}`` is uniform on ``0..L`` for every element of ``θ``
exactly when ``q`` is the posterior (averaged over the prior predictive). Draws are the fit's
posterior draws thinned evenly to ``L`` (NUTS, SVI, importance, an exact posterior), or ``L`` draws of
the normal approximation at a point fit's optimum (:mod:`ppgen.calibration.laplace`). Alongside the
rank each record keeps the fit's CDF at the truth (the central q-interval covers the truth when
``|cdf - 1/2| <= q/2``), the point estimate, the status (``ok``, ``not_converged`` (kept and counted),
``failed`` (counted, with the error)) and the fit's seconds.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ppgen.api import fit
from ppgen.calibration.laplace import LaplaceError, draws_and_cdf, normal_approximation
from ppgen.calibration.simulate import Simulator, derive_seed
from ppgen.errors import MethodError, OptionError

__all__ = ["simulate_and_rank", "method_key"]

#: Loggers whose per-fit diagnostics would flood a run of hundreds of fits (they are kept as statuses).
QUIET = ("ppgen", "pyro", "arviz")


def method_key(method: str | Callable) -> str:
    """The name a method is reported under: the string, or the callable's ``__name__``."""
    return method if isinstance(method, str) else getattr(method, "__name__", type(method).__name__)


def simulate_and_rank(
    simulator: Simulator,
    methods: dict[str, str | Callable],
    options: dict[str, dict],
    seed: int,
    index: int,
    num_draws: int,
) -> dict[str, Any]:
    """The record of simulation ``index``: the truth and, per method, ranks, CDFs, estimates, status."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread in every process: serial and parallel runs agree bit for bit
    levels = {name: logging.getLogger(name).level for name in QUIET}
    try:
        for name in QUIET:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            truth, data = simulator.draw(derive_seed(seed, index, 0))
            record = {"index": index, "truth": truth, "methods": {}}
            for key, method in methods.items():
                tag = zlib.crc32(key.encode())
                record["methods"][key] = _one_method(
                    simulator,
                    method,
                    options.get(key, {}),
                    data,
                    truth,
                    derive_seed(seed, index, tag),
                    num_draws,
                )
    finally:
        torch.set_num_threads(threads)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    return record


def _one_method(simulator, method, options, data, truth, seed, num_draws) -> dict[str, Any]:
    start = time.perf_counter()
    out: dict[str, Any] = {"status": "ok", "error": None}
    try:
        if callable(method):
            fitted = method(simulator.model, _as_user_data(data), seed)
        else:
            args, observed = data if isinstance(data, tuple) else (data, None)
            extra = {"observed": observed} if observed is not None else {}
            if method == "mcmc" and "num_chains" not in options:
                extra["num_chains"] = 1  # simulations already fill the cores: no chains forked inside
            fitted = fit(simulator.model, args, method=method, seed=seed, **options, **extra)
        generator = torch.Generator().manual_seed(seed)
        draws, cdf, estimate = _draws(fitted, simulator.globals, truth, num_draws, generator)
        if not getattr(fitted, "converged", True):
            out["status"] = "not_converged"
    except (MethodError, OptionError):
        raise  # the same for every simulation: the user's call is wrong, say so at once
    except (Exception, LaplaceError) as err:  # noqa: BLE001 - a failed fit is a result: counted, reported
        out.update(status="failed", error=f"{type(err).__name__}: {err}"[:500])
        out["traceback"] = traceback.format_exc(limit=3)[-1500:]
        out["seconds"] = time.perf_counter() - start
        return out
    out["ranks"], out["cdf"], out["estimate"] = {}, {}, {}
    for name, value in truth.items():
        true = torch.as_tensor(value, dtype=torch.float64)
        d = draws[name].reshape(num_draws, *true.shape).double()
        below, ties = (d < true).sum(0), (d == true).sum(0)
        # ties (a point mass) split at random, as Talts et al. do, so the ranks stay uniform
        broken = torch.floor(torch.rand(ties.shape, generator=generator, dtype=torch.float64) * (ties + 1))
        out["ranks"][name] = (below + broken.long()).numpy()
        out["cdf"][name] = np.asarray(cdf[name], dtype=np.float64).reshape(true.shape)
        out["estimate"][name] = np.asarray(estimate[name], dtype=np.float64).reshape(true.shape)
    out["seconds"] = time.perf_counter() - start
    return out


def _as_user_data(data):
    """The simulated data as a user's method callable takes them (``observed`` folded in, if any)."""
    if isinstance(data, tuple):
        args, observed = data
        return args if observed is None else {**args, "observed": observed}
    return data


def _draws(fitted, sites, truth, num_draws, generator):
    """``({site: (L, ...)}, {site: CDF at truth}, {site: point estimate})`` for a fit or a draws dict."""
    if isinstance(fitted, dict):  # a user's method returning {site: (S, ...)} posterior draws
        return _from_draws(fitted, sites, truth, num_draws)
    found = fitted.draws or {}
    point = set(fitted.extras.get("point_estimates", ())) if fitted.method == "mle" else set()
    if all(name in found and name not in point and _varies(found[name]) for name in sites):
        return _from_draws(found, sites, truth, num_draws)
    if fitted.exact_posterior is not None:
        return _from_draws(fitted.exact_posterior.draw(max(num_draws, 1000)), sites, truth, num_draws)
    approx = normal_approximation(fitted, sites)
    draws, cdf, estimate = {}, {}, {}
    for name in sites:
        draws[name], cdf[name] = draws_and_cdf(
            approx[name], torch.as_tensor(truth[name]), num_draws, generator
        )
        estimate[name] = fitted.params[name].detach().double().reshape(approx[name][0].shape)
    return draws, cdf, estimate


def _varies(draws: torch.Tensor) -> bool:
    """Whether draws are a distribution (a point fit may repeat its estimate as its draws)."""
    return draws.shape[0] > 1 and bool((draws != draws[:1]).any())


def _from_draws(all_draws: dict, sites, truth, num_draws):
    draws, cdf, estimate = {}, {}, {}
    for name in sites:
        if name not in all_draws:
            raise KeyError(f"the fit has no draws of the global latent {name!r}")
        d = torch.as_tensor(all_draws[name]).detach().double()
        total = d.shape[0]
        if total < num_draws:
            raise ValueError(
                f"Expected at least num_draws={num_draws} posterior draws, but the fit has {total}"
            )
        keep = torch.linspace(0, total - 1, num_draws).round().long()  # evenly thinned (less autocorrelation)
        true = torch.as_tensor(truth[name], dtype=torch.float64)
        draws[name] = d[keep]
        cdf[name] = ((d < true).double().mean(0) + 0.5 * (d == true).double().mean(0)).reshape(true.shape)
        estimate[name] = d.mean(0).reshape(true.shape)
    return draws, cdf, estimate
