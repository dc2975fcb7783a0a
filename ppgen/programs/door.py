"""The door every model passes once: a ppgen model stays itself, any Pyro program becomes a
:class:`~ppgen.programs.program.Program`, and a fit works on a private copy of it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pyro
import torch

from ppgen.core import GenerativeModel
from ppgen.errors import OptionError
from ppgen.programs.program import Program

__all__ = ["as_model", "as_fit_model"]


def as_model(model: Any, guide: Callable | None = None, **program_options: Any) -> GenerativeModel:
    """``model`` as a :class:`GenerativeModel`; a Pyro program becomes a :class:`Program`."""
    if isinstance(model, GenerativeModel):
        if program_options:
            raise OptionError(
                f"Expected {sorted(program_options)} only for Pyro programs, but got the ppgen model "
                f"{type(model).__name__}, which observes site 'x' in its 'data' plate."
            )
        return model
    if isinstance(model, torch.nn.Module) and not isinstance(model, pyro.nn.PyroModule):
        if not callable(getattr(model, "model", None)):
            raise OptionError(
                f"Expected a ppgen GenerativeModel, a PyroModule or a Pyro callable, but got the torch "
                f"module {type(model).__name__}; pass its model method (and guide=its guide), as to SVI."
            )
        guide = guide or getattr(model, "guide", None)
        model = model.model
    if callable(model):
        return Program(model, guide, **program_options)
    raise OptionError(
        f"Expected a ppgen GenerativeModel or a Pyro callable model, but got {type(model).__name__}."
    )


def as_fit_model(model: Any, observed: Any = None, options: dict | None = None) -> GenerativeModel:
    """The door: a private copy of ``model`` as one object that knows its sites (the user's is never
    changed). ``options`` gives up the program options it holds (``plate``, a hand-written ``guide``)."""
    options = {} if options is None else options
    program_options = {}
    if observed is not None:
        if not isinstance(observed, dict) or not observed:
            raise OptionError(f"Expected observed= as a dict {{site: values}}, but got {observed!r}.")
        program_options["observed"] = tuple(observed)
    if "plate" in options:
        program_options["plate"] = options.pop("plate")
    model = as_model(model, **program_options)
    if callable(getattr(model, "set_guide", None)) and callable(options.get("guide")):
        # one copy of both: a guide that is a method of the model's module (Pyro's ss_vae_M2.py:
        # ``guide=ss_vae.guide``, or config_enumerate of it) must run the copy the model runs, whose
        # networks the fit trains; copied apart it kept the user's untrained ones
        model, guide = copy.deepcopy((model, options.pop("guide")))
        model.set_guide(guide)  # a hand-written guide: its parameters live in the fit
        return model
    return copy.deepcopy(model)
