"""``ppgen.calibrate``: simulation-based calibration of several methods on one program, in one call.

Each simulation is independent and seeded from ``(seed, simulation index)``, so it can run anywhere:
in this process (``num_workers=1``), in a local pool of worker processes, or on any
``concurrent.futures.Executor`` you pass — a Dask cluster's ``Client(address).get_executor()`` —
and the numbers are the same bit for bit. Each finished simulation is written to the ``checkpoint=``
folder (one file each), so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import cloudpickle

from ppgen.calibration.ranks import method_key, simulate_and_rank
from ppgen.calibration.result import Calibration
from ppgen.calibration.simulate import Simulator
from ppgen.errors import OptionError
from ppgen.inference import BACKENDS

__all__ = ["calibrate"]

#: Fit options every calibration fit gets unless given, where its method takes them (hundreds of fits:
#: no bars; an exact posterior drawn as often as NUTS's default).
DEFAULTS = {"progress": False, "num_draws": 1000}

_CACHE: dict[str, Any] = {}  # a worker's unpickled task, by its digest (one unpickling per worker)


def calibrate(
    program: Any,
    data: Any,
    methods: Sequence[str | Callable] = ("mle", "map", "svi", "mcmc"),
    num_simulations: int = 100,
    seed: int = 0,
    *,
    num_draws: int = 99,
    num_workers: int | None = None,
    executor: Executor | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    observed: dict | None = None,
    **fit_options: Any,
) -> Calibration:
    """Simulation-based calibration (Talts et al. 2018) of every method in ``methods`` on ``program``.

    For ``s = 0..num_simulations-1``: draw the global latents ``θ`` and data ``y`` from the prior
    predictive at ``data``'s covariates and sizes (its observed values are ignored), fit ``y`` by each
    method, and rank ``θ`` among ``L = num_draws`` draws of the fit (posterior draws, or the normal
    approximation at a point fit's optimum: :mod:`ppgen.calibration.laplace`). Uniform ranks and
    nominal coverage mean the method's intervals can be trusted for this program at this data size.

    Arguments:
        program: a Pyro program with priors (or a ppgen model with priors).
        data: its arguments, as for :func:`ppgen.fit`.
        methods: :func:`ppgen.fit` methods, or callables ``(program, data, seed) -> Fit | {site: draws}``
            (your own inference, reported under the callable's ``__name__``).
        num_simulations: how many simulated data sets.
        seed: the run's seed; simulation ``s`` uses seeds derived from ``(seed, s)``.
        num_draws: ``L``; ranks are in ``0..L`` (``L + 1 = 100`` bins evenly).
        num_workers: worker processes (default: the core count; 1 runs here, in this process).
        executor: any ``concurrent.futures.Executor`` (e.g. ``distributed.Client(...).get_executor()``);
            overrides ``num_workers``.
        checkpoint: a folder; one file per finished simulation, read back on the next call.
        progress: a tqdm bar over simulations.
        observed: ``{site: values}`` for a program conditioned from outside, as for :func:`ppgen.fit`.
        **fit_options: options for every method's fit; ``mcmc={...}`` (a method's name) gives that
            method its own options, which win.

    Returns:
        :class:`~ppgen.calibration.result.Calibration` (``.table()``, ``.plot()``, ``.save()``).

    Example:
        >>> cal = ppgen.calibrate(program, data, methods=("mle", "mcmc"), num_simulations=100,
        ...                       mcmc={"num_samples": 500})  # doctest: +SKIP
        >>> cal.table()[["method", "parameter", "gamma_p", "cover95"]]  # doctest: +SKIP
    """
    if isinstance(num_simulations, bool) or not isinstance(num_simulations, int) or num_simulations < 1:
        raise OptionError(f"Expected num_simulations to be a positive integer, but got {num_simulations!r}.")
    if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 1:
        raise OptionError(f"Expected num_draws to be a positive integer, but got {num_draws!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"Expected seed to be an integer, but got {seed!r}.")
    if isinstance(methods, (str, bytes)) or callable(methods):
        methods = (methods,)
    named = {method_key(m): m for m in methods}
    if not named or len(named) != len(methods):
        raise OptionError(f"Expected methods with distinct names, but got {list(methods)!r}.")
    options = _method_options(named, fit_options)
    simulator = Simulator(program, data, observed)
    task = cloudpickle.dumps((simulator, named, options, seed, num_draws))
    digest = hashlib.sha256(task).hexdigest()[:16]
    fingerprint = _fingerprint(program, data, observed, named, options, seed, num_draws)
    start = time.perf_counter()
    records = _run(task, digest, fingerprint, num_simulations, num_workers, executor, checkpoint, progress)
    return Calibration(
        records=records,
        methods=list(named),
        sites=dict(simulator.globals),
        num_draws=num_draws,
        seed=seed,
        options={k: {o: repr(v) for o, v in opts.items()} for k, opts in options.items()},
        elapsed=time.perf_counter() - start,
    )


def _method_options(named: dict, fit_options: dict) -> dict[str, dict]:
    # a method's own options: `mcmc={...}`; those of a backend not asked for are ignored (one options
    # dict can serve calls with different method lists)
    own = {k: fit_options.pop(k) for k in list(fit_options) if k in named or k in BACKENDS}
    for key, value in own.items():
        if not isinstance(value, dict):
            raise OptionError(f"Expected {key}= as a dict of that method's fit options, but got {value!r}.")
    out = {}
    for key, method in named.items():
        if not isinstance(method, str):
            continue
        if method not in BACKENDS:
            raise OptionError(f"Expected methods among {list(BACKENDS)} or callables, but got {method!r}.")
        accepted = getattr(BACKENDS[method], "options", ())
        defaults = {k: v for k, v in DEFAULTS.items() if k in accepted}
        out[key] = {**defaults, **fit_options, **own.get(key, {})}
    return out


def run_simulation(task: bytes, digest: str, index: int) -> dict[str, Any]:
    """Simulation ``index`` of a pickled task (what every worker process runs)."""
    if digest not in _CACHE:
        _CACHE.clear()
        _CACHE[digest] = cloudpickle.loads(task)
    simulator, named, options, seed, num_draws = _CACHE[digest]
    return simulate_and_rank(simulator, named, options, seed, index, num_draws)


def _fingerprint(program, data, observed, named, options, seed, num_draws) -> str:
    """What a checkpoint folder must match: the program's source, the data, methods, options, seed, L."""
    import inspect

    import numpy as np

    def describe(value) -> str:
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
            return f"{value.dtype}{value.shape}{digest}"
        if hasattr(value, "columns") and hasattr(value, "to_numpy"):
            return describe({str(c): value[c].to_numpy() for c in value.columns})
        if isinstance(value, dict):
            return "{" + ",".join(f"{k}:{describe(v)}" for k, v in sorted(value.items(), key=str)) + "}"
        if callable(value):
            try:
                return inspect.getsource(value)
            except (OSError, TypeError):
                return getattr(value, "__qualname__", type(value).__qualname__)
        return repr(value)

    parts = [describe(program), describe(data), describe(observed or {}), describe(named), describe(options)]
    parts += [str(seed), str(num_draws)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _run(task, digest, fingerprint, total, num_workers, executor, checkpoint, progress) -> list[dict]:
    from tqdm.auto import tqdm

    folder = None if checkpoint is None else Path(checkpoint)
    done = _read_checkpoints(folder, fingerprint, total) if folder else {}
    todo = [i for i in range(total) if i not in done]
    bar = tqdm(total=total, initial=len(done), desc="calibrate", unit="sim", disable=not progress)

    def finish(record):
        done[record["index"]] = record
        if folder is not None:
            _write_checkpoint(folder, fingerprint, record)
        bar.update(1)

    workers = num_workers if num_workers is not None else (os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise OptionError(f"Expected num_workers to be a positive integer, but got {num_workers!r}.")
    try:
        if executor is None and (workers == 1 or len(todo) <= 1):
            for index in todo:
                finish(run_simulation(task, digest, index))
        else:
            own = executor is None
            if own:
                context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
                executor = ProcessPoolExecutor(min(workers, len(todo)), mp_context=context)
            try:
                futures = [executor.submit(run_simulation, task, digest, i) for i in todo]
                for future in as_completed(futures):
                    finish(future.result())
            finally:
                if own:
                    executor.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return [done[i] for i in range(total)]


def _path(folder: Path, index: int) -> Path:
    return folder / f"simulation-{index:05d}.pkl"


def _write_checkpoint(folder: Path, digest: str, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = _path(folder, record["index"])
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        pickle.dump({"task": digest, "record": record}, handle)
    os.replace(partial, path)  # never a half-written simulation


def _read_checkpoints(folder: Path, digest: str, total: int) -> dict[int, dict]:
    done = {}
    for index in range(total):
        path = _path(folder, index)
        if not path.exists():
            continue
        with open(path, "rb") as handle:
            saved = pickle.load(handle)
        if saved.get("task") != digest:
            raise OptionError(
                f"Expected the checkpoint folder {str(folder)!r} to hold simulations of this calibration, "
                "but "
                f"{path.name} comes from another (program, data, methods, options or seed differ); use a new "
                "folder or delete it."
            )
        done[index] = saved["record"]
    return done
