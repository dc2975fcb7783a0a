"""The ``ppgen calibrate`` verb: simulation-based calibration of several methods on a program file.

``ppgen calibrate my_model.py:fn --data args.csv --methods mle,svi,mcmc --out cal.html`` binds the CSV's
columns to the program's arguments (as ``ppgen fit`` does), runs :func:`ppgen.calibrate` and writes an
HTML page (the table and the ECDF-difference picture), or the :class:`~ppgen.calibration.Calibration`
itself for an ``--out`` ending in ``.pkl``. Importing this module imports neither torch nor Pyro, so
``ppgen --help`` stays fast; the verb imports them when it runs.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
from pathlib import Path
from typing import Any

__all__ = ["add_calibrate_parser", "cmd_calibrate"]


def add_calibrate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``calibrate`` verb to the ``ppgen`` command's subparsers."""
    p = subparsers.add_parser(
        "calibrate",
        help="simulation-based calibration of several methods on a program",
        description=(
            "Draw the program's global latents and data from its prior predictive at the --data file's "
            "covariates and sizes (the observed columns are ignored), fit each simulated data set by every "
            "method, and test whether the true values' ranks among each fit's draws are uniform and its "
            "intervals cover as they claim. --option key=value goes to every method's fit; "
            "--option mcmc.num_samples=500 to one method's."
        ),
        epilog="example: ppgen calibrate model.py:fn --data args.csv --methods mle,svi,mcmc --out cal.html",
    )
    p.add_argument("model", help="a Pyro program with priors, as FILE.py:NAME or MODULE:NAME")
    p.add_argument("--data", required=True, help="a .csv whose columns are the program's arguments")
    p.add_argument("--methods", default="mle,map,svi,mcmc", help="comma-separated (default mle,map,svi,mcmc)")
    p.add_argument("--num-simulations", type=int, default=100, help="simulated data sets (default 100)")
    p.add_argument("--num-draws", type=int, default=99, help="draws each rank is taken among (default 99)")
    p.add_argument("--num-workers", type=int, help="worker processes (default: the core count)")
    p.add_argument("--checkpoint", help="a folder: one file per finished simulation; a rerun resumes")
    p.add_argument("--option", action="append", default=[], metavar="[METHOD.]KEY=VALUE", help="fit option")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--out", default="calibration.html", help="an .html page or a .pkl (default calibration.html)"
    )
    return p


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run ``ppgen calibrate`` (see the module docstring); returns the exit status."""
    from ppgen.app.cli_data import load_program, program_data
    from ppgen.app.registry import parse_options
    from ppgen.calibration.runner import calibrate
    from ppgen.errors import OptionError

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods:
        raise OptionError(f"Expected --methods as a comma-separated list, but got {args.methods!r}.")
    options: dict[str, Any] = {}
    for key, value in parse_options([o.replace(".", "__", 1) for o in args.option]).items():
        method, sep, name = key.partition("__")
        if sep:
            options.setdefault(method, {})[name] = value
        else:
            options[key] = value
    program = load_program(args.model)
    data = program_data(program, args.data, "all")
    result = calibrate(
        program,
        data,
        methods=methods,
        num_simulations=args.num_simulations,
        seed=args.seed,
        num_draws=args.num_draws,
        num_workers=args.num_workers,
        checkpoint=args.checkpoint,
        **options,
    )
    table = result.table()
    shown = ["method", "parameter", "n", "failed", "not_converged", "gamma_p", "cover50", "cover95", "mae"]
    print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    out = Path(args.out)
    if out.suffix == ".pkl":
        result.save(out)
    else:
        out.write_text(_page(result, table, args))
    print(f"wrote {out}")
    return 0


def _page(result, table, args) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = result.plot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode()
    failures = result.failures()
    title = html.escape(f"Calibration of {args.model} on {args.data}")
    return (
        f"<!doctype html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
        f"<p>{result.num_simulations} simulations, ranks among L = {result.num_draws} draws, seed "
        f"{result.seed}, {result.elapsed:.0f} s. A method is calibrated for a parameter when its ranks are "
        "uniform (γ and χ² p-values not small) and its central intervals cover at their nominal rate.</p>"
        f"{table.to_html(index=False, float_format=lambda v: f'{v:.3g}')}"
        f"<img src='data:image/png;base64,{image}' alt='ECDF difference of the ranks, per method'>"
        + (f"<h2>Failed fits</h2>{failures.to_html(index=False)}" if len(failures) else "")
    )
