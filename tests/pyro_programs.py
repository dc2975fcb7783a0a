"""Pyro programs in the styles Pyro's own examples and tutorials use, written for these tests.

Each keeps what makes its style (signature, site names, where data enter), so a test passes it to
``ppgen.fit`` exactly as a Pyro user would pass it to ``pyro.infer.MCMC`` or ``SVI``:

- ``logit_pooling(at_bats, hits)`` — baseball example: positional data, observed site ``"obs"``;
- ``hidden_switch(prior, obs, num_obs)`` / ``hidden_switch_guide`` — discrete-enumeration example:
  two observed sites, an enumerated latent, dicts and an int as arguments, ``pyro.param`` guide;
- ``schools(sigma)`` — eight-schools example: purely generative, conditioned from outside;
- ``LinearRegression`` — regression tutorial: a ``PyroModule[nn.Linear]`` with ``PyroSample``
  weights and ``forward(x, y=None)`` observing ``"obs"`` (``x`` is a feature matrix);
- ``BinaryVAE`` — VAE tutorial: an ``nn.Module`` whose ``model``/``guide`` hold ``pyro.module``;
- ``normal_mean`` / ``normal_mean_guide`` — a hand-written guide with constrained ``pyro.param``;
- ``plane_generator(x=None, n=None)`` — a GAN generator written as a program (``Delta`` site).
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroSample
from pyro.ops.indexing import Vindex
from torch import nn
from torch.distributions import constraints


def logit_pooling(at_bats, hits):
    """Each player's log-odds of a hit are drawn around a shared mean."""
    players = at_bats.shape[0]
    loc = pyro.sample("loc", dist.Normal(at_bats.new_tensor(-1.0), at_bats.new_tensor(1.0)))
    scale = pyro.sample("scale", dist.HalfCauchy(scale=at_bats.new_tensor(1.0)))
    with pyro.plate("players", players):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


@pyro.infer.config_enumerate
def hidden_switch(prior, obs, num_obs):
    """A -> hidden B -> C, with A and C observed and B summed out."""
    p_a = pyro.sample("p_A", dist.Beta(1.0, 1.0))
    p_b = pyro.sample("p_B", dist.Beta(torch.ones(2), torch.ones(2)).to_event(1))
    p_c = pyro.sample("p_C", dist.Beta(torch.ones(2), torch.ones(2)).to_event(1))
    with pyro.plate("data_plate", num_obs):
        a = pyro.sample("A", dist.Bernoulli(p_a.expand(num_obs)), obs=obs["A"])
        b = pyro.sample("B", dist.Bernoulli(Vindex(p_b)[a.long()]), infer={"enumerate": "parallel"})
        pyro.sample("C", dist.Bernoulli(Vindex(p_c)[b.long()]), obs=obs["C"])


def hidden_switch_guide(prior, obs, num_obs):
    """Beta posteriors for the three probabilities, started at the prior pseudo-counts."""
    a = pyro.param("a", prior["A"], constraint=constraints.positive)
    pyro.sample("p_A", dist.Beta(a[0], a[1]))
    b = pyro.param("b", prior["B"], constraint=constraints.positive)
    pyro.sample("p_B", dist.Beta(b[:, 0], b[:, 1]).to_event(1))
    c = pyro.param("c", prior["C"], constraint=constraints.positive)
    pyro.sample("p_C", dist.Beta(c[:, 0], c[:, 1]).to_event(1))


def hidden_switch_data(num_obs: int, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    a = torch.bernoulli(torch.full((num_obs,), 0.3), generator=generator)
    b = torch.bernoulli(torch.where(a > 0, 0.8, 0.1), generator=generator)
    c = torch.bernoulli(torch.where(b > 0, 0.9, 0.2), generator=generator)
    prior = {"A": torch.tensor([1.0, 10.0]), "B": torch.tensor([[10.0, 1.0], [1.0, 10.0]])}
    prior["C"] = prior["B"].clone()
    return {"prior": prior, "obs": {"A": a, "C": c}, "num_obs": num_obs}


SCHOOL_EFFECTS = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOL_SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def schools(sigma):
    """Non-centred eight schools: the program generates ``obs``; data condition it from outside."""
    eta = pyro.sample("eta", dist.Normal(torch.zeros(8), 1.0).to_event(1))
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", 8):
        pyro.sample("obs", dist.Normal(mu + tau * eta, sigma))


class LinearRegression(PyroModule):
    """y = x·w + b + noise, Bayesian in w, b and the noise scale."""

    def __init__(self, in_features: int = 3, out_features: int = 1):
        super().__init__()
        self.linear = PyroModule[nn.Linear](in_features, out_features)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([out_features, in_features]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([out_features]).to_event(1))

    def forward(self, x, y=None):
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, sigma), obs=y)
        return mean


class _Decoder(nn.Module):
    def __init__(self, z_dim: int, hidden: int, x_dim: int):
        super().__init__()
        self.hidden, self.out = nn.Linear(z_dim, hidden), nn.Linear(hidden, x_dim)

    def forward(self, z):
        return torch.sigmoid(self.out(torch.relu(self.hidden(z))))


class _Encoder(nn.Module):
    def __init__(self, z_dim: int, hidden: int, x_dim: int):
        super().__init__()
        self.hidden = nn.Linear(x_dim, hidden)
        self.loc, self.log_scale = nn.Linear(hidden, z_dim), nn.Linear(hidden, z_dim)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return self.loc(h), self.log_scale(h).exp()


class BinaryVAE(nn.Module):
    """The VAE tutorial's layout: networks are nn.Modules registered with pyro.module."""

    def __init__(self, z_dim: int = 2, hidden: int = 16, x_dim: int = 64):
        super().__init__()
        self.encoder, self.decoder = _Encoder(z_dim, hidden, x_dim), _Decoder(z_dim, hidden, x_dim)
        self.z_dim = z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], self.z_dim), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(self.decoder(z), validate_args=False).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))


def normal_mean(x, scale=1.0):
    """x_i ~ N(mu, scale²) with mu ~ N(0, 10²): conjugate, so the exact posterior is known."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(mu, scale), obs=x)


def normal_mean_guide(x, scale=1.0):
    loc = pyro.param("q_loc", torch.tensor(0.0))
    sd = pyro.param("q_scale", torch.tensor(1.0), constraint=constraints.positive)
    pyro.sample("mu", dist.Normal(loc, sd))


def gaussian_story(x=None):
    """A ppgen-style story without an ``n`` argument: its size comes from its data."""
    loc = pyro.param("loc", torch.tensor(0.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0] if x is not None else 1):
        return pyro.sample("x", dist.Normal(loc, scale), obs=x)


PLANE_NET = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


def plane_generator(x=None, n=None):
    """A generator x = g(z), z ~ N(0, I), written as a program: the observed site is a Delta."""
    pyro.module("generator", PLANE_NET)
    with pyro.plate("data", x.shape[0] if x is not None else n):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        return pyro.sample("x", dist.Delta(PLANE_NET(z), event_dim=1), obs=x)
