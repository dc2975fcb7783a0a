"""A Pyro program's potential ``U(q) = −log p(T⁻¹(q), data) − log|det J_{T⁻¹}(q)|`` and ``∇U`` as one
function of one flat unconstrained float64 vector, lowered once to plain tensor operations.

Pyro's ``initialize_model`` gives the potential of the program's latents (constraint transforms
and their log-Jacobians; enumerated discrete latents summed out by its einsum evaluator, as
Pyro's NUTS does). Pyro checks supports and NaNs at every site while it runs (PYRO_NOTES 12),
so the program is run once with validation on at the initial point, then captured with
validation off by ``make_fx`` inside the sampler's whole leapfrog step (the fused leaf of
:mod:`~ppgen.inference.nuts.leaf`: kicks, drift, "potential + ``torch.autograd.grad``", energy
error, checkpoint update and U-turn checks): one flat graph of aten operations with the data
closed over as constants. ``U, ∇U`` alone is that leaf at rest (zero momentum and step). The
graph is then compiled by

* ``"inductor"`` — ``compile_fx_inner`` on the graph captured with inductor's decompositions (one
  trace; no Dynamo, no AOT autograd wrappers, no per-call size asserts: the graph is flat and its
  shapes fixed). Measured
  on this machine, one thread, per log-density-and-gradient (before the fused leaf): eight schools
  0.020 ms (eager Pyro 0.82, the FX graph run eagerly 0.49, ``torch.jit.trace`` of the graph 0.14,
  ``torch.compile`` 0.043 with its guards); 50-group hierarchy 0.023 ms (trace 0.22); logistic
  n=2000 0.13 ms (trace 0.13: the matrix product dominates). Costs 1–3 s of compilation with a
  warm inductor cache, plus ~3 s to import inductor once per process (17 s on a cold cache);
  a second capture of the same graph and data in one process reuses the compiled leaf
  (:data:`CACHE_SIZE`);
* ``"trace"`` — ``torch.jit.trace`` of "potential + grad" alone (the tree in numpy around it:
  traced, the fused leaf's extra small operations cost more than they save): 0.07–0.4 s to
  build, slower per step (traced fused leaf, one thread, shared machine: logistic n = 2000
  0.40 ms against inductor's 0.063; n = 1e4 0.40 against 0.14; n = 1e5 1.24 against 0.96).
  ``"auto"`` takes it for short runs only (:data:`INDUCTOR_FROM`);
* ``"eager"`` (``jit_compile=False``) — Pyro's potential every call, the tree in numpy: nothing
  captured; the program runs (and can be interrupted) at every gradient.

A captured graph checks nothing and fixes Python control flow at the initial point, so the
compiled and the eager potential must agree (value and gradient) at two points, and one whole
leaf with random momenta, before the compiled one is used; capture errors and disagreements
raise :class:`CaptureError`, whose message says why (the backend then runs Pyro's NUTS with a
warning).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyro
import torch
from pyro.infer.mcmc.util import initialize_model

from ppgen.inference.nuts.graph import (
    CaptureError,
    inductor,
    inductor_decompositions,
    lift_constants,
    traced,
)
from ppgen.inference.nuts.leaf import NO_CHECKS, make_leaf

__all__ = ["Potential", "CaptureError", "choose_compiler", "COMPILERS"]

COMPILERS = ("auto", "inductor", "trace", "eager")
#: Iterations per chain (warm-up + draws) from which "auto" takes inductor (else trace). The data
#: are inputs of the graph (not constants compiled in), so large data no longer make inductor's
#: compilation long, and traced fused leaves lose to it at every data size measured (above). The
#: rule reads the run's length, not a timing, so a rerun with the same seed compiles the same way.
INDUCTOR_FROM = 1000
#: Agreement of compiled and eager potential (relative, value and gradient): reordered sums only.
TOLERANCE = {torch.float64: 1e-8, torch.float32: 2e-4}
#: Compiled leaves kept across fits (key: graph code, data shapes, compiler, threads): a second fit
#: of the same program on data of the same shapes in this process compiles nothing.
CACHE_SIZE = 8
_CACHE: dict[tuple, Callable] = {}


def choose_compiler(compiler: str, iterations: int) -> str:
    """``"auto"``: inductor from :data:`INDUCTOR_FROM` iterations, else trace."""
    if compiler != "auto":
        return compiler
    return "inductor" if iterations >= INDUCTOR_FROM else "trace"


class Potential:
    """``U, ∇U = potential(q)`` for a flat float64 ``q``; ``constrain`` maps draws back to sites.

    Arguments:
        model: the Pyro program (``model.model`` of a ppgen model), run as ``model(*args, **kwargs)``.
        args, kwargs: its data and covariates.
        max_plate_nesting: as Pyro's NUTS takes it (enumerated latents use dims to its left).
        num_chains: initial points drawn (Pyro's ``init_to_uniform``, finite potential).
        compiler: ``"inductor"``, ``"trace"`` or ``"eager"``.
        max_depth, dense: the sampler's tree depth and metric, fixed in the fused leaf's graph
            (:mod:`~ppgen.inference.nuts.leaf`): its checkpoint rows and ``Σ p`` or ``σ² ∘ p``;
            ``dense`` may be a rule of the number of unconstrained dimensions (``dense_mass="auto"``).
    """

    def __init__(
        self,
        model: Callable,
        args: tuple,
        kwargs: dict,
        max_plate_nesting: int,
        num_chains: int,
        compiler: str,
        max_depth: int = 10,
        dense: bool | Callable[[int], bool] = False,
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
        self.max_depth, self.dense = max_depth, bool(dense(self.size) if callable(dense) else dense)
        self._at_rest = self._at_rest_like(torch.zeros(self.size, dtype=torch.float64))
        # the fused leaf only under inductor: traced or eager, its ~60 extra small operations cost
        # more per step than the numpy tree (logistic n = 2000, traced: 0.40 ms against 0.063 ms)
        self.leaf: Callable | None = None
        self._fn: Callable = self._eager_unchecked  # eager: Pyro at every step
        if compiler in ("inductor", "auto"):
            self.leaf = self._capture(compiler)
        elif compiler != "eager":
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
        q_t = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64))
        if self.leaf is not None:
            out = self.leaf(q_t, *self._at_rest)
            return float(out[6][0]), out[2].numpy()
        u, grad = self._fn(q_t)
        return float(u), grad.numpy()

    def _at_rest_like(self, q: torch.Tensor) -> tuple:
        """The leaf's arguments after ``q`` for ``U, ∇U`` at ``q``: zero momentum, gradient and step."""
        d, m, f64 = q.shape[0], self.max_depth, torch.float64
        inv_mass = torch.eye(d, dtype=f64) if self.dense else torch.ones(d, dtype=f64)
        # distinct tensors: make_fx takes one object passed twice for one input
        return (torch.zeros(d, dtype=f64), torch.zeros(d, dtype=f64), torch.tensor(0.0, dtype=f64), inv_mass,
                torch.tensor(0.0, dtype=f64), torch.zeros(m, d, dtype=f64), torch.zeros(m, d, dtype=f64),
                torch.zeros(d, dtype=f64), NO_CHECKS.clone())  # fmt: skip

    # ------------------------------------------------------------------ capture
    def _capture(self, compiler: str) -> Callable:
        q0 = torch.from_numpy(self.initial[0].copy())  # float64
        fused = compiler != "trace"  # the leaf (inductor) or U, ∇U alone (trace)
        rest = self._at_rest_like(q0)
        # a real step (p, ε ≠ 0) so that no branch of the arithmetic is specialised to zeros
        example = (q0, torch.full_like(q0, 0.1), rest[1], torch.tensor(0.01, dtype=torch.float64), *rest[3:])
        if not fused:
            example = (q0,)
        fn = make_leaf(self._eager64, self.max_depth, self.dense) if fused else (lambda q: self._eager64(q))
        # captured as inductor wants it: one trace, not a second to decompose
        decompositions = inductor_decompositions() if fused else None
        try:
            graph = traced(fn, example, decompositions, fused)
        except CaptureError:
            raise
        except Exception as err:  # any failure of the tracer means "this program is not capturable"
            raise CaptureError(
                f"make_fx could not capture its potential ({type(err).__name__}: {err})"
            ) from err
        graph, constants = lift_constants(graph)
        compiler = "inductor" if compiler == "auto" else compiler  # (mcmc decides before: choose_compiler)
        self.compiler = compiler
        key = (compiler, torch.get_num_threads(), graph.code, *((c.shape, c.dtype) for c in constants))
        raw = _CACHE.pop(key, None)
        if raw is None:
            # clones: make_fx takes one object passed twice (two sites, one tensor) for one input
            # and a fixed q: inductor's on-disk cache hashes the example's values (q0 is drawn)
            fixed = (torch.full_like(q0, 0.5), *example[1:], *(c.clone() for c in constants))
            raw = self._compile(graph, fixed, compiler)
        _CACHE[key] = raw  # most recently used last
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))

        def compiled(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return raw([*args, *constants])  # boxed: inductor's generated code takes (and empties) a list

        self._check(compiled, q0, fused)  # on a cache hit too: the code matched, the data are new
        return compiled

    def _compile(self, graph: torch.fx.GraphModule, example: tuple, compiler: str) -> Callable:
        try:
            if compiler == "inductor":
                return inductor(graph, example)
            traced = torch.jit.trace(graph, example, check_trace=False)
            return lambda inputs: traced(*inputs)
        except Exception as err:
            raise CaptureError(
                f"{compiler} could not compile its potential ({type(err).__name__}: {err})"
            ) from err

    def _check(self, compiled: Callable, q0: torch.Tensor, fused: bool) -> None:
        """The compiled potential equals the eager one at the initial point and one beside it (and the
        compiled leaf the eager one on one step)."""
        tol = TOLERANCE.get(self.dtype, 1e-4)
        generator = torch.Generator().manual_seed(0)
        for q in (q0, q0 + 0.1 * torch.randn(q0.shape, generator=generator, dtype=q0.dtype)):
            with pyro.validation_enabled(False):
                u_eager, g_eager = self._eager64(q)
            if fused:
                out = compiled(q, *self._at_rest_like(q))
                u_fast, g_fast = out[6][0], out[2]
            else:
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
        if not fused:
            return
        # one whole leaf with momentum, mass and checkpoints drawn at random, against the eager leaf
        d, m = q0.shape[0], self.max_depth
        draw = lambda *shape: torch.randn(shape, generator=generator, dtype=torch.float64)  # noqa: E731
        if self.dense:
            a = draw(d, d)
            inv_mass = torch.eye(d, dtype=torch.float64) + 0.1 * a @ a.T
        else:
            inv_mass = draw(d).abs() + 0.5
        f64, ctrl = torch.float64, torch.tensor([0, 1, 0, 0])  # check rows 0..1, write none
        args = (q0, draw(d), draw(d), torch.tensor(0.01, dtype=f64), inv_mass, torch.tensor(1.0, dtype=f64),
                draw(m, d), draw(m, d), draw(d), ctrl)  # fmt: skip
        with pyro.validation_enabled(False):
            reference = make_leaf(self._eager64, m, self.dense)(*args)
        fast = compiled(*args)
        if not all(
            torch.allclose(a, b, rtol=tol, atol=tol * (1.0 + float(b.abs().max())), equal_nan=True)
            for a, b in zip(fast, reference)
        ):
            raise CaptureError("its compiled leapfrog step differs from the eager one (a capture error)")

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
