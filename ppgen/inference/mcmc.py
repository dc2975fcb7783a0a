"""``mcmc``: NUTS or HMC over the global latents → ``arviz.InferenceData``.

The InferenceData is built by hand (PYRO_NOTES 3): ``az.from_pyro`` silently drops the
``log_likelihood`` group for enumerated mixtures and ``to_event`` priors, which breaks
LOO/WAIC. Pointwise log-likelihoods come from the model's own ``log_prob`` per draw.
Chains run in separate processes (PYRO_NOTES 7: Pyro runs them one after another here).
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing as mp
import numbers
import time
import warnings
from pathlib import Path

import numpy as np
import pyro
import torch
from pyro.infer import HMC, NUTS
from tqdm.auto import tqdm

from ppgen.core import GenerativeModel, global_latent_sites, untransformable_priors
from ppgen.errors import MethodError, OptionError
from ppgen.inference.checkpoints import (
    check_checkpoint_options,
    check_shapes,
    read_checkpoint,
    write_checkpoint,
)
from ppgen.inference.options import check_options
from ppgen.inference.posterior import inference_data
from ppgen.result import Fit

__all__ = ["MCMCBackend"]

KERNELS = ("nuts", "hmc")
CHECKPOINT_EVERY = 100  # sampler steps (warm-up and draws) between checkpoint writes


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


def _kernel(model, options, jit: bool):
    kernel_cls = NUTS if options.get("kernel", "nuts") == "nuts" else HMC
    kwargs = {
        "max_plate_nesting": options.get("max_plate_nesting", max(1, getattr(model, "max_plate_nesting", 1)))
    }
    if kernel_cls is NUTS:
        kwargs["target_accept_prob"] = options.get("target_accept_prob", 0.8)
    else:
        kwargs["step_size"] = options.get("step_size", 0.1)
        kwargs["num_steps"] = options.get("num_leapfrog_steps", 10)
    return kernel_cls(model.model, jit_compile=jit, ignore_jit_warnings=True, **kwargs)


def chain_checkpoint_path(path, chain: int, num_chains: int) -> Path | None:
    """Chain ``c`` of a multi-chain run keeps its state in ``<stem>.chain<c><suffix>``."""
    if path is None:
        return None
    path = Path(path)
    return path if num_chains == 1 else path.with_name(f"{path.stem}.chain{chain}{path.suffix}")


class _Chain:
    """One NUTS/HMC chain driven step by step (Pyro's ``MCMC.run`` hands nothing over until it
    returns), so Ctrl-C keeps the draws so far and the sampler's whole state — position,
    cached potential and gradient, step-size and mass-matrix adaptation, counters, random
    states, draws — can be written to a checkpoint and resumed bit for bit."""

    def __init__(self, kernel, warmup_steps: int, num_samples: int, checkpoint, every: int):
        self.kernel, self.warmup_steps, self.num_samples = kernel, warmup_steps, num_samples
        self.checkpoint, self.every = checkpoint, every
        self.draws: list[dict] = []  # constrained values of each post-warmup draw
        self.iteration = 0  # warmup and sampling steps done
        self.z: dict = {}

    def state(self) -> dict:
        k = self.kernel
        adapter = {n: v for n, v in vars(k._adapter).items() if n != "_find_reasonable_step_size"}
        state = copy.deepcopy(
            {
                "iteration": self.iteration,
                "warmup_steps": self.warmup_steps,
                "z": self.z,
                "kernel": {n: getattr(k, n) for n in _KERNEL_STATE},
                "adapter": adapter,
                "rng": pyro.util.get_rng_state(),
            }
        )
        state["draws"] = self.draws[:]  # kept draws are never changed in place: no copy needed
        return state

    def restore(self, path) -> None:
        saved = read_checkpoint(path, "mcmc")
        if saved["warmup_steps"] != self.warmup_steps:
            raise OptionError(
                f"Expected warmup_steps={saved['warmup_steps']} as in the run saved in {str(path)!r} (the "
                f"adaptation schedule depends on it), but got {self.warmup_steps}."
            )
        if set(saved["z"]) != set(self.z):
            raise OptionError(
                f"Expected a checkpoint of this model (latent sites {sorted(self.z)}), but {str(path)!r} "
                f"holds {sorted(saved['z'])}; resume with the same model."
            )
        check_shapes(path, list(self.z.values()), [saved["z"][n] for n in self.z])
        if len(saved["draws"]) > self.num_samples:
            raise OptionError(
                f"Expected num_samples >= the {len(saved['draws'])} draws already in {str(path)!r}, but got "
                f"{self.num_samples}."
            )
        for name, value in saved["kernel"].items():
            setattr(self.kernel, name, value)
        vars(self.kernel._adapter).update(saved["adapter"])
        self.iteration, self.z, self.draws = saved["iteration"], saved["z"], saved["draws"]
        pyro.util.set_rng_state(saved["rng"])

    def save(self, state: dict | None = None) -> None:
        write_checkpoint(self.checkpoint, "mcmc", state or self.state())

    def _keep(self, z: dict) -> None:
        transforms = getattr(self.kernel, "transforms", None) or {}
        self.draws.append(
            {n: (transforms[n].inv(v) if n in transforms else v).detach() for n, v in z.items()}
        )

    def run(self, x, covariates, resume, progress: bool) -> bool:
        """Warm up and sample; return True when interrupted (Ctrl-C) after the first draw."""
        kernel = self.kernel
        kernel.setup(self.warmup_steps, x, **covariates)
        self.z = dict(kernel.initial_params)
        if resume is not None:
            self.restore(resume)
        total = self.warmup_steps + self.num_samples
        bar = tqdm(total=total, initial=self.iteration, desc="mcmc", disable=not progress, leave=False)
        snapshot = None
        try:
            while self.iteration < total:
                if self.checkpoint is not None:
                    snapshot = self.state()  # the state to save if this step is interrupted
                self.z = kernel.sample(self.z)
                self.iteration += 1
                if self.iteration > self.warmup_steps:
                    self._keep(self.z)
                bar.update()
                if self.iteration % 25 == 0 or self.iteration == total:
                    stage = "warmup" if self.iteration <= self.warmup_steps else "sample"
                    bar.set_postfix(stage=stage, step_size=f"{kernel.step_size:.2e}")
                if self.checkpoint is not None and self.iteration % self.every == 0:
                    self.save()
            if self.checkpoint is not None:
                self.save()
        except KeyboardInterrupt:
            if self.checkpoint is not None and snapshot is not None:
                # A step cut short may have half-updated the adaptation: rewind to its start
                # unless it finished (its draw is kept), so resume repeats exactly that step.
                self.save(snapshot if snapshot["iteration"] == self.iteration else None)
            if not self.draws:
                raise
            return True
        finally:
            bar.close()
        return False


#: Sampler state beyond the position; the adapter (step size, mass matrix) is saved whole.
_KERNEL_STATE = (
    "_t",
    "_accept_cnt",
    "_mean_accept_prob",
    "_divergences",
    "_z_last",
    "_potential_energy_last",
    "_z_grads_last",
)


def _run_chain(model, x, covariates, options, seed, progress, chain=0, num_chains=1):
    """One chain; returns (samples {site: (draws, ...)}, diverging (draws,), interrupted).

    Ctrl-C during sampling keeps the draws so far; during warm-up it propagates (a
    ``checkpoint`` is written in both cases, so ``resume`` continues the run)."""
    torch.set_num_threads(1)
    jit = options.get("jit_compile", True)
    warmup, num_samples = options.get("warmup_steps", 500), options.get("num_samples", 1000)
    checkpoint = chain_checkpoint_path(options.get("checkpoint"), chain, num_chains)
    resume = chain_checkpoint_path(options.get("resume"), chain, num_chains)
    every = options.get("checkpoint_every", CHECKPOINT_EVERY)
    x = x.detach()
    with _frozen(model), warnings.catch_warnings(), pyro.validation_enabled(False):
        warnings.simplefilter("ignore")
        for attempt_jit in (True, False) if jit else (False,):
            pyro.set_rng_seed(seed)
            chain_run = _Chain(_kernel(model, options, attempt_jit), warmup, num_samples, checkpoint, every)
            try:
                interrupted = chain_run.run(x, covariates, resume, progress)
                break
            except RuntimeError:
                if not attempt_jit:
                    raise
    draws = chain_run.draws
    samples = {k: torch.stack([draw[k] for draw in draws]) for k in draws[0]}
    diverging = np.zeros(len(draws), dtype=bool)
    diverging[[i for i in chain_run.kernel._divergences if i < len(draws)]] = True
    chain_run.kernel.cleanup()
    return samples, diverging, interrupted


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
        "checkpoint",
        "checkpoint_every",
        "resume",
    }

    def check(self, model: GenerativeModel) -> None:
        bad = untransformable_priors(model)
        if bad:
            raise MethodError(
                f"Expected global latents that NUTS can move in an unconstrained space, but "
                f"{sorted(bad)} have supports without a bijection ({list(bad.values())}); use "
                "method='exact' (conjugate) or reparameterise them (e.g. a Cholesky factor)."
            )
        if not model.is_bayesian:
            raise MethodError(
                f"Expected a model with priors for method='mcmc', but {type(model).__name__} has none; "
                "give priors with ppgen.bayesian(model, name=prior), or use method='mle'/'exact'."
            )

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        if options.get("kernel", "nuts") not in KERNELS:
            raise OptionError(f"Expected kernel in {KERNELS}, but got {options['kernel']!r}.")
        _check_counts(options)
        check_checkpoint_options(
            options.get("checkpoint"),
            options.get("checkpoint_every", CHECKPOINT_EVERY),
            options.get("resume"),
        )
        num_chains = options.get("num_chains", 1)
        if callable(getattr(model, "check_transformable", None)):
            model.check_transformable(self.name)  # a program: NUTS moves its globals and per-unit latents
        else:
            _check_global_sites(global_latent_sites(model, x, covariates), type(model).__name__)
        seed = int(options.get("seed") or 0)
        progress = bool(options.get("progress", True))
        start = time.perf_counter()
        jobs = [
            (model, x, covariates, options, seed + c, progress and c == 0, c, num_chains)
            for c in range(num_chains)
        ]
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


def _check_global_sites(sites: dict, model_name: str) -> None:
    if not sites:
        raise MethodError(
            f"Expected latent global sites for method='mcmc', but {model_name}'s story has "
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


def _check_counts(options: dict) -> None:
    """Integer and probability options, checked before any sampling (Pyro fails late or not at all)."""
    for key, least in (("num_samples", 1), ("warmup_steps", 0), ("num_chains", 1), ("num_leapfrog_steps", 1)):
        value = options.get(key, least)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise OptionError(f"Expected {key} to be an integer >= {least}, but got {value!r}.")
    accept = options.get("target_accept_prob", 0.8)
    if isinstance(accept, bool) or not isinstance(accept, numbers.Real) or not 0 < accept < 1:
        raise OptionError(f"Expected 0 < target_accept_prob < 1, but got {accept!r}.")
    step = options.get("step_size", 0.1)
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not step > 0:
        raise OptionError(f"Expected step_size > 0, but got {step!r}.")


def _max_rhat(posterior) -> float:
    import arviz as az

    rhat = az.rhat(posterior)
    return float(max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars))
