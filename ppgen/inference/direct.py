"""``mle``'s direct loss: the model's own ``Σ_n log p(x_n)``, without Pyro's effect stack.

For a story without latents the ELBO with the empty guide *is* the log-likelihood, so a model
that offers ``log_prob`` is optimised through it. Two costs of a small model's step are then
not arithmetic, and this module removes both:

* inside a ``@pyro_method`` every read of a constrained parameter is a ``pyro.param`` message
  through the effect stack — the method's undecorated function is called instead;
* outside it a read is still ``PyroModule.__getattr__``: a dictionary walk, a constraint-registry
  lookup and the transform, per attribute, per step. :func:`pinned_parameters` computes each
  constrained value once per step with the transform looked up once per fit, and leaves it in
  the instance's ``__dict__`` for the call, where attribute lookup finds it before
  ``__getattr__`` is consulted.

Nothing traces or replays this loss, so no handler misses the reads it skips.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
from torch.distributions import transform_to

from ppgen.core import GenerativeModel

__all__ = ["direct_total_log_prob", "pinned_parameters"]


def direct_total_log_prob(model: GenerativeModel) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> Σ_n log p(x_n)``: the model's fused ``log_prob_total`` when it is written beside the
    ``log_prob`` in force, else ``log_prob(x).sum()``, both on :func:`pinned_parameters`.

    A model with priors keeps its methods as they are: its ``PyroSample`` attributes need the
    context."""
    if model.is_bayesian:
        return lambda x: model.log_prob(x).sum()
    # The fused sum counts only where it is written beside the log_prob in force: a subclass
    # that overrides log_prob alone has a different density.
    owner = next(c for c in type(model).__mro__ if "log_prob" in c.__dict__)
    total = owner.__dict__.get("log_prob_total")
    if total is not None:
        function = functools.partial(getattr(total, "__wrapped__", total), model)
    else:
        log_prob = getattr(type(model).log_prob, "__wrapped__", None)
        if log_prob is None:  # not a pyro_method: its parameter reads still skip __getattr__
            function = lambda x: model.log_prob(x).sum()  # noqa: E731
        else:
            function = lambda x: log_prob(model, x).sum()  # noqa: E731
    reads = _constrained_reads(model)

    def total_log_prob(x: torch.Tensor) -> torch.Tensor:
        with pinned_parameters(reads):
            return function(x)

    return total_log_prob


_Read = tuple[dict, str, dict, Callable[[torch.Tensor], torch.Tensor]]


def _constrained_reads(model: torch.nn.Module) -> list[_Read]:
    """``(instance dict, name, parameter dict, transform)`` for every ``PyroParam`` of the model
    and its submodules, the transform resolved once (the tensor is read from the module's
    parameter dict at each step, so a replaced parameter is still the one read)."""
    reads = []
    for module in model.modules():
        for name, (constraint, _event_dim) in module.__dict__.get("_pyro_params", {}).items():
            reads.append((module.__dict__, name, module._parameters, transform_to(constraint)))
    return reads


@contextlib.contextmanager
def pinned_parameters(reads: list[_Read]) -> Iterator[None]:
    """Constrained parameters as plain attributes for the duration of the block (then removed:
    the next read goes through ``PyroModule`` again and sees the optimiser's update)."""
    for instance, name, parameters, transform in reads:
        instance[name] = transform(parameters[name + "_unconstrained"])
    try:
        yield
    finally:
        for instance, name, _parameters, _transform in reads:
            instance.pop(name, None)
