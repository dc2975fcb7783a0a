"""A Pyro program's potential ``U(q) = −log p(T⁻¹(q), data) − log|det J_{T⁻¹}(q)|`` and ``∇U`` as one
function of one flat unconstrained float64 vector, lowered once to plain tensor operations.

Pyro's ``initialize_model`` gives the potential of the program's latents (constraint transforms
and their log-Jacobians; enumerated discrete latents summed out by its einsum evaluator, as
Pyro's NUTS does). Pyro checks supports and NaNs at every site while it runs (PYRO_NOTES 12),
so the program is run once with validation on at the initial point, then captured with
validation off by ``make_fx`` as "potential + ``torch.autograd.grad``": one flat graph of aten
operations with the data closed over as constants. That graph is then compiled by

* ``"inductor"`` — ``torch._inductor.compile_fx`` on the graph (no Dynamo: the graph is already
  flat, so there are no guards to evaluate per call). Measured on this machine, one thread,
  per log-density-and-gradient: eight schools 0.020 ms (eager Pyro 0.82, the FX graph run
  eagerly 0.49, ``torch.jit.trace`` of the graph 0.14, ``torch.compile`` 0.043 with its
  guards); 50-group hierarchy 0.023 ms (trace 0.22); logistic n=2000 0.13 ms (trace 0.13: the
  matrix product dominates). Costs 2–5 s of compilation (17 s on a cold inductor cache);
* ``"trace"`` — ``torch.jit.trace`` of the same graph: 0.07–0.1 s to build, 5–10x slower per
  call on small programs. ``"auto"`` takes it for short runs and for graphs that close over
  much data (large products dominate, inductor gains nothing: :data:`INDUCTOR_MAX_DATA`);
* ``"eager"`` (``jit_compile=False``) — Pyro's potential every call: nothing captured; the
  program runs (and can be interrupted) at every gradient.

A captured graph checks nothing and fixes Python control flow at the initial point, so the
compiled and the eager potential must agree (value and gradient) at two points before the
compiled one is used; capture errors and disagreements raise :class:`CaptureError`, whose
message says why (the backend then runs Pyro's NUTS with a warning).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
import pyro
import torch
from pyro.infer.mcmc.util import initialize_model

__all__ = ["Potential", "CaptureError", "choose_compiler", "COMPILERS"]

COMPILERS = ("auto", "inductor", "trace", "eager")
#: Iterations per chain (warm-up + draws) from which "auto" considers inductor at all.
INDUCTOR_FROM = 1000
#: "auto" on a long run: inductor only when the data closed over in the graph hold fewer numbers
#: than this. Inductor fuses many small operations into one kernel (eight schools 0.05 ms a call
#: against 0.14 ms traced), but where large products dominate (logistic regression, n = 2000,
#: d = 10: 0.13 ms either way) its 4–15 s of compilation are pure loss. The rule reads the graph,
#: not a timing, so that a rerun with the same seed compiles the same way (bit-identical draws).
INDUCTOR_MAX_DATA = 10_000
#: Agreement of compiled and eager potential (relative, value and gradient): reordered sums only.
TOLERANCE = {torch.float64: 1e-8, torch.float32: 2e-4}


class CaptureError(RuntimeError):
    """The program's potential could not be lowered to one compiled graph (the reason is the message)."""


def choose_compiler(compiler: str, iterations: int) -> str:
    """``"auto"``: decided by the graph from :data:`INDUCTOR_FROM` iterations, else trace."""
    if compiler != "auto":
        return compiler
    return "auto" if iterations >= INDUCTOR_FROM else "trace"


class Potential:
    """``U, ∇U = potential(q)`` for a flat float64 ``q``; ``constrain`` maps draws back to sites.

    Arguments:
        model: the Pyro program (``model.model`` of a ppgen model), run as ``model(*args, **kwargs)``.
        args, kwargs: its data and covariates.
        max_plate_nesting: as Pyro's NUTS takes it (enumerated latents use dims to its left).
        num_chains: initial points drawn (Pyro's ``init_to_uniform``, finite potential).
        compiler: ``"inductor"``, ``"trace"`` or ``"eager"``.
    """

    def __init__(
        self,
        model: Callable,
        args: tuple,
        kwargs: dict,
        max_plate_nesting: int,
        num_chains: int,
        compiler: str,
    ) -> None:
        with pyro.validation_enabled(True):  # supports, shapes and NaN checked once, here
            init, potential_fn, transforms, _ = initialize_model(
                model, args, kwargs, max_plate_nesting=max_plate_nesting, num_chains=num_chains
            )
        self.transforms = transforms
        self.names = list(init)
        lead = 1 if num_chains > 1 else 0
        self.shapes = [tuple(init[n].shape[lead:]) for n in self.names]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.dtypes = [init[n].dtype for n in self.names]
        self.dtype = torch.float64 if torch.float64 in self.dtypes else self.dtypes[0]
        self.size = sum(self.sizes)
        flat = torch.cat([init[n].reshape(num_chains, -1).to(self.dtype) for n in self.names], dim=-1)
        self.initial = flat.detach().to(torch.float64).numpy().copy()  # (C, D)
        self._potential_fn = potential_fn
        self.compiler = compiler
        self.calls = 0
        self._fn = self._eager_unchecked
        if compiler != "eager":
            self._fn = self._capture(compiler)

    # ------------------------------------------------------------------ evaluation
    def _split(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(q, self.sizes)
        return {n: v.reshape(s).to(d) for n, v, s, d in zip(self.names, parts, self.shapes, self.dtypes)}

    def _eager(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``U(q)`` and ``∇U(q)`` through Pyro (the function that is captured)."""
        with torch.enable_grad():
            q = q.detach().requires_grad_(True)
            u = self._potential_fn(self._split(q))
            (grad,) = torch.autograd.grad(u, q)
        return u.detach(), grad.detach()

    def _eager64(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_eager` from and to float64, the sampler's dtype: captured, the casts run in the graph."""
        u, grad = self._eager(q.to(self.dtype))
        return u.to(torch.float64), grad.to(torch.float64)

    def _eager_unchecked(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with pyro.validation_enabled(False):  # checked once at set-up, as Pyro's NUTS runs it
            return self._eager64(q)

    def __call__(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        u, grad = self._fn(torch.from_numpy(q))
        return float(u), grad.numpy()

    # ------------------------------------------------------------------ capture
    def _capture(self, compiler: str) -> Callable:
        from torch.fx.experimental.proxy_tensor import make_fx  # the tracer only where it is used

        q0 = torch.from_numpy(self.initial[0].copy())  # float64
        try:
            with pyro.validation_enabled(False), _no_sample_checks(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter; the result is checked below
                graph = make_fx(lambda q: self._eager64(q))(q0)  # a plain function: make_fx counts `self`
        except Exception as err:  # any failure of the tracer means "this program is not capturable"
            raise CaptureError(
                f"make_fx could not capture its potential ({type(err).__name__}: {err})"
            ) from err
        if compiler == "auto":  # inductor only where it is expected to pay for its compilation
            compiler = "inductor" if _data_size(graph) < INDUCTOR_MAX_DATA else "trace"
        self.compiler = compiler
        return self._compile(graph, q0, compiler)

    def _compile(self, graph: torch.fx.GraphModule, q0: torch.Tensor, compiler: str) -> Callable:
        try:
            if compiler == "inductor":
                compiled = _inductor(graph, q0)
            else:
                compiled = torch.jit.trace(graph, (q0,), check_trace=False)
        except Exception as err:
            raise CaptureError(
                f"{compiler} could not compile its potential ({type(err).__name__}: {err})"
            ) from err
        self._check(compiled, q0)
        return compiled

    def _check(self, compiled: Callable, q0: torch.Tensor) -> None:
        """The compiled potential equals the eager one at the initial point and one beside it."""
        tol = TOLERANCE.get(self.dtype, 1e-4)
        generator = torch.Generator().manual_seed(0)
        for q in (q0, q0 + 0.1 * torch.randn(q0.shape, generator=generator, dtype=q0.dtype)):
            with pyro.validation_enabled(False):
                u_eager, g_eager = self._eager64(q)
            u_fast, g_fast = compiled(q)
            scale = 1.0 + float(u_eager.abs())
            if not torch.isfinite(u_eager):
                continue  # the check point left the support: nothing to compare there
            value_ok = abs(float(u_fast) - float(u_eager)) <= tol * scale
            grad_ok = bool(
                torch.allclose(g_fast, g_eager, rtol=tol, atol=tol * (1.0 + float(g_eager.abs().max())))
            )
            if not (value_ok and grad_ok):
                raise CaptureError(
                    "its compiled potential differs from Pyro's (value "
                    f"{float(u_fast):.6g} vs {float(u_eager):.6g}): Python control flow on latent values "
                    "or state outside the program's arguments"
                )

    # ------------------------------------------------------------------ draws
    def constrain(self, draws: np.ndarray) -> dict[str, torch.Tensor]:
        """Unconstrained draws ``(S, D)`` → constrained values per site ``{name: (S, *shape)}``."""
        q = torch.from_numpy(np.ascontiguousarray(draws)).to(self.dtype)
        out = {}
        for name, value in self._split_batch(q).items():
            transform = self.transforms.get(name)
            out[name] = (transform.inv(value) if transform is not None else value).detach()
        return out

    def _split_batch(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(q, self.sizes, dim=-1)
        return {
            n: v.reshape(q.shape[0], *s).to(d)
            for n, v, s, d in zip(self.names, parts, self.shapes, self.dtypes)
        }


@contextlib.contextmanager
def _no_sample_checks():
    """Skip ``Distribution._validate_sample`` while capturing.

    ``pyro.validation_enabled(False)`` reaches only distributions built inside it; a prior built
    with validation on (e.g. by the user at import) keeps ``_validate_args=True`` and checks its
    support by reading a tensor's value, which no graph can hold. The supports were checked at
    set-up, with validation on, and the captured graph is compared with Pyro's below."""
    check = torch.distributions.Distribution._validate_sample
    torch.distributions.Distribution._validate_sample = lambda self, value: None
    try:
        yield
    finally:
        torch.distributions.Distribution._validate_sample = check


def _data_size(graph: torch.fx.GraphModule) -> int:
    """How many numbers the graph closes over (data, covariates, constants)."""
    tensors = (getattr(graph, node.target) for node in graph.graph.nodes if node.op == "get_attr")
    return sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))


def _inductor(graph: torch.fx.GraphModule, q0: torch.Tensor) -> Callable:
    """Inductor on the captured graph, compiled in this process (no worker pool: chains fork later)."""
    import torch._inductor.config as inductor_config  # the compiler stack only when it compiles
    from torch._inductor.compile_fx import compile_fx

    with inductor_config.patch(compile_threads=1):
        compiled = compile_fx(graph, [q0])
    compiled(q0)  # the first call loads the kernels
    return compiled
