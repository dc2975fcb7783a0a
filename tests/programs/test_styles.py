"""Program styles from Pyro's examples and tutorials, written afresh: ``pyro.markov`` chains summed out
(HMM), nested plates with auto-allocated dims (LDA), Pyro's own minibatching (``subsample_size=``,
``pyro.plate(..., subsample=)`` with ``pyro.param(..., event_dim=)`` locals), ``obs_mask`` imputation,
and sequential enumeration — each against brute force, a closed form or Pyro run directly."""

import itertools
import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.contrib.autoname import scope
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.ops.indexing import Vindex
from torch.distributions import constraints

import ppgen
from ppgen.errors import ConvergenceWarning, MethodError
from ppgen.programs.door import as_fit_model
from ppgen.programs.draws import site_log_likelihood
from tests.common import assert_close


def hmm(ys):
    """Two-state HMM over a plate of sequences, the chain summed out under pyro.markov."""
    trans = pyro.sample("trans", dist.Dirichlet(torch.ones(2, 2) + 3 * torch.eye(2)).to_event(1))
    locs = pyro.sample("locs", dist.Normal(torch.tensor([0.0, 3.0]), 1.0).to_event(1))
    with pyro.plate("sequences", ys.shape[0], dim=-1):
        state = 0
        for t in pyro.markov(range(ys.shape[1])):
            state = pyro.sample(
                f"z_{t}", dist.Categorical(Vindex(trans)[..., state, :]), infer={"enumerate": "parallel"}
            )
            pyro.sample(f"y_{t}", dist.Normal(Vindex(locs)[..., state], 0.5), obs=ys[:, t])


def _brute_force_hmm(ys: torch.Tensor, trans: torch.Tensor, locs: torch.Tensor) -> torch.Tensor:
    per_sequence = []
    for y in ys:
        paths = []
        for path in itertools.product([0, 1], repeat=len(y)):
            log_p, previous = 0.0, 0
            for t, state in enumerate(path):
                log_p += math.log(trans[previous, state]) + float(
                    dist.Normal(locs[state], 0.5).log_prob(y[t])
                )
                previous = state
            paths.append(log_p)
        per_sequence.append(torch.tensor(paths).logsumexp(0))
    return torch.stack(per_sequence)


def test_markov_chain_log_likelihood_per_sequence_matches_brute_force():
    # Reference: the sum over all 2^5 state paths of each sequence, by enumeration (to float32
    # round-off, 1e-4). pyro.markov recycles enumeration dims (z_t and z_t+2 share one), so summing
    # the factors without Pyro's contraction would count two states as one.
    generator = torch.Generator().manual_seed(0)
    ys = torch.randn(3, 5, generator=generator) + 3.0 * (torch.rand(3, 5, generator=generator) > 0.5)
    fit = ppgen.fit(hmm, {"ys": ys}, method="map", num_steps=30, seed=0, progress=False)
    assert fit.model.unit_plate == "sequences"
    expected = _brute_force_hmm(ys, fit.params["trans"], fit.params["locs"])
    assert_close(fit.log_prob({"ys": ys}), expected, atol=1e-4)
    assert_close(fit.log_prob({"ys": ys[:1]}), expected[:1], atol=1e-4)  # a new, shorter batch


K, V = 2, 4


def lda(words):
    """Documents x words with auto-allocated dims: the documents plate (entered first) gets dim -1."""
    with pyro.plate("topics", K):
        topic_words = pyro.sample("topic_words", dist.Dirichlet(torch.ones(V)))
    with pyro.plate("documents", words.shape[1]):
        doc_topics = pyro.sample("doc_topics", dist.Dirichlet(torch.ones(K)))
        with pyro.plate("words", words.shape[0]):
            topic = pyro.sample("word_topics", dist.Categorical(doc_topics), infer={"enumerate": "parallel"})
            pyro.sample("doc_words", dist.Categorical(topic_words[topic]), obs=words)


def test_nested_plates_make_the_documents_the_units():
    # Reference: the closed form log p(doc d) = Σ_w log Σ_k θ_dk φ_k,w_dw at the MAP (1e-4). The units
    # are the outermost plate around the observations (documents), whatever dims Pyro allocated.
    words = torch.randint(0, V, (6, 5), generator=torch.Generator().manual_seed(1))
    fit = ppgen.fit(lda, {"words": words}, method="map", num_steps=20, seed=0, progress=False)
    assert fit.model.unit_plate == "documents"
    assert "allocate" not in vars(pyro.poutine.runtime._DIM_ALLOCATOR)  # Pyro's allocator as it was
    theta, phi = fit.params["doc_topics"], fit.params["topic_words"]
    expected = (theta.T.unsqueeze(-1) * phi.unsqueeze(1))[:, torch.arange(5), words].sum(0).log().sum(0)
    assert_close(fit.log_prob({"words": words}), expected, atol=1e-4)


def minibatched(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", len(data), subsample_size=25) as index:
        pyro.sample("obs", dist.Normal(loc, scale), obs=data[index])


@pytest.mark.parametrize("n", [100, 90])
def test_a_subsampling_plate_is_scored_on_every_unit(n):
    # Reference: Normal(y_i | loc_s, scale_s) for every unit and draw, exactly (1e-5); 90 units are
    # not a multiple of subsample_size=25, so the last chunk overlaps and keeps only its new units.
    data = torch.randn(n, generator=torch.Generator().manual_seed(2)) + 1.0
    fit = ppgen.fit(minibatched, {"data": data}, method="svi", num_steps=50, seed=0, progress=False)
    draws = {k: v[:4] for k, v in fit.draws.items()}
    terms, total = site_log_likelihood(fit.model, fit.model.train_args, draws)
    expected = dist.Normal(draws["loc"][:, None], draws["scale"][:, None]).log_prob(data)
    assert_close(total, expected, atol=1e-5)
    assert fit.posterior.log_likelihood["obs"].shape[-1] == n
    for method in ("mcmc", "importance"):
        with pytest.raises(MethodError, match="subsamples 25 of"):
            ppgen.fit(minibatched, {"data": data}, method=method)


def drift_model(batch, subsample, full_size):
    drift = pyro.sample("drift", dist.LogNormal(-1.0, 0.5))
    with pyro.plate("data", full_size, subsample=subsample):
        level = pyro.sample("level", dist.Normal(0.0, 2.0))
        pyro.sample("obs", dist.Normal(level, drift), obs=batch)


def drift_guide(batch, subsample, full_size):
    d_loc = pyro.param("d_loc", torch.tensor(-1.0))
    d_scale = pyro.param("d_scale", torch.tensor(0.3), constraint=constraints.positive)
    pyro.sample("drift", dist.LogNormal(d_loc, d_scale))
    with pyro.plate("data", full_size, subsample=subsample):
        loc = pyro.param("level_loc", torch.zeros(full_size), event_dim=0)
        scale = pyro.param("level_scale", torch.ones(full_size), event_dim=0, constraint=constraints.positive)
        pyro.sample("level", dist.Normal(loc, scale))


def test_pyros_minibatch_idiom_with_local_params_fits_and_matches_pyro():
    # Reference: Pyro's own SVI loop on the same program and guide (Adam, lr 0.05, 400 steps, one seed):
    # the drift's guide location within 0.1 (both runs' ELBO noise at this lr is about 0.03); the
    # minibatched fit (batch_size=20 slices batch and subsample; full_size stays) runs and moves.
    data = torch.randn(60, generator=torch.Generator().manual_seed(3)) * 1.5
    args = {"batch": data, "subsample": torch.arange(60), "full_size": 60}
    options = dict(method="svi", guide=drift_guide, num_steps=400, lr=0.05, seed=0, progress=False)
    ours = ppgen.fit(drift_model, args, **options)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(drift_model, drift_guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(400):
        svi.step(**args)
    assert abs(float(ours.params["d_loc"]) - float(pyro.param("d_loc"))) < 0.1
    pyro.clear_param_store()
    small = ppgen.fit(drift_model, args, **{**options, "batch_size": 20, "num_steps": 50})
    assert small.params["level_loc"].shape == (60,) and float(small.params["d_loc"]) != -1.0


def imputed(data, mask):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data, obs_mask=mask)


def test_missing_values_by_obs_mask_are_latents_the_fit_keeps():
    # Reference: the MAP of loc from the observed entries alone, Σ y_obs / (n_obs + 1/100) (L-BFGS
    # finishes the MAP, 1e-4). The imputed values never reach the likelihood: that is not a simulator.
    data = torch.randn(40, generator=torch.Generator().manual_seed(4)) + 2.0
    mask = torch.arange(40) % 4 != 0
    fit = ppgen.fit(
        imputed, {"data": data, "mask": mask}, method="map", num_steps=100, seed=0, progress=False
    )
    expected = float(data[mask].sum() / (mask.sum() + 0.01))
    assert abs(float(fit.params["loc"]) - expected) < 1e-4
    assert "obs_unobserved" in fit.params


def test_sequential_enumeration_in_the_model_is_refused_by_name():
    def switch(data):
        p = pyro.sample("p", dist.Beta(1.0, 1.0))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Bernoulli(p), infer={"enumerate": "sequential"})
            pyro.sample("obs", dist.Normal(3.0 * z, 1.0), obs=data)

    with pytest.raises(MethodError, match="'z' is marked infer=.*sequential.*importance"):
        ppgen.fit(switch, {"data": torch.zeros(5)}, method="map")
    assert ppgen.applicable_methods(switch, {"data": torch.zeros(5)}) == ["importance"]


def _factor(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    pyro.factor("pull_to_one", -0.5 * (loc - 1.0) ** 2)
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


def _scaled(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with poutine.scale(scale=2.0), pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


def _masked(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)), poutine.mask(mask=torch.arange(len(data)) % 3 != 0):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


@scope(prefix="reg")
def _scoped(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        return pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


def _closed_form_map(name: str, y: torch.Tensor) -> float:
    """argmax of N(loc | 0, 10²) · Π N(y | loc, 1) with each style's extra term, in closed form."""
    kept = y[torch.arange(len(y)) % 3 != 0]
    return {
        "factor": float((y.sum() + 1.0) / (len(y) + 1.0 + 0.01)),
        "scale": float(2 * y.sum() / (2 * len(y) + 0.01)),
        "mask": float(kept.sum() / (len(kept) + 0.01)),
        "scope": float(y.sum() / (len(y) + 0.01)),
    }[name]


@pytest.mark.parametrize(
    "name, program, site",
    [
        ("factor", _factor, "loc"),
        ("scale", _scaled, "loc"),
        ("mask", _masked, "loc"),
        ("scope", _scoped, "reg/loc"),
    ],
)
def test_factor_scale_mask_and_scopes_reach_the_closed_form_map(name, program, site):
    # Reference: each program's MAP in closed form (a normal mean with the style's extra term);
    # Adam's 50 steps and L-BFGS finish it to 1e-4.
    y = torch.randn(30, generator=torch.Generator().manual_seed(5)) + 1.5
    fit = ppgen.fit(program, {"data": y}, method="map", num_steps=50, seed=0, progress=False)
    assert abs(float(fit.params[site]) - _closed_form_map(name, y)) < 1e-4


class _Encoder(torch.nn.Module):
    """Amortisation: each unit's guide location and scale from its own observation."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 2)

    def forward(self, y):
        out = self.linear(y.unsqueeze(-1))
        return out[..., 0], torch.nn.functional.softplus(out[..., 1]) + 1e-3


def _hierarchy(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Normal(mu, 1.0))
        pyro.sample("obs", dist.Normal(z, 0.5), obs=y)


def test_an_amortised_guide_trains_as_in_pyro():
    # Reference: Pyro's own SVI loop on the same program and guide (Adam lr 0.05, 300 steps, one seed,
    # the encoder starting from the same weights): the global location within 0.1 of Pyro's (ELBO noise
    # at this lr moves it by about 0.03), and the user's encoder left untouched by ppgen's fit.
    torch.manual_seed(0)
    encoder = _Encoder()
    start = {k: v.clone() for k, v in encoder.state_dict().items()}

    def guide(y):
        pyro.module("encoder", encoder)
        m = pyro.param("m", torch.tensor(0.0))
        s = pyro.param("s", torch.tensor(1.0), constraint=constraints.positive)
        pyro.sample("mu", dist.Normal(m, s))
        loc, scale = encoder(y)
        with pyro.plate("data", len(y)):
            pyro.sample("z", dist.Normal(loc, scale))

    y = torch.randn(80, generator=torch.Generator().manual_seed(6)) + 1.0
    ours = ppgen.fit(
        _hierarchy, {"y": y}, method="svi", guide=guide, num_steps=300, lr=0.05, seed=0, progress=False
    )
    assert all(torch.equal(v, start[k]) for k, v in encoder.state_dict().items())
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(_hierarchy, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(300):
        svi.step(y)
    assert abs(float(ours.params["m"]) - float(pyro.param("m"))) < 0.1
    assert set(ours.params) >= {"encoder.linear.weight", "encoder.linear.bias", "m", "s"}


def pyro_hmm_model_1(sequences, lengths):
    """Pyro's HMM example, model 1, rewritten: a plate of sequences (dim -2), a plate of tones (dim -1)
    inside a pyro.markov loop, and a mask past each sequence's length."""
    data_dim = sequences.shape[2]
    probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(2) + 0.1).to_event(1))
    probs_y = pyro.sample("probs_y", dist.Beta(0.1, 0.9).expand([2, data_dim]).to_event(2))
    tones = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", sequences.shape[0], dim=-2):
        state = 0
        for t in pyro.markov(range(sequences.shape[1])):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                state = pyro.sample(
                    f"x_{t}", dist.Categorical(probs_x[state]), infer={"enumerate": "parallel"}
                )
                with tones:
                    pyro.sample(f"y_{t}", dist.Bernoulli(probs_y[state.squeeze(-1)]), obs=sequences[:, t])


class _PriorsDropped(poutine.messenger.Messenger):
    def __init__(self, names):
        super().__init__()
        self.names = names

    def _pyro_sample(self, msg):
        if msg["name"] in self.names:
            msg["mask"] = False


def test_pyros_hmm_example_scores_each_sequence_as_pyros_trace_enum():
    # Reference: Pyro's TraceEnum_ELBO run directly with the fit's estimates conditioned and their priors
    # masked, once per sequence (every other sequence's length set to 0): -loss = log p(sequence i).
    # Tolerance 1e-4 (float32 contractions in a different order).
    sequences = (torch.rand(4, 6, 3, generator=torch.Generator().manual_seed(7)) > 0.6).float()
    lengths = torch.tensor([6, 4, 5, 6])
    args = {"sequences": sequences, "lengths": lengths}
    # Dirichlet(0.1) off the diagonal: the density is unbounded at the simplex's edge, so no MAP
    with pytest.warns(
        ConvergenceWarning, match="probs_x: the objective keeps improving as it [di][en]creases"
    ):
        fit = ppgen.fit(pyro_hmm_model_1, args, method="map", num_steps=30, seed=0, progress=False)
    assert fit.model.unit_plate == "sequences"
    values = {k: fit.params[k] for k in ("probs_x", "probs_y")}
    conditioned = _PriorsDropped(set(values))(poutine.condition(pyro_hmm_model_1, data=values))
    expected = []
    for i in range(4):
        only = torch.where(torch.arange(4) == i, lengths, torch.zeros_like(lengths))
        elbo = TraceEnum_ELBO(max_plate_nesting=2)
        expected.append(-elbo.loss(conditioned, lambda *a, **k: None, sequences, only))
    assert_close(fit.log_prob(args), torch.tensor(expected), atol=1e-4)


def _stick_breaking(beta: torch.Tensor) -> torch.Tensor:
    remaining = (1 - beta).cumprod(-1)
    return torch.nn.functional.pad(beta, (0, 1), value=1) * torch.nn.functional.pad(
        remaining, (1, 0), value=1
    )


@pyro.infer.config_enumerate
def truncated_dp(data):
    """The Dirichlet-process tutorial's truncated stick-breaking mixture (T = 4 sticks), 2-D."""
    with pyro.plate("beta_plate", 3):
        beta = pyro.sample("beta", dist.Beta(1.0, 1.0))
    with pyro.plate("mu_plate", 4):
        mu = pyro.sample("mu", dist.MultivariateNormal(torch.zeros(2), 5 * torch.eye(2)))
    with pyro.plate("data", data.shape[0]):
        z = pyro.sample("z", dist.Categorical(_stick_breaking(beta)))
        pyro.sample("obs", dist.MultivariateNormal(mu[z], torch.eye(2)), obs=data)


def test_stick_breaking_mixture_scores_as_its_closed_form_mixture_density():
    # Reference: log Σ_k w_k N(x | mu_k, I) at the MAP's sticks and means, by hand (1e-4); the
    # components start at k-means centres, so two of them sit on the two clusters' sample means (within
    # 0.05: the N(0, 5 I) prior moves a mean of 40 points by about |mean| / 200).
    generator = torch.Generator().manual_seed(8)
    left, right = torch.randn(40, 2, generator=generator) - 3, torch.randn(40, 2, generator=generator) + 3
    data = torch.cat([left, right])
    # Two clusters, four sticks: an unused component's stick has its MAP on the boundary (Beta(1, 1):
    # beta -> 0 or 1, where the remaining weight goes to a used one), which the fit rightly warns of
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = ppgen.fit(truncated_dp, {"data": data}, method="map", num_steps=100, seed=0, progress=False)
    weights, mu = _stick_breaking(fit.params["beta"]), fit.params["mu"]
    components = dist.MultivariateNormal(mu, torch.eye(2)).log_prob(data[:, None, :]) + weights.log()
    assert_close(fit.log_prob({"data": data}), components.logsumexp(-1), atol=1e-4)
    used = mu[weights > 0.1]
    for cluster in (left, right):
        assert float((used - cluster.mean(0)).norm(dim=1).min()) < 0.05


def test_nuts_on_an_obs_mask_program_warns_that_the_masked_entries_have_no_density():
    # Reference: by construction, obs_mask samples obs_unobserved at every position and masks the
    # observed ones out; NUTS would move those with no density. A program without masks: no warning.
    data = torch.randn(12, generator=torch.Generator().manual_seed(9))
    mask = torch.arange(12) % 3 != 0
    options = dict(method="mcmc", num_chains=1, num_samples=10, warmup_steps=10, seed=0, progress=False)
    with pytest.warns(UserWarning, match="'obs_unobserved' has entries whose density is masked out"):
        ppgen.fit(imputed, {"data": data, "mask": mask}, **options)
    program = as_fit_model(_factor)
    program.bind({"data": data})
    assert program.partly_masked_latents() == []
    # Pyro's dmm.py masks each z_t by the distribution's own .mask(...) past a sequence's end
    program = as_fit_model(_distribution_masked)
    program.bind({"data": data, "mask": mask})
    assert program.partly_masked_latents() == ["z"]


def _distribution_masked(data, mask):
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).mask(mask))
        pyro.sample("obs", dist.Normal(z, 1.0).mask(mask), obs=data)
