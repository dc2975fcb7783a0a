"""The capture behind :mod:`.potential`: a leapfrog leaf traced by ``make_fx`` into one flat graph of
aten operations, its constants lifted to inputs, and the graph compiled by inductor. Everything here
answers "can this program's potential be one compiled graph, and which"; a program that cannot
raises :class:`CaptureError`, whose message says why."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import pyro
import torch

__all__ = ["CaptureError", "traced", "lift_constants", "inductor_decompositions", "inductor"]


class CaptureError(RuntimeError):
    """The program's potential could not be lowered to one compiled graph (the reason is the message)."""


def traced(fn, example: tuple, decompositions, fused: bool) -> torch.fx.GraphModule:
    """``make_fx`` of ``fn`` at ``example``. A number the program reads from a tensor stops the
    tracer; read from the data (prodlda's ``Multinomial(int(counts.sum()), theta)``) it is a constant,
    so the trace is redone with the number burned in, and one read from a latent is refused
    (:func:`_drop_number_reads`)."""
    try:
        return _make_fx(fn, example, decompositions, fused, numbers_read=False)
    except RuntimeError as err:
        if "get value out of a tracing tensor" not in str(err):
            raise
    return _make_fx(fn, example, decompositions, fused, numbers_read=True)


def _make_fx(fn, example: tuple, decompositions, fused: bool, numbers_read: bool) -> torch.fx.GraphModule:
    from torch.fx.experimental.proxy_tensor import make_fx  # the tracer only where it is used

    with pyro.validation_enabled(False), _no_sample_checks(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter; the result is checked after
        graph = make_fx(
            fn, decomposition_table=decompositions, _error_on_data_dependent_ops=not numbers_read
        )(*example)
        if numbers_read:
            _drop_number_reads(graph)
        if fused and _mutates(graph):
            graph = make_fx(torch.func.functionalize(graph))(*example)
    return graph


def _drop_number_reads(graph: torch.fx.GraphModule) -> None:
    """Remove the reads (``_local_scalar_dense``) whose numbers the trace burned in as literals, and
    what only they used: nothing reads them, and a second trace (functionalisation) would stop there.
    A read that descends from an input of the graph (the latents, the momentum) is a number that
    changes with the point, which a graph would fix where it was traced: :class:`CaptureError`."""
    for node in list(graph.graph.nodes):
        if node.target is not torch.ops.aten._local_scalar_dense.default:
            continue
        if _descends_from_input(node):
            raise CaptureError(
                "the program reads a number from a latent (int(), .item() or a Python branch on its "
                "value), which a compiled graph would fix at one point"
            )
        if not node.users:
            graph.graph.erase_node(node)
    graph.graph.eliminate_dead_code()
    graph.recompile()


def _descends_from_input(node: torch.fx.Node) -> bool:
    seen, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current.op == "placeholder":
            return True
        for parent in current.all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return False


@contextlib.contextmanager
def _no_sample_checks():
    """Skip ``Distribution._validate_sample`` while capturing.

    ``pyro.validation_enabled(False)`` reaches only distributions built inside it; a prior built
    with validation on (e.g. by the user at import) keeps ``_validate_args=True`` and checks its
    support by reading a tensor's value, which no graph can hold. The supports were checked at
    set-up, with validation on, and the captured graph is compared with Pyro's (:mod:`.potential`)."""
    check = torch.distributions.Distribution._validate_sample
    torch.distributions.Distribution._validate_sample = lambda self, value: None
    try:
        yield
    finally:
        torch.distributions.Distribution._validate_sample = check


def lift_constants(graph: torch.fx.GraphModule) -> tuple[torch.fx.GraphModule, list[torch.Tensor]]:
    """The tensors the graph closes over (data, covariates, constants) as trailing inputs.

    The code then depends on the data's shapes only: inductor's own cache of compiled graphs
    skips graphs with constants (it regenerated and recompiled every fit), and one compiled
    leaf serves every fit of the program on data of the same shapes (:data:`_CACHE`)."""
    nodes = [
        n
        for n in graph.graph.nodes
        if n.op == "get_attr" and isinstance(getattr(graph, n.target), torch.Tensor)
    ]
    last_input = [n for n in graph.graph.nodes if n.op == "placeholder"][-1]
    inputs: dict[str, torch.fx.Node] = {}  # one input per constant, however many nodes read it
    constants = []
    for node in nodes:
        if node.target not in inputs:
            with graph.graph.inserting_after(last_input):
                last_input = inputs[node.target] = graph.graph.placeholder(f"constant_{len(constants)}")
            # dense: inductor compiles for the example's strides (contiguous clones) and, without its
            # size asserts, would read an expanded prior parameter (stride 0) past its one element
            constants.append(getattr(graph, node.target).detach().contiguous())
        node.replace_all_uses_with(inputs[node.target])
        graph.graph.erase_node(node)
    for target in inputs:
        delattr(graph, target)
    graph.graph.lint()
    graph.recompile()
    return graph, constants


def _mutates(graph: torch.fx.GraphModule) -> bool:
    """The captured graph holds in-place operations. Some backward formulas write in place (cumprod's,
    under every simplex latent's stick-breaking); ``compile_fx_inner`` expects the functional graph AOT
    autograd would give it, and compiled those to a wrong gradient (measured: a Dirichlet-Categorical's
    first coordinate off by 0.35) — so such a graph is traced once more, functionalised."""
    for node in graph.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and schema is not None and schema.is_mutable:
            return True
    return False


# Matrix–vector products become BLAS calls in the compiled leaf. Inductor decomposes a matrix–vector
# product into a multiply and a sum, and its C++ loop then vectorises along the short dimension (d =
# 10: a horizontal reduction per data row). Measured per leapfrog call, one thread, quiet machine,
# decomposed → BLAS: logistic regression d = 10, n = 1e5 3.40 → 1.11 ms, n = 1e4 0.40 → 0.17 ms,
# n = 2000 0.109 → 0.092 ms; arK (T = 200) 0.088 → 0.079 ms.
def inductor_decompositions() -> dict:
    """Inductor's decompositions, with ``mv``, ``addmv`` and ``dot`` written as ``mm``, which inductor
    lowers to a BLAS call (``mm`` itself it decomposes only when an operand is a column or row of
    length one; left undecomposed, ``mv`` fails to lower: "both a fallback and a decomp")."""
    from torch._inductor.decomposition import select_decomp_table

    aten = torch.ops.aten
    table = dict(select_decomp_table())
    table[aten.mv.default] = lambda a, x: aten.mm.default(a, x.unsqueeze(-1)).squeeze(-1)
    table[aten.addmv.default] = lambda c, a, x, *, beta=1, alpha=1: beta * c + alpha * aten.mv.default(a, x)
    table[aten.dot.default] = lambda a, b: aten.mm.default(a.unsqueeze(0), b.unsqueeze(-1)).reshape(())
    return table


def inductor(graph: torch.fx.GraphModule, example: tuple) -> Callable[[list], tuple]:
    """Inductor on the captured graph, compiled in this process (no worker pool: chains fork later).

    ``compile_fx_inner`` on the graph (captured with inductor's decompositions), without AOT autograd's
    runtime wrappers, and without the per-call size/stride asserts of its inputs: the sampler
    only ever passes the shapes of ``example`` (measured: a call's Python overhead about halved)."""
    import torch._inductor.config as inductor_config  # the compiler stack only when it compiles
    from torch._guards import TracingContext, tracing
    from torch._inductor.compile_fx import compile_fx_inner
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    # a tracing context with a shape environment: without one inductor's on-disk cache of compiled
    # graphs is bypassed ("No shape env") and every fit regenerates and recompiles the C++ kernel
    context = TracingContext(FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv()))
    with inductor_config.patch(compile_threads=1, size_asserts=False), tracing(context):
        inner = compile_fx_inner(graph, list(example))

    inner(list(example))  # the first call loads the kernels
    # its generated ``call`` itself: CompiledFxGraph.__call__ around it only sets up profiling and
    # autotuning contexts that a CPU graph does not use (~1/6 of a leaf's cost, measured)
    return getattr(inner, "current_callable", None) or inner
