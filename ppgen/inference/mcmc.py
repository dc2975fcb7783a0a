"""``mcmc``: NUTS or HMC over the global latents → ``arviz.InferenceData``.

The InferenceData is built by hand (PYRO_NOTES 3): ``az.from_pyro`` silently drops the
``log_likelihood`` group for enumerated mixtures and ``to_event`` priors, which breaks
LOO/WAIC. Pointwise log-likelihoods come from the model's own ``log_prob`` per draw.
Chains run in separate processes (PYRO_NOTES 7: Pyro runs them one after another here).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import warnings

import numpy as np
import pyro
import torch
from pyro.infer import HMC, MCMC, NUTS

from ppgen.core import GenerativeModel, global_latent_sites, untransformable_priors
from ppgen.errors import MethodError, OptionError
from ppgen.results import Fit, check_options, inference_data

__all__ = ["MCMCBackend"]

KERNELS = ("nuts", "hmc")


@contextlib.contextmanager
def _frozen(model: GenerativeModel):
    """Point-estimate parameters are constants under MCMC; frozen they also let the JIT trace."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _run_chain(model, x, covariates, options, seed, progress):
    """One chain; returns (samples {site: (draws, ...)}, diverging (draws,), interrupted).

    Ctrl-C during sampling keeps the draws so far (Pyro's MCMC only hands them over when
    run() returns, so a hook collects them as they come); during warmup it propagates."""
    torch.set_num_threads(1)
    pyro.set_rng_seed(seed)
    kernel_cls = NUTS if options.get("kernel", "nuts") == "nuts" else HMC
    kwargs = {"max_plate_nesting": options.get("max_plate_nesting", 1)}
    if kernel_cls is NUTS:
        kwargs["target_accept_prob"] = options.get("target_accept_prob", 0.8)
    else:
        kwargs["step_size"] = options.get("step_size", 0.1)
        kwargs["num_steps"] = options.get("num_leapfrog_steps", 10)
    jit = options.get("jit_compile", True)
    kept: list[dict] = []

    def keep(kernel, params, stage, i):  # constrained values of each post-warmup draw
        if stage.startswith("Sample"):
            transforms = getattr(kernel, "transforms", None) or {}
            kept.append(
                {k: (transforms[k].inv(v) if k in transforms else v).detach() for k, v in params.items()}
            )

    interrupted = False
    with _frozen(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attempt_jit in (True, False) if jit else (False,):
            kernel = kernel_cls(model.model, jit_compile=attempt_jit, ignore_jit_warnings=True, **kwargs)
            mcmc = MCMC(
                kernel,
                num_samples=options.get("num_samples", 1000),
                warmup_steps=options.get("warmup_steps", 500),
                disable_progbar=not progress,
                hook_fn=keep,
            )
            kept.clear()
            try:
                mcmc.run(x, **covariates)
                break
            except RuntimeError:
                if not attempt_jit:
                    raise
            except KeyboardInterrupt:
                if not kept:
                    raise
                interrupted = True
                break
    if interrupted:
        samples = {k: torch.stack([draw[k] for draw in kept]) for k in kept[0]}
        return samples, np.zeros(len(kept), dtype=bool), True
    samples = {k: v.detach() for k, v in mcmc.get_samples().items()}
    diverging = np.zeros(next(iter(samples.values())).shape[0], dtype=bool)
    divergences = mcmc.diagnostics().get("divergences", {})
    for idx in divergences.get("chain 0", []):
        diverging[idx] = True
    return samples, diverging, False


#: Jobs of the running parallel fit; forked workers inherit them, so nothing is pickled on the
#: way in (a model with lambda priors, e.g. the conjugate ones, cannot be pickled).
_JOBS: list = []


def _chain_worker(index: int):
    return _run_chain(*_JOBS[index])


class MCMCBackend:
    name = "mcmc"
    options = {
        "num_samples",
        "warmup_steps",
        "num_chains",
        "kernel",
        "jit_compile",
        "target_accept_prob",
        "step_size",
        "num_leapfrog_steps",
        "max_plate_nesting",
        "seed",
        "progress",
        "parallel",
    }

    def check(self, model: GenerativeModel) -> None:
        bad = untransformable_priors(model)
        if bad:
            raise MethodError(
                f"Expected global latents that NUTS can move in an unconstrained space, but "
                f"{sorted(bad)} have supports without a bijection ({list(bad.values())}); use "
                "method='exact' (conjugate) or reparameterise them (e.g. a Cholesky factor)."
            )
        if not model.is_bayesian and type(model).__name__ != "PyroProgram":
            raise MethodError(
                f"Expected a model with priors for method='mcmc', but {type(model).__name__} has none; "
                "give priors with ppgen.bayesian(model, name=prior), or use method='mle'/'exact'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if options.get("kernel", "nuts") not in KERNELS:
            raise OptionError(f"Expected kernel in {KERNELS}, but got {options['kernel']!r}.")
        num_chains = int(options.get("num_chains", 1))
        if num_chains < 1:
            raise OptionError(f"Expected num_chains >= 1, but got {num_chains}.")
        sites = global_latent_sites(model, x, covariates)
        if not sites:
            raise MethodError(
                f"Expected latent global sites for method='mcmc', but {type(model).__name__}'s story has "
                "none (no priors); give priors with ppgen.bayesian."
            )
        for name, site in sites.items():
            try:
                torch.distributions.biject_to(site["fn"].support)
            except NotImplementedError:
                raise MethodError(
                    f"Expected global latents that NUTS can move in an unconstrained space, but site "
                    f"{name!r} has support {site['fn'].support} with no bijection; use method='exact' "
                    "(conjugate) or reparameterise it (e.g. a Cholesky factor)."
                ) from None
        seed = int(options.get("seed") or 0)
        progress = bool(options.get("progress", True))
        start = time.perf_counter()
        jobs = [(model, x, covariates, options, seed + c, progress and c == 0) for c in range(num_chains)]
        if num_chains > 1 and options.get("parallel", True):
            _JOBS[:] = jobs
            try:
                with mp.get_context("fork").Pool(min(num_chains, mp.cpu_count())) as pool:
                    results = pool.map(_chain_worker, range(num_chains))
            finally:
                _JOBS.clear()
        else:
            results = []
            for job in jobs:
                results.append(_run_chain(*job))
                if results[-1][2]:
                    break  # Ctrl-C: keep the chains (and draws) so far
        interrupted = any(r[2] for r in results)
        if interrupted:  # equal lengths across chains: the shortest one's
            keep = min(len(r[1]) for r in results)
            results = [({k: v[:keep] for k, v in r[0].items()}, r[1][:keep], r[2]) for r in results]
        by_chain = {k: torch.stack([r[0][k] for r in results]) for k in results[0][0]}  # (C, S, ...)
        diverging = np.stack([r[1] for r in results])
        draws = {k: v.reshape(-1, *v.shape[2:]) for k, v in by_chain.items()}
        posterior = inference_data(model, x, by_chain, covariates, sample_stats={"diverging": diverging})
        fit = Fit(
            model=model,
            method=self.name,
            params={k: v.mean(0) for k, v in draws.items()},
            posterior=posterior,
            draws=draws,
            history=[],
            elapsed=time.perf_counter() - start,
            options=options,
            covariates=covariates,
            n_train=x.shape[0],
        )
        fit.converged = bool(_max_rhat(posterior) < 1.05) if len(results) > 1 else True
        if interrupted:
            fit.converged = False
        fit.extras["divergences"] = int(diverging.sum())
        return fit


def _max_rhat(posterior) -> float:
    import arviz as az

    rhat = az.rhat(posterior)
    return float(max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars))
