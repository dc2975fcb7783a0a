"""The fused leaf (one compiled call per leapfrog step, nuts/leaf.py) against the numpy reference
(nuts/trajectory.py): one leaf to 1e-12, whole transitions to rounding with the same generator, and
the compiled-graph cache (a second capture of the same program and data compiles nothing)."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppgen.inference.nuts import graph as graph_module
from ppgen.inference.nuts import potential as potential_module
from ppgen.inference.nuts.integrator import Point, leapfrog
from ppgen.inference.nuts.leaf import controls, fused_hmc_transition, fused_nuts_transition, make_leaf
from ppgen.inference.nuts.metrics import DenseMetric, DiagonalMetric
from ppgen.inference.nuts.trajectory import checkpoint_range, hmc_transition, is_turning, nuts_transition

D = 4
COV = np.array([[2.0, 0.3, 0.0, 0.1], [0.3, 1.0, 0.2, 0.0], [0.0, 0.2, 0.5, 0.0], [0.1, 0.0, 0.0, 3.0]])
PRECISION = np.linalg.inv(COV)


def gaussian(q: np.ndarray) -> tuple[float, np.ndarray]:
    g = PRECISION @ q
    return 0.5 * float(q @ g), g


def gaussian64(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.from_numpy(PRECISION) @ q
    return 0.5 * (q * g).sum(), g


def metric(dense: bool):
    return DenseMetric(COV * 0.9) if dense else DiagonalMetric(np.diag(COV) * 1.1)


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal", "dense"])
@pytest.mark.parametrize("leaf_index", [0, 1, 2, 7, 13])
def test_one_fused_leaf_equals_the_numpy_leaf(dense, leaf_index):
    # Reference: trajectory.py's leaf — leapfrog, H, ΔH, the checkpoint written on even leaves,
    # the U-turn checks against checkpoints idx_min..idx_max — on a Gaussian target, to 1e-12.
    rng = np.random.default_rng(leaf_index)
    m, depth, eps, energy0 = metric(dense), 5, 0.3, 2.5
    q, p = rng.normal(size=D), rng.normal(size=D)
    p_ckpts, p_sum_ckpts, sub_p_sum = (
        rng.normal(size=(depth, D)),
        rng.normal(size=(depth, D)),
        rng.normal(size=D),
    )
    new = leapfrog(Point(q, p, *gaussian(q)), eps, m, gaussian)
    energy = new.potential + m.kinetic(new.p)
    ref_sum = new.p.copy() if leaf_index == 0 else sub_p_sum + new.p
    ref_ckpts, ref_sums = p_ckpts.copy(), p_sum_ckpts.copy()
    idx_min, idx_max = checkpoint_range(leaf_index)
    if leaf_index % 2 == 0:
        ref_ckpts[idx_max], ref_sums[idx_max] = new.p, ref_sum
    turning = any(
        is_turning(
            m.velocity(ref_ckpts[i]),
            m.velocity(new.p),
            ref_ckpts[i],
            new.p,
            ref_sum - ref_sums[i] + ref_ckpts[i],
        )
        for i in range(idx_min, idx_max + 1)
    )
    t = torch.from_numpy
    out = make_leaf(gaussian64, depth, dense)(
        t(q), t(p), t(gaussian(q)[1]), torch.tensor(eps, dtype=torch.float64), t(m.inverse_mass),
        torch.tensor(energy0, dtype=torch.float64), t(p_ckpts), t(p_sum_ckpts), t(sub_p_sum),
        controls(depth)[leaf_index],
    )  # fmt: skip
    for got, want in zip(out[:6], (new.q, new.p, new.grad, ref_sum, ref_ckpts, ref_sums)):
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        out[6][:3].numpy(), [new.potential, energy, energy - energy0], rtol=0, atol=1e-12
    )
    assert bool(out[6][3]) == turning


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal", "dense"])
def test_fused_transitions_equal_the_numpy_ones_with_the_same_generator(dense):
    # Reference: trajectory.nuts_transition / hmc_transition. The same generator state gives the
    # same tree (directions, leaves, depth, steps) and the same draw to rounding, over 30 chained
    # transitions with step sizes from short trees to max-depth ones.
    m = metric(dense)
    leaf = make_leaf(gaussian64, 6, dense)
    for kernel in ("nuts", "hmc"):
        q = np.array([1.0, -0.5, 0.2, 2.0])
        a, b = np.random.default_rng(1), np.random.default_rng(1)
        for i in range(30):
            eps = (0.05, 0.4, 1.2)[i % 3]
            u, g = gaussian(q)
            if kernel == "nuts":
                ref = nuts_transition(q, u, g, gaussian, m, eps, a, max_depth=6)
                new = fused_nuts_transition(q, u, g, leaf, m, eps, b, max_depth=6)
            else:
                ref = hmc_transition(q, u, g, gaussian, m, eps, a, num_steps=7)
                new = fused_hmc_transition(q, u, g, leaf, m, eps, b, num_steps=7, max_depth=6)
            assert (new.n_steps, new.tree_depth, new.diverging) == (
                ref.n_steps,
                ref.tree_depth,
                ref.diverging,
            )
            np.testing.assert_allclose(new.q, ref.q, rtol=0, atol=1e-10)
            np.testing.assert_allclose([new.potential, new.energy, new.accept_prob],
                                       [ref.potential, ref.energy, ref.accept_prob], rtol=1e-10)  # fmt: skip
            assert a.bit_generator.state == b.bit_generator.state  # the same draws, in the same order
            q = ref.q


def test_a_second_capture_on_data_of_the_same_shapes_compiles_nothing(monkeypatch):
    # The cache of compiled leaves: key = the captured graph's code and its data's shapes (the data
    # are inputs of the graph). The reused leaf reads each fit's own data: U and ∇U in closed form.
    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(y)):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    compiles = []
    original = potential_module.Potential._compile
    monkeypatch.setattr(
        potential_module.Potential, "_compile", lambda self, *a: compiles.append(1) or original(self, *a)
    )
    y, q = torch.tensor([0.5, 1.5, -0.2]), np.array([0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's chatter (mcmc silences it the same way)
        for data, expected_compiles in ((y, 1), (y, 1), (y + 1.0, 1), (torch.tensor([0.1, 0.2]), 2)):
            potential = potential_module.Potential(model, (data,), {}, 1, 1, "trace", max_depth=3)
            assert len(compiles) == expected_compiles
            u, g = potential(q)
            n = len(data)
            expected = 0.5 * 0.3**2 + 0.5 * float(((data - 0.3) ** 2).sum()) + (n + 1) / 2 * np.log(2 * np.pi)
            assert u == pytest.approx(expected, rel=1e-6)
            assert g[0] == pytest.approx(0.3 - float((data - 0.3).sum()), rel=1e-5)


def test_capture_keeps_matrix_products_as_blas_calls():
    # Inductor's table turns X @ beta into a multiply and a sum, which its C++ loop vectorises along
    # d (3.4 ms against 1.1 ms a leaf at n = 1e5, d = 10); the capture writes it as aten.mm. The
    # kept graph computes the same product (reference: torch's own matmul, 1e-12).
    from torch._inductor.decomposition import select_decomp_table
    from torch.fx.experimental.proxy_tensor import make_fx

    X = torch.randn(50, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    beta = torch.linspace(-1, 1, 10, dtype=torch.float64)

    def ops(table) -> tuple[set[str], torch.fx.GraphModule]:
        graph = make_fx(lambda x, b: torch.sigmoid(x @ b), decomposition_table=table)(X, beta)
        return {str(n.target) for n in graph.graph.nodes if n.op == "call_function"}, graph

    kept, graph = ops(graph_module.inductor_decompositions())
    assert "aten.mm.default" in kept and "aten.sum.dim_IntList" not in kept  # a BLAS call, not a loop
    assert {"aten.mul.Tensor", "aten.sum.dim_IntList"} <= ops(select_decomp_table())[0]
    torch.testing.assert_close(graph(X, beta), torch.sigmoid(X @ beta), rtol=0, atol=1e-12)


def test_inductor_compiles_a_matrix_vector_product_from_a_cold_cache(tmp_path, monkeypatch):
    # aten.mv kept out of inductor's decompositions failed to lower ("both a fallback and a decomp"),
    # which a warm on-disk cache hid; written as mm it compiles from an empty cache. Reference: the
    # potential's gradient by hand, Xᵀ(y − σ(Xβ)) − β for a N(0, 1) prior (1e-5: float32 program).
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 3, generator=g)  # float32, as a user's data and Pyro's priors come
    y = torch.bernoulli(torch.full((30,), 0.5), generator=g)

    def logistic(X, y):
        beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        with pyro.plate("data", 30):
            pyro.sample("y", dist.Bernoulli(logits=X @ beta), obs=y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's chatter (mcmc silences it the same way)
        potential = potential_module.Potential(logistic, (X, y), {}, 1, 1, "inductor", max_depth=3)
    beta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    _, grad = potential(beta.numpy())
    X, y = X.double(), y.double()
    expected = -(X.T @ (y - torch.sigmoid(X @ beta)) - beta)
    np.testing.assert_allclose(grad, expected.numpy(), atol=1e-5)  # the program runs in float32


_PRIOR = dist.Normal(0.0, 1.0).expand([3]).to_event(1)  # built once, outside the program: stride-0 tensors


def _regression_with_a_prior_built_outside(X, y):
    # PyroSample's style (Pyro's bayesian_regression tutorial): the prior object exists before the call
    beta = pyro.sample("beta", _PRIOR)
    sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def _dice(rolls):
    # Pyro's prodlda tutorial: a Dirichlet latent, whose stick-breaking gradient runs cumprod's backward
    theta = pyro.sample("theta", dist.Dirichlet(torch.ones(6)))
    with pyro.plate("data", len(rolls)):
        pyro.sample("obs", dist.Categorical(theta), obs=rolls)


@pytest.mark.parametrize("case", ["prior_built_outside", "dirichlet"])
def test_inductor_potential_equals_pyros_where_capture_once_went_wrong(case):
    # Two capture bugs sent these programs to Pyro's NUTS (5x slower) with "its compiled potential
    # differs": (1) an expanded prior parameter (stride 0) lifted as a graph input while inductor
    # compiled for a dense clone, so it read past the tensor's one element (NaN, inf); (2) cumprod's
    # backward writes in place, which compile_fx_inner miscompiled (gradient off by 0.35). Reference:
    # Pyro's own potential and autograd at five random points (1e-4 relative: float32 programs).

    g = torch.Generator().manual_seed(3)
    if case == "prior_built_outside":
        X = torch.randn(40, 3, generator=g)
        y = X @ torch.tensor([1.0, -0.5, 0.2]) + 0.3 * torch.randn(40, generator=g)
        args, program = (X, y), _regression_with_a_prior_built_outside
    else:
        args, program = (torch.randint(0, 6, (30,), generator=g),), _dice
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's chatter (mcmc silences it the same way)
        potential = potential_module.Potential(program, args, {}, 1, 1, "inductor", max_depth=3, dense=True)
    assert potential.leaf is not None  # compiled, not refused
    _assert_equals_pyros(potential, program, args, g)


def _assert_equals_pyros(potential, program, args: tuple, g: torch.Generator) -> None:
    """The compiled U, ∇U against Pyro's own potential and autograd at five random points (1e-4
    relative: float32 programs)."""
    from pyro.infer.mcmc.util import initialize_model

    _, potential_fn, _, _ = initialize_model(program, args, {}, max_plate_nesting=1)
    for _ in range(5):
        q = torch.randn(potential.size, generator=g, dtype=torch.float64) * 0.5
        u, grad = potential(q.numpy())
        parts = zip(potential.names, torch.split(q, potential.sizes), potential.shapes)
        point = {n: v.reshape(s).float().requires_grad_(True) for n, v, s in parts}
        expected = potential_fn(point)
        grads = torch.autograd.grad(expected, list(point.values()))
        expected_grad = torch.cat([t.reshape(-1) for t in grads])
        assert u == pytest.approx(float(expected.detach()), rel=1e-4)
        np.testing.assert_allclose(grad, expected_grad.double().numpy(), rtol=1e-4, atol=1e-4)


def _dice_counts(counts):
    theta = pyro.sample("theta", dist.Dirichlet(torch.ones(6)))
    pyro.sample("counts", dist.Multinomial(int(counts.sum()), theta), obs=counts)


def _number_from_a_latent(y):
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    pyro.sample("obs", dist.Normal(x * int(x.abs() * 3 + 1), 1.0), obs=y)


def _branch_on_a_latent(y):
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    pyro.sample("obs", dist.Normal(x if x > 0 else 2 * x, 1.0), obs=y)


def test_a_number_read_from_the_data_is_captured_and_one_read_from_a_latent_is_not():
    # prodlda's Multinomial(int(counts.sum()), theta): make_fx stops at any number read from a traced
    # tensor, so the program went to Pyro's NUTS. Read from the data it is a constant: captured now,
    # and equal to Pyro's potential (reference as above). Read from a latent (int() or a branch), it
    # descends from the graph's input: refused, not fixed at the traced point silently.
    g = torch.Generator().manual_seed(4)
    counts = torch.tensor([10.0, 12.0, 8.0, 20.0, 5.0, 9.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's chatter (mcmc silences it the same way)
        potential = potential_module.Potential(_dice_counts, (counts,), {}, 1, 1, "inductor", max_depth=3)
        assert potential.leaf is not None
        _assert_equals_pyros(potential, _dice_counts, (counts,), g)
        with pytest.raises(potential_module.CaptureError, match="reads a number from a latent"):
            potential_module.Potential(
                _number_from_a_latent, (torch.tensor([1.0, 2.0]),), {}, 1, 1, "inductor"
            )
