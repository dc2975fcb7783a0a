"""What the command line reads and writes: data files, embedded datasets, users' program files.

Imported by :mod:`ppgen.app.commands` only, once a verb that needs torch runs (not by ``--help``).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import torch

from ppgen import data
from ppgen.data.registry import SPLITS
from ppgen.errors import DataError, OptionError
from ppgen.programs.program import Program

__all__ = [
    "read_csv",
    "read_columns",
    "read_table",
    "load_data",
    "load_program",
    "program_data",
    "write_array",
    "prediction_table",
    "is_program_reference",
]


def read_csv(path: str | Path):
    """Read a numeric CSV file (an optional header row) into a float64 array.

    Raises:
        DataError: empty file, ragged rows or a non-numeric value (named by row and column).
    """
    return read_table(path)[1]


def read_columns(path: str | Path) -> dict:
    """A CSV (or tab-separated ``.tsv``/``.txt``) file with a header row as ``{column: float64 tensor}``:
    how ``ppgen fit program.py:model --data file.csv`` binds columns to the program's arguments."""
    header, values = read_table(path)
    if header is None:
        raise DataError(
            f"Expected a header row naming the program's arguments in {str(path)!r}, but the first row "
            "is numbers."
        )
    return {name: torch.as_tensor(values[:, j].copy()) for j, name in enumerate(header)}


def read_table(path: str | Path):
    """``(header or None, float64 array)`` of a numeric CSV file; tabs separate ``.tsv``/``.txt`` files."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [
                row for row in csv.reader(handle, delimiter=delimiter) if any(cell.strip() for cell in row)
            ]
    except UnicodeDecodeError:
        raise DataError(f"Expected a text CSV file, but {str(path)!r} is not UTF-8 text.") from None
    except csv.Error as err:
        raise DataError(
            f"Expected a valid CSV file, but {str(path)!r} could not be parsed ({err})."
        ) from None
    if not rows:
        raise DataError(f"Expected rows of numbers in {str(path)!r}, but the file is empty.")

    def numbers(row):
        try:
            return [float(cell) for cell in row]
        except ValueError:
            return None

    header = None if numbers(rows[0]) is not None else [cell.strip() for cell in rows[0]]
    body = rows[1:] if header else rows
    if not body:
        raise DataError(f"Expected rows of numbers in {str(path)!r}, but it holds only a header.")
    width = len(header) if header else len(body[0])
    values = []
    for i, row in enumerate(body, start=2 if header else 1):
        if len(row) != width:
            raise DataError(
                f"Expected {width} columns in every row of {str(path)!r}, but line {i} has {len(row)}."
            )
        parsed = numbers(row)
        if parsed is None:
            col = next(j for j, cell in enumerate(row) if numbers([cell]) is None)
            label = header[col] if header else f"#{col + 1}"
            raise DataError(
                f"Expected numeric columns only in {str(path)!r}, but line {i}, column {label!r} holds "
                f"{row[col].strip()!r}; drop or encode non-numeric columns first."
            )
        values.append(parsed)
    return header, np.asarray(values, dtype=np.float64)


def load_data(source: str, split: str = "all", *, seed: int = 0):
    """Load ``--data``: an embedded dataset name, a ``.csv`` or a ``.npy`` file.

    ``split`` is ``"all"``, ``"train"`` or ``"test"``; files are split like embedded
    datasets (a shuffle with ``seed``, 25% test). 1-D data becomes one column.
    """
    if split not in SPLITS:
        raise DataError(f"Expected split in {SPLITS}, but got {split!r}.")
    if source in data.datasets():
        if data.datasets()[source].table is not None:
            raise DataError(
                f"Expected an array dataset for a ppgen model, but {source!r} is a table with named columns; "
                "fit a Pyro program to it (its columns are the program's arguments)."
            )
        x = data.load(source, split=split, seed=seed)
    else:
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".npy"):
            raise DataError(
                f"Expected --data as a dataset name in {sorted(data.datasets())} or a .csv/.npy file, "
                f"but got {source!r}."
            )
        if not path.is_file():
            raise DataError(f"Expected a data file, but {source!r} does not exist.")
        if suffix == ".csv":
            array = read_csv(path)
        else:
            try:
                array = np.load(path, allow_pickle=False)
            except Exception as err:  # not an .npy file, object arrays, truncated
                raise DataError(
                    f"Expected a numeric .npy array in {source!r}, but reading failed ({err})."
                ) from None
        x = data.as_tensor(array, name=path.name, dtype=torch.float64)
        if split != "all":
            train, test = data.train_test_split(x, seed=seed)
            x = train if split == "train" else test
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    return x


def write_array(array: np.ndarray, out: str) -> Path:
    """Write ``array`` to ``out`` as ``.npy``, or as ``.csv`` with one row per sample (flattened)."""
    path = Path(out)
    if path.suffix.lower() == ".npy":
        np.save(path, array)
    elif path.suffix.lower() == ".csv":
        np.savetxt(path, array.reshape(array.shape[0], -1), delimiter=",")
    else:
        raise OptionError(f"Expected --out ending in .npy or .csv, but got {out!r}.")
    return path


def load_program(reference: str) -> Any:
    """A program given as ``path/to/file.py:name`` or ``package.module:name`` (a function, a
    ``PyroModule`` instance, or a class, instantiated with no arguments)."""
    source, _, name = reference.rpartition(":")
    if not source or not name:
        raise OptionError(f"Expected a program as FILE.py:NAME or MODULE:NAME, but got {reference!r}.")
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise OptionError(f"Expected a Python file with the program, but {source!r} does not exist.")
        module_name = f"ppgen_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the user's file failed to import
            raise OptionError(
                f"Expected {source!r} to import, but it raised {type(err).__name__}: {err}"
            ) from None
        # The fit file then carries the program itself: `ppgen evaluate` works without the file.
        cloudpickle.register_pickle_by_value(module)
    else:
        try:
            module = importlib.import_module(source)
        except ImportError as err:
            raise OptionError(f"Expected an importable module {source!r}, but: {err}") from None
    if not hasattr(module, name):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise OptionError(f"Expected {name!r} in {source!r}, but it defines {found}.")
    program = getattr(module, name)
    if isinstance(program, type):
        try:
            program = program()
        except TypeError as err:
            raise OptionError(
                f"Expected the class {name!r} to build with no arguments, but: {err}; reference an instance."
            ) from None
    return program


def program_data(program: Any, source: str, split: str = "all", *, optional: tuple[str, ...] = ()) -> dict:
    """``--data`` for a program: the file's columns by name, checked against the program's arguments.

    A column that matches no argument, or a required argument without a column (but those named in
    ``optional``: the observed ones, for prediction), is one clear error. ``split``
    ``"train"``/``"test"`` keeps the rows of ``ppgen.data.train_test_split`` (seed 0).
    """
    columns = read_columns(source) if Path(source).suffix else None
    if columns is None:
        raise DataError(
            f"Expected --data as a .csv/.tsv file with a header row for a program, but got {source!r}."
        )
    fn = program.fn if isinstance(program, Program) else program
    signature = Program(fn).signature
    params = signature.parameters
    name = getattr(fn, "__name__", type(fn).__name__)
    unknown = [c for c in columns if c not in params]
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise DataError(
            f"Expected the columns of {source!r} to be arguments of {name}{signature}, but column(s) "
            f"{unknown} match none; rename or drop them."
        )
    missing = [
        p
        for p, spec in params.items()
        if spec.default is inspect.Parameter.empty
        and spec.kind not in (spec.VAR_POSITIONAL, spec.VAR_KEYWORD)
        and p not in columns
        and p not in optional
    ]
    if missing:
        raise DataError(
            f"Expected a column for every required argument of {name}{signature}, but {missing} have none in "
            f"{source!r}."
        )
    if split != "all":
        rows = next(iter(columns.values())).shape[0]
        train, test = data.train_test_split(torch.arange(rows, dtype=torch.float64).unsqueeze(1), seed=0)
        keep = (train if split == "train" else test)[:, 0].long()
        columns = {k: v[keep] for k, v in columns.items()}
    return columns


def prediction_table(program: Program, draws: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per unit (a row), each site's predictive mean, sd and 5 %/50 %/95 % quantiles over the draws
    ``{site: (S, *shape)}``; a site's other dimensions within a unit get columns ``site[j]_...``."""
    structure = program.structure
    columns: dict[str, Any] = {}
    for site, value in draws.items():
        value = value.detach().double()
        event_dim = structure.get("observed_event_dims", {}).get(site, 0)
        axis = None if structure["plate_dim"] is None else value.ndim - event_dim + structure["plate_dim"]
        per_unit = value.movedim(axis, 1) if axis is not None and axis >= 1 else value.unsqueeze(1)
        per_unit = per_unit.reshape(per_unit.shape[0], per_unit.shape[1], -1)  # (S, N, K)
        quantiles = torch.quantile(per_unit, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64), dim=0)
        stats = {"mean": per_unit.mean(0), "sd": per_unit.std(0), "q05": quantiles[0]}
        stats.update({"q50": quantiles[1], "q95": quantiles[2]})
        for k in range(per_unit.shape[2]):
            label = site if per_unit.shape[2] == 1 else f"{site}[{k}]"
            for stat, table in stats.items():
                columns[f"{label}_{stat}"] = table[:, k].numpy()
    units = len(next(iter(columns.values())))
    return pd.DataFrame({"unit": np.arange(units), **columns})


def is_program_reference(text: str) -> bool:
    """``file.py:name`` or ``module:name`` (a registered model name has no colon)."""
    return ":" in text and not text.startswith(":")
