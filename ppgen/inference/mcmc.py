"""``mcmc``: NUTS or HMC over the latents → ``arviz.InferenceData``.

By default ppgen's own sampler runs (``ppgen/inference/nuts``): the program's potential is
captured once and compiled, and the tree is built in float64 numpy, chains in processes. Where
the potential cannot be captured, or with ``sampler="pyro"``, Pyro's NUTS/HMC runs instead
(``nuts/pyro_chain.py``; a warning says why when it was not asked for). ``sampler="nutpie"``
hands the compiled potential to nutpie's Rust NUTS (``nuts/nutpie_chain.py``; optional install).
``adapt_mass`` picks ppgen's diagonal mass estimate during warm-up: ``"stan"`` (default, ``Var(q)``),
``"gradient"`` or ``"gradient_sliding"`` (nutpie's ``√(Var(q)/Var(∇U))``; ``nuts/adaptation.py``).
``dense_mass="auto"`` (default) adapts a dense mass matrix for at most 25 unconstrained dimensions
(``auto_dense``), ``True``/``False`` force it (Pyro's NUTS: ``full_mass``; "auto" is diagonal there).
``num_chains`` defaults to one chain per core (2 to 4, PyMC's rule), each in its own process.

The InferenceData is built by hand (PYRO_NOTES 3): ``az.from_pyro`` silently drops the
``log_likelihood`` group for enumerated mixtures and ``to_event`` priors, which breaks
LOO/WAIC. Pointwise log-likelihoods come from the model's own ``log_prob`` per draw.
"""

from __future__ import annotations

import numbers
import os
import time
import warnings

import numpy as np
import pyro
import torch
from pyro.infer import HMC, NUTS

from ppgen.core import GenerativeModel, global_latent_sites, untransformable_priors
from ppgen.errors import MethodError, OptionError
from ppgen.inference.checkpoints import check_checkpoint_options, read_checkpoint
from ppgen.inference.nuts import Potential, Settings, diagnose, run_chains
from ppgen.inference.nuts.adaptation import ADAPT_MASS_DEFAULT, MASS_ADAPTATIONS, auto_dense
from ppgen.inference.nuts.driver import map_chains
from ppgen.inference.nuts.nutpie_chain import run_nutpie_chains
from ppgen.inference.nuts.potential import COMPILERS, CaptureError, choose_compiler
from ppgen.inference.nuts.pyro_chain import CHECKPOINT_EVERY, chain_checkpoint_path, frozen, run_pyro_chain
from ppgen.inference.options import check_options
from ppgen.inference.posterior import inference_data
from ppgen.result import Fit

__all__ = ["MCMCBackend", "MCMCFit", "SamplerFallbackWarning"]

KERNELS = ("nuts", "hmc")
SAMPLERS = ("ppgen", "pyro", "nutpie")


class SamplerFallbackWarning(UserWarning):
    """ppgen's compiled sampler could not take the program; Pyro's NUTS ran instead."""


#: Stan's per-parameter diagnostics, added to an MCMC fit's summary (ArviZ's names and estimators).
DIAGNOSTIC_COLUMNS = ("r_hat", "ess_bulk", "ess_tail", "mcse_mean")


class MCMCFit(Fit):
    """A :class:`~ppgen.result.Fit` of ``method="mcmc"``: its summary adds Stan's diagnostics.

    ``r_hat`` (rank-normalised split R-hat, NaN for one chain), ``ess_bulk``, ``ess_tail`` and
    ``mcse_mean`` per scalar parameter, as ``az.summary(kind="diagnostics")`` computes them."""

    def summary(self):
        import arviz as az

        table = super().summary()
        if self.posterior is None or table.empty:
            return table
        diagnostics = az.summary(self.posterior, kind="diagnostics", round_to="none")
        if self.posterior.posterior.sizes["chain"] < 2:
            diagnostics["r_hat"] = np.nan  # one chain: no between-chain comparison
        for column in DIAGNOSTIC_COLUMNS:
            table[column] = table["parameter"].map(diagnostics[column])
        return table


def _kernel(model, options, jit: bool):
    kernel_cls = NUTS if options.get("kernel", "nuts") == "nuts" else HMC
    kwargs = {
        "max_plate_nesting": options.get("max_plate_nesting", max(1, getattr(model, "max_plate_nesting", 1)))
    }
    kwargs["full_mass"] = _dense_option(options) is True  # Pyro's name; "auto" is ppgen's sampler's rule
    if kernel_cls is NUTS:
        kwargs["target_accept_prob"] = options.get("target_accept_prob", 0.8)
    else:
        kwargs["step_size"] = options.get("step_size", 0.1)
        kwargs["num_steps"] = options.get("num_leapfrog_steps", 10)
    return kernel_cls(model.model, jit_compile=jit, ignore_jit_warnings=True, **kwargs)


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
        "sampler",
        "compiler",
        "dense_mass",
        "adapt_mass",
        "max_tree_depth",
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
        options.setdefault("num_chains", default_num_chains())
        _check_choices(options)
        _check_counts(options)
        check_checkpoint_options(
            options.get("checkpoint"),
            options.get("checkpoint_every", CHECKPOINT_EVERY),
            options.get("resume"),
        )
        if callable(getattr(model, "check_transformable", None)):
            model.check_transformable(self.name)  # a program: NUTS moves its globals and per-unit latents
        else:
            _check_global_sites(global_latent_sites(model, x, covariates), type(model).__name__)
        start = time.perf_counter()
        x = x.detach()
        stats, extras = None, {"sampler": "pyro"}
        results = None
        if options.get("sampler", "ppgen") in ("ppgen", "nutpie"):  # nutpie: ppgen's potential, its tree
            try:
                results, stats, extras = _run_ppgen(model, x, covariates, options)
            except CaptureError as err:
                warnings.warn(
                    f"ppgen's compiled NUTS cannot take this program: {err}; Pyro's NUTS runs instead "
                    "(slower). Pass sampler='pyro' to choose it and silence this warning.",
                    SamplerFallbackWarning,
                    stacklevel=3,
                )
                extras = {"sampler": "pyro", "fallback": str(err)}
        if results is None:
            results = _run_pyro(model, x, covariates, options)
        interrupted = any(r[2] for r in results)
        keep = min(len(r[1]) for r in results)  # equal lengths across chains: the shortest one's
        by_chain = {k: torch.stack([r[0][k][:keep] for r in results]) for k in results[0][0]}  # (C, S, ...)
        diverging = np.stack([r[1][:keep] for r in results])
        if stats is not None:
            stats = {k: v[:, :keep] for k, v in stats.items()}
        draws = {k: v.reshape(-1, *v.shape[2:]) for k, v in by_chain.items()}
        posterior = inference_data(
            model, x, by_chain, covariates, sample_stats=stats or {"diverging": diverging}
        )
        fit = MCMCFit(
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
        fit.extras.update(extras)
        fit.extras["divergences"] = int(diverging.sum())
        fit.extras["diagnostics"] = diagnose(
            posterior,
            stats,
            options.get("max_tree_depth", 10),
            options.get("target_accept_prob", 0.8),
        )
        return fit


#: ``num_chains`` by default: one chain a core (each runs in its own process), at most this many.
MAX_DEFAULT_CHAINS = 4


def default_num_chains() -> int:
    """One chain per core this process may use, between 2 (R-hat compares chains) and
    :data:`MAX_DEFAULT_CHAINS` — PyMC's rule; on one core the two chains run one after the other."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, min(MAX_DEFAULT_CHAINS, cores))


def _max_plate_nesting(model, options) -> int:
    return options.get("max_plate_nesting", max(1, getattr(model, "max_plate_nesting", 1)))


def _run_ppgen(model, x, covariates, options):
    """ppgen's sampler; per chain ``(samples {site: (S, ...)}, diverging (S,), interrupted)``."""
    num_chains = options["num_chains"]
    warmup, num_samples = options.get("warmup_steps", 500), options.get("num_samples", 1000)
    if options.get("sampler") == "nutpie" and (options.get("checkpoint") or options.get("resume")):
        raise OptionError("Expected no checkpoint or resume with sampler='nutpie' (its state lives in Rust).")
    files = [
        tuple(chain_checkpoint_path(options.get(key), c, num_chains) for key in ("checkpoint", "resume"))
        for c in range(num_chains)
    ]
    compiler = "eager" if not options.get("jit_compile", True) else options.get("compiler", "auto")
    if files[0][1] is not None:  # resume with the compiler that wrote the run: bit for bit
        compiler = read_checkpoint(files[0][1], "mcmc").get("compiler", compiler)
    compiler = choose_compiler(compiler, warmup + num_samples)
    seed = int(options.get("seed") or 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the chains run on one thread each: compile and check for that
    try:
        with frozen(model), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pyro's tracer chatter; the capture is checked instead
            pyro.set_rng_seed(seed)
            potential = Potential(
                model.model, (x,), covariates, _max_plate_nesting(model, options), num_chains, compiler,
                max_depth=options.get("max_tree_depth", 10), dense=_dense_rule(options, warmup),
            )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    settings = Settings(
        kernel=options.get("kernel", "nuts"),
        num_warmup=warmup,
        num_samples=num_samples,
        target_accept_prob=options.get("target_accept_prob", 0.8),
        max_tree_depth=options.get("max_tree_depth", 10),
        dense_mass=potential.dense,
        adapt_mass="stan" if potential.dense else options.get("adapt_mass", ADAPT_MASS_DEFAULT),
        step_size=options.get("step_size", 1.0 if options.get("kernel", "nuts") == "nuts" else 0.1),
        num_leapfrog_steps=options.get("num_leapfrog_steps", 10),
        checkpoint_every=options.get("checkpoint_every", CHECKPOINT_EVERY),
    )
    progress = bool(options.get("progress", True))
    with frozen(model):
        if options.get("sampler") == "nutpie":
            runs = run_nutpie_chains(potential, settings, seed, num_chains, progress)
        else:
            runs = run_chains(potential, settings, seed, files, progress, options.get("parallel", True))
    results, stats = [], {}
    for draws, chain_stats, interrupted in runs:
        results.append((potential.constrain(draws), chain_stats["diverging"].astype(bool), interrupted))
    keep = min(len(r[1]) for r in results)
    for name in runs[0][1]:
        stats[name] = np.stack([r[1][name][:keep] for r in runs])
    stats["diverging"] = stats["diverging"].astype(bool)
    extras = {"sampler": options.get("sampler", "ppgen"), "potential": potential.compiler}
    extras["dense_mass"] = potential.dense
    return results, stats, extras


def _dense_option(options: dict) -> bool | str:
    """``dense_mass`` as ``True``, ``False`` or ``"auto"`` (numpy booleans and 0/1 read as booleans)."""
    dense = options.get("dense_mass", "auto")
    if isinstance(dense, str):
        if dense != "auto":
            raise OptionError(f"Expected dense_mass in (True, False, 'auto'), but got {dense!r}.")
        return dense
    if dense not in (True, False):
        raise OptionError(f"Expected dense_mass in (True, False, 'auto'), but got {dense!r}.")
    return bool(dense)


def _dense_rule(options: dict, warmup: int):
    """``dense_mass``: True, False, or ``"auto"`` (the default; dense for small models, :func:`auto_dense`).

    "auto" is diagonal under nutpie (it adapts a diagonal metric) and under ``adapt_mass`` other
    than Stan's (a diagonal estimate)."""
    dense = _dense_option(options)
    if dense != "auto":
        return dense
    if options.get("sampler") == "nutpie" or options.get("adapt_mass", "stan") != "stan":
        return False
    return lambda size: auto_dense(size, warmup)


def _run_pyro(model, x, covariates, options):
    """Pyro's NUTS/HMC (``nuts/pyro_chain.py``); per chain ``(samples, diverging, interrupted)``."""
    num_chains = options["num_chains"]
    seed = int(options.get("seed") or 0)
    progress = bool(options.get("progress", True))
    jobs = [
        (_kernel, model, x, covariates, options, seed + c, progress and c == 0, c, num_chains)
        for c in range(num_chains)
    ]
    return map_chains(run_pyro_chain, jobs, bool(options.get("parallel", True)))


#: Jobs of the running parallel Pyro fit; forked workers inherit them, so nothing is pickled on
#: the way in (a model with lambda priors, e.g. the conjugate ones, cannot be pickled).
def _check_choices(options: dict) -> None:
    for key, allowed, default in (
        ("kernel", KERNELS, "nuts"),
        ("sampler", SAMPLERS, "ppgen"),
        ("compiler", COMPILERS, "auto"),
        ("adapt_mass", MASS_ADAPTATIONS, ADAPT_MASS_DEFAULT),
    ):
        if options.get(key, default) not in allowed:
            raise OptionError(f"Expected {key} in {allowed}, but got {options[key]!r}.")
    dense = _dense_option(options)  # raises for anything but True, False or "auto"
    if options.get("adapt_mass", "stan") != "stan" and dense is True:
        raise OptionError(
            f"Expected dense_mass=False with adapt_mass={options['adapt_mass']!r} (a diagonal estimate), "
            "but got dense_mass=True; use adapt_mass='stan' for a dense mass matrix."
        )
    depth = options.get("max_tree_depth", 10)
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or not 1 <= depth <= 30:
        raise OptionError(f"Expected max_tree_depth to be an integer in 1..30, but got {depth!r}.")


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
