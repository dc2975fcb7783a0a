"""Programs of Pyro's ``examples/`` directory, written afresh in each example's own style (signature, site
names, plates, where the data enter) with small synthetic data drawn from the program with a seed.

Each ``CASES`` entry names the example file and gives ``(program, data, options)``: ``options`` holds what
``ppgen.fit`` needs beyond the data (``guide=``, ``observed=``). Used by tests/programs/test_pyro_examples.py
and benchmarks/pyro_examples.py.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.contrib.autoname import named, scope
from pyro.distributions import transforms
from pyro.nn import PyroModule
from pyro.ops.indexing import Vindex
from torch import nn
from torch.distributions import constraints

from tests.pyro_programs import hidden_switch, hidden_switch_guide


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- baseball.py: Binomial hits per player, four poolings -------------------------------------------------


def fully_pooled(at_bats, hits):
    phi = pyro.sample("phi", dist.Uniform(at_bats.new_tensor(0.0), at_bats.new_tensor(1.0)))
    with pyro.plate("num_players", at_bats.shape[0]):
        return pyro.sample("obs", dist.Binomial(at_bats, phi), obs=hits)


def not_pooled(at_bats, hits):
    with pyro.plate("num_players", at_bats.shape[0]):
        phi = pyro.sample("phi", dist.Uniform(at_bats.new_tensor(0.0), at_bats.new_tensor(1.0)))
        return pyro.sample("obs", dist.Binomial(at_bats, phi), obs=hits)


def partially_pooled(at_bats, hits):
    m = pyro.sample("m", dist.Uniform(at_bats.new_tensor(0.0), at_bats.new_tensor(1.0)))
    kappa = pyro.sample("kappa", dist.Pareto(at_bats.new_tensor(1.0), at_bats.new_tensor(1.5)))
    with pyro.plate("num_players", at_bats.shape[0]):
        phi = pyro.sample("phi", dist.Beta(m * kappa, (1 - m) * kappa))
        return pyro.sample("obs", dist.Binomial(at_bats, phi), obs=hits)


def baseball_data(seed: int = 0, players: int = 12) -> dict:
    at_bats = torch.full((players,), 45.0)
    probs = 0.2 + 0.15 * torch.rand(players, generator=_gen(seed))
    hits = torch.binomial(at_bats, probs, generator=_gen(seed + 1))
    return {"at_bats": at_bats, "hits": hits}


# --- eight_schools/svi.py: every site inside the schools plate, data as one (J, 2) tensor ------------------

J = 8


def eight_schools_svi_model(data):
    y, sigma = data[:, 0], data[:, 1]
    with pyro.plate("data", J):
        eta = pyro.sample("eta", dist.Normal(torch.zeros(J), torch.ones(J)))
        mu = pyro.sample("mu", dist.Normal(torch.zeros(1), 10 * torch.ones(1)))
        tau = pyro.sample("tau", dist.HalfCauchy(scale=25 * torch.ones(1)))
        pyro.sample("obs", dist.Normal(mu + tau * eta, sigma), obs=y)


def eight_schools_svi_guide(data):
    gen = _gen(3)
    loc_eta = pyro.param("loc_eta", torch.randn(J, generator=gen))
    scale_eta = pyro.param("scale_eta", 0.1 * torch.rand(J, generator=gen), constraint=constraints.positive)
    loc_mu = pyro.param("loc_mu", torch.randn(1, generator=gen))
    scale_mu = pyro.param("scale_mu", 0.1 * torch.rand(1, generator=gen), constraint=constraints.positive)
    loc_logtau = pyro.param("loc_logtau", torch.randn(1, generator=gen))
    scale_logtau = pyro.param(
        "scale_logtau", 0.1 * torch.rand(1, generator=gen), constraint=constraints.positive
    )
    with pyro.plate("data", J):
        pyro.sample("eta", dist.Normal(loc_eta, scale_eta))
        pyro.sample("mu", dist.Normal(loc_mu, scale_mu))
        pyro.sample(
            "tau",
            dist.TransformedDistribution(dist.Normal(loc_logtau, scale_logtau), transforms.ExpTransform()),
        )


def eight_schools_data() -> dict:
    y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    return {"data": torch.stack([y, sigma], -1)}


# eight_schools/mcmc.py: a purely generative program conditioned from outside (observed=)
def eight_schools_mcmc_model(sigma):
    eta = pyro.sample("eta", dist.Normal(torch.zeros(J), torch.ones(J)))
    mu = pyro.sample("mu", dist.Normal(torch.zeros(1), 10 * torch.ones(1)))
    tau = pyro.sample("tau", dist.HalfCauchy(scale=25 * torch.ones(1)))
    theta = mu + tau * eta
    return pyro.sample("obs", dist.Normal(theta, sigma))


# --- toy_mixture_model_discrete_enumeration.py: a dict of observations, one enumerated Bernoulli -----------


# the enumeration example's program and guide, already carried by the earlier tests
toy_mixture_model, toy_mixture_guide = hidden_switch, hidden_switch_guide


def toy_mixture_data(num_obs: int = 200, seed: int = 0) -> dict:
    gen = _gen(seed)
    prior = {
        "A": torch.tensor([1.0, 10.0]),
        "B": torch.tensor([[10.0, 1.0], [1.0, 10.0]]),
        "C": torch.tensor([[10.0, 1.0], [1.0, 10.0]]),
    }
    p_A, p_B, p_C = torch.tensor(0.3), torch.tensor([0.2, 0.8]), torch.tensor([0.9, 0.3])
    a = torch.bernoulli(p_A.expand(num_obs), generator=gen)
    b = torch.bernoulli(p_B[a.long()], generator=gen)
    c = torch.bernoulli(p_C[b.long()], generator=gen)
    return {"prior": prior, "obs": {"A": a, "C": c}, "num_obs": num_obs}


# --- lkj.py: LKJ Cholesky prior on a correlation, MultivariateNormal observations ---------------------------


def lkj_model(y):
    d, n = y.shape[1], y.shape[0]
    theta = pyro.sample("theta", dist.HalfCauchy(torch.ones(d, dtype=y.dtype)))
    L_omega = pyro.sample("L_omega", dist.LKJCholesky(d, torch.ones((), dtype=y.dtype)))
    L_Omega = (
        torch.mm(torch.diag(theta.sqrt()), L_omega)
        if theta.dim() == 1
        else (theta.sqrt().diag_embed() @ L_omega)
    )
    with pyro.plate("observations", n):
        return pyro.sample(
            "obs", dist.MultivariateNormal(torch.zeros(d, dtype=y.dtype), scale_tril=L_Omega), obs=y
        )


def lkj_data(n: int = 60, d: int = 3, seed: int = 0) -> dict:
    return {"y": torch.randn(n, d, generator=_gen(seed))}


# --- minipyro.py: one latent, a hand-written guide that exponentiates its own scale ------------------------


def minipyro_model(data):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(data), dim=-1):
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


def minipyro_guide(data):
    guide_loc = pyro.param("guide_loc", torch.tensor(0.0))
    guide_scale = pyro.param("guide_scale_log", torch.tensor(0.0)).exp()
    pyro.sample("loc", dist.Normal(guide_loc, guide_scale))


def minipyro_data(n: int = 100, seed: int = 0) -> dict:
    return {"data": torch.randn(n, generator=_gen(seed)) + 3.0}


# --- svi_torch.py / svi_lightning.py / svi_horovod.py: a PyroModule with a buffer, plate(size, len(batch)) --


class SviTorchModel(PyroModule):
    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("zero", torch.tensor(0.0))

    def forward(self, covariates, data=None):
        coeff = pyro.sample("coeff", dist.Normal(self.zero, 1))
        bias = pyro.sample("bias", dist.Normal(self.zero, 1))
        scale = pyro.sample("scale", dist.LogNormal(self.zero, 1))
        with pyro.plate("data", self.size, len(covariates)):
            loc = bias + coeff * covariates
            return pyro.sample("obs", dist.Normal(loc, scale), obs=data)


def svi_torch_data(size: int = 100, seed: int = 0) -> dict:
    gen = _gen(seed)
    covariates = torch.randn(size, generator=gen)
    data = 0.5 - 1.2 * covariates + 0.7 * torch.randn(size, generator=gen)
    return {"covariates": covariates, "data": data}


# --- capture_recapture/cjs.py: pyro.markov over occasions, masks until first capture ------------------------


def cjs_model_1(capture_history, sex):
    N, T = capture_history.shape
    phi = pyro.sample("phi", dist.Uniform(0.0, 1.0))
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))
    with pyro.plate("animals", N, dim=-1):
        z = torch.ones(N)
        first_capture_mask = torch.zeros(N).bool()
        for t in pyro.markov(range(T)):
            with poutine.mask(mask=first_capture_mask):
                mu_z_t = first_capture_mask.float() * phi * z + (1 - first_capture_mask.float())
                z = pyro.sample(f"z_{t}", dist.Bernoulli(mu_z_t), infer={"enumerate": "parallel"})
                pyro.sample(f"y_{t}", dist.Bernoulli(rho * z), obs=capture_history[:, t])
            first_capture_mask |= capture_history[:, t].bool()


def cjs_model_2(capture_history, sex):
    """Time-varying survival phi_t sampled inside the markov loop; the animals plate re-entered per step."""
    N, T = capture_history.shape
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))
    z = torch.ones(N)
    first_capture_mask = torch.zeros(N).bool()
    animals_plate = pyro.plate("animals", N, dim=-1)
    for t in pyro.markov(range(T)):
        phi_t = pyro.sample(f"phi_{t}", dist.Uniform(0.0, 1.0)) if t > 0 else 1.0
        with animals_plate, poutine.mask(mask=first_capture_mask):
            mu_z_t = first_capture_mask.float() * phi_t * z + (1 - first_capture_mask.float())
            z = pyro.sample(f"z_{t}", dist.Bernoulli(mu_z_t), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Bernoulli(rho * z), obs=capture_history[:, t])
        first_capture_mask |= capture_history[:, t].bool()


def cjs_model_3(capture_history, sex):
    """Random time effects: logit(phi_t) ~ Normal(logit(phi_mean), phi_sigma)."""
    N, T = capture_history.shape
    phi_mean = pyro.sample("phi_mean", dist.Uniform(0.0, 1.0))
    phi_logit_mean = phi_mean.log() - (-phi_mean).log1p()
    phi_sigma = pyro.sample("phi_sigma", dist.Uniform(0.0, 10.0))
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))
    z = torch.ones(N)
    first_capture_mask = torch.zeros(N).bool()
    animals_plate = pyro.plate("animals", N, dim=-1)
    for t in pyro.markov(range(T)):
        phi_logit_t = (
            pyro.sample(f"phi_logit_{t}", dist.Normal(phi_logit_mean, phi_sigma))
            if t > 0
            else torch.tensor(0.0)
        )
        phi_t = torch.sigmoid(phi_logit_t)
        with animals_plate, poutine.mask(mask=first_capture_mask):
            mu_z_t = first_capture_mask.float() * phi_t * z + (1 - first_capture_mask.float())
            z = pyro.sample(f"z_{t}", dist.Bernoulli(mu_z_t), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Bernoulli(rho * z), obs=capture_history[:, t])
        first_capture_mask |= capture_history[:, t].bool()


def cjs_model_4(capture_history, sex):
    """Group (sex) fixed effects on survival."""
    N, T = capture_history.shape
    phi_male = pyro.sample("phi_male", dist.Uniform(0.0, 1.0))
    phi_female = pyro.sample("phi_female", dist.Uniform(0.0, 1.0))
    phi = sex * phi_male + (1.0 - sex) * phi_female
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))
    with pyro.plate("animals", N, dim=-1):
        z = torch.ones(N)
        first_capture_mask = torch.zeros(N).bool()
        for t in pyro.markov(range(T)):
            with poutine.mask(mask=first_capture_mask):
                mu_z_t = first_capture_mask.float() * phi * z + (1 - first_capture_mask.float())
                z = pyro.sample(f"z_{t}", dist.Bernoulli(mu_z_t), infer={"enumerate": "parallel"})
                pyro.sample(f"y_{t}", dist.Bernoulli(rho * z), obs=capture_history[:, t])
            first_capture_mask |= capture_history[:, t].bool()


def cjs_model_5(capture_history, sex):
    """Group and time fixed effects: logit(phi_t) = beta_group + gamma_t, gamma in a plate of occasions."""
    N, T = capture_history.shape
    beta = pyro.sample("beta", dist.Normal(0.0, 10.0))
    with pyro.plate("Tminus1", T - 1):
        gamma = pyro.sample("gamma", dist.Normal(0.0, 10.0))
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))
    z = torch.ones(N)
    first_capture_mask = torch.zeros(N).bool()
    animals_plate = pyro.plate("animals", N, dim=-1)
    for t in pyro.markov(range(T)):
        phi_logit_t = beta * sex + gamma[t - 1] if t > 0 else torch.tensor(0.0)
        phi_t = torch.sigmoid(phi_logit_t)
        with animals_plate, poutine.mask(mask=first_capture_mask):
            mu_z_t = first_capture_mask.float() * phi_t * z + (1 - first_capture_mask.float())
            z = pyro.sample(f"z_{t}", dist.Bernoulli(mu_z_t), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Bernoulli(rho * z), obs=capture_history[:, t])
        first_capture_mask |= capture_history[:, t].bool()


def cjs_data(animals: int = 40, occasions: int = 5, seed: int = 0) -> dict:
    """Capture histories from phi = 0.7, rho = 0.6, each animal first caught at a random occasion."""
    gen = _gen(seed)
    history = torch.zeros(animals, occasions)
    first = torch.randint(0, occasions - 1, (animals,), generator=gen)
    sex = torch.bernoulli(torch.full((animals,), 0.5), generator=gen)
    for i in range(animals):
        alive = True
        history[i, first[i]] = 1.0
        for t in range(int(first[i]) + 1, occasions):
            alive = alive and bool(torch.rand((), generator=gen) < 0.7)
            history[i, t] = float(alive and bool(torch.rand((), generator=gen) < 0.6))
    return {"capture_history": history, "sex": sex}


# --- hmm.py: polyphonic-music HMMs over (sequences, time, tones) with lengths and an args namespace --------

HMM_ARGS = SimpleNamespace(hidden_dim=4, jit=False, raftery_parameterization=False, nn_dim=8, nn_channels=2)


def hmm_model_0(sequences, lengths, args, batch_size=None, include_prior=True):
    """Sequences in a sequential plate: site names carry the sequence index."""
    num_sequences, max_length, data_dim = sequences.shape
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1))
        probs_y = pyro.sample("probs_y", dist.Beta(0.1, 0.9).expand([args.hidden_dim, data_dim]).to_event(2))
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    for i in pyro.plate("sequences", len(sequences), batch_size):
        length = lengths[i]
        sequence = sequences[i, :length]
        x = 0
        for t in pyro.markov(range(length)):
            x = pyro.sample(f"x_{i}_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"})
            with tones_plate:
                pyro.sample(f"y_{i}_{t}", dist.Bernoulli(probs_y[x.squeeze(-1)]), obs=sequence[t])


def hmm_model_2(sequences, lengths, args, batch_size=None, include_prior=True):
    """Autoregressive emissions: y_t depends on x_t and y_{t-1}."""
    num_sequences, max_length, data_dim = sequences.shape
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1))
        probs_y = pyro.sample(
            "probs_y", dist.Beta(0.1, 0.9).expand([args.hidden_dim, 2, data_dim]).to_event(3)
        )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        x, y = 0, 0
        for t in pyro.markov(range(int(lengths.max()))):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"})
                with tones_plate as tones:
                    y = pyro.sample(
                        f"y_{t}", dist.Bernoulli(probs_y[x, y, tones]), obs=sequences[batch, t]
                    ).long()


def hmm_model_3(sequences, lengths, args, batch_size=None, include_prior=True):
    """Factorial HMM: two independent chains w and x."""
    num_sequences, max_length, data_dim = sequences.shape
    hidden_dim = int(args.hidden_dim**0.5)
    with poutine.mask(mask=include_prior):
        probs_w = pyro.sample("probs_w", dist.Dirichlet(0.9 * torch.eye(hidden_dim) + 0.1).to_event(1))
        probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(hidden_dim) + 0.1).to_event(1))
        probs_y = pyro.sample(
            "probs_y", dist.Beta(0.1, 0.9).expand([hidden_dim, hidden_dim, data_dim]).to_event(3)
        )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        w, x = 0, 0
        for t in pyro.markov(range(int(lengths.max()))):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                w = pyro.sample(f"w_{t}", dist.Categorical(probs_w[w]), infer={"enumerate": "parallel"})
                x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"})
                with tones_plate as tones:
                    pyro.sample(f"y_{t}", dist.Bernoulli(probs_y[w, x, tones]), obs=sequences[batch, t])


def hmm_model_4(sequences, lengths, args, batch_size=None, include_prior=True):
    """Factorial HMM with x's transition depending on w (Vindex into an enumerated pair)."""
    num_sequences, max_length, data_dim = sequences.shape
    hidden_dim = int(args.hidden_dim**0.5)
    with poutine.mask(mask=include_prior):
        probs_w = pyro.sample("probs_w", dist.Dirichlet(0.9 * torch.eye(hidden_dim) + 0.1).to_event(1))
        probs_x = pyro.sample(
            "probs_x", dist.Dirichlet(0.9 * torch.eye(hidden_dim) + 0.1).expand_by([hidden_dim]).to_event(2)
        )
        probs_y = pyro.sample(
            "probs_y", dist.Beta(0.1, 0.9).expand([hidden_dim, hidden_dim, data_dim]).to_event(3)
        )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        w = x = torch.tensor(0, dtype=torch.long)
        for t in pyro.markov(range(int(lengths.max()))):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                w = pyro.sample(f"w_{t}", dist.Categorical(probs_w[w]), infer={"enumerate": "parallel"})
                x = pyro.sample(
                    f"x_{t}", dist.Categorical(Vindex(probs_x)[w, x]), infer={"enumerate": "parallel"}
                )
                with tones_plate as tones:
                    pyro.sample(f"y_{t}", dist.Bernoulli(probs_y[w, x, tones]), obs=sequences[batch, t])


class TonesGenerator(nn.Module):
    """hmm.py's network from (x_t, y_{t-1}) to the tones' logits (a small conv over the previous tones)."""

    def __init__(self, args, data_dim: int):
        super().__init__()
        self.args, self.data_dim = args, data_dim
        self.x_to_hidden = nn.Linear(args.hidden_dim, args.nn_dim)
        self.y_to_hidden = nn.Linear(args.nn_channels * data_dim, args.nn_dim)
        self.conv = nn.Conv1d(1, args.nn_channels, 3, padding=1)
        self.hidden_to_logits = nn.Linear(args.nn_dim, data_dim)

    def forward(self, x, y):
        x_onehot = y.new_zeros(x.shape[:-1] + (self.args.hidden_dim,)).scatter_(-1, x, 1)
        y_conv = torch.relu(self.conv(y.reshape(-1, 1, self.data_dim))).reshape(y.shape[:-1] + (-1,))
        h = torch.relu(self.x_to_hidden(x_onehot) + self.y_to_hidden(y_conv))
        return self.hidden_to_logits(h)


tones_generator = None


def hmm_model_5(sequences, lengths, args, batch_size=None, include_prior=True):
    """Neural emissions through a module-level network registered with pyro.module."""
    num_sequences, max_length, data_dim = sequences.shape
    global tones_generator
    if tones_generator is None:
        torch.manual_seed(0)
        tones_generator = TonesGenerator(args, data_dim)
    pyro.module("tones_generator", tones_generator)
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1))
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        x = 0
        y = torch.zeros(data_dim)
        for t in pyro.markov(range(int(lengths.max()))):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"})
                with pyro.plate(f"tones_{t}", data_dim, dim=-1):
                    y = pyro.sample(
                        f"y_{t}", dist.Bernoulli(logits=tones_generator(x, y)), obs=sequences[batch, t]
                    )


def hmm_model_6(sequences, lengths, args, batch_size=None, include_prior=False):
    """Second-order HMM (history=2) with pyro.param parameters and no priors."""
    num_sequences, max_length, data_dim = sequences.shape
    hidden_dim = args.hidden_dim
    gen = _gen(6)
    probs_x = pyro.param(
        "probs_x",
        torch.rand(hidden_dim, hidden_dim, hidden_dim, generator=gen),
        constraint=constraints.simplex,
    )
    probs_y = pyro.param(
        "probs_y", torch.rand(hidden_dim, data_dim, generator=gen), constraint=constraints.unit_interval
    )
    tones_plate = pyro.plate("tones", data_dim, dim=-1)
    with pyro.plate("sequences", num_sequences, batch_size, dim=-2) as batch:
        lengths = lengths[batch]
        x_curr, x_prev = torch.tensor(0), torch.tensor(0)
        for t in pyro.markov(range(int(lengths.max())), history=2):
            with poutine.mask(mask=(t < lengths).unsqueeze(-1)):
                probs_x_t = Vindex(probs_x)[x_prev, x_curr]
                x_prev, x_curr = (
                    x_curr,
                    pyro.sample(f"x_{t}", dist.Categorical(probs_x_t), infer={"enumerate": "parallel"}),
                )
                with tones_plate:
                    pyro.sample(
                        f"y_{t}", dist.Bernoulli(probs_y[x_curr.squeeze(-1)]), obs=sequences[batch, t]
                    )


def hmm_model_7(sequences, lengths, args, batch_size=None, include_prior=True):
    """The chain as one DiscreteHMM distribution with masked neural emissions."""
    num_sequences, max_length, data_dim = sequences.shape
    global tones_generator
    if tones_generator is None:
        torch.manual_seed(0)
        tones_generator = TonesGenerator(args, data_dim)
    pyro.module("tones_generator", tones_generator)
    with poutine.mask(mask=include_prior):
        probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(args.hidden_dim) + 0.1).to_event(1))
    with pyro.plate("sequences", num_sequences, batch_size, dim=-1) as batch:
        lengths = lengths[batch]
        y = sequences[batch, : int(lengths.max())]
        x = torch.arange(args.hidden_dim)
        t = torch.arange(y.size(1))
        init_logits = torch.full((args.hidden_dim,), -float("inf"))
        init_logits[0] = 0
        obs_dist = dist.Bernoulli(logits=tones_generator(x, y.unsqueeze(-2))).to_event(1)
        obs_dist = obs_dist.mask((t < lengths.unsqueeze(-1)).unsqueeze(-1))
        pyro.sample("y", dist.DiscreteHMM(init_logits, probs_x.log(), obs_dist), obs=y)


def hmm_data(sequences: int = 6, length: int = 6, tones: int = 3, seed: int = 0) -> dict:
    """Binary tone sequences from a sticky two-state chain, of lengths between length-2 and length."""
    gen = _gen(seed)
    state = torch.zeros(sequences, dtype=torch.long)
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.2, 0.9]])
    out = torch.zeros(sequences, length, tones)
    for t in range(length):
        flip = torch.rand(sequences, generator=gen) < 0.2
        state = torch.where(flip, 1 - state, state)
        out[:, t] = torch.bernoulli(probs[state], generator=gen)
    lengths = torch.randint(length - 2, length + 1, (sequences,), generator=gen)
    for i, n in enumerate(lengths):
        out[i, n:] = 0.0
    return {"sequences": out, "lengths": lengths, "args": HMM_ARGS}


# --- lda.py: documents x words, data=None default, args namespace, amortised guide with extra argument -----

LDA_ARGS = SimpleNamespace(num_topics=2, num_words=6, num_docs=8, num_words_per_doc=10, layer_sizes="8")


def lda_model(data=None, args=None, batch_size=None):
    with pyro.plate("topics", args.num_topics):
        topic_weights = pyro.sample("topic_weights", dist.Gamma(1.0 / args.num_topics, 1.0))
        topic_words = pyro.sample("topic_words", dist.Dirichlet(torch.ones(args.num_words) / args.num_words))
    with pyro.plate("documents", args.num_docs) as ind:
        if data is not None:
            data = data[:, ind]
        doc_topics = pyro.sample("doc_topics", dist.Dirichlet(topic_weights))
        with pyro.plate("words", args.num_words_per_doc):
            word_topics = pyro.sample(
                "word_topics", dist.Categorical(doc_topics), infer={"enumerate": "parallel"}
            )
            data = pyro.sample("doc_words", dist.Categorical(topic_words[word_topics]), obs=data)
    return topic_weights, topic_words, data


def lda_predictor(args) -> nn.Module:
    torch.manual_seed(1)
    sizes = [args.num_words] + [int(s) for s in args.layer_sizes.split("-")] + [args.num_topics]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layer = nn.Linear(n_in, n_out)
        layer.weight.data.normal_(0, 0.001)
        layer.bias.data.normal_(0, 0.001)
        layers += [layer, nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Softmax(dim=-1))


def lda_parametrized_guide(predictor, data, args, batch_size=None):
    topic_weights_posterior = pyro.param(
        "topic_weights_posterior", lambda: torch.ones(args.num_topics), constraint=constraints.positive
    )
    topic_words_posterior = pyro.param(
        "topic_words_posterior",
        lambda: torch.ones(args.num_topics, args.num_words),
        constraint=constraints.greater_than(0.5),
    )
    with pyro.plate("topics", args.num_topics):
        pyro.sample("topic_weights", dist.Gamma(topic_weights_posterior, 1.0))
        pyro.sample("topic_words", dist.Dirichlet(topic_words_posterior))
    pyro.module("predictor", predictor)
    with pyro.plate("documents", args.num_docs, batch_size) as ind:
        data = data[:, ind]
        counts = torch.zeros(args.num_words, ind.size(0)).scatter_add(0, data, torch.ones(data.shape))
        doc_topics = predictor(counts.transpose(0, 1))
        pyro.sample("doc_topics", dist.Delta(doc_topics, event_dim=1))


def lda_data(seed: int = 0) -> dict:
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        _, _, words = lda_model(args=LDA_ARGS)
    return {"data": words, "args": LDA_ARGS}


# --- sparse_gamma_def.py: a deep exponential family as a class, Gamma weights and latents, Poisson pixels --


class SparseGammaDEF:
    def __init__(self, top: int = 3, mid: int = 2, bottom: int = 2, image_size: int = 6):
        self.top_width, self.mid_width, self.bottom_width, self.image_size = top, mid, bottom, image_size
        self.alpha_z, self.beta_z = torch.tensor(0.1), torch.tensor(0.1)
        self.alpha_w, self.beta_w = torch.tensor(0.1), torch.tensor(0.3)

    def model(self, x):
        x_size = x.size(0)
        with pyro.plate("w_top_plate", self.top_width * self.mid_width):
            w_top = pyro.sample("w_top", dist.Gamma(self.alpha_w, self.beta_w))
        with pyro.plate("w_mid_plate", self.mid_width * self.bottom_width):
            w_mid = pyro.sample("w_mid", dist.Gamma(self.alpha_w, self.beta_w))
        with pyro.plate("w_bottom_plate", self.bottom_width * self.image_size):
            w_bottom = pyro.sample("w_bottom", dist.Gamma(self.alpha_w, self.beta_w))
        with pyro.plate("data", x_size):
            z_top = pyro.sample(
                "z_top", dist.Gamma(self.alpha_z, self.beta_z).expand([self.top_width]).to_event(1)
            )
            w_top = w_top.reshape(w_top.shape[:-1] + (self.top_width, self.mid_width))
            z_mid = pyro.sample("z_mid", dist.Gamma(self.alpha_z, self.beta_z / (z_top @ w_top)).to_event(1))
            w_mid = w_mid.reshape(w_mid.shape[:-1] + (self.mid_width, self.bottom_width))
            z_bottom = pyro.sample(
                "z_bottom", dist.Gamma(self.alpha_z, self.beta_z / (z_mid @ w_mid)).to_event(1)
            )
            w_bottom = w_bottom.reshape(w_bottom.shape[:-1] + (self.bottom_width, self.image_size))
            pyro.sample("obs", dist.Poisson(z_bottom @ w_bottom).to_event(1), obs=x)

    def guide(self, x):
        x_size = x.size(0)
        gen = _gen(7)

        def rand(shape, mean, sigma):
            return mean + sigma * torch.randn(shape, generator=gen)

        def sample_zs(name, width):
            alpha = nn.functional.softplus(
                pyro.param(f"alpha_z_q_{name}", lambda: rand((x_size, width), 0.5, 0.1))
            )
            mean = nn.functional.softplus(
                pyro.param(f"mean_z_q_{name}", lambda: rand((x_size, width), 0.0, 0.1))
            )
            pyro.sample(f"z_{name}", dist.Gamma(alpha, alpha / mean).to_event(1))

        def sample_ws(name, width):
            alpha = nn.functional.softplus(pyro.param(f"alpha_w_q_{name}", lambda: rand((width,), 0.5, 0.1)))
            mean = nn.functional.softplus(pyro.param(f"mean_w_q_{name}", lambda: rand((width,), 0.0, 0.1)))
            pyro.sample(f"w_{name}", dist.Gamma(alpha, alpha / mean))

        with pyro.plate("w_top_plate", self.top_width * self.mid_width):
            sample_ws("top", self.top_width * self.mid_width)
        with pyro.plate("w_mid_plate", self.mid_width * self.bottom_width):
            sample_ws("mid", self.mid_width * self.bottom_width)
        with pyro.plate("w_bottom_plate", self.bottom_width * self.image_size):
            sample_ws("bottom", self.bottom_width * self.image_size)
        with pyro.plate("data", x_size):
            sample_zs("top", self.top_width)
            sample_zs("mid", self.mid_width)
            sample_zs("bottom", self.bottom_width)


def sparse_gamma_data(n: int = 10, seed: int = 0) -> dict:
    return {"x": torch.poisson(3.0 * torch.rand(n, 6, generator=_gen(seed)) + 0.5, generator=_gen(seed + 1))}


# --- sparse_regression.py: a kernel interaction model, one MultivariateNormal over all N responses ----------


def _kernel(X, Z, eta1, eta2, c):
    eta1sq, eta2sq = eta1.pow(2.0), eta2.pow(2.0)
    k1 = 0.5 * eta2sq * (1.0 + X @ Z.t()).pow(2.0)
    k2 = -0.5 * eta2sq * (X.pow(2.0) @ Z.pow(2.0).t())
    k3 = (eta1sq - eta2sq) * (X @ Z.t())
    k4 = c**2 - 0.5 * eta2sq
    return k1 + k2 + k3 + k4


def sparse_regression_model(X, Y, hypers, jitter=1.0e-4):
    S, P, N = hypers["expected_sparsity"], X.size(1), X.size(0)
    sigma = pyro.sample("sigma", dist.HalfNormal(hypers["alpha3"]))
    phi = sigma * (S / math.sqrt(N)) / (P - S)
    eta1 = pyro.sample("eta1", dist.HalfCauchy(phi))
    msq = pyro.sample("msq", dist.InverseGamma(hypers["alpha1"], hypers["beta1"]))
    xisq = pyro.sample("xisq", dist.InverseGamma(hypers["alpha2"], hypers["beta2"]))
    eta2 = eta1.pow(2.0) * xisq.sqrt() / msq
    lam = pyro.sample("lambda", dist.HalfCauchy(torch.ones(P)).to_event(1))
    kappa = msq.sqrt() * lam / (msq + (eta1 * lam).pow(2.0)).sqrt()
    kX = kappa * X
    k = _kernel(kX, kX, eta1, eta2, hypers["c"]) + (sigma**2 + jitter) * torch.eye(N)
    pyro.sample("Y", dist.MultivariateNormal(torch.zeros(N), covariance_matrix=k), obs=Y)


def sparse_regression_data(n: int = 20, p: int = 5, seed: int = 0) -> dict:
    gen = _gen(seed)
    X = torch.randn(n, p, generator=gen)
    Y = 1.0 * X[:, 0] - 0.5 * X[:, 1] + 0.4 * X[:, 0] * X[:, 1] + 0.3 * torch.randn(n, generator=gen)
    hypers = {
        "expected_sparsity": 2,
        "alpha1": 3.0,
        "beta1": 1.0,
        "alpha2": 3.0,
        "beta2": 1.0,
        "alpha3": 1.0,
        "c": 1.0,
    }
    return {"X": X, "Y": Y, "hypers": hypers}


# --- inclined_plane.py: a simulator that reads the latent through numpy and loops until the box arrives -----

LITTLE_G, PLANE_SIGMA = 9.8, 0.02


def simulate(mu, length=2.0, phi=math.pi / 6.0, dt=0.005, noise_sigma=None):
    T = torch.zeros(())
    velocity = torch.zeros(())
    displacement = torch.zeros(())
    acceleration = torch.tensor(LITTLE_G * math.sin(phi)) - torch.tensor(LITTLE_G * math.cos(phi)) * mu
    if acceleration.numpy() <= 0.0:
        return torch.tensor(1.0e5)
    while displacement.numpy() < length:
        displacement += velocity * dt
        velocity += acceleration * dt
        T += dt
    return T if noise_sigma is None else T + noise_sigma * torch.randn(())


def inclined_plane_model(observed_data):
    mu = pyro.sample("mu", dist.Uniform(0.0, 1.0))

    def observe_T(T_obs, obs_name):
        pyro.sample(obs_name, dist.Normal(simulate(mu), torch.tensor(PLANE_SIGMA)), obs=T_obs)

    for i, T_obs in enumerate(observed_data):
        observe_T(T_obs, f"obs_{i}")
    return mu


def inclined_plane_data(n: int = 5, seed: int = 2) -> dict:
    torch.manual_seed(seed)
    return {
        "observed_data": torch.stack(
            [simulate(torch.tensor(0.12), noise_sigma=PLANE_SIGMA) for _ in range(n)]
        )
    }


# --- neutra.py: a target density with no data ------------------------------------------------------------


def neutra_model(a, b, rho=0.9):
    """The banana as a two-dimensional site with nothing observed (neutra.py samples it, fits nothing)."""
    pyro.sample("x", dist.MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, rho], [rho, 1.0]])))


# --- contrib/autoname: named objects and scopes ----------------------------------------------------------


def autoname_mixture_model(data, k):
    latent = named.Object("latent")
    latent.probs.param_(torch.ones(k) / k, constraint=constraints.simplex)
    latent.locs.param_(torch.tensor([-1.0, 1.0]) if k == 2 else torch.zeros(k))
    latent.scales.param_(torch.ones(k), constraint=constraints.positive)
    latent.local = named.List()
    for x in data:
        _local_model(latent.local.add(), latent.probs, latent.locs, latent.scales, obs=x)


def _local_model(latent, ps, locs, scales, obs=None):
    i = latent.id.sample_(dist.Categorical(ps))
    return latent.x.sample_(dist.Normal(locs[i], scales[i]), obs=obs)


def autoname_mixture_guide(data, k):
    latent = named.Object("latent")
    latent.local = named.List()
    for _ in data:
        local = latent.local.add()
        local.probs.param_(torch.ones(k) / k, constraint=constraints.positive)
        local.id.sample_(dist.Categorical(local.probs))


def scoping_mixture_model(K, data):
    weights = pyro.param("weights", torch.ones(K) / K, constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([-2.0, 2.0]))
    scale = pyro.param("scale", torch.tensor(0.5), constraint=constraints.positive)
    with pyro.plate("data"):
        return _scoped_local_model(weights, locs, scale, data)


@scope(prefix="local")
def _scoped_local_model(weights, locs, scale, data):
    assignment = pyro.sample("assignment", dist.Categorical(weights).expand_by([len(data)]))
    return pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def scoping_mixture_guide(K, data):
    probs = pyro.param("assignment_probs", torch.ones(len(data), K) / K, constraint=constraints.unit_interval)
    with pyro.plate("data"):
        return _scoped_local_guide(probs)


@scope(prefix="local")
def _scoped_local_guide(probs):
    return pyro.sample("assignment", dist.Categorical(probs))


def mixture_1d_data(n: int = 12, seed: int = 0) -> torch.Tensor:
    gen = _gen(seed)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -2.0, 2.0)
    return sign + 0.5 * torch.randn(n, generator=gen)


def tree_model(data):
    latent = named.Object("latent")
    latent.z.sample_(dist.Normal(0.0, 1.0))
    _tree_recurse(data, latent)


def _tree_recurse(data, latent):
    if torch.is_tensor(data):
        latent.x.sample_(dist.Normal(latent.z, 1.0), obs=data)
    elif isinstance(data, list):
        latent.prior_scale.param_(torch.tensor(1.0), constraint=constraints.positive)
        latent.list = named.List()
        for data_i in data:
            latent_i = latent.list.add()
            latent_i.z.sample_(dist.Normal(latent.z, latent.prior_scale))
            _tree_recurse(data_i, latent_i)
    elif isinstance(data, dict):
        latent.prior_scale.param_(torch.tensor(1.0), constraint=constraints.positive)
        latent.dict = named.Dict()
        for key, value in data.items():
            latent.dict[key].z.sample_(dist.Normal(latent.z, latent.prior_scale))
            _tree_recurse(value, latent.dict[key])
    else:
        raise TypeError(f"Unsupported type {type(data)}")


def tree_guide(data):
    _tree_guide_recurse(data, named.Object("latent"))


def _tree_guide_recurse(data, latent):
    latent.post_loc.param_(torch.tensor(0.0))
    latent.post_scale.param_(torch.tensor(1.0), constraint=constraints.positive)
    latent.z.sample_(dist.Normal(latent.post_loc, latent.post_scale))
    if isinstance(data, list):
        latent.list = named.List()
        for datum in data:
            _tree_guide_recurse(datum, latent.list.add())
    elif isinstance(data, dict):
        latent.dict = named.Dict()
        for key, value in data.items():
            _tree_guide_recurse(value, latent.dict[key])


def tree_data() -> dict:
    return {"data": [torch.tensor(-1.0), [torch.tensor(0.5), torch.tensor(1.0)], {"a": torch.tensor(2.0)}]}


CASES: dict[str, tuple] = {
    "baseball.py:fully_pooled": (fully_pooled, baseball_data, {}),
    "baseball.py:not_pooled": (not_pooled, baseball_data, {}),
    "baseball.py:partially_pooled": (partially_pooled, baseball_data, {}),
    "eight_schools/svi.py": (eight_schools_svi_model, eight_schools_data, {"guide": eight_schools_svi_guide}),
    "eight_schools/mcmc.py": (
        eight_schools_mcmc_model,
        lambda: {"sigma": eight_schools_data()["data"][:, 1]},
        {"observed": {"obs": eight_schools_data()["data"][:, 0]}},
    ),
    "toy_mixture_model_discrete_enumeration.py": (
        toy_mixture_model,
        toy_mixture_data,
        {"guide": toy_mixture_guide},
    ),
    "lkj.py": (lkj_model, lkj_data, {}),
    "minipyro.py": (minipyro_model, minipyro_data, {"guide": minipyro_guide}),
    "svi_torch.py": (SviTorchModel(100), svi_torch_data, {}),
    "capture_recapture/cjs.py:model_1": (cjs_model_1, cjs_data, {}),
    "capture_recapture/cjs.py:model_2": (cjs_model_2, cjs_data, {}),
    "capture_recapture/cjs.py:model_3": (cjs_model_3, cjs_data, {}),
    "capture_recapture/cjs.py:model_4": (cjs_model_4, cjs_data, {}),
    "capture_recapture/cjs.py:model_5": (cjs_model_5, cjs_data, {}),
    "hmm.py:model_0": (hmm_model_0, hmm_data, {}),
    "hmm.py:model_2": (hmm_model_2, hmm_data, {}),
    "hmm.py:model_3": (hmm_model_3, hmm_data, {}),
    "hmm.py:model_4": (hmm_model_4, hmm_data, {}),
    "hmm.py:model_5": (hmm_model_5, hmm_data, {}),
    "hmm.py:model_6": (hmm_model_6, hmm_data, {}),
    "hmm.py:model_7": (hmm_model_7, hmm_data, {}),
    "lda.py": (lda_model, lda_data, {}),
    "lda.py (amortised guide)": (
        lda_model,
        lda_data,
        {"guide": functools.partial(lda_parametrized_guide, lda_predictor(LDA_ARGS))},
    ),
    "sparse_gamma_def.py": (SparseGammaDEF().model, sparse_gamma_data, {}),
    "sparse_regression.py": (sparse_regression_model, sparse_regression_data, {}),
    "inclined_plane.py": (inclined_plane_model, inclined_plane_data, {}),
    "neutra.py": (neutra_model, lambda: {"a": torch.tensor(1.15), "b": torch.tensor(1.0)}, {}),
    "contrib/autoname/mixture.py": (
        autoname_mixture_model,
        lambda: {"data": mixture_1d_data(), "k": 2},
        {"guide": autoname_mixture_guide},
    ),
    "contrib/autoname/scoping_mixture.py": (
        scoping_mixture_model,
        lambda: {"K": 2, "data": mixture_1d_data()},
        {"guide": scoping_mixture_guide},
    ),
    "contrib/autoname/tree_data.py": (tree_model, tree_data, {"guide": tree_guide}),
}
