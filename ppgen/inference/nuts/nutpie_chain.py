"""nutpie's NUTS (Rust, ``pip install nutpie``) driven by ppgen's compiled potential: ``sampler="nutpie"``.

nutpie takes a log-density-and-gradient callback (``nutpie.compiled_pyfunc.from_pyfunc``); here
it is :class:`~ppgen.inference.nuts.potential.Potential`'s compiled leaf at rest, called from
nutpie's Rust threads (one a chain; each call holds the GIL for ~20 µs). Its warm-up adapts a
diagonal mass matrix from draws and gradients (Seyboldt et al.), which on the benchmark programs
needs fewer leapfrog steps per draw than Stan's windows (kidiq 40 against 86) — see
benchmarks/results.md, NUTS, for the measured figures.

What it does not do: ``kernel="hmc"``, ``dense_mass`` (nutpie's low-rank mass matrix is another
estimator), checkpoints and resume (its state lives in Rust). Draws are reproducible for a seed.
"""

from __future__ import annotations

import numpy as np
import torch

from ppgen.errors import OptionError
from ppgen.inference.nuts.driver import STAT_NAMES, Settings
from ppgen.inference.nuts.potential import Potential

__all__ = ["run_nutpie_chains"]

#: nutpie's sample_stats names for ppgen's (ArviZ's) STAT_NAMES.
NUTPIE_STATS = {
    "diverging": "diverging",
    "tree_depth": "depth",
    "n_steps": "n_steps",
    "step_size": "step_size",
    "energy": "energy",
    "lp": "logp",
    "acceptance_rate": "mean_tree_accept",
}


def run_nutpie_chains(
    potential: Potential, settings: Settings, seed: int, num_chains: int, progress: bool
) -> list[tuple[np.ndarray, dict[str, np.ndarray], bool]]:
    """Per chain ``(draws (S, D) unconstrained, stats {name: (S,)}, interrupted)``, as ``run_chains``."""
    try:
        import nutpie
        from nutpie.compiled_pyfunc import from_pyfunc
    except ImportError as err:
        raise OptionError(
            "Expected nutpie for sampler='nutpie', but it is not installed; pip install nutpie "
            "(or use sampler='ppgen')."
        ) from err
    if settings.kernel != "nuts" or settings.dense_mass:
        raise OptionError(
            "Expected kernel='nuts' and dense_mass=False with sampler='nutpie' (it adapts a diagonal "
            f"mass matrix), but got kernel={settings.kernel!r}, dense_mass={settings.dense_mass}."
        )

    def make_logp_fn():
        def logp(x, **_):
            u, grad = potential(np.asarray(x, dtype=np.float64))
            return -u, -grad

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda x, **_: {"q": np.asarray(x, dtype=np.float64).copy()}

    compiled = from_pyfunc(
        ndim=potential.size,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")],
        expanded_shapes=[(potential.size,)],
        expanded_names=["q"],
        make_initial_point_fn=lambda chain_seed: potential.initial[chain_seed % num_chains].copy(),
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each chain's thread on one core, as ppgen's chains run
    try:
        trace = nutpie.sample(
            compiled, draws=settings.num_samples, tune=settings.num_warmup, chains=num_chains,
            cores=num_chains, seed=int(seed) % 2**63, progress_bar=progress, save_warmup=False,
            target_accept=settings.target_accept_prob, maxdepth=settings.max_tree_depth,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    draws = np.asarray(trace.posterior["q"].values, dtype=np.float64)  # (C, S, D)
    stats = trace.sample_stats
    runs = []
    for c in range(num_chains):
        chain_stats = {name: np.asarray(stats[NUTPIE_STATS[name]].values[c]) for name in STAT_NAMES}
        chain_stats["lp"] = chain_stats["lp"].astype(np.float64)
        runs.append((draws[c], chain_stats, False))
    return runs
