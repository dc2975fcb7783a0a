"""The ``ppgen`` command: list, fit, sample, predict, evaluate, compare, tutorial, tour.

Every error the user can cause (unknown model or method, a bad data or fit file, a bad
option) ends the command with one line ``ppgen: error: ...`` on stderr and exit status 2;
an unexpected failure prints one line and exits with 1 (``PPGEN_DEBUG=1`` shows the
traceback). Run ``ppgen COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from ppgen import __version__
from ppgen.app.calibrate_command import add_calibrate_parser
from ppgen.app.listing import print_list
from ppgen.errors import PpgenError

__all__ = ["main", "build_parser"]

EXAMPLES = """examples:
  ppgen list
  ppgen fit gaussian --data faithful --method exact --out fit.pt
  ppgen fit gmm --data points.csv --option n_components=4 --out gmm.pt
  ppgen sample fit.pt -n 1000 --out samples.npy
  ppgen evaluate fit.pt --data faithful
  ppgen compare fit.pt gmm.pt --data faithful
  ppgen fit my_model.py:partially_pooled --data players.csv --method mcmc --out pooled.pt
  ppgen evaluate pooled.pt --data season.csv
  ppgen predict pooled.pt --data new_players.csv --out predictions.csv
  ppgen tutorial 1
  ppgen tour --fast --only data kde
"""


class UsageError(Exception):
    """A command-line mistake caught by argparse."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``ppgen`` command."""
    parser = _Parser(
        prog="ppgen",
        description="Generative models as Pyro programs: fit, sample, evaluate and compare from the shell.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ppgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sub.add_parser("list", help="models (with availability), methods and datasets")

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

    p = sub.add_parser(
        "sample", help="draw samples from a saved fit", description="Draw N samples from a saved fit."
    )
    p.add_argument("fit", help="a file written by `ppgen fit`")
    p.add_argument("-n", type=int, required=True, help="number of samples")
    p.add_argument("--out", default="samples.npy", help="output .npy or .csv (default samples.npy)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = sub.add_parser(
        "predict",
        help="predict a fitted program's observed sites at new inputs",
        description=(
            "Posterior (or plug-in) predictive draws of a fitted Pyro program's observed sites at the inputs "
            "in --data, whose columns are the program's arguments (the observed ones left out); writes, per "
            "unit of the new data, each site's mean, sd and 5%%/50%%/95%% quantiles to --out (CSV)."
        ),
        epilog="example: ppgen predict pooled.pt --data new_players.csv --out predictions.csv",
    )
    p.add_argument("fit", help="a file written by `ppgen fit FILE.py:NAME ...`")
    p.add_argument("--data", required=True, help="a .csv/.tsv file with a header row naming the arguments")
    p.add_argument("--out", default="predictions.csv", help="output .csv (default predictions.csv)")
    p.add_argument(
        "-n", "--num-samples", type=int, help="predictive draws (default: one per posterior draw, or 500)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = sub.add_parser(
        "evaluate",
        help="held-out log-likelihood and sample metrics of a saved fit",
        description=(
            "Mean held-out log-likelihood (posterior predictive for Bayesian fits) on --data, and the "
            "sample-based distances ppgen.measures.metrics offers (the only scores of an implicit model)."
        ),
    )
    p.add_argument("fit", help="a file written by `ppgen fit`")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument(
        "--split", choices=("test", "all", "train"), help="rows to score (default: test; all for programs)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the samples for sample metrics")

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

    p = sub.add_parser(
        "tutorial", help="run tutorial script N", description="Run tutorials/NN_*.py as a script."
    )
    p.add_argument("number", type=int, help="tutorial number, e.g. 3 for tutorials/03_*.py")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="the seconds-long smoke run (PPGEN_FAST=1)")
    mode.add_argument("--full", action="store_true", help="the long version (PPGEN_FULL=1)")
    p.add_argument("--dir", help=argparse.SUPPRESS)

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

    add_calibrate_parser(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; return its exit status."""
    if args.command == "list":
        return print_list()
    # imported only now a verb runs: keeps torch/Pyro/ArviZ off the path of --help, list and usage errors
    from ppgen.app.commands import VERBS

    return int(VERBS[args.command](args) or 0)


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
        return _run(args)
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0
    except UsageError as err:
        _fail(str(err))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except Exception as err:
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
