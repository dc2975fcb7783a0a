"""The ``ppgen`` command: list, fit, sample, evaluate, compare, tutorial, tour.

Every error the user can cause (unknown model or method, a bad data or fit file, a bad
option) ends the command with one line ``ppgen: error: ...`` on stderr and exit status 2;
an unexpected failure prints one line and exits with 1 (``PPGEN_DEBUG=1`` shows the
traceback). Run ``ppgen COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from ppgen.cli_data import is_program_reference, load_data, load_program, program_data, read_csv, write_array

__all__ = ["main", "load_data", "read_csv"]

EXAMPLES = """examples:
  ppgen list
  ppgen fit gaussian --data faithful --method exact --out fit.pt
  ppgen fit gmm --data points.csv --option n_components=4 --out gmm.pt
  ppgen sample fit.pt -n 1000 --out samples.npy
  ppgen evaluate fit.pt --data faithful
  ppgen compare fit.pt gmm.pt --data faithful
  ppgen fit my_model.py:partially_pooled --data players.csv --method mcmc --out pooled.pt
  ppgen evaluate pooled.pt --data season.csv
  ppgen tutorial 1
  ppgen tour --fast --only data kde
"""

METHOD_NOTES = {
    "exact": "closed-form MLE or exact conjugate posterior",
    "em": "expectation-maximisation (latent-variable models)",
    "mle": "gradient maximum likelihood, minibatched",
    "svi": "stochastic variational inference (ELBO)",
    "map": "maximum a posteriori (models with priors)",
    "mcmc": "NUTS/HMC posterior (models with priors)",
    "adversarial": "GAN training against a critic (implicit models)",
}


class UsageError(Exception):
    """A command-line mistake caught by argparse."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    import ppgen
    from ppgen import registry

    print("models (ppgen fit MODEL):")
    for name in registry.names():
        spec = registry.get(name)
        ok, reason = registry.available(name)
        status = "" if ok else "  [unavailable: not installed yet]"
        print(f"  {name:<24}{spec.summary} (default method: {spec.default_method}){status}")
    print("\nmethods (--method):")
    for name in ppgen.methods():
        print(f"  {name:<24}{METHOD_NOTES.get(name, '')}")
    print("\ndatasets (--data NAME, or a .csv/.npy file):")
    for name, dataset in sorted(ppgen.data.datasets().items()):
        shape = "x".join(map(str, dataset.shape)) if dataset.shape else "?"
        print(f"  {name:<24}{shape:<12}{dataset.kind:<12}{dataset.description}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:

    from ppgen import distributed, registry

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


def _fit(args: argparse.Namespace, spec, options: dict[str, Any]) -> int:
    import torch

    import ppgen
    from ppgen import distributed, registry
    from ppgen.errors import OptionError

    x = load_data(args.data, args.split)
    model, fit_options = registry.build(spec.name, x, options)
    if args.device:
        fit_options["device"] = args.device
    method = args.method
    if method is None:
        usable = ppgen.applicable_methods(model)
        method = (
            spec.default_method if spec.default_method in usable else (usable or [spec.default_method])[0]
        )
    dtype = {"float32": torch.float32, "float64": torch.float64, None: None}[args.dtype]
    if fit_options.get("num_steps") is not None and not isinstance(fit_options["num_steps"], int):
        raise OptionError(f"Expected num_steps to be an integer, but got {fit_options['num_steps']!r}.")
    result = ppgen.fit(model, x, method=method, seed=args.seed, dtype=dtype, **fit_options)
    result.extras["cli"] = {"model": spec.name, "data": args.data, "split": args.split}
    if not distributed.is_main():
        return 0
    path = result.save(args.out, posterior_netcdf=args.netcdf)
    label = f"{args.data}[{args.split}]"
    name = type(result.model).__name__
    line = f"fitted {name} by {method!r} on {label} ({x.shape[0]} rows) in {result.elapsed:.3g} s"
    try:
        line += f"; mean train log-lik {result.score(x):.4f}"
    except ppgen.PpgenError:
        pass
    print(line)
    table = result.summary()
    if not table.empty:
        print(table.head(12).to_string(index=False))
        if len(table) > 12:
            print(f"... {len(table)} parameters in total")
    print(f"wrote {path}" + (f" and {path}.nc" if Path(f"{path}.nc").is_file() and args.netcdf else ""))
    return 0


def _fit_program(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``ppgen fit file.py:program --data file.csv``: the file's columns are the program's arguments."""
    import torch

    import ppgen

    program = load_program(args.model)
    data = program_data(program, args.data, args.split or "all")
    dtype = {"float32": torch.float32, "float64": torch.float64, None: None}[args.dtype]
    method = args.method
    if method is None:
        usable = ppgen.applicable_methods(program, data)
        method = next((m for m in ("mcmc", "mle", "svi") if m in usable), "svi")
    if args.device:
        options["device"] = args.device
    result = ppgen.fit(program, data, method=method, seed=args.seed, dtype=dtype, **options)
    result.extras["cli"] = {"model": args.model, "data": args.data, "split": args.split or "all"}
    path = result.save(args.out, posterior_netcdf=args.netcdf)
    units = result.model.structure["n_units"]
    print(
        f"fitted {args.model} by {method!r} on {args.data} ({units} units) in {result.elapsed:.3g} s; "
        f"mean log-lik per unit {result.score(data):.4f}"
    )
    table = result.summary()
    if not table.empty:
        print(table.head(12).to_string(index=False))
        if len(table) > 12:
            print(f"... {len(table)} parameters in total")
    print(f"wrote {path}")
    return 0


def _is_program_fit(result) -> bool:
    from ppgen.core import is_program

    return is_program(result.model)


def cmd_sample(args: argparse.Namespace) -> int:
    import ppgen
    from ppgen.errors import OptionError

    if args.n < 1:
        raise OptionError(f"Expected -n to be a positive integer, but got {args.n}.")
    result = ppgen.load(args.fit)
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


def _sample_metrics(result, x, seed: int) -> dict[str, Any]:
    """Sample-based distances between the fit's samples and ``x`` from ppgen.metrics, if any."""
    from ppgen import metrics

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
    import ppgen
    from ppgen import metrics

    result = ppgen.load(args.fit)
    if _is_program_fit(result):
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
    except ppgen.ImplicitModelError:
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
    import pandas as pd

    import ppgen

    fits = [ppgen.load(path) for path in args.fits]
    programs = [_is_program_fit(f) for f in fits]
    if any(programs) and not all(programs):
        raise ppgen.OptionError("Expected fits of programs only or of ppgen models only, but got both kinds.")
    if all(programs):
        x = program_data(fits[0].model.fn, args.data, args.split or "all")
    else:
        x = load_data(args.data, args.split or "test")
    names = [
        f"{Path(p).stem}:{getattr(f.model, 'name', type(f.model).__name__)}" for p, f in zip(args.fits, fits)
    ]
    table = ppgen.compare(fits, x, names=names)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    return 0


def _tutorial_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve().parent.parent / "tutorials"
    return here if here.is_dir() else Path.cwd() / "tutorials"


def cmd_tutorial(args: argparse.Namespace) -> int:
    from ppgen.errors import OptionError

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
    from ppgen.report import run_tour

    run_tour(args.out, fast=args.fast, full=args.full, only=args.only or None, seed=args.seed)
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``ppgen`` command."""
    parser = _Parser(
        prog="ppgen",
        description="Generative models as Pyro programs: fit, sample, evaluate and compare from the shell.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ppgen import __version__

    parser.add_argument("--version", action="version", version=f"ppgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="models (with availability), methods and datasets")
    p.set_defaults(handler=cmd_list)

    data_help = "embedded dataset name (see `ppgen list`) or a .csv (header allowed) / .npy file"
    p = sub.add_parser(
        "fit",
        help="fit a model to data and save the fit",
        description=(
            "Fit MODEL to --data with --method and save the fit to --out. --option key=value (repeatable) "
            "is parsed as bool/none/int/float/comma-list/str; keys the model's constructor accepts "
            "(e.g. n_components, covariance, hidden) go to the model, the others (num_steps, lr, "
            "batch_size, guide, num_samples, ...) to ppgen.fit. Under torchrun the gradient methods train "
            "data-parallel and rank 0 writes the file."
        ),
        epilog="example: ppgen fit gaussian --data faithful --method exact --out fit.pt",
    )
    p.add_argument(
        "model",
        help="model name (gaussian, kde, gmm, ppca, made, flow, vae, gan, ...) or a Pyro program as "
        "FILE.py:NAME / MODULE:NAME, whose arguments are the --data file's columns",
    )
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--method", help="inference method (default: the model's usual one; see `ppgen list`)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model or fit option")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--split", choices=("train", "all"), help="rows to fit (default: train for models, all for programs)"
    )
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), help="device for gradient methods")
    p.add_argument("--dtype", choices=("float32", "float64"), help="floating dtype (default: the data's)")
    p.add_argument("--out", default="fit.pt", help="where to write the fit (default fit.pt)")
    p.add_argument(
        "--netcdf", action="store_true", help="also write a Bayesian fit's posterior to OUT.nc (ArviZ netCDF)"
    )
    p.set_defaults(handler=cmd_fit)

    p = sub.add_parser(
        "sample", help="draw samples from a saved fit", description="Draw N samples from a saved fit."
    )
    p.add_argument("fit", help="a file written by `ppgen fit`")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("--out", default="samples.npy", help="output .npy or .csv (default samples.npy)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(handler=cmd_sample)

    p = sub.add_parser(
        "evaluate",
        help="held-out log-likelihood and sample metrics of a saved fit",
        description=(
            "Mean held-out log-likelihood (posterior predictive for Bayesian fits) on --data, and the "
            "sample-based distances ppgen.metrics offers (the only scores of an implicit model)."
        ),
    )
    p.add_argument("fit", help="a file written by `ppgen fit`")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument(
        "--split", choices=("test", "all", "train"), help="rows to score (default: test; all for programs)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the samples for sample metrics")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "compare",
        help="side-by-side table of saved fits",
        description="ppgen.compare's table: train and held-out log-lik, LOO/WAIC, parameters, time.",
    )
    p.add_argument("fits", nargs="+", help="files written by `ppgen fit`")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument(
        "--split", choices=("test", "all", "train"), help="held-out rows (default: test; all for programs)"
    )
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser(
        "tutorial", help="run tutorial script N", description="Run tutorials/NN_*.py as a script."
    )
    p.add_argument("number", type=int, help="tutorial number, e.g. 3 for tutorials/03_*.py")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="the seconds-long smoke run (PPGEN_FAST=1)")
    mode.add_argument("--full", action="store_true", help="the long version (PPGEN_FULL=1)")
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_tutorial)

    p = sub.add_parser(
        "tour",
        help="run every chapter and write an HTML report",
        description="Run the chapters on embedded data; write DIR/index.html and DIR/results.json. "
        "Default: every chapter, about 3 minutes on 2 cores (budget 5).",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="the smoke run (budget 2 minutes)")
    mode.add_argument("--full", action="store_true", help="the long versions (budget 20 minutes)")
    p.add_argument("--only", nargs="+", action="extend", metavar="CHAPTER", help="run only these chapters")
    p.add_argument("--out", default="ppgen-report", help="output folder (default ppgen-report)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(handler=cmd_tour)
    return parser


def _fail(message: str) -> None:
    print(f"ppgen: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppgen`` console script; returns the exit status."""
    parser = build_parser()
    debug = bool(os.environ.get("PPGEN_DEBUG"))
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.handler(args) or 0)
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0
    except UsageError as err:
        _fail(str(err))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as err:
        from ppgen.errors import PpgenError

        if debug:
            raise
        if isinstance(err, PpgenError):
            _fail(str(err))
            return 2
        if isinstance(err, OSError) and err.filename:
            _fail(f"{err.strerror or err} ({err.filename})")
            return 2
        _fail(f"unexpected {type(err).__name__}: {err} (run with PPGEN_DEBUG=1 for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
