"""Pyro's NUTS/HMC driven one step at a time: the path for programs the compiled sampler cannot
take (``sampler="pyro"``, or a potential that cannot be captured — with a warning).

Pyro's ``MCMC.run`` hands nothing over until it returns, so the kernel is stepped here: Ctrl-C
keeps the draws so far and the whole sampler state is written to a checkpoint and resumed bit
for bit.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from ppgen.errors import OptionError
from ppgen.inference.checkpoints import check_shapes, read_checkpoint, write_checkpoint

__all__ = ["chain_checkpoint_path", "run_pyro_chain"]

CHECKPOINT_EVERY = 100  # sampler steps (warm-up and draws) between checkpoint writes


@contextlib.contextmanager
def frozen(model):
    """Point-estimate parameters are constants under MCMC; frozen they also let the JIT trace."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


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
        if saved.get("sampler") == "ppgen-nuts":
            raise OptionError(
                f"Expected a checkpoint of Pyro's NUTS, but {str(path)!r} was written by ppgen's sampler; "
                "resume it without sampler='pyro'."
            )
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


def run_pyro_chain(make_kernel, model, x, covariates, options, seed, progress, chain=0, num_chains=1):
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
    with frozen(model), warnings.catch_warnings(), pyro.validation_enabled(False):
        warnings.simplefilter("ignore")
        for attempt_jit in (True, False) if jit else (False,):
            pyro.set_rng_seed(seed)
            chain_run = _Chain(
                make_kernel(model, options, attempt_jit), warmup, num_samples, checkpoint, every
            )
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
