"""The verbs of the ``ppgen`` command that fit, sample, predict, score and run: ``fit``, ``sample``,
``predict``, ``evaluate``, ``compare``, ``tutorial`` and ``tour``.

:mod:`ppgen.app.cli` parses the command line and imports this module only once one of these verbs
runs: it imports torch, Pyro and ArviZ, which ``ppgen --help``, ``ppgen list`` and a usage error
never need. Each ``cmd_*`` takes the parsed arguments and returns the exit status; errors are
raised and turned into one line by :func:`ppgen.app.cli.main`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ppgen.api import applicable_methods, compare, fit
from ppgen.app import registry
from ppgen.app.calibrate_command import cmd_calibrate
from ppgen.app.cli_data import (
    is_program_reference,
    load_data,
    load_program,
    prediction_table,
    program_data,
    write_array,
)
from ppgen.app.report import run_tour
from ppgen.core import is_program
from ppgen.errors import ImplicitModelError, OptionError, PpgenError
from ppgen.inference import distributed
from ppgen.measures import metrics
from ppgen.result import Fit, load

__all__ = [
    "VERBS",
    "cmd_fit",
    "cmd_sample",
    "cmd_predict",
    "cmd_evaluate",
    "cmd_compare",
    "cmd_tutorial",
    "cmd_tour",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64, None: None}


def cmd_fit(args: argparse.Namespace) -> int:
    """``ppgen fit MODEL --data ...``: a registered model, or a user's program as ``FILE.py:NAME``."""
    if is_program_reference(args.model):
        return _fit_program(args, registry.parse_options(args.option))
    spec = registry.get(args.model)
    options = registry.parse_options(args.option)
    args.split = args.split or "train"
    started = distributed.init()  # under torchrun: join the process group (gloo on CPU, nccl on GPU)
    try:
        return _fit(args, spec, options)
    finally:
        if started:
            distributed.shutdown()


def _print_summary(result: Fit) -> None:
    table = result.summary()
    if not table.empty:
        print(table.head(12).to_string(index=False))
        if len(table) > 12:
            print(f"... {len(table)} parameters in total")


def _fit(args: argparse.Namespace, spec: registry.ModelSpec, options: dict[str, Any]) -> int:
    x = load_data(args.data, args.split)
    model, fit_options = registry.build(spec.name, x, options)
    if args.device:
        fit_options["device"] = args.device
    method = args.method
    if method is None:
        usable = applicable_methods(model)
        method = (
            spec.default_method if spec.default_method in usable else (usable or [spec.default_method])[0]
        )
    if fit_options.get("num_steps") is not None and not isinstance(fit_options["num_steps"], int):
        raise OptionError(f"Expected num_steps to be an integer, but got {fit_options['num_steps']!r}.")
    result = fit(model, x, method=method, seed=args.seed, dtype=DTYPES[args.dtype], **fit_options)
    result.extras["cli"] = {"model": spec.name, "data": args.data, "split": args.split}
    if not distributed.is_main():
        return 0
    path = result.save(args.out, posterior_netcdf=args.netcdf)
    label = f"{args.data}[{args.split}]"
    name = type(result.model).__name__
    line = f"fitted {name} by {method!r} on {label} ({x.shape[0]} rows) in {result.elapsed:.3g} s"
    try:
        line += f"; mean train log-lik {result.score(x):.4f}"
    except PpgenError:
        pass
    print(line)
    _print_summary(result)
    print(f"wrote {path}" + (f" and {path}.nc" if Path(f"{path}.nc").is_file() and args.netcdf else ""))
    return 0


def _fit_program(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``ppgen fit file.py:program --data file.csv``: the file's columns are the program's arguments."""
    program = load_program(args.model)
    data = program_data(program, args.data, args.split or "all")
    method = args.method
    if method is None:
        usable = applicable_methods(program, data)
        method = next((m for m in ("mcmc", "mle", "svi") if m in usable), "svi")
    if args.device:
        options["device"] = args.device
    result = fit(program, data, method=method, seed=args.seed, dtype=DTYPES[args.dtype], **options)
    result.extras["cli"] = {"model": args.model, "data": args.data, "split": args.split or "all"}
    path = result.save(args.out, posterior_netcdf=args.netcdf)
    units = result.model.structure["n_units"]
    print(
        f"fitted {args.model} by {method!r} on {args.data} ({units} units) in {result.elapsed:.3g} s; "
        f"mean log-lik per unit {result.score(data):.4f}"
    )
    _print_summary(result)
    print(f"wrote {path}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``ppgen sample FIT -n N``: draws from a saved fit to a .npy or .csv file."""
    if args.n < 1:
        raise OptionError(f"Expected -n to be a positive integer, but got {args.n}.")
    result = load(args.fit)
    draws = result.sample(args.n, seed=args.seed)
    if isinstance(draws, dict):  # a program observing several sites
        raise OptionError(
            f"Expected a fit with one observed site to write samples, but it observes {sorted(draws)}; "
            "use fit.sample(n) in Python (a dict by site)."
        )
    draws = draws.detach().cpu().numpy()
    path = write_array(draws, args.out)
    print(f"wrote {draws.shape[0]} samples of shape {tuple(draws.shape[1:])} to {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """``ppgen predict FIT --data new.csv --out pred.csv``: a program's observed sites predicted at new
    inputs (Pyro's ``Predictive``), summarised per unit of the new data."""
    if args.num_samples is not None and args.num_samples < 1:
        raise OptionError(f"Expected --num-samples to be a positive integer, but got {args.num_samples}.")
    if not str(args.out).lower().endswith(".csv"):
        raise OptionError(f"Expected --out ending in .csv, but got {args.out!r}.")
    result = load(args.fit)
    if not is_program(result.model):
        raise OptionError(
            f"Expected a fit of a Pyro program (its arguments are the columns of --data), but {args.fit!r} "
            f"holds {type(result.model).__name__}, which takes no inputs; draw from it with `ppgen sample`."
        )
    program = result.model
    data = program_data(program.fn, args.data, "all", optional=program.structure["observed_args"])
    sites = list(program.observed_sites)
    draws = result.predict(data, num_samples=args.num_samples, seed=args.seed, return_sites=sites)
    table = prediction_table(program, draws)
    table.to_csv(args.out, index=False)
    count = next(iter(draws.values())).shape[0]
    print(
        f"predicted {sites} by {result.method!r} at {len(table)} units of {args.data} ({count} draws); "
        f"wrote mean, sd and 5/50/95% quantiles to {args.out}"
    )
    return 0


def _sample_metrics(result: Fit, x: torch.Tensor, seed: int) -> dict[str, Any]:
    """Sample-based distances between the fit's samples and ``x`` from ppgen.measures.metrics, if any."""
    found = {}
    n = min(x.shape[0], 2000)
    for name in ("mmd", "energy_distance", "sliced_wasserstein"):
        fn = getattr(metrics, name, None)
        if not callable(fn):
            continue
        draws = result.sample(n, seed=seed).to(x.dtype)
        try:
            found[name] = float(fn(draws, x[:n]))
        except Exception as err:  # a metric that does not apply to this data
            found[name] = f"n/a ({type(err).__name__})"
    return found


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``ppgen evaluate FIT --data ...``: held-out log-likelihood and sample-based distances."""
    result = load(args.fit)
    if is_program(result.model):
        data = program_data(result.model.fn, args.data, args.split or "all")
        score = result.log_prob(data)
        print(
            f"fit: {result.model.extra_repr()} by {result.method!r}; data: {args.data}, "
            f"{score.shape[0]} units"
        )
        print(f"mean held-out log-lik: {float(score.mean()):.6f} nats per unit")
        return 0
    args.split = args.split or "test"
    x = load_data(args.data, args.split)
    name = type(result.model).__name__
    print(f"fit: {name} by {result.method!r}; data: {args.data}[{args.split}], {x.shape[0]} rows")
    try:
        log_prob = result.log_prob(x)
        print(f"mean held-out log-lik: {float(log_prob.mean()):.6f} nats per example")
        bits = metrics.bits_per_dim(log_prob, x[0].numel())
        print(f"held-out NLL: {float(-log_prob.mean()):.6f} nats = {bits:.6f} bits/dim")
    except ImplicitModelError:
        print("mean held-out log-lik: n/a (implicit model: it has no density)")
    found = _sample_metrics(result, x, args.seed)
    for name, value in found.items():
        print(f"{name}: {value:.6f}" if isinstance(value, float) else f"{name}: {value}")
    if not found:
        print(
            "sample-based metrics: none yet (ppgen.metrics has no mmd, energy_distance, sliced_wasserstein)"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``ppgen compare FIT... --data ...``: :func:`ppgen.compare`'s table of saved fits."""
    fits = [load(path) for path in args.fits]
    programs = [is_program(f.model) for f in fits]
    if any(programs) and not all(programs):
        raise OptionError("Expected fits of programs only or of ppgen models only, but got both kinds.")
    if all(programs):
        x = program_data(fits[0].model.fn, args.data, args.split or "all")
    else:
        x = load_data(args.data, args.split or "test")
    names = [
        f"{Path(p).stem}:{getattr(f.model, 'name', type(f.model).__name__)}" for p, f in zip(args.fits, fits)
    ]
    table = compare(fits, x, names=names)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    return 0


def _tutorial_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve().parents[2] / "tutorials"  # the repository's, beside ppgen/
    return here if here.is_dir() else Path.cwd() / "tutorials"


def cmd_tutorial(args: argparse.Namespace) -> int:
    """``ppgen tutorial N``: run ``tutorials/NN_*.py`` as a script."""
    folder = _tutorial_dir(args.dir)
    scripts = sorted(folder.glob("[0-9][0-9]_*.py")) if folder.is_dir() else []
    if not scripts:
        raise OptionError(f"Expected tutorial scripts NN_*.py in {str(folder)!r}, but found none.")
    chosen = [s for s in scripts if int(s.name[:2]) == args.number]
    if not chosen:
        listing = ", ".join(s.stem for s in scripts)
        raise OptionError(f"Expected a tutorial number among: {listing}; but got {args.number}.")
    env = dict(os.environ)
    if args.fast:
        env["PPGEN_FAST"] = "1"
    if args.full:
        env["PPGEN_FULL"] = "1"
    print(f"running {chosen[0]}", flush=True)
    code = subprocess.call([sys.executable, str(chosen[0])], env=env)
    if code != 0:
        raise OptionError(f"Expected tutorial {chosen[0].name} to finish, but it exited with status {code}.")
    return 0


def cmd_tour(args: argparse.Namespace) -> int:
    """``ppgen tour``: run the chapters and write the HTML report."""
    run_tour(args.out, fast=args.fast, full=args.full, only=args.only or None, seed=args.seed)
    return 0


#: verb -> its implementation (``ppgen list`` lives in :mod:`ppgen.app.listing`: it needs no torch).
VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "fit": cmd_fit,
    "sample": cmd_sample,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
    "tutorial": cmd_tutorial,
    "tour": cmd_tour,
    "calibrate": cmd_calibrate,
}
