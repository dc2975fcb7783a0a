"""The compiled ELBO (ppgen.inference.compiled) and mle's direct log-density path.

References: the eager loss of the same program from the same random state (Pyro's Trace_ELBO
as it runs without a trace), closed-form sums, and the fallback rules written in compiled.py.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import OptionError
from ppgen.inference.compiled import CompiledLoss
from ppgen.models import Gaussian
from tests import pyro_programs as programs
from tests.common import assert_close

VAE_FIT = dict(method="svi", batch_size=50, num_steps=15, lr=1e-3, patience=10**9, progress=False, seed=0)


def _binary_digits(n: int = 200) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(n, 64, generator=generator) > 0.6).float()


def _vae_fit(**options):
    torch.manual_seed(0)  # the networks' initial weights
    vae = programs.BinaryVAE()
    return ppgen.fit(vae.model, _binary_digits(), guide=vae.guide, **{**VAE_FIT, **options})


def test_compiled_vae_program_follows_the_eager_elbo():
    # Reference: the same pyro.module program fitted with compile=False (Pyro's Trace_ELBO run
    # eagerly), same seed. A trace reorders no arithmetic on the CPU but may fuse it: the step losses
    # agree to float32 round-off (rtol 1e-5 over 15 steps; a wrong graph is off by whole nats).
    compiled, eager = _vae_fit(), _vae_fit(compile=False)
    assert compiled.extras["compiled"] == "compiled"
    assert eager.extras["compiled"] == "off (compile=False)"
    assert_close(torch.tensor(compiled.history), torch.tensor(eager.history), rtol=1e-5, atol=0)


def test_compiled_fit_is_reproducible_with_seed():
    a, b = _vae_fit(), _vae_fit()
    assert a.history == b.history


def test_subsampled_autoguide_reads_each_batch_rows():
    # Reference: the eager fit. The baseball program's per-player log-odds are covered by
    # AutoNormal and minibatched (batch 6 of 18 players): the batch's rows are an input of the
    # trace, so every step updates that batch's guide parameters, as the eager loss does.
    at_bats = torch.full((18,), 45.0)
    hits = torch.tensor([18.0, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 10, 10, 10, 10, 9, 8, 7])
    data = {"at_bats": at_bats, "hits": hits}
    options = dict(method="svi", guide="normal", batch_size=6, num_steps=30, progress=False, seed=1)
    compiled = ppgen.fit(programs.logit_pooling, data, **options)
    eager = ppgen.fit(programs.logit_pooling, data, compile=False, **options)
    assert compiled.extras["compiled"] == "compiled"
    assert_close(torch.tensor(compiled.history), torch.tensor(eager.history), rtol=1e-5, atol=0)


def branching_program(x):
    mu = pyro.param("mu", torch.tensor(0.0))
    shift = 1.0 if float(x.mean()) > 0 else -1.0  # a branch on the data: a trace would freeze it
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(mu + shift, 1.0), obs=x)


def test_a_branch_on_the_data_keeps_the_eager_loss():
    # Reference: the rule in compiled.py — a tensor turned into a Python value by the program
    # itself means the eager loss is kept, with the place named; the fit equals the eager one.
    x = torch.randn(40) + 0.5
    options = dict(method="mle", batch_size=10, num_steps=20, progress=False, seed=0)
    fit = ppgen.fit(branching_program, x, **options)
    assert fit.extras["compiled"].startswith("eager: the program turns a tensor into a Python value")
    assert "test_compiled.py" in fit.extras["compiled"]
    assert fit.history == ppgen.fit(branching_program, x, compile=False, **options).history


def test_a_loss_that_changes_between_calls_fails_the_check():
    # Reference: the agreement check — a Python value read by the loss that changes at every call
    # (here a call counter) makes the trace and the eager re-evaluation differ, so the eager
    # loss is kept and each later call still sees the current value.
    weight = torch.nn.Parameter(torch.ones(3))
    calls = []

    def rows_loss(xb, covariates, scale, n):
        calls.append(None)
        return (weight * xb).sum() * len(calls)

    loss = CompiledLoss(rows_loss, [weight])
    x = torch.ones(4, 3)
    loss(x, {}, 1.0, 4)  # the first call is eager
    traced_step = loss(x, {}, 1.0, 4)
    assert loss.state.startswith("eager: the compiled loss")
    assert float(traced_step.detach()) == 12.0 * len(calls)
    assert float(loss(x, {}, 1.0, 4).detach()) == 12.0 * len(calls)


def test_held_out_scoring_and_other_shapes_are_not_traced_at_the_batch():
    weight = torch.nn.Parameter(torch.ones(3))
    loss = CompiledLoss(lambda xb, cov, scale, n: (weight * xb).sum() * scale / n, [weight])
    for _ in range(3):
        loss(torch.ones(4, 3), {}, 1.0, 4)
    assert loss.state == "compiled" and len(loss.traces) == 1
    assert float(loss(torch.ones(7, 3), {}, 1.0, 7).detach()) == pytest.approx(3.0)  # a second trace
    assert len(loss.traces) == 2
    with torch.no_grad():
        assert float(loss(torch.full((2, 3), 2.0), {}, 1.0, 2)) == pytest.approx(6.0)
    assert len(loss.traces) == 2


def test_compile_option_is_checked():
    with pytest.raises(OptionError, match="compile=True or False"):
        ppgen.fit(programs.normal_mean, torch.randn(20), method="svi", compile="yes", num_steps=2)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_fused_log_prob_total_is_the_sum_of_row_log_densities(covariance):
    # Reference: Σ_n log_prob(x_n), the per-row density (itself tested against torch.distributions).
    torch.manual_seed(0)
    model = Gaussian(dim=3, covariance=covariance).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(50, 3, dtype=torch.float64)
    assert_close(model.log_prob_total(x), model.log_prob(x).sum(), atol=1e-10)


def test_mle_on_a_subclass_uses_its_own_log_prob():
    # Reference: the stationary point of the subclass's own objective. Its log_prob adds
    # −(loc − 3)² to every row, so with σ² profiled out (σ² = s² + (x̄ − loc)²) the optimum
    # solves (x̄ − loc)/σ² = 2(loc − 3), found by brentq; tolerance 1e-2 for 1,500 Adam steps.
    # The fused Gaussian sum standing in for the override would give loc = x̄ instead.
    from scipy.optimize import brentq

    class Pulled(Gaussian):
        def log_prob(self, x):
            return super().log_prob(x) - (self.loc - 3.0).pow(2).sum()

    x = torch.randn(200, 1, dtype=torch.float64)
    mean, var = float(x.mean()), float(x.var(unbiased=False))
    expected = brentq(lambda m: (mean - m) / (var + (mean - m) ** 2) - 2 * (m - 3.0), mean, 3.0)
    fit = ppgen.fit(Pulled(dim=1).double(), x, method="mle", num_steps=1500, lr=0.05, progress=False)
    assert abs(float(fit.params["loc"]) - expected) < 1e-2
    assert expected - mean > 0.5


def test_a_compiled_loss_failing_later_falls_back_to_the_eager_one():
    # Reference: the eager value. The graph executor re-optimises a trace on later calls and may
    # fail there (e.g. a fuser the build lacks); the step is redone eagerly from the same state.
    weight = torch.nn.Parameter(torch.ones(3))
    loss = CompiledLoss(lambda xb, cov, scale, n: (weight * xb).sum(), [weight])
    for _ in range(2):
        loss(torch.ones(4, 3), {}, 1.0, 4)
    assert loss.state == "compiled"

    def broken(*inputs):
        raise RuntimeError(
            "The following operation failed in the TorchScript interpreter.\nLLVM Backend not found"
        )

    loss.traces = dict.fromkeys(loss.traces, broken)
    assert float(loss(torch.ones(4, 3), {}, 1.0, 4).detach()) == 12.0
    assert loss.state == "eager: the compiled loss failed at a later step (LLVM Backend not found)"
    assert float(loss(torch.full((4, 3), 2.0), {}, 1.0, 4).detach()) == 24.0
