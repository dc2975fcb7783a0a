"""Chains of the compiled sampler: warm-up and draws step by step, checkpoint/resume, Ctrl-C, and
chains across processes.

A chain's whole state — position with its cached potential and gradient, the adaptation (step
size, dual averaging, Welford sums, metric), the numpy random state, the draws and their
statistics — is small plain data, so a checkpoint is a copy of it and a resumed run repeats
the uninterrupted one bit for bit (the potential is deterministic: one thread, fixed graph).

A transition runs on the potential's fused leaf (``nuts/leaf.py``: one compiled call a leapfrog
step) where the potential has one captured for the run's tree depth and metric, and on the numpy
reference (``nuts/trajectory.py``) for a plain numpy potential (the tests' closed-form targets).

Chains run in forked processes, one per core (PYRO_NOTES 7), each on one thread; ``num_chains``
defaults to the cores (2 to 4), so each chain has a core of its own. Chains batched in one graph
inside a process were not built: a batch runs every chain for as many leapfrog steps as its
longest tree, where a process stops each chain's tree where it stops; batching would pay only
with more chains than cores.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ppgen.errors import OptionError
from ppgen.inference.checkpoints import check_shapes, read_checkpoint, write_checkpoint
from ppgen.inference.nuts.adaptation import ADAPT_MASS_DEFAULT, WindowAdaptation
from ppgen.inference.nuts.integrator import Point
from ppgen.inference.nuts.leaf import fused_hmc_transition, fused_nuts_transition
from ppgen.inference.nuts.potential import Potential
from ppgen.inference.nuts.trajectory import hmc_transition, nuts_transition

__all__ = ["Settings", "Chain", "run_chains", "map_chains", "STAT_NAMES"]

#: Per-draw statistics, in ArviZ's ``sample_stats`` names (az.plot_energy, az.bfmi read them).
STAT_NAMES = ("diverging", "tree_depth", "n_steps", "step_size", "energy", "lp", "acceptance_rate")


@dataclass(frozen=True)
class Settings:
    """What a chain needs besides its potential."""

    kernel: str = "nuts"
    num_warmup: int = 500
    num_samples: int = 1000
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    adapt_mass: str = ADAPT_MASS_DEFAULT  # dense_mass=True always adapts Stan's way
    step_size: float = 1.0
    num_leapfrog_steps: int = 10
    checkpoint_every: int = 100


class Chain:
    """One chain of the compiled sampler, driven one transition at a time."""

    def __init__(self, potential: Potential, settings: Settings, q0: np.ndarray, seed: int, chain: int):
        self.potential, self.settings = potential, settings
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed % 2**64, chain])))
        u, grad = potential(q0)
        self.point = Point(q0, q0, u, grad)  # p is unused at rest; the point carries U and ∇U
        self.adaptation = WindowAdaptation(
            settings.num_warmup, len(q0), settings.dense_mass, settings.target_accept_prob,
            adapt_mass=settings.adapt_mass, initial_grad=grad,
        )  # fmt: skip
        with np.errstate(over="ignore", invalid="ignore"):  # trial steps may overflow (see step)
            self.adaptation.start(self.point, potential, self.rng, settings.step_size)
        self.iteration = 0
        self.draws: list[np.ndarray] = []
        self.stats: dict[str, list] = {name: [] for name in STAT_NAMES}

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        state = copy.deepcopy(
            {
                "sampler": "ppgen-nuts",
                "compiler": self.potential.compiler,
                "iteration": self.iteration,
                "warmup_steps": self.settings.num_warmup,
                "names": self.potential.names,
                "point": self.point,
                "adaptation": self.adaptation,
                "rng": self.rng.bit_generator.state,
            }
        )
        state["draws"] = self.draws[:]  # kept draws are never changed in place
        state["stats"] = {k: v[:] for k, v in self.stats.items()}
        return state

    def restore(self, path) -> None:
        saved = read_checkpoint(path, "mcmc")
        if saved.get("sampler") != "ppgen-nuts":
            raise OptionError(
                f"Expected a checkpoint of ppgen's sampler, but {str(path)!r} was written by Pyro's NUTS; "
                "resume it with sampler='pyro'."
            )
        if saved["warmup_steps"] != self.settings.num_warmup:
            raise OptionError(
                f"Expected warmup_steps={saved['warmup_steps']} as in the run saved in {str(path)!r} (the "
                f"adaptation schedule depends on it), but got {self.settings.num_warmup}."
            )
        if saved["names"] != self.potential.names:
            raise OptionError(
                f"Expected a checkpoint of this model (latent sites {self.potential.names}), but "
                f"{str(path)!r} holds {saved['names']}; resume with the same model."
            )
        check_shapes(path, [torch.from_numpy(self.point.q)], [torch.from_numpy(saved["point"].q)])
        if len(saved["draws"]) > self.settings.num_samples:
            raise OptionError(
                f"Expected num_samples >= the {len(saved['draws'])} draws already in {str(path)!r}, but got "
                f"{self.settings.num_samples}."
            )
        self.iteration, self.point, self.adaptation = saved["iteration"], saved["point"], saved["adaptation"]
        self.draws, self.stats = saved["draws"], saved["stats"]
        self.rng.bit_generator.state = saved["rng"]

    # ------------------------------------------------------------------ sampling
    def step(self) -> None:
        """One transition; during warm-up it adapts, afterwards it keeps the draw and its statistics."""
        # a divergent trajectory or an over-long trial step overflows to inf and NaN, which the
        # transition reads as a divergence (ΔH = inf): numpy's RuntimeWarning would only alarm
        with np.errstate(over="ignore", invalid="ignore"):
            self._step()

    def _step(self) -> None:
        s, adaptation, point = self.settings, self.adaptation, self.point
        step_size = adaptation.step_size
        leaf = getattr(self.potential, "leaf", None)  # the fused leaf, where the potential has one
        if leaf is not None and self.potential.max_depth != s.max_tree_depth:
            leaf = None  # captured for another depth (mcmc captures for the settings' depth)
        fused = leaf is not None and self.potential.dense == adaptation.metric.dense
        common = (point.q, point.potential, point.grad)
        if s.kernel == "nuts" and fused:
            move = fused_nuts_transition(
                *common, leaf, adaptation.metric, step_size, self.rng, max_depth=s.max_tree_depth
            )
        elif s.kernel == "nuts":
            move = nuts_transition(
                *common, self.potential, adaptation.metric, step_size, self.rng, max_depth=s.max_tree_depth
            )
        elif fused:
            move = fused_hmc_transition(
                *common, leaf, adaptation.metric, step_size, self.rng, num_steps=s.num_leapfrog_steps,
                max_depth=self.potential.max_depth,
            )  # fmt: skip
        else:
            move = hmc_transition(
                *common,
                self.potential,
                adaptation.metric,
                step_size,
                self.rng,
                num_steps=s.num_leapfrog_steps,
            )
        self.point = Point(move.q, move.q, move.potential, move.grad)
        if self.iteration < s.num_warmup:
            adaptation.update(self.iteration, move.accept_prob, self.point, self.potential, self.rng)
        else:
            self.draws.append(move.q)
            for name, value in zip(
                STAT_NAMES,
                (
                    move.diverging,
                    move.tree_depth,
                    move.n_steps,
                    step_size,
                    move.energy,
                    -move.potential,
                    move.accept_prob,
                ),
            ):
                self.stats[name].append(value)
        self.iteration += 1

    def run(self, checkpoint, resume, progress: bool) -> bool:
        """Warm up and sample; True when Ctrl-C stopped it after the first draw (it propagates before)."""
        if resume is not None:
            self.restore(resume)
        s = self.settings
        total = s.num_warmup + s.num_samples
        bar = tqdm(total=total, initial=self.iteration, desc="mcmc", disable=not progress, leave=False)
        snapshot = None
        try:
            while self.iteration < total:
                if checkpoint is not None:
                    snapshot = self.state()  # what to save if this step is interrupted
                self.step()
                bar.update()
                if self.iteration % 25 == 0 or self.iteration == total:
                    stage = "warmup" if self.iteration <= s.num_warmup else "sample"
                    bar.set_postfix(stage=stage, step_size=f"{self.adaptation.step_size:.2e}")
                if checkpoint is not None and self.iteration % s.checkpoint_every == 0:
                    write_checkpoint(checkpoint, "mcmc", self.state())
            if checkpoint is not None:
                write_checkpoint(checkpoint, "mcmc", self.state())
        except KeyboardInterrupt:
            if checkpoint is not None and snapshot is not None:
                # a step cut short may have half-updated the adaptation: rewind to its start
                # unless it finished, so resume repeats exactly that step
                finished = snapshot["iteration"] != self.iteration
                write_checkpoint(checkpoint, "mcmc", self.state() if finished else snapshot)
            if not self.draws:
                raise
            return True
        finally:
            bar.close()
        return False

    def result(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Draws ``(S, D)`` (unconstrained) and statistics ``{name: (S,)}``."""
        draws = np.stack(self.draws) if self.draws else np.zeros((0, self.potential.size))
        return draws, {k: np.asarray(v) for k, v in self.stats.items()}


#: Chains of the running fit; forked workers inherit them (the compiled potential is not picklable).
def _run_one(potential, settings, seed, chain, checkpoint, resume, progress):
    torch.set_num_threads(1)  # one core per chain; also keeps the compiled reductions' order fixed
    runner = Chain(potential, settings, potential.initial[chain], seed, chain)
    interrupted = runner.run(checkpoint, resume, progress)
    return (*runner.result(), interrupted)


def run_chains(
    potential: Potential, settings: Settings, seed: int, files: list, progress: bool, parallel: bool
):
    """Run ``len(files)`` chains (``files[c] = (checkpoint, resume)``).

    Returns per chain ``(draws, stats, interrupted)``."""
    jobs = [
        (potential, settings, seed, c, checkpoint, resume, progress and c == 0)
        for c, (checkpoint, resume) in enumerate(files)
    ]
    return map_chains(_run_one, jobs, parallel)


_TASK: list = []  # (run, jobs) of the current map_chains, read by the forked workers


#: What a forked chain returns when Ctrl-C stopped it before its first draw (a KeyboardInterrupt
#: would kill the pool's worker, and ``Pool.map`` would wait for it forever).
_INTERRUPTED = "interrupted before the first draw"


def _forked(index: int):
    run, jobs = _TASK[0]
    try:
        return run(*jobs[index])
    except KeyboardInterrupt:
        return _INTERRUPTED


def map_chains(run, jobs: list[tuple], parallel: bool) -> list:
    """``run(*job)`` for every chain: in forked processes, one a core (PYRO_NOTES 7), or one after the
    other in this process, stopping after a chain that reports Ctrl-C (its third result), with torch's
    thread count restored for the caller (each chain runs on one thread)."""
    if len(jobs) > 1 and parallel:
        _TASK[:] = [(run, jobs)]
        try:
            with mp.get_context("fork").Pool(min(len(jobs), mp.cpu_count())) as pool:
                pending = pool.map_async(_forked, range(len(jobs)))
                try:
                    results = pending.get()
                except KeyboardInterrupt:  # Ctrl-C reached every chain too: each saves and returns
                    results = pending.get()  # a second Ctrl-C leaves without them
        finally:
            _TASK.clear()
        if _INTERRUPTED in results:
            raise KeyboardInterrupt  # a chain had no draws yet: as one chain, Ctrl-C propagates
        return results
    results = []
    threads = torch.get_num_threads()
    try:
        for job in jobs:
            results.append(run(*job))
            if results[-1][2]:
                break  # Ctrl-C: keep the chains (and draws) so far
    finally:
        torch.set_num_threads(threads)
    return results
