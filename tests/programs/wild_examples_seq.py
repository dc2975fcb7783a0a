"""Sequential programs of Pyro's ``examples/`` directory (and, in wild_examples_ssvae.py, its
semi-supervised VAE), written afresh in each
example's own style (signature, site names, plates, markov/enumeration, where the data enter) with tiny
synthetic data drawn with a seeded ``torch.Generator`` (no downloads, no MNIST):

- ``DMM.model`` / ``DMM.guide``: pyro-ppl/pyro examples/dmm.py (deep Markov model: ``pyro.markov`` over
  time inside a sequence plate, gated transition, RNN guide over the reversed packed sequences,
  ``poutine.scale`` KL annealing, per-sequence ``.mask``);
- ``model_generic`` / ``guide_generic``: pyro-ppl/pyro examples/mixed_hmm/model.py (group/individual
  random effects over a markov chain of ``y_t``, zero-inflated Gamma / VonMises / Beta emissions through
  ``MaskedMixture``; one ``config`` dict argument holds sizes, masks and observations);
- ``discrete_model`` / ``continuous_model``: pyro-ppl/pyro examples/sir_hmc.py (discrete SIR with
  Binomial counts; its relaxed version with ``.mask(False)`` auxiliaries quantized by enumerated
  ``Q_`` sites inside ``poutine.markov``);
- ``SSVAE`` (wild_examples_ssvae.py): pyro-ppl/pyro examples/vae/ss_vae_M2.py.

Data builders: ``dmm_data()``, ``mixed_hmm_data()``, ``sir_data()``.
``CASES`` maps a name to ``(program, data builder, options)`` as in tests/programs/wild_examples.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.ops.indexing import Vindex
from torch import nn
from torch.distributions import constraints


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- dmm.py: deep Markov model ---------------------------------------------------------------------------


def _mlp(a, hidden, b):
    return nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, b))


class Emitter(nn.Module):
    """p(x_t | z_t): Bernoulli probabilities of the notes."""

    def __init__(self, input_dim, z_dim, emission_dim):
        super().__init__()
        self.net = _mlp(z_dim, emission_dim, input_dim)

    def forward(self, z_t):
        return torch.sigmoid(self.net(z_t))


class GatedTransition(nn.Module):
    """p(z_t | z_{t-1}): a gate mixes a linear map (identity at start) with a proposed mean."""

    def __init__(self, z_dim, transition_dim):
        super().__init__()
        self.gate = _mlp(z_dim, transition_dim, z_dim)
        self.proposal = _mlp(z_dim, transition_dim, z_dim)
        self.lin_sig = nn.Linear(z_dim, z_dim)
        self.lin_z_to_loc = nn.Linear(z_dim, z_dim)
        with torch.no_grad():
            self.lin_z_to_loc.weight.copy_(torch.eye(z_dim))
            self.lin_z_to_loc.bias.zero_()

    def forward(self, z_t_1):
        gate = torch.sigmoid(self.gate(z_t_1))
        proposed_mean = self.proposal(z_t_1)
        loc = (1 - gate) * self.lin_z_to_loc(z_t_1) + gate * proposed_mean
        scale = nn.functional.softplus(self.lin_sig(torch.relu(proposed_mean)))
        return loc, scale


class Combiner(nn.Module):
    """q(z_t | z_{t-1}, x_{t:T}) from the previous latent and the RNN state."""

    def __init__(self, z_dim, rnn_dim):
        super().__init__()
        self.lin_z_to_hidden = nn.Linear(z_dim, rnn_dim)
        self.lin_hidden_to_loc = nn.Linear(rnn_dim, z_dim)
        self.lin_hidden_to_scale = nn.Linear(rnn_dim, z_dim)

    def forward(self, z_t_1, h_rnn):
        h = 0.5 * (torch.tanh(self.lin_z_to_hidden(z_t_1)) + h_rnn)
        return self.lin_hidden_to_loc(h), nn.functional.softplus(self.lin_hidden_to_scale(h))


def reverse_sequences(mini_batch, seq_lengths):
    """Each sequence reversed in time over its own length (padding stays at the end)."""
    out = torch.zeros_like(mini_batch)
    for b, length in enumerate(seq_lengths.tolist()):
        out[b, :length] = mini_batch[b, :length].flip(0)
    return out


def pad_and_reverse(rnn_output, seq_lengths):
    padded, _ = nn.utils.rnn.pad_packed_sequence(rnn_output, batch_first=True)
    return reverse_sequences(padded, seq_lengths)


class DMM(nn.Module):
    def __init__(self, input_dim=4, z_dim=2, emission_dim=4, transition_dim=4, rnn_dim=4):
        super().__init__()
        self.emitter = Emitter(input_dim, z_dim, emission_dim)
        self.trans = GatedTransition(z_dim, transition_dim)
        self.combiner = Combiner(z_dim, rnn_dim)
        self.rnn = nn.RNN(input_size=input_dim, hidden_size=rnn_dim, nonlinearity="relu", batch_first=True)
        self.z_0 = nn.Parameter(torch.zeros(z_dim))
        self.z_q_0 = nn.Parameter(torch.zeros(z_dim))
        self.h_0 = nn.Parameter(torch.zeros(1, 1, rnn_dim))

    def model(
        self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths, annealing_factor=1.0
    ):
        T_max = mini_batch.size(1)
        pyro.module("dmm", self)
        z_prev = self.z_0.expand(mini_batch.size(0), self.z_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, T_max + 1)):
                z_loc, z_scale = self.trans(z_prev)
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(
                        f"z_{t}",
                        dist.Normal(z_loc, z_scale).mask(mini_batch_mask[:, t - 1 : t]).to_event(1),
                    )
                emission_probs_t = self.emitter(z_t)
                pyro.sample(
                    f"obs_x_{t}",
                    dist.Bernoulli(emission_probs_t).mask(mini_batch_mask[:, t - 1 : t]).to_event(1),
                    obs=mini_batch[:, t - 1, :],
                )
                z_prev = z_t

    def guide(
        self, mini_batch, mini_batch_reversed, mini_batch_mask, mini_batch_seq_lengths, annealing_factor=1.0
    ):
        T_max = mini_batch.size(1)
        pyro.module("dmm", self)
        h_0 = self.h_0.expand(1, mini_batch.size(0), self.rnn.hidden_size).contiguous()
        rnn_output, _ = self.rnn(mini_batch_reversed, h_0)
        rnn_output = pad_and_reverse(rnn_output, mini_batch_seq_lengths)
        z_prev = self.z_q_0.expand(mini_batch.size(0), self.z_q_0.size(0))
        with pyro.plate("z_minibatch", len(mini_batch)):
            for t in pyro.markov(range(1, T_max + 1)):
                z_loc, z_scale = self.combiner(z_prev, rnn_output[:, t - 1, :])
                with poutine.scale(scale=annealing_factor):
                    z_t = pyro.sample(
                        f"z_{t}",
                        dist.Normal(z_loc, z_scale).mask(mini_batch_mask[:, t - 1 : t]).to_event(1),
                    )
                z_prev = z_t


def dmm_data(sequences: int = 6, length: int = 8, notes: int = 4, seed: int = 0) -> dict:
    """Binary chords, sorted by decreasing length as polyphonic_data_loader.get_mini_batch returns them."""
    lengths = torch.tensor([length, length, length - 1, length - 2, length - 3, length - 4][:sequences])
    mini_batch = torch.bernoulli(torch.full((sequences, length, notes), 0.3), generator=_gen(seed))
    mask = (torch.arange(length) < lengths[:, None]).float()
    mini_batch = mini_batch * mask[..., None]
    reversed_ = reverse_sequences(mini_batch, lengths)
    packed = nn.utils.rnn.pack_padded_sequence(reversed_, lengths, batch_first=True)
    return {
        "mini_batch": mini_batch,
        "mini_batch_reversed": packed,
        "mini_batch_mask": mask,
        "mini_batch_seq_lengths": lengths,
        "annealing_factor": 0.2,
    }


def dmm_program(seed: int = 0) -> DMM:
    torch.manual_seed(seed)
    return DMM()


# --- mixed_hmm/model.py: random effects over a markov chain --------------------------------------------

MISSING = 1e-6


def guide_generic(config):
    """Mean-field guide for the continuous random effects."""
    N_state = config["sizes"]["state"]
    N_c = config["sizes"]["group"]
    if config["group"]["random"] == "continuous":
        loc_g = pyro.param("loc_group", lambda: torch.zeros(N_state**2))
        scale_g = pyro.param("scale_group", lambda: torch.ones(N_state**2), constraint=constraints.positive)
    if config["individual"]["random"] == "continuous":
        loc_i = pyro.param("loc_individual", lambda: torch.zeros(N_c, N_state**2))
        scale_i = pyro.param(
            "scale_individual", lambda: torch.ones(N_c, N_state**2), constraint=constraints.positive
        )
    with pyro.plate("group", N_c, dim=-1):
        if config["group"]["random"] == "continuous":
            pyro.sample("eps_g", dist.Normal(loc_g, scale_g).to_event(1))
        with (
            pyro.plate("individual", config["sizes"]["individual"], dim=-2),
            poutine.mask(mask=config["individual"]["mask"]),
        ):
            if config["individual"]["random"] == "continuous":
                pyro.sample("eps_i", dist.Normal(loc_i, scale_i).to_event(1))


def _zero_inflated(name, t, dist_y, zi_logits, values, MISSING):
    """The example's zero-inflation: a Categorical flag observed, then MaskedMixture(flag, dist, Delta)."""
    flag = values == MISSING
    pyro.sample(f"{name}_zi_{t}", dist.Categorical(logits=zi_logits), obs=flag.long())
    pyro.sample(
        f"{name}_{t}", dist.MaskedMixture(flag, dist_y, dist.Delta(v=torch.tensor(MISSING))), obs=values
    )


@config_enumerate
def model_generic(config):
    """Hierarchical mixed-effects hidden markov model."""
    MISSING = config["MISSING"]
    N_v, N_state, N_c = config["sizes"]["random"], config["sizes"]["state"], config["sizes"]["group"]
    if config["group"]["random"] == "discrete":
        probs_e_g = pyro.param(
            "probs_e_group", lambda: torch.randn(N_v).abs(), constraint=constraints.simplex
        )
        theta_g = pyro.param("theta_group", lambda: torch.randn(N_v, N_state**2))
    elif config["group"]["random"] == "continuous":
        loc_g, scale_g = torch.zeros(N_state**2), torch.ones(N_state**2)
    if config["individual"]["random"] == "discrete":
        probs_e_i = pyro.param(
            "probs_e_individual", lambda: torch.randn(N_c, N_v).abs(), constraint=constraints.simplex
        )
        theta_i = pyro.param("theta_individual", lambda: torch.randn(N_c, N_v, N_state**2))
    elif config["individual"]["random"] == "continuous":
        loc_i, scale_i = torch.zeros(N_c, N_state**2), torch.ones(N_c, N_state**2)

    def positive(name):
        return pyro.param(name, lambda: torch.randn(N_state).abs(), constraint=constraints.positive)

    step_zi_param = pyro.param("step_zi_param", lambda: torch.ones(N_state, 2))
    step_concentration, step_rate = positive("step_param_concentration"), positive("step_param_rate")
    angle_concentration = positive("angle_param_concentration")
    angle_loc = pyro.param("angle_param_loc", lambda: torch.randn(N_state).abs())
    omega_zi_param = pyro.param("omega_zi_param", lambda: torch.ones(N_state, 2))
    omega_c0, omega_c1 = positive("omega_param_concentration0"), positive("omega_param_concentration1")

    gamma = torch.zeros(N_state**2)
    with pyro.plate("group", N_c, dim=-1):
        if config["group"]["random"] == "discrete":
            e_g = pyro.sample("e_g", dist.Categorical(probs_e_g))
            eps_g = Vindex(theta_g)[..., e_g, :]
        elif config["group"]["random"] == "continuous":
            eps_g = pyro.sample("eps_g", dist.Normal(loc_g, scale_g).to_event(1))
        else:
            eps_g = 0.0
        gamma = gamma + eps_g

        with (
            pyro.plate("individual", config["sizes"]["individual"], dim=-2),
            poutine.mask(mask=config["individual"]["mask"]),
        ):
            if config["individual"]["random"] == "discrete":
                e_i = pyro.sample("e_i", dist.Categorical(probs_e_i))
                eps_i = Vindex(theta_i)[..., e_i, :]
            elif config["individual"]["random"] == "continuous":
                eps_i = pyro.sample("eps_i", dist.Normal(loc_i, scale_i).to_event(1))
            else:
                eps_i = 0.0
            gamma = gamma + eps_i

            y = torch.tensor(0).long()
            obs = config["observations"]
            for t in pyro.markov(range(config["sizes"]["timesteps"])):
                with poutine.mask(mask=config["timestep"]["mask"][..., t]):
                    gamma_t = gamma.reshape(tuple(gamma.shape[:-1]) + (N_state, N_state))
                    y = pyro.sample(f"y_{t}", dist.Categorical(logits=Vindex(gamma_t)[..., y, :]))
                    step_dist = dist.Gamma(Vindex(step_concentration)[..., y], Vindex(step_rate)[..., y])
                    step_zi = Vindex(step_zi_param)[..., y, :]
                    _zero_inflated("step", t, step_dist, step_zi, obs["step"][..., t], MISSING)
                    angle_dist = dist.VonMises(Vindex(angle_loc)[..., y], Vindex(angle_concentration)[..., y])
                    pyro.sample(f"angle_{t}", angle_dist, obs=obs["angle"][..., t])
                    omega_dist = dist.Beta(Vindex(omega_c1)[..., y], Vindex(omega_c0)[..., y])
                    omega_zi = Vindex(omega_zi_param)[..., y, :]
                    _zero_inflated("omega", t, omega_dist, omega_zi, obs["omega"][..., t], MISSING)


def mixed_hmm_data(
    group="discrete", individual="continuous", individuals=3, groups=2, timesteps=5, seed=0
) -> dict:
    """Tracks of (step, angle, omega) per (individual, group, time), padded and zero-inflated as prepare_seal
    leaves them: -inf padding, then padding and zeros both set to MISSING."""
    g = _gen(seed)
    shape = (individuals, groups, timesteps)
    step = -torch.log(torch.rand(shape, generator=g)) * 2.0 + 1e-3
    angle = (torch.rand(shape, generator=g) * 2 - 1) * 3.0
    omega = torch.rand(shape, generator=g).clamp(0.01, 0.99)
    observations = torch.stack([step, angle, omega], -1)
    observations[..., 0][torch.rand(shape, generator=g) < 0.2] = 0.0  # zero steps: zero-inflated
    observations[-1, 1] = float("-inf")  # last individual of group 1 absent
    observations[0, 0, -2:] = float("-inf")  # a shorter track
    mask_i = (observations > float("-inf")).any(dim=-1).any(dim=-1)
    mask_t = (observations > float("-inf")).all(dim=-1)
    observations[(observations == 0.0) | (observations == float("-inf"))] = MISSING
    return {
        "config": {
            "MISSING": MISSING,
            "sizes": dict(state=2, random=2, group=groups, individual=individuals, timesteps=timesteps),
            "group": {"random": group, "fixed": None},
            "individual": {"random": individual, "fixed": None, "mask": mask_i},
            "timestep": {"random": None, "fixed": None, "mask": mask_t},
            "observations": dict(zip(("step", "angle", "omega"), observations.unbind(-1))),
        }
    }


# --- sir_hmc.py: discrete SIR ------------------------------------------------------------------------------

# The example reads the recovery time from its module-global argparse namespace ``args``.
args = SimpleNamespace(
    population=10, recovery_time=7.0, duration=5, basic_reproduction_number=1.5, response_rate=0.5
)


def global_model(population):
    tau = args.recovery_time
    R0 = pyro.sample("R0", dist.LogNormal(0.0, 1.0))
    rho = pyro.sample("rho", dist.Uniform(0, 1))
    return -R0 / (tau * population), 1 / (1 + tau), rho


def discrete_model(args, data):
    rate_s, prob_i, rho = global_model(args.population)
    S = torch.tensor(args.population - 1.0)
    I = torch.tensor(1.0)  # noqa: E741
    for t, datum in enumerate(data):
        S2I = pyro.sample(f"S2I_{t}", dist.Binomial(S, -(rate_s * I).expm1()))
        I2R = pyro.sample(f"I2R_{t}", dist.Binomial(I, prob_i))
        S = pyro.deterministic(f"S_{t}", S - S2I)
        I = pyro.deterministic(f"I_{t}", I + S2I - I2R)  # noqa: E741
        pyro.sample(f"obs_{t}", dist.ExtendedBinomial(S2I, rho), obs=datum)


def quantize(name, x_real, min, max):
    """Quantize x_real to a neighbouring integer by an enumerated Categorical (cubic spline weights)."""
    lb = x_real.detach().floor()
    s = x_real - lb
    t = 1 - s
    probs = torch.stack([t**3, 4 + s * s * (3 * s - 6), 4 + t * t * (3 * t - 6), s**3], dim=-1) / 6
    q = pyro.sample("Q_" + name, dist.Categorical(probs)).type_as(x_real)
    x = lb + q - 1
    x = torch.max(x, 2 * min - 1 - x)
    x = torch.min(x, 2 * max + 1 - x)
    return pyro.deterministic(name, x)


@config_enumerate
def continuous_model(args, data):
    rate_s, prob_i, rho = global_model(args.population)
    aux = dist.Uniform(-0.5, args.population + 0.5).mask(False).expand(data.shape).to_event(1)
    S_aux = pyro.sample("S_aux", aux)
    I_aux = pyro.sample("I_aux", aux)
    S_curr = torch.tensor(args.population - 1.0)
    I_curr = torch.tensor(1.0)
    for t, datum in poutine.markov(enumerate(data)):
        S_prev, I_prev = S_curr, I_curr
        S_curr = quantize(f"S_{t}", S_aux[..., t], min=0, max=args.population)
        I_curr = quantize(f"I_{t}", I_aux[..., t], min=0, max=args.population)
        S2I = S_prev - S_curr
        I2R = I_prev - I_curr + S2I
        pyro.sample(f"S2I_{t}", dist.ExtendedBinomial(S_prev, -(rate_s * I_prev).expm1()), obs=S2I)
        pyro.sample(f"I2R_{t}", dist.ExtendedBinomial(I_prev, prob_i), obs=I2R)
        pyro.sample(f"obs_{t}", dist.ExtendedBinomial(S2I, rho), obs=datum)


def sir_data(seed: int = 0, min_observations: int = 2) -> dict:
    """An outbreak simulated forward as generate_data does (retrying until enough cases are observed)."""
    g = _gen(seed)
    tau, pop = args.recovery_time, args.population
    rate_s = -args.basic_reproduction_number / (tau * pop)
    for _ in range(100):
        s, i, obs = torch.tensor(pop - 1.0), torch.tensor(1.0), []
        for _t in range(args.duration):
            s2i = torch.binomial(s, -(rate_s * i).expm1(), generator=g)
            i2r = torch.binomial(i, torch.tensor(1 / (1 + tau)), generator=g)
            s, i = s - s2i, i + s2i - i2r
            obs.append(torch.binomial(s2i, torch.tensor(args.response_rate), generator=g))
        obs = torch.stack(obs)
        if obs.sum() >= min_observations:
            return {"args": args, "data": obs}
    raise ValueError("no outbreak")


def _dmm_case():
    dmm = dmm_program()
    return dmm.model, dmm_data(), {"guide": dmm.guide}


def _ss_vae_case(labelled):
    from tests.programs.wild_examples_ssvae import ss_vae_data, ss_vae_program

    model, guide = ss_vae_program()
    return model, ss_vae_data(labelled), {"guide": guide}


#: name -> builder of ``(program, data, options)``; fresh networks on each call.
CASES: dict = {
    "dmm.py": _dmm_case,
    "mixed_hmm/model.py": lambda: (model_generic, mixed_hmm_data(), {"guide": guide_generic}),
    "sir_hmc.py:discrete_model": lambda: (discrete_model, sir_data(), {}),
    "sir_hmc.py:continuous_model": lambda: (continuous_model, sir_data(), {}),
    "vae/ss_vae_M2.py (labelled)": lambda: _ss_vae_case(True),
    "vae/ss_vae_M2.py (unlabelled)": lambda: _ss_vae_case(False),
}
