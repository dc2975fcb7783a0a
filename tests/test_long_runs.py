"""Long runs: Ctrl-C returns the fit so far (``converged=False``), and checkpoint/resume of the
shared gradient loop gives the same result as an uninterrupted run, bit for bit.

Ctrl-C is simulated by a model that raises ``KeyboardInterrupt`` from inside the loss after
a number of calls, exactly where a real one would land (inside the forward pass).
"""

from __future__ import annotations

import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import FitFileError, OptionError
from ppgen.models import Gaussian
from tests.common import gaussian_data

X = gaussian_data(n=60, dim=2, seed=4)


class InterruptAt(Gaussian):
    """A Gaussian whose ``k``-th log_prob / model / rsample call raises KeyboardInterrupt (0 = never)."""

    def __init__(self, dim=2, k=0):
        super().__init__(dim=dim)
        self.k, self.calls = k, 0

    def _tick(self):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt

    def log_prob(self, x):
        self._tick()
        return super().log_prob(x)

    def rsample(self, n):  # the adversarial loop draws the generator's samples here
        self._tick()
        return super().rsample(n)

    def model(self, x=None, n=None):
        if x is not None:
            self._tick()
        return super().model(x, n)


def _bayes(k=0):
    model = InterruptAt(dim=2, k=k).double()
    prior = dist.Normal(torch.zeros(2, dtype=torch.float64), 10.0).to_event(1)
    return ppgen.bayesian(model, loc=prior)


MLE = dict(method="mle", num_steps=40, batch_size=16, lr=0.05, lr_decay=0.3, progress=False, seed=7)
SVI = dict(method="svi", num_steps=30, batch_size=16, lr=0.05, progress=False, seed=7)


@pytest.mark.parametrize("options", [MLE, dict(SVI, guide="model")], ids=["mle", "svi"])
def test_ctrl_c_returns_the_fit_so_far(options):
    fit = ppgen.fit(InterruptAt(k=25).double(), X, **options)
    assert fit.converged is False
    assert 10 <= len(fit.history) < options["num_steps"]  # stopped early, kept the steps done
    assert torch.isfinite(fit.log_prob(X)).all()


def test_ctrl_c_in_adversarial_returns_the_fit_so_far():
    fit = ppgen.fit(
        InterruptAt(k=12).double(), X, method="adversarial", steps=50, batch_size=16, progress=False
    )
    assert fit.converged is False
    assert torch.isfinite(fit.sample(5)).all()


@pytest.mark.parametrize(
    "make, options",
    [
        (lambda k: InterruptAt(k=k).double(), MLE),
        (_bayes, SVI),
        (lambda k: InterruptAt(k=k).double(), dict(MLE, validation=0.25, check_every=4)),
    ],
    ids=["mle-minibatch-lr-decay", "svi-autonormal", "mle-validation"],
)
def test_interrupt_then_resume_equals_uninterrupted(make, options, tmp_path):
    full = ppgen.fit(make(0), X, **options)
    path = tmp_path / "run.ckpt"
    part = ppgen.fit(make(23), X, checkpoint=str(path), checkpoint_every=5, **options)
    assert part.converged is False and 5 < len(part.history) < options["num_steps"]
    assert path.is_file()
    resumed = ppgen.fit(make(0), X, resume=str(path), **options)
    assert resumed.history == full.history  # bit-identical, including minibatch order
    assert resumed.extras.get("validation_history") == full.extras.get("validation_history")
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), name
    if full.guide is not None and isinstance(full.guide, torch.nn.Module):
        for a, b in zip(full.guide.parameters(), resumed.guide.parameters()):
            assert torch.equal(a, b)


def test_checkpoint_written_periodically_and_at_the_end(tmp_path):
    path = tmp_path / "run.ckpt"
    ppgen.fit(Gaussian(dim=2).double(), X, checkpoint=path, checkpoint_every=4, **dict(MLE, num_steps=10))
    saved = torch.load(path, weights_only=False)
    assert saved["step"] == 10 and len(saved["history"]) == 10
    # resuming a finished run does no more steps and returns the same history
    again = ppgen.fit(Gaussian(dim=2).double(), X, resume=path, **dict(MLE, num_steps=10))
    assert again.history == saved["history"]
    assert not list(tmp_path.glob(".*partial"))


def test_resume_refuses_bad_files(tmp_path):
    with pytest.raises(FitFileError, match="does not exist"):
        ppgen.fit(Gaussian(dim=2), X, resume=tmp_path / "missing.ckpt", **MLE)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(FitFileError, match="could not be read"):
        ppgen.fit(Gaussian(dim=2), X, resume=junk, **MLE)
    other = tmp_path / "other.ckpt"
    torch.save({"something": 1}, other)
    with pytest.raises(FitFileError, match="something else"):
        ppgen.fit(Gaussian(dim=2), X, resume=other, **MLE)
    path = tmp_path / "run.ckpt"
    ppgen.fit(Gaussian(dim=2), X, checkpoint=path, **dict(MLE, num_steps=3))
    with pytest.raises(OptionError, match="parameter shapes"):
        ppgen.fit(Gaussian(dim=3), torch.randn(20, 3, dtype=torch.float64), resume=path, **MLE)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(OptionError, match="checkpoint_every"):
            ppgen.fit(Gaussian(dim=2), X, checkpoint=path, checkpoint_every=bad, **MLE)
    with pytest.raises(OptionError, match="resume"):
        ppgen.fit(Gaussian(dim=2), X, resume=3, **MLE)


def test_ctrl_c_in_mcmc_returns_the_draws_so_far():
    # 10 warmup steps take far fewer than 400 model calls; 500 draws take far more
    model = _bayes(k=400)
    fit = ppgen.fit(
        model, X, method="mcmc", num_samples=500, warmup_steps=10, jit_compile=False, progress=False
    )
    assert fit.converged is False
    assert 0 < fit.draws["loc"].shape[0] < 500 and fit.draws["loc"].shape[1:] == (2,)
    assert torch.isfinite(fit.log_prob(X)).all()
    assert "log_likelihood" in fit.posterior.groups()


def test_ctrl_c_in_mcmc_warmup_propagates():
    try:
        ppgen.fit(
            _bayes(k=5), X, method="mcmc", num_samples=50, warmup_steps=50, jit_compile=False, progress=False
        )
    except KeyboardInterrupt:  # caught here: a KeyboardInterrupt reaching pytest stops the session
        return
    raise AssertionError("Ctrl-C before any draw must propagate (there is no posterior to return)")


# ---------------------------------------------------------------- adversarial checkpoints
ADV = dict(method="adversarial", steps=30, batch_size=16, progress=False, seed=3, eval_every=10)


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize(
    "options",
    [
        dict(ADV, loss="non_saturating", lr_schedule="linear"),
        dict(ADV, loss="wgan_gp", n_critic=2),
        dict(ADV, loss="non_saturating", ema=0.9, r1_weight=1.0, pack=2),
    ],
    ids=["non-saturating-linear-schedule", "wgan-gp-two-critic-steps", "ema-r1-pack"],
)
def test_adversarial_interrupt_then_resume_equals_uninterrupted(options, tmp_path):
    evaluate = lambda g: {"mean": g.loc.sum()}  # noqa: E731 (evaluations are part of the state)
    full = ppgen.fit(InterruptAt(k=0).double(), X, evaluate=evaluate, **options)
    path = tmp_path / "game.ckpt"
    # rsample is called once per critic step and once per generator step: call 40 lands mid-run
    part = ppgen.fit(
        InterruptAt(k=40).double(), X, evaluate=evaluate, checkpoint=path, checkpoint_every=4, **options
    )
    assert part.converged is False and 4 <= torch.load(path, weights_only=False)["step"] < options["steps"]
    resumed = ppgen.fit(InterruptAt(k=0).double(), X, evaluate=evaluate, resume=path, **options)
    assert resumed.history == full.history  # bit-identical: noise, minibatches, both optimisers
    assert resumed.extras["critic_history"] == full.extras["critic_history"]
    assert resumed.extras["evaluations"] == full.extras["evaluations"]
    _same_parameters(full.model, resumed.model)
    _same_parameters(full.critic, resumed.critic)
    for name, value in full.extras.get("last_iterate", {}).items():  # EMA: the raw weights match too
        assert torch.equal(value, resumed.extras["last_iterate"][name]), name


def test_adversarial_checkpoint_at_start_periodically_and_at_the_end(tmp_path):
    path = tmp_path / "game.ckpt"
    ppgen.fit(InterruptAt(k=2).double(), X, checkpoint=path, checkpoint_every=100, **ADV)
    assert torch.load(path, weights_only=False)["step"] == 0  # cut short before any periodic save
    fit = ppgen.fit(InterruptAt().double(), X, checkpoint=path, checkpoint_every=7, **ADV)
    saved = torch.load(path, weights_only=False)
    assert saved["step"] == 30 and saved["g_history"] == fit.history
    again = ppgen.fit(InterruptAt().double(), X, resume=path, **ADV)  # finished: nothing left to do
    assert again.history == fit.history and again.converged


def test_adversarial_resume_refuses_other_runs(tmp_path):
    path = tmp_path / "mle.ckpt"
    ppgen.fit(Gaussian(dim=2).double(), X, checkpoint=path, **dict(MLE, num_steps=3))
    with pytest.raises(FitFileError, match="'loop' run"):
        ppgen.fit(Gaussian(dim=2).double(), X, resume=path, **ADV)
    game = tmp_path / "game.ckpt"
    ppgen.fit(Gaussian(dim=2).double(), X, checkpoint=game, **ADV)
    with pytest.raises(OptionError, match="this generator and critic"):
        ppgen.fit(Gaussian(dim=3).double(), torch.randn(20, 3, dtype=torch.float64), resume=game, **ADV)
    with pytest.raises(FitFileError, match="'adversarial' run"):
        ppgen.fit(Gaussian(dim=2).double(), X, resume=game, **MLE)
    with pytest.raises(OptionError, match="checkpoint_every"):
        ppgen.fit(Gaussian(dim=2).double(), X, checkpoint=game, checkpoint_every=0, **ADV)


# ----------------------------------------------------------------------- mcmc checkpoints
NUTS_OPTIONS = dict(
    method="mcmc", num_samples=60, warmup_steps=40, jit_compile=False, progress=False, seed=2, num_chains=1
)


def _draws_equal(a, b) -> None:
    assert a.draws.keys() == b.draws.keys()
    for name in a.draws:
        assert torch.equal(a.draws[name], b.draws[name]), name


@pytest.mark.parametrize("k", [60, 350], ids=["during-warmup", "during-sampling"])
def test_mcmc_interrupt_then_resume_equals_uninterrupted(k, tmp_path):
    # a full run makes ~470 model calls, ~225 of them in the 40 warm-up steps
    full = ppgen.fit(_bayes(), X, **NUTS_OPTIONS)
    path = tmp_path / "chain.ckpt"
    try:
        ppgen.fit(_bayes(k=k), X, checkpoint=path, checkpoint_every=5, **NUTS_OPTIONS)
    except KeyboardInterrupt:  # during warm-up Ctrl-C propagates (no draws yet)
        assert k == 60
    saved = torch.load(path, weights_only=False)
    assert 0 < saved["iteration"] < 100 and (saved["iteration"] <= 40) == (k == 60)
    resumed = ppgen.fit(_bayes(), X, resume=path, **NUTS_OPTIONS)
    _draws_equal(full, resumed)  # bit-identical: adaptation, position, random states
    assert resumed.converged and resumed.extras["divergences"] == full.extras["divergences"]


def test_ctrl_c_in_parallel_chains_before_any_draw_propagates_with_checkpoints(tmp_path):
    # Each forked chain meets its Ctrl-C in warm-up: the fit raises KeyboardInterrupt as one chain
    # does (a chain process dying of it left Pool.map waiting forever) and each chain saved its file.
    path = tmp_path / "run.ckpt"
    options = dict(NUTS_OPTIONS, num_chains=2, parallel=True)
    with pytest.raises(KeyboardInterrupt):
        ppgen.fit(_bayes(k=60), X, checkpoint=path, checkpoint_every=5, **options)
    for c in range(2):
        assert 0 < torch.load(tmp_path / f"run.chain{c}.ckpt", weights_only=False)["iteration"] <= 40


def test_mcmc_resume_continues_to_more_draws_and_per_chain_files(tmp_path):
    path = tmp_path / "run.ckpt"
    options = dict(NUTS_OPTIONS, num_chains=2, parallel=False)
    short = ppgen.fit(_bayes(), X, checkpoint=path, **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.chain0.ckpt", "run.chain1.ckpt"]
    longer = ppgen.fit(_bayes(), X, resume=path, **dict(options, num_samples=90))
    reference = ppgen.fit(_bayes(), X, **dict(options, num_samples=90))
    _draws_equal(longer, reference)  # the first 60 draws are those of the short run
    first = longer.posterior.posterior["loc"].values[:, :60]
    assert (first == short.posterior.posterior["loc"].values).all()
    with pytest.raises(OptionError, match="num_samples >= the 60 draws"):
        ppgen.fit(_bayes(), X, resume=path, **dict(options, num_samples=30))
    with pytest.raises(OptionError, match="warmup_steps=40"):
        ppgen.fit(_bayes(), X, resume=path, **dict(options, warmup_steps=20))
    with pytest.raises(FitFileError, match="'mcmc' run"):
        ppgen.fit(Gaussian(dim=2).double(), X, resume=tmp_path / "run.chain0.ckpt", **MLE)
