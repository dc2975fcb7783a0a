"""The programs of Pyro's tutorial notebooks (tutorial/source/*.ipynb), written afresh for ppgen's tests.

Each keeps what makes its notebook's style — signature, site names, plates, where data enter, its guide —
with small synthetic data drawn from a seeded generator instead of the notebook's download. The catalogue
of every notebook, and which of these programs stands for it, is docs/wild/tutorials.md; the checks are
tests/programs/test_pyro_tutorials.py (cheap) and benchmarks/pyro_tutorials.py (every method vs Pyro).
"""

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.testing.fakes import NonreparameterizedBeta
from pyro.infer import config_enumerate
from pyro.nn import PyroModule, PyroSample
from torch.distributions import constraints

from tests.pyro_programs import LinearRegression


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- intro_long / bayesian_regression_ii: the terrain-ruggedness regression -------------------------


def rugged_simple_model(is_cont_africa, ruggedness, log_gdp=None):
    """intro_long's ``simple_model``: every unknown a ``pyro.param`` of the model (initialised lazily)."""
    a = pyro.param("a", lambda: torch.randn(()))
    b_a = pyro.param("bA", lambda: torch.randn(()))
    b_r = pyro.param("bR", lambda: torch.randn(()))
    b_ar = pyro.param("bAR", lambda: torch.randn(()))
    sigma = pyro.param("sigma", lambda: torch.ones(()), constraint=constraints.positive)
    mean = a + b_a * is_cont_africa + b_r * ruggedness + b_ar * is_cont_africa * ruggedness
    with pyro.plate("data", len(ruggedness)):
        return pyro.sample("obs", dist.Normal(mean, sigma), obs=log_gdp)


def rugged_model(is_cont_africa, ruggedness, log_gdp=None):
    """intro_long's ``model`` (and bayesian_regression_ii's): Normal weights, a Uniform(0, 10) noise scale."""
    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b_a = pyro.sample("bA", dist.Normal(0.0, 1.0))
    b_r = pyro.sample("bR", dist.Normal(0.0, 1.0))
    b_ar = pyro.sample("bAR", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
    mean = a + b_a * is_cont_africa + b_r * ruggedness + b_ar * is_cont_africa * ruggedness
    with pyro.plate("data", len(ruggedness)):
        return pyro.sample("obs", dist.Normal(mean, sigma), obs=log_gdp)


def rugged_custom_guide(is_cont_africa, ruggedness, log_gdp=None):
    """intro_long's ``custom_guide``: mean-field Normals, sigma LogNormal (fixed scale); returns a dict."""
    a_loc = pyro.param("a_loc", lambda: torch.tensor(0.0))
    a_scale = pyro.param("a_scale", lambda: torch.tensor(1.0), constraint=constraints.positive)
    sigma_loc = pyro.param("sigma_loc", lambda: torch.tensor(0.0))
    weights_loc = pyro.param("weights_loc", lambda: torch.zeros(3))
    weights_scale = pyro.param("weights_scale", lambda: torch.ones(3), constraint=constraints.positive)
    a = pyro.sample("a", dist.Normal(a_loc, a_scale))
    b_a = pyro.sample("bA", dist.Normal(weights_loc[0], weights_scale[0]))
    b_r = pyro.sample("bR", dist.Normal(weights_loc[1], weights_scale[1]))
    b_ar = pyro.sample("bAR", dist.Normal(weights_loc[2], weights_scale[2]))
    sigma = pyro.sample("sigma", dist.LogNormal(sigma_loc, torch.tensor(0.05)))
    return {"a": a, "b_a": b_a, "b_r": b_r, "b_ar": b_ar, "sigma": sigma}


def rugged_data(n: int = 60, seed: int = 0) -> dict:
    """Synthetic nations: 30 % African, ruggedness in [0, 6), log GDP with the tutorial's signs."""
    g = _generator(seed)
    africa = (torch.rand(n, generator=g) < 0.3).float()
    rugged = 6.0 * torch.rand(n, generator=g)
    log_gdp = 9.2 - 1.9 * africa - 0.2 * rugged + 0.4 * africa * rugged + 0.9 * torch.randn(n, generator=g)
    return {"is_cont_africa": africa, "ruggedness": rugged, "log_gdp": log_gdp}


# --- bayesian_regression: PyroModule[nn.Linear] with PyroSample weights ------------------------------


#: bayesian_regression's module (``forward(x, y=None)``, a Uniform noise scale, observed ``"obs"``) is
#: the regression tutorial's program the earlier tests already carry.
BayesianRegression = LinearRegression


def regression_data(n: int = 60, seed: int = 0) -> dict:
    """The three features of the tutorial (africa, ruggedness, their product) as one matrix ``x``."""
    d = rugged_data(n, seed)
    x = torch.stack([d["is_cont_africa"], d["ruggedness"], d["is_cont_africa"] * d["ruggedness"]], -1)
    return {"x": x, "y": d["log_gdp"]}


# --- mle_map, svi_part_i, svi_part_iii: the coin's fairness -----------------------------------------


def coin_data() -> torch.Tensor:
    """Six heads and four tails, as in the notebooks."""
    data = torch.zeros(10)
    data[0:6] = 1.0
    return data


def coin_original_model(data):
    """mle_map's ``original_model``: Beta(10, 10) prior, a plate of Bernoulli flips."""
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_model_mle(data):
    """mle_map's ``model_mle``: the fairness a constrained ``pyro.param`` of the model (guide: ``pass``)."""
    f = pyro.param("latent_fairness", torch.tensor(0.5), constraint=constraints.unit_interval)
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_guide_map(data):
    """mle_map's ``guide_map``: a Delta guide on the fairness."""
    f_map = pyro.param("f_map", torch.tensor(0.5), constraint=constraints.unit_interval)
    pyro.sample("latent_fairness", dist.Delta(f_map))


def coin_masked_model(data):
    """mle_map's ``masked_model``: the prior masked out (``.mask(False)``), so AutoDelta gives the MLE."""
    f = pyro.sample("latent_fairness", dist.Beta(10.0, 10.0).mask(False))
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_uniform_model(data):
    """mle_map's ``original_model_uniform_prior``: MAP under Uniform(0, 1) is the MLE."""
    f = pyro.sample("latent_fairness", dist.Uniform(low=0.0, high=1.0))
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def coin_loop_model(data):
    """svi_part_i's ``model``: ``data`` a Python list of scalars, one observed site ``obs_i`` per flip."""
    alpha0 = torch.tensor(10.0)
    beta0 = torch.tensor(10.0)
    f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
    for i in range(len(data)):
        pyro.sample(f"obs_{i}", dist.Bernoulli(f), obs=data[i])


def coin_beta_guide(data):
    """svi_part_i's ``guide``: Beta(alpha_q, beta_q) with both parameters positive, started at 15."""
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))


class BernoulliBetaExample:
    """svi_part_iii's class: the data live on ``self``, the model's one argument is a flag, the plate
    has no size (read from the observation), and the guide is a non-reparameterised Beta with a
    decaying-average baseline (``TraceGraph_ELBO``'s variance reduction)."""

    def __init__(self):
        self.alpha0, self.beta0 = 10.0, 10.0
        self.data = coin_data()

    def model(self, use_decaying_avg_baseline):
        f = pyro.sample("latent_fairness", dist.Beta(self.alpha0, self.beta0))
        with pyro.plate("data_plate"):
            pyro.sample("obs", dist.Bernoulli(f), obs=self.data)

    def guide(self, use_decaying_avg_baseline):
        alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
        beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
        baseline = {"use_decaying_avg_baseline": use_decaying_avg_baseline, "baseline_beta": 0.90}
        pyro.sample("latent_fairness", NonreparameterizedBeta(alpha_q, beta_q), infer={"baseline": baseline})


# --- intro_part_ii and effect_handlers: the scale, conditioned from outside --------------------------


def scale(guess):
    """intro_part_ii's ``scale``: a weight around a guess, a noisy measurement of it (observed nowhere)."""
    weight = pyro.sample("weight", dist.Normal(guess, 1.0))
    return pyro.sample("measurement", dist.Normal(weight, 0.75))


conditioned_scale = pyro.condition(scale, data={"measurement": torch.tensor(9.5)})


def scale_obs(guess):
    """intro_part_ii's ``scale_obs``: the measurement 9.5 written into the program with ``obs=``."""
    weight = pyro.sample("weight", dist.Normal(guess, 1.0))
    return pyro.sample("measurement", dist.Normal(weight, 0.75), obs=torch.tensor(9.5))


def scale_parametrized_guide_constrained(guess):
    """intro_part_ii's guide: ``pyro.param`` started at the (float) guess, a positive scale."""
    a = pyro.param("a", torch.tensor(guess))
    b = pyro.param("b", torch.tensor(1.0), constraint=constraints.positive)
    return pyro.sample("weight", dist.Normal(a, b))


# --- csis: observations in a dict argument, ints as defaults -----------------------------------------


def csis_model(prior_mean, observations={"x1": 0, "x2": 0}):  # noqa: B006 - the notebook's signature
    """csis's ``model``: two observed sites in no plate, read from a dict argument."""
    x = pyro.sample("z", dist.Normal(prior_mean, torch.tensor(5**0.5)))
    pyro.sample("x1", dist.Normal(x, torch.tensor(2**0.5)), obs=observations["x1"])
    pyro.sample("x2", dist.Normal(x, torch.tensor(2**0.5)), obs=observations["x2"])
    return x


# --- boosting_bbvi: a bimodal posterior (the data see z squared) ------------------------------------


def boosting_model(data):
    """boosting_bbvi's ``model``: shape-(1,) prior, the data Normal(z * z, 0.1); posterior modes at +-2."""
    prior_loc = torch.tensor([0.0])
    prior_scale = torch.tensor([5.0])
    z = pyro.sample("z", dist.Normal(prior_loc, prior_scale))
    scale = torch.tensor([0.1])
    with pyro.plate("data", len(data)):
        pyro.sample("x", dist.Normal(z * z, scale), obs=data)


def boosting_data(n: int = 20, seed: int = 0) -> torch.Tensor:
    """Shape (n, 1), as the notebook's ``Normal(tensor([4.]), tensor([0.1])).sample((100,))``."""
    return 4.0 + 0.1 * torch.randn(n, 1, generator=_generator(seed))


# --- enumeration: a mixture with a blocked autoguide, an HMM by a loop and by pyro.markov ------------


@config_enumerate
def enum_mixture(data, num_components=3):
    """enumeration's mixture: ``config_enumerate`` on the whole model, ``loc[x]`` indexing."""
    p = pyro.sample("p", dist.Dirichlet(0.5 * torch.ones(num_components)))
    scale = pyro.sample("scale", dist.LogNormal(0, num_components))
    with pyro.plate("components", num_components):
        loc = pyro.sample("loc", dist.Normal(0, 10))
    with pyro.plate("data", len(data)):
        x = pyro.sample("x", dist.Categorical(p))
        pyro.sample("obs", dist.Normal(loc[x], scale), obs=data)


def enum_mixture_data(n: int = 30, seed: int = 0) -> torch.Tensor:
    g = _generator(seed)
    centres = torch.tensor([-4.0, 0.0, 5.0])
    return centres[torch.randint(0, 3, (n,), generator=g)] + 0.7 * torch.randn(n, generator=g)


def enum_hmm_model(data, data_dim, hidden_dim=10):
    """enumeration's ``hmm_model`` with ``pyro.markov``: Dirichlet rows in a ``hidden_state`` plate,
    the observed sequence iterated as a tensor, ``data_dim`` a keyword int."""
    with pyro.plate("hidden_state", hidden_dim):
        transition = pyro.sample("transition", dist.Dirichlet(0.5 * torch.ones(hidden_dim)))
        emission = pyro.sample("emission", dist.Dirichlet(0.5 * torch.ones(data_dim)))
    x = 0
    for t, y in pyro.markov(enumerate(data)):
        x = pyro.sample(f"x_{t}", dist.Categorical(transition[x]), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Categorical(emission[x]), obs=y)


# --- gmm: the two-component mixture on five points ---------------------------------------------------

GMM_K = 2


@config_enumerate
def gmm_model(data):
    """gmm's ``model``: weights, one shared scale, component locs; assignments summed out."""
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(GMM_K)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", GMM_K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


GMM_DATA = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])


# --- predictive_deterministic: counts with a deterministic rate --------------------------------------


def counts_model(features, counts):
    """predictive_deterministic's ``model``: ``features @`` a coef vector (to_event), a deterministic
    softplus rate, GammaPoisson counts in a ``bins`` plate; ``counts=None`` predicts."""
    n, p = features.shape
    scale = pyro.sample("scale", dist.LogNormal(0, 1))
    coef = pyro.sample("coef", dist.Normal(0, scale).expand([p]).to_event(1))
    rate = pyro.deterministic("rate", torch.nn.functional.softplus(coef @ features.T))
    concentration = pyro.sample("concentration", dist.LogNormal(0, 1))
    with pyro.plate("bins", n):
        return pyro.sample("counts", dist.GammaPoisson(concentration, rate), obs=counts)


def counts_guide(features, counts):
    """predictive_deterministic's hand-written guide: Delta sites, the coef's scale a latent of the guide."""
    n, p = features.shape
    scale_param = pyro.param("scale_param", torch.tensor(0.1), constraint=constraints.positive)
    loc_param = pyro.param("loc_param", torch.tensor(0.0))
    scale = pyro.sample("scale", dist.Delta(scale_param))
    pyro.sample("coef", dist.Normal(loc_param, scale).expand([p]).to_event(1))
    concentration_param = pyro.param(
        "concentration_param", torch.tensor(0.1), constraint=constraints.positive
    )
    pyro.sample("concentration", dist.Delta(concentration_param))


def counts_data(n: int = 40, seed: int = 0) -> dict:
    g = _generator(seed)
    features = torch.randn(n, 1, generator=g)
    rate = torch.nn.functional.softplus(2.0 * features[:, 0])
    counts = dist.GammaPoisson(2.0, 2.0 / (rate + 1e-3)).sample()  # mean ~ rate, overdispersed
    return {"features": features, "counts": counts.round()}


# --- jit: a Normal location/scale model and an HMM over one sequence ---------------------------------


def jit_model(data):
    """jit's first ``model``: loc and log-normal scale, a plate of Normal data."""
    loc = pyro.sample("loc", dist.Normal(0.0, 10.0))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 3.0))
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Normal(loc, scale), obs=data)


def jit_hmm(sequence, num_sequences, length, state_dim=16):
    """jit's Gaussian HMM: a ``states`` plate of globals, ``poutine.scale`` by the number of sequences,
    ``pyro.markov`` over time with enumerated states; ``num_sequences`` and ``length`` plain ints."""
    with pyro.plate("states", state_dim):
        trans = pyro.sample("trans", dist.Dirichlet(0.5 * torch.ones(state_dim)))
        emit_loc = pyro.sample("emit_loc", dist.Normal(0.0, 10.0))
    emit_scale = pyro.sample("emit_scale", dist.LogNormal(0.0, 3.0))
    with poutine.scale(scale=num_sequences):
        x = 0
        for t in pyro.markov(range(length)):
            x = pyro.sample(f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"})
            pyro.sample(f"y_{t}", dist.Normal(emit_loc[x], emit_scale), obs=sequence[t])


# --- modules: PyroSample attributes on a PyroModule --------------------------------------------------


class NormalModel(PyroModule):
    """modules' ``NormalModel``: ``loc`` a PyroSample attribute (a latent drawn on first access)."""

    def __init__(self):
        super().__init__()
        self.loc = PyroSample(dist.Normal(0.0, 1.0))


class GlobalModel(NormalModel):
    """modules' ``GlobalModel``: ``forward(data)`` observes ``"obs"`` around the sampled loc."""

    def forward(self, data):
        loc = self.loc
        with pyro.plate("data", len(data)):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=data)


class BayesianLinear(PyroModule):
    """modules' ``BayesianLinear``: LogNormal bias and Normal weight matrix as PyroSample attributes."""

    def __init__(self, in_size: int, out_size: int):
        super().__init__()
        self.bias = PyroSample(prior=dist.LogNormal(0, 1).expand([out_size]).to_event(1))
        self.weight = PyroSample(prior=dist.Normal(0, 1).expand([in_size, out_size]).to_event(2))

    def forward(self, input):
        return self.bias + input @ self.weight


class LinearRegressionModule(PyroModule):
    """A regression around modules' ``BayesianLinear`` (the notebook builds the layer, this observes it)."""

    def __init__(self, in_size: int):
        super().__init__()
        self.layer = BayesianLinear(in_size, 1)

    def forward(self, input, output=None):
        mean = self.layer(input).squeeze(-1)
        with pyro.plate("instances", input.shape[0]):
            return pyro.sample("output", dist.Normal(mean, 0.5), obs=output)


# --- easyguide: Pyro's minibatch idiom with a time loop inside the plate -----------------------------


def easyguide_model(batch, subsample, full_size):
    """easyguide's ``model``: ``batch`` (time x subsample) iterated as a list, ``subsample=`` indices."""
    batch = list(batch)
    num_time_steps = len(batch)
    drift = pyro.sample("drift", dist.LogNormal(-1, 0.5))
    with pyro.plate("data", full_size, subsample=subsample):
        z = 0.0
        for t in range(num_time_steps):
            z = pyro.sample(f"state_{t}", dist.Normal(z, drift))
            batch[t] = pyro.sample(f"obs_{t}", dist.Bernoulli(logits=z), obs=batch[t])
    return torch.stack(batch)


# --- prior_predictive: a Student-t random walk with a deterministic trend ----------------------------


def trend_model(T: int = 1000, data=None):
    """prior_predictive's ``model``: process noise in a ``dt`` plate, ``trend`` its cumulative sum
    (``pyro.deterministic``), observations in a second plate ``t`` of the same size."""
    df = pyro.sample("df", dist.LogNormal(0, 1))
    p_scale = pyro.sample("p_scale", dist.LogNormal(0, 1))
    m_scale = pyro.sample("m_scale", dist.LogNormal(0, 1))
    with pyro.plate("dt", T):
        process_noise = pyro.sample("process_noise", dist.StudentT(df, 0, p_scale))
    trend = pyro.deterministic("trend", process_noise.cumsum(-1))
    with pyro.plate("t", T):
        return pyro.sample("obs", dist.Normal(trend, m_scale), obs=data)


def trend_data(T: int = 30, seed: int = 0) -> dict:
    g = _generator(seed)
    trend = (0.3 * torch.randn(T, generator=g)).cumsum(-1)
    return {"T": T, "data": trend + 0.5 * torch.randn(T, generator=g)}


# --- stable: Levy-stable returns (no density: Pyro fits it with EnergyDistance) ----------------------


def stable_model(r):
    """stable's first ``model`` with the returns as its argument: stability, scale and loc as params."""
    stability = pyro.param("stability", torch.tensor(1.9), constraint=constraints.interval(0, 2))
    skew = 0.0
    scale = pyro.param("scale", torch.tensor(0.1), constraint=constraints.positive)
    loc = pyro.param("loc", torch.tensor(0.0))
    with pyro.plate("data", len(r)):
        return pyro.sample("r", dist.Stable(stability, skew, scale, loc), obs=r)


# --- svi_flow_guide: a plate of 5 observations nested in a plate of data sets (auto dims) ------------


def flow_likelihood(z):
    mu = z[..., :2]
    rho = z[..., 2].tanh() * 0.99
    cov = 1e-2 * torch.stack([torch.ones_like(rho), rho, rho, torch.ones_like(rho)], dim=-1).unflatten(
        -1, (2, 2)
    )
    return dist.MultivariateNormal(mu, cov)


def flow_model(x):
    """svi_flow_guide's ``model``: ``x`` of shape (5, sets, 2); ``data`` (sets) outside ``obs`` (5)."""
    with pyro.plate("data", x.shape[1]):
        z = pyro.sample("z", dist.Normal(torch.zeros(3), torch.ones(3)).to_event(1))
        with pyro.plate("obs", 5):
            pyro.sample("x", flow_likelihood(z), obs=x)


def flow_data(sets: int = 8, seed: int = 0) -> torch.Tensor:
    g = _generator(seed)
    z = torch.randn(sets, 3, generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return flow_likelihood(z).sample((5,))


# --- prodlda's opening: a die's probabilities from counts, and from rolls ----------------------------

DICE_ROLLS = torch.tensor(
    [5, 4, 2, 5, 6, 5, 3, 3, 1, 5, 5, 3, 5, 3, 5, 3, 5, 5, 3, 5, 5, 3, 1, 5, 3, 3, 6, 5, 5, 6]
)


def dice_counts_model(counts):
    """prodlda's first ``model``: one Multinomial site (total count read as an int from the data)."""
    theta = pyro.sample("theta", dist.Dirichlet(torch.ones(6)))
    total_count = int(counts.sum())
    pyro.sample("counts", dist.Multinomial(total_count, theta), obs=counts)


def dice_rolls_model(data):
    """prodlda's second ``model``: the rolls (faces 0-5) in a plate, Categorical."""
    theta = pyro.sample("theta", dist.Dirichlet(torch.ones(6)))
    with pyro.plate("data", len(data)):
        pyro.sample("obs", dist.Categorical(theta), obs=data)


# --- ekf: a track observed through contrib.tracking's EKFDistribution (it has no sampler) ------------


def ekf_setup(num_frames: int = 10, seed: int = 0) -> tuple:
    """The notebook's constant-velocity track, its first state and measurements 1e-3 apart from it."""
    from pyro.contrib.tracking.dynamic_models import NcvContinuous

    ncv = NcvContinuous(4, 2.0)
    xs = torch.zeros(num_frames, 4)
    xs[0] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        for t in range(1, num_frames):
            xs[t] = ncv(xs[t - 1], dt=1e-2)
    zs = xs[:, :2] + 1e-3 * torch.randn(num_frames, 2, generator=_generator(seed))
    return ncv, xs[0], zs


def make_ekf_model(ncv, x0: torch.Tensor, num_frames: int):
    """ekf's ``model(data)``: HalfCauchy covariance scales, the whole track one EKFDistribution site."""
    from pyro.contrib.tracking.distributions import EKFDistribution

    def model(data):
        R = pyro.sample("pv_cov", dist.HalfCauchy(2e-6)) * torch.eye(4)
        Q = pyro.sample("measurement_cov", dist.HalfCauchy(1e-6)) * torch.eye(2)
        pyro.sample("track", EKFDistribution(x0, R, ncv, Q, time_steps=num_frames), obs=data)

    return model
