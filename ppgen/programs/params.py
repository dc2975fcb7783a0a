"""Where a program's parameters live: the fit's own store, never Pyro's global one.

``pyro.param`` statements are served from the :class:`~ppgen.programs.program.Program`'s store (created
from their initial value the first time). ``pyro.module(name, net)`` registers ``net``'s
parameters and returns ``net`` itself, which the program then calls: so while the program runs,
``net``'s parameter slots hold the fit's own tensors (copied from ``net`` the first time), and on
exit they are given back. A network once registered is served in every later run of the model or
the guide, since Pyro's programs register a network in one and call it from the other. The user's
network is never trained in place, and two fits of one program never share weights (PYRO_NOTES 2
and 9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from ppgen.errors import OptionError

if TYPE_CHECKING:
    from ppgen.programs.program import Program

__all__ = ["LocalParams", "readable_name", "module_values", "MODULE_DIVIDER"]

MODULE_DIVIDER = "$$$"


def readable_name(name: str) -> str:
    """``pyro.module("net", m)`` names its parameters ``net$$$fc.weight``: shown ``net.fc.weight``."""
    return name.replace(MODULE_DIVIDER, ".")


class LocalParams(poutine.messenger.Messenger):
    """Serve ``pyro.param`` from the program's store and run ``pyro.module`` networks on its copies."""

    _active: list[LocalParams] = []

    def __init__(self, program: Program):
        super().__init__()
        self.program = program
        self.swapped: list[tuple[torch.nn.Module, str, Any]] = []

    def __enter__(self):
        if not LocalParams._active:
            self._original_module = pyro.module
            pyro.module = pyro.primitives.module = _serve_module
        LocalParams._active.append(self)
        # every network the program has registered runs on the fit's tensors, in the guide too: Pyro's
        # ss_vae_M2.py registers its encoders once, by the model's pyro.module, and the guide calls them
        for name, nn_module in self.program.networks.items():
            self.module(name, nn_module)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            LocalParams._active.pop()
            for owner, attr, original in reversed(self.swapped):
                owner._parameters[attr] = original
            if not LocalParams._active:
                pyro.module = pyro.primitives.module = self._original_module

    def _process_message(self, msg):
        if msg["type"] != "param" or msg["done"] or not _is_param_statement(msg):
            return
        name = msg["name"]
        program = self.program
        if name not in program.param_index:
            init = msg["args"][1] if len(msg["args"]) > 1 else msg["kwargs"].get("init_tensor")
            if init is None:
                raise OptionError(f"Expected an initial value for pyro.param({name!r}, ...), but got none.")
            init = init() if callable(init) else torch.as_tensor(init)
            program._new_param(name, init, msg["kwargs"].get("constraint", dist.constraints.real))
        value = program._constrained(name)
        if msg["kwargs"].get("event_dim") is not None:
            # Inside a subsampling plate Pyro slices the value and files the indices on its
            # unconstrained parameter, which it finds as ``value._pyro_unconstrained_param``.
            raw = program.local_params[program.param_index[name]]
            value = raw.view_as(raw) if value is raw else value
            value._pyro_unconstrained_param = raw
        msg["value"] = value
        msg["done"] = True

    def module(self, name: str, nn_module: torch.nn.Module) -> torch.nn.Module:
        program = self.program
        program.networks.setdefault(name, nn_module)
        for path, param in list(nn_module.named_parameters()):
            if not param.requires_grad:
                continue
            full = f"{name}{MODULE_DIVIDER}{path}"
            if full not in program.param_index:
                program._new_param(full, param, dist.constraints.real)
            local = program.local_params[program.param_index[full]]
            owner, attr = _owner(nn_module, path)
            if owner._parameters[attr] is not local:
                self.swapped.append((owner, attr, owner._parameters[attr]))
                owner._parameters[attr] = local
        return nn_module


def _serve_module(
    name: str, nn_module: torch.nn.Module, update_module_params: bool = False
) -> torch.nn.Module:
    """Stands in for ``pyro.module`` while a program runs (see :class:`LocalParams`)."""
    if MODULE_DIVIDER in name:
        raise OptionError(f"Expected a pyro.module name without {MODULE_DIVIDER!r}, but got {name!r}.")
    return LocalParams._active[-1].module(name, nn_module)


def _is_param_statement(msg) -> bool:
    # A PyroModule's own attributes emit "fake" param messages whose value it computes itself.
    return getattr(msg["fn"], "__func__", None) is pyro.params.param_store.ParamStoreDict.get_param


def _owner(module: torch.nn.Module, path: str) -> tuple[torch.nn.Module, str]:
    *parents, attr = path.split(".")
    for part in parents:
        module = getattr(module, part)
    return module, attr


def module_values(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A PyroModule's point estimates: PyroParams constrained, plain parameters as they are."""
    values = {}
    for path, param in module.named_parameters():
        if path.endswith("_unconstrained"):
            owner_path, _, attr = path[: -len("_unconstrained")].rpartition(".")
            owner = module.get_submodule(owner_path) if owner_path else module
            values[path[: -len("_unconstrained")]] = getattr(owner, attr).detach().clone()
        else:
            values[path] = param.detach().clone()
    return values
