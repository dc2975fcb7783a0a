"""Compile a program's ELBO once, check it, and run the compiled loss every step.

Tracing a Pyro ELBO (``torch.jit.trace``, as Pyro's ``JitTrace_ELBO`` does) records only the
tensor operations of one evaluation: the poutine stack, the trace bookkeeping and every Python
call between them are gone, which on small and medium programs is most of a step. Pyro's own
``JitTrace_ELBO`` reads the parameters from the global param store; ppgen's parameters live in
each fit's modules (``module_local_params``), so here the parameters the optimiser holds are
passed to the trace as its inputs — the graph reads them, it does not copy them.

A trace is exact only for the program it saw: Python control flow is fixed at the shapes and
values of the first batch. So a compiled loss is used only after a check, and the eager
loss stays in charge otherwise:

* one trace per distinct input shapes and scale (fixed-size minibatches: one trace);
* at each trace the compiled and the eager loss are evaluated from the same random state and
  must agree, value and gradient of every parameter, to float round-off — a program whose
  trace drops a parameter (a tensor built outside the traced call) or follows another branch
  fails this check;
* tracing errors and failed checks fall back to the eager loss for the rest of the fit, with
  the reason in ``fit.extras["compiled"]``;
* held-out scoring (no gradients) always runs eagerly.

What a check cannot see is a Python value that changes between steps without being an input
(a global annealing factor read inside the program); such a program is fitted with
``compile=False``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

import pyro
import torch

__all__ = ["CompiledLoss"]

#: Relative agreement required between the compiled and the eager loss and gradients: a few
#: hundred float32 ulps (fused or reordered reductions), far below any real difference.
RELATIVE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}


class CompiledLoss:
    """``loss(xb, covariates, scale, n)`` — the eager ``rows_loss`` or its checked trace.

    ``state`` is ``"eager"`` until the first trace, ``"compiled"`` once one has passed, or why
    the eager loss is kept: ``off`` (given by the caller) or the failure (an exception, a
    mismatch)."""

    def __init__(self, rows_loss: Callable, params: list[torch.Tensor], batches=None, off: str | None = None):
        # batches.indices (the minibatch's rows, read by autoguides' subsampled plates) is an
        # input of the trace too, rebound inside it; everything else the loss reads is fixed.
        self.rows_loss, self.params, self.batches = rows_loss, params, batches
        self.traces: dict[tuple, Callable] = {}
        self.state = "eager" if off is None else off
        self.calls = 0

    def __call__(self, xb: torch.Tensor, covariates: dict, scale: float, n: int) -> torch.Tensor:
        if not torch.is_grad_enabled() or self.state not in ("eager", "compiled"):
            return self.rows_loss(xb, covariates, scale, n)
        self.calls += 1
        if self.calls == 1:  # the first step runs eagerly: it validates every distribution's arguments
            return self.rows_loss(xb, covariates, scale, n)
        names = sorted(k for k, v in covariates.items() if isinstance(v, torch.Tensor))
        indices = getattr(self.batches, "indices", None)
        rows = () if indices is None else (indices,)
        key = (
            tuple(xb.shape),
            xb.dtype,
            scale,
            n,
            tuple((k, tuple(covariates[k].shape)) for k in names),
            tuple(r.shape for r in rows),
        )
        inputs = (*self.params, xb, *(covariates[k] for k in names), *rows)
        traced = self.traces.get(key)
        if traced is None:
            return self._trace(key, inputs, covariates, names, bool(rows), scale, n)
        rng = torch.get_rng_state()
        try:
            return traced(*inputs)
        except RuntimeError as error:  # the executor re-optimises the graph on later calls
            torch.set_rng_state(rng)
            self.state = f"eager: the compiled loss failed at a later step ({_first_line(error)})"
            return self.rows_loss(xb, covariates, scale, n)

    def _trace(self, key, inputs, covariates, names, subsampled, scale, n) -> torch.Tensor:
        others = {k: v for k, v in covariates.items() if k not in names}
        count, batches = len(self.params), self.batches

        def loss(*inputs):
            data, tensors = inputs[count], inputs[count + 1 : count + 1 + len(names)]
            if subsampled:
                batches.indices = inputs[-1]
            return self.rows_loss(data, {**others, **dict(zip(names, tensors))}, scale, n)

        rng = torch.get_rng_state()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                traced = torch.jit.trace(loss, inputs, check_trace=False)
            branch = _program_branch(caught)
            if branch is not None:
                raise _Untraceable(branch)
            torch.set_rng_state(rng)
            eager_value = loss(*inputs)
            eager_grads = _gradients(eager_value, self.params)
            torch.set_rng_state(rng)
            value = traced(*inputs)
            after = torch.get_rng_state()  # where the eager step would have left the generator
            grads = _gradients(value, self.params, keep=True)
            mismatch = _mismatch(eager_value, value, eager_grads, grads)
        except _Untraceable as error:
            mismatch = str(error)
        except Exception as error:  # noqa: BLE001 — any failure to trace means "stay eager"
            mismatch = f"tracing failed ({type(error).__name__}: {_first_line(error)})"
        if subsampled:
            batches.indices = inputs[-1]
        if mismatch is not None:
            torch.set_rng_state(rng)
            self.state = f"eager: {mismatch}"
            return self.rows_loss(inputs[count], covariates, scale, n)
        torch.set_rng_state(after)
        self.traces[key], self.state = traced, "compiled"
        return value


class _Untraceable(Exception):
    pass


#: Code whose tensor-to-Python conversions under a trace are shape checks and argument
#: validation, not branches on the data (Pyro's site-shape comparison, torch's constraint
#: checks, ppgen's models checking their sizes).
_LIBRARIES = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep
    for module in (torch, pyro, sys.modules["ppgen"])
    if module.__file__ is not None
)


def _program_branch(caught: list) -> str | None:
    """Where the program itself turned a traced tensor into a Python value — a branch the trace
    would fix at this batch — or None when only libraries did (a constant such as a
    ``pyro.param`` initial value is no branch and does not count)."""
    for message in caught:
        if (
            issubclass(message.category, torch.jit.TracerWarning)
            and str(message.message).startswith("Converting a tensor to a Python")
            and not os.path.abspath(message.filename).startswith(_LIBRARIES)
        ):
            return (
                f"the program turns a tensor into a Python value at {message.filename}:{message.lineno} "
                "(a branch a trace would fix at one batch)"
            )
    return None


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:200]


def _gradients(value: torch.Tensor, params: list[torch.Tensor], keep: bool = False) -> list:
    return list(torch.autograd.grad(value, params, retain_graph=keep, allow_unused=True))


def _mismatch(eager_value, value, eager_grads, grads) -> str | None:
    """Why the compiled loss differs from the eager one, or None when they agree."""
    if value.shape != eager_value.shape:
        return f"the compiled loss has shape {tuple(value.shape)}, the eager {tuple(eager_value.shape)}"
    tol = RELATIVE_TOLERANCE.get(eager_value.dtype, 1e-4)
    if not _close(value.detach(), eager_value.detach(), tol):
        mine, eager = float(value.detach()), float(eager_value.detach())
        return f"the compiled loss {mine:.6g} differs from the eager {eager:.6g}"
    for i, (a, b) in enumerate(zip(eager_grads, grads)):
        if (a is None) != (b is None):
            return f"parameter {i} has a gradient in only one of the compiled and the eager loss"
        if a is not None and not _close(b, a, tol):
            return f"the gradient of parameter {i} differs between the compiled and the eager loss"
    return None


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool(((a - b).abs() <= tol * max(scale, 1.0)).all())
