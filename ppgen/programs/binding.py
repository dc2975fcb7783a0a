"""How a program's arguments are bound: for fitting and scoring (the observations included), and for
prediction at new inputs (the observed arguments left out, as Pyro's ``Predictive(model, ...)(x_new)``).

The first bind of a program discovers its structure (observed sites, units, latents, deterministic
sites) and the arguments that carry the observations; later binds are checked against it, so the
observed sites are always the training fit's, never rediscovered from a new call.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites

from ppgen.data import as_tensor, load
from ppgen.errors import DataError
from ppgen.programs import sites
from ppgen.programs.vectorise import free

__all__ = ["ProgramBinding", "OBSERVED_PREFIX"]

#: Conditioning values given with ``observed={site: value}`` travel with the arguments under
#: ``"observed:<site>"`` (not a Python identifier, so never a program argument), which lets
#: minibatches slice them like any per-unit argument.
OBSERVED_PREFIX = "observed:"


class ProgramBinding:
    """Binding of :class:`~ppgen.programs.program.Program` (it supplies ``signature``, ``model``,
    ``guide``, ``user_guide``, ``observed_names``, ``plate_choice``, ``structure``, ``train_args``)."""

    def bind(
        self, data: Any, *, dtype: torch.dtype | None = None, observed: Mapping[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Bind ``data`` to the program's arguments; return ``(units, arguments)``.

        A dict (or DataFrame) binds by name; a bare tensor binds to an argument called ``x``.
        Tensors, arrays and DataFrame columns become validated tensors; ints, dicts, functions
        and distributions pass through untouched. The first call also discovers the program's
        observed sites, units and latent sites (:attr:`structure`) and builds its parameters.
        Later calls score data: the observations must be there (:meth:`bind_inputs` predicts them).
        """
        if self.structure is not None or observed or self.observed_names:
            return self._bind(data, dtype, observed)
        try:
            return self._bind(data, dtype, observed)
        except DataError:
            generated = self._generated_site(data, dtype)
            if generated is None:
                raise
        site, (values, args) = generated  # a generator emitting its data through pyro.deterministic
        self.observed_names = (site,)
        return self._bind(args, dtype, {site: values})

    def _bind(
        self, data: Any, dtype: torch.dtype | None, observed: Mapping[str, Any] | None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        args = self._arguments(data, dtype)
        observed = dict(observed or {})
        expected = set(self.observed_names) if self.structure is None else set(self.structure["conditioned"])
        if set(observed) != expected and (observed or expected):
            raise DataError(
                f"Expected observed= values for {sorted(expected)}, as the program was fitted, but got "
                f"{sorted(observed)}."
            )
        float_dtype = dtype or sites.float_dtype(args)
        for site, value in observed.items():
            args[OBSERVED_PREFIX + site] = as_tensor(
                value, name=f"observed[{site!r}]", dtype=float_dtype, ndim=None
            )
        if self.structure is not None:
            self._check_observations(args)
        with sites.auto_dims() as automatic:  # which plates let Pyro choose their dim
            trace = self._trace(args)
        if self.structure is not None and not any(
            trace.nodes.get(s, {}).get("is_observed") for s in self.structure["observed"]
        ):
            raise DataError(
                f"Expected data for the observed sites {list(self.structure['observed'])} as in training, "
                "but no value reached them; pass the argument(s) they observe, or call fit.predict(...) to "
                "predict them."
            )
        structure = sites.structure(trace, self.plate_choice, tuple(observed), automatic)
        if structure["n_units"] < 0:  # a plate without a size (pyro.plate("data_plate")): the values say
            structure["n_units"] = _sizeless_plate_size(trace, structure)
        structure["observed_args"] = sites.observed_arguments(args, trace, structure["observed"])
        if self.structure is None:
            self.structure, self.train_args = structure, args
        elif set(structure["observed"]) != set(self.structure["observed"]):
            raise DataError(
                f"Expected data for the observed sites {sorted(self.structure['observed'])} as in training, "
                f"but the program now observes {sorted(structure['observed'])}."
            )
        units = torch.empty(structure["n_units"], 0, dtype=float_dtype)
        return units, args

    def bind_inputs(self, data: Any, *, dtype: torch.dtype | None = None) -> dict[str, Any]:
        """The arguments to predict at: ``data`` without the observed arguments (``y=None``, a dict or a
        DataFrame without that column), which are then ``None`` and their sites drawn. ``observed=``
        values are never needed. The program must run on them (a clear :class:`DataError` otherwise)."""
        if self.structure is None:
            raise DataError("Expected a fitted program to predict with, but it was never bound to data.")
        mapping = self._as_mapping(data)
        params = self.signature.parameters
        filled = {name: None for name in self.structure["observed_args"] if name in params}
        args = self._arguments({**filled, **mapping}, dtype)
        self._check_input_shapes(args)
        self._trace(args, forward=True)  # runs on them, or says why not
        return args

    def _check_input_shapes(self, args: dict) -> None:
        """A per-unit input (a training tensor with one row per unit) keeps its shape but for the count
        of units: ``x_new`` of shape ``(m, 3)`` for a fit on ``x`` of shape ``(n, 3)``."""
        n = self.structure["n_units"]
        for name, new in args.items():
            old = (self.train_args or {}).get(name)
            if not (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)) or n < 2:
                continue
            if old.ndim and old.shape[0] == n and (new.ndim != old.ndim or new.shape[1:] != old.shape[1:]):
                rows = ", ".join(["m", *map(str, old.shape[1:])]) + ("," if old.ndim == 1 else "")
                raise DataError(
                    f"Expected {name!r} of shape ({rows}) for m new units, as in training (shape "
                    f"{tuple(old.shape)}), but got {tuple(new.shape)}."
                )

    def _generated_site(self, data: Any, dtype: torch.dtype | None) -> tuple[str, tuple] | None:
        """A program that observes nothing but emits its data through one ``pyro.deterministic`` site
        (``x = pyro.deterministic("x", net(z))``, a generator) given bare data: ``(site, (values,
        arguments))``, the data conditioning that site (as ``observed={site: data}`` would) and ``n`` set
        to their count where the program takes it. None for any other program or data."""
        if isinstance(data, (str, Mapping)) or sites.is_frame(data) or data is None:
            return None
        params = self.signature.parameters
        values = as_tensor(data, name="data", dtype=dtype, ndim=None)
        args = {"x": values} if "x" in params else {}
        if "n" in params and values.ndim:
            args["n"] = int(values.shape[0])
        try:
            self.signature.bind(**args)
            with torch.no_grad(), poutine.block(), self.parameters_served():
                trace = poutine.trace(self.fn).get_trace(**args)
        except Exception:  # noqa: BLE001 - not a generator this way: the ordinary binding says why
            return None
        found = [n for n, s in trace.nodes.items() if s["type"] == "sample"]
        deterministic = {n for n in found if trace.nodes[n]["infer"].get("_deterministic")}
        if any(trace.nodes[n]["is_observed"] and n not in deterministic for n in found):
            return None
        emitted = [n for n in found if n in deterministic]
        if len(emitted) > 1:
            emitted = [n for n in emitted if n == "x"] or emitted
        if len(emitted) != 1:
            if emitted:
                raise DataError(
                    f"Expected one pyro.deterministic site to receive the data, but the program "
                    f"{self._describe()} has {emitted}; name it with observed={{{emitted[0]!r}: data}}."
                )
            return None
        return emitted[0], (values, args)

    def _check_observations(self, args: dict) -> None:
        missing = [name for name in self.structure["observed_args"] if args.get(name) is None]
        if missing:
            raise DataError(
                f"Expected the observed argument {missing[0]!r} to score the data (the fit observes "
                f"{list(self.structure['observed'])} through it), but got none; pass {missing[0]!r} with the "
                "observations, or call fit.predict(...) to predict them."
            )

    def _as_mapping(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            data = load(data)
        if sites.is_frame(data):
            return {str(column): data[column].to_numpy() for column in data.columns}
        if isinstance(data, Mapping):
            return dict(data)
        params = self.signature.parameters
        if "x" not in params:
            raise DataError(
                f"Expected a dict of the program's arguments {self._describe()}, but got a bare "
                f"{type(data).__name__}; pass e.g. {{{next(iter(params), 'x')!r}: ...}}."
            )
        return {"x": data}

    def _arguments(self, data: Any, dtype: torch.dtype | None) -> dict[str, Any]:
        data = self._as_mapping(data)
        params = self.signature.parameters
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = sorted(k for k in data if k not in params and not accepts_any)
        if unknown:
            raise DataError(
                f"Expected arguments of the program {self._describe()}, but got unknown {unknown}."
            )
        try:
            self.signature.bind(**data)
        except TypeError as err:
            raise DataError(
                f"Expected every required argument of the program {self._describe()}: {err}."
            ) from None
        return {key: sites.argument(key, value, dtype) for key, value in data.items()}

    @property
    def name(self) -> str:
        """The program's own name (its function's, or its module's class name)."""
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def _describe(self) -> str:
        return f"{self.name}{self.signature}"

    def _trace(self, args: dict, *, forward: bool = False) -> poutine.Trace:
        """One run of the program on ``args`` (``forward``: its observed sites drawn, not observed)."""
        model = free(self) if forward else self.model
        try:
            with torch.no_grad(), poutine.block():
                trace = poutine.trace(model).get_trace(None, **args)
                if self.user_guide is not None and not forward:
                    self.guide(None, **args)  # builds the guide's parameters too
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of the user's code is reported, named
            detail = " ".join(str(err).split("Trace Shapes:")[0].split())[:300]  # Pyro appends its shapes
            raise DataError(
                f"Expected the program {self._describe()} to run on the given arguments, but it raised "
                f"{type(err).__name__}: {detail}"
            ) from None
        return prune_subsample_sites(trace)


def _sizeless_plate_size(trace: poutine.Trace, structure: dict) -> int:
    """The size of a units plate declared without one (svi_part_iii's ``pyro.plate("data_plate")``,
    size -1, PyTorch's "any"): Pyro broadcasts it to the observed values, so their batch shape at the
    plate's dim is its size."""
    for name in structure["observed"]:
        site = trace.nodes[name]
        batch = site["value"].shape[: site["value"].dim() - len(site["fn"].event_shape)]
        dim = structure["plate_dim"]
        if dim is not None and len(batch) >= -dim:
            return int(batch[dim])
    raise DataError(
        f"Expected the size of plate {structure['plate']!r} (declared without one) from its observed "
        "values, but none has a batch dim there; give the plate its size: pyro.plate(name, len(data))."
    )
