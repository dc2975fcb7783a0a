# %% [markdown]
# # 10 — Common confusions, made concrete
#
# *Runs in about 1 min by default (measured on 2 shared cores). `PPGEN_FULL=1`
# trains the digits-17 NLL table at the benchmark's settings (10 min or more; by default every
# row is trained briefly and the benchmark's number is quoted beside it).
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Six mistakes that keep coming back when people start with generative models, each turned
# into a few lines of ppgen and a number you can check:
#
# 1. a density is not a probability (it can exceed 1);
# 2. a PMF over quantised pixels and a PDF over real pixels are different objects — and the
#    density of integer data, read as if it were a probability, can look absurdly good;
# 3. a likelihood is a function of the parameters, not a distribution over them;
# 4. KL divergence has a direction, and the direction decides what a fit ignores;
# 5. a GAN defines a distribution without a density;
# 6. saddle-point training oscillates where minimisation would not.

# %%
import math
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

import ppgen
from ppgen.app.chapters.digits17 import nll_table
from ppgen.app.chapters.digits17_data import pmf_vs_pdf
from ppgen.app.chapters.pixels import beside_benchmark
from ppgen.app.tour_context import load_benchmark
from ppgen.data import load
from ppgen.errors import ImplicitModelError
from ppgen.measures.dequantize import dequantize, discrete_nll_bound
from ppgen.measures.metrics import energy_distance, mmd
from ppgen.models import Gaussian, MLPCritic, MLPGenerator, NormalInverseGamma

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)  # tiny networks: one thread is faster on a shared CPU
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## 1. A density is not a probability
# A Gaussian with standard deviation 0.1 has density $1/(0.1\sqrt{2\pi}) \approx 3.99$ at its
# mean — larger than 1, which no probability can be. Probabilities come from integrating the
# density over a region: the interval $[-0.01, 0.01]$ around the peak holds only about 8 % of
# the mass, and the whole line holds exactly 1.

# %%
narrow = Gaussian(1, "diag", loc=torch.zeros(1), scale=torch.full((1,), 0.1))
with torch.no_grad():
    peak = float(narrow.log_prob(torch.zeros(1, 1)).exp())
    grid = torch.linspace(-1, 1, 20_001)[:, None]
    density = narrow.log_prob(grid).exp()
    step = float(grid[1] - grid[0])
    total = float(density.sum() * step)
    near = float(density[grid[:, 0].abs() <= 0.01].sum() * step)
print(f"p(0) = {peak:.3f} > 1;  P(|X| <= 0.01) = {near:.4f};  integral over [-1, 1] = {total:.4f}")

# %% [markdown]
# ## 2. PMF vs PDF on quantised pixels
# The 17-level digits (`load("digits-17")`) have integer pixels 0..16. A categorical model gives
# every image a probability mass $P(x)$; a Gaussian, a KDE or a flow gives a density $p(v)$
# over real vectors. To compare them on one scale the continuous model must be scored on the
# *cells* of the integers: $P(x) = \int_{[0,1)^D} p(x + u)\,du$, and by Jensen
#
# $$-\log P(x) \le \mathbb E_{u \sim U[0,1)^D}[-\log p(x + u)],$$
#
# which `ppgen.dequantize.discrete_nll_bound` estimates with its Monte Carlo standard error
# (the model is trained on `dequantize(x)` = $x + u$).
#
# Evaluating a density at the raw integers instead is not a probability at all. The table
# below takes a categorical mixture and turns each level $c$ into a narrow bump $N(c, \sigma^2)$:
# still a proper density, but at the integers it "beats" the PMF it came from by
# $D \log(1/(\sigma\sqrt{2\pi}))$ nats, and its honest dequantized score is terrible.

# %%
comparison = pmf_vs_pdf(fast=FAST, sigma=0.05)
print(comparison.round(2).to_string(index=False))
print(f"gap naive vs PMF predicted: {64 * math.log(1 / (0.05 * math.sqrt(2 * math.pi))):.1f} nats")

# %% [markdown]
# One pixel makes the picture: the PMF is a bar chart over 17 levels; the dequantized Gaussian
# spreads the same mass over the unit cells; the spiky density piles it onto the integers.

# %%
x_train = load("digits-17", "train")
pixel = x_train[:, 27:28]  # a pixel near the centre of the image
counts = torch.bincount(pixel[:, 0].long(), minlength=17).double() / len(pixel)
smooth = ppgen.fit(Gaussian(1), dequantize(pixel, seed=0), method="exact")
one_cell = discrete_nll_bound(smooth, pixel, num_samples=32)
v = torch.linspace(-2, 19, 2000)[:, None].double()
with torch.no_grad():
    curve = smooth.log_prob(v).exp()
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.bar(torch.arange(17) + 0.5, counts, width=1.0, alpha=0.4, label="PMF P(x) on cells [x, x+1)")
ax.plot(v[:, 0], curve, label="Gaussian density fitted to x + u")
ax.set_xlabel("level")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "10_pmf_vs_pdf.png", dpi=120)
empirical_nll = float(-(counts[pixel[:, 0].long()]).log().mean())
print(
    f"pixel 27: empirical PMF NLL {empirical_nll:.3f} nats (exact), dequantized Gaussian bound "
    f"{one_cell.nll:.3f} ± {one_cell.stderr:.3f}"
)

# %% [markdown]
# ### One table for every explicit model
# `nll_table` fits each model on the train split, chooses settings and stops training on the
# val split, and scores the test split in nats per image (and bits per dimension). `kind` says
# what the number is: *exact* (a PMF), *bound* (dequantized density, or the VAE's ELBO) or
# *estimate* (importance sampling).
#
# By default every row is trained briefly (smaller networks, a few epochs, early-stopped on
# val); `PPGEN_FULL=1` trains the benchmark's version (`benchmarks/digits_nll.py`, minutes).
# Beside each row, the `bench` column quotes the same row of the last `make bench` run
# (`benchmarks/results.json`, with its date and the command that reproduces it): the
# long-trained numbers, the ordinal MADE ensemble among them, are read from there, not typed here.

# %%
table, fitted = nll_table(mode=MODE)
quote = load_benchmark("digits_nll")
beside = beside_benchmark(table, quote)
columns = ["family", "kind", "test_nll", "stderr", "seconds", "bench test_nll"]
if quote is not None:
    print(f"'bench test_nll' is quoted, not trained here ({quote.source()})")
print(beside[[c for c in columns if c in beside]].round(2).to_string(index=False))
for family in beside.loc[beside["model"].isna(), "family"]:
    print(f"{family}: not trained by default (PPGEN_FULL=1 trains it); its 'bench' number is quoted")

# %% [markdown]
# The empirical distribution of the training images puts probability 0 on every test image
# (NLL = ∞): memorising the data is the opposite of modelling it.

# %% [markdown]
# ## 3. Likelihood vs posterior
# For fixed data the likelihood $\mathcal L(\mu) = \prod_i p(x_i \mid \mu, \sigma)$ ranks values
# of $\mu$; it is not a distribution over $\mu$ and need not integrate to 1. A posterior needs a
# prior: with `NormalInverseGamma` the posterior of $\mu$ is a Student t in closed form.

# %%
x_small = torch.tensor([[4.1], [5.3], [4.8], [6.0], [5.1]], dtype=torch.float64)
mus = torch.linspace(0, 10, 4001, dtype=torch.float64)
sigma = float(x_small.std())
log_lik = torch.distributions.Normal(mus[:, None], sigma).log_prob(x_small[:, 0]).sum(-1)
d_mu = float(mus[1] - mus[0])
posterior = NormalInverseGamma(mu0=0.0, kappa0=0.1, alpha0=1.0, beta0=1.0).conjugate_posterior(x_small)
post_density = posterior.marginals["loc"].log_prob(mus[:, None]).exp()[:, 0]
print(
    f"integral of the likelihood over mu: {float(log_lik.exp().sum() * d_mu):.2e} (not 1);  "
    f"integral of the posterior density: {float(post_density.sum() * d_mu):.4f}"
)
print(
    f"MLE of mu = {float(mus[log_lik.argmax()]):.3f};  posterior mean = "
    f"{float(posterior.marginals['loc'].mean[0]):.3f} (pulled toward the prior mean 0)"
)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(mus, (log_lik - log_lik.max()).exp(), label="likelihood (rescaled to max 1)")
ax.plot(mus, post_density / post_density.max(), "--", label="posterior (rescaled to max 1)")
ax.set_xlabel("mu")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "10_likelihood_vs_posterior.png", dpi=120)

# %% [markdown]
# ## 4. The direction of KL
# Target: two well separated bumps, $\tfrac12 N(-2, 0.5^2) + \tfrac12 N(2, 0.5^2)$. One Gaussian
# $q$ cannot match it, so the direction decides the compromise:
# - forward $\mathrm{KL}(p \| q)$ — maximum likelihood on samples of $p$ — must cover both
#   bumps: a wide Gaussian centred between them;
# - reverse $\mathrm{KL}(q \| p)$ — minimised here directly by reparameterised gradients — is
#   punished for mass where $p$ has none: it locks onto one bump.

# %%
target = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(torch.tensor([0.5, 0.5], dtype=torch.float64)),
    torch.distributions.Normal(torch.tensor([-2.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 0.5])),
)
forward = ppgen.fit(Gaussian(1), target.sample((20_000,))[:, None], method="exact")
loc, log_scale = torch.tensor(0.5, requires_grad=True), torch.tensor(0.0, requires_grad=True)
optimiser = torch.optim.Adam([loc, log_scale], lr=0.05)
for _ in range(300 if FAST else 1500):
    z = loc + log_scale.exp() * torch.randn(256, dtype=torch.float64)
    q = torch.distributions.Normal(loc, log_scale.exp())
    loss = (q.log_prob(z) - target.log_prob(z)).mean()  # KL(q ‖ p) up to Monte Carlo error
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
grid = torch.linspace(-8, 8, 16_001, dtype=torch.float64)
dx = float(grid[1] - grid[0])


def kl(log_a, log_b):
    """KL(A ‖ B) = ∫ a log(a / b) by the midpoint rule on the grid."""
    return float((log_a.exp() * (log_a - log_b)).sum() * dx)


with torch.no_grad():
    log_p = target.log_prob(grid)
    log_forward = forward.log_prob(grid[:, None])
    log_reverse = torch.distributions.Normal(loc, log_scale.exp()).log_prob(grid)


def moments(log_q):
    """Mean and standard deviation of a density on the grid."""
    q = log_q.exp() * dx
    mean = float((q * grid).sum())
    return mean, float((q * (grid - mean) ** 2).sum()) ** 0.5


rows = [
    ("forward KL (MLE)", *moments(log_forward), kl(log_p, log_forward), kl(log_forward, log_p)),
    ("reverse KL", *moments(log_reverse), kl(log_p, log_reverse), kl(log_reverse, log_p)),
]
kl_table = pd.DataFrame(rows, columns=["fit", "q mean", "q sd", "KL(p||q)", "KL(q||p)"])
print(kl_table.round(3).to_string(index=False))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(grid, log_p.exp(), "k", label="target p")
ax.plot(grid, log_forward.exp(), label="argmin KL(p‖q) = MLE")
ax.plot(grid, log_reverse.exp(), label="argmin KL(q‖p)")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "10_kl_direction.png", dpi=120)

# %% [markdown]
# ## 5. A GAN has a distribution but no density
# `MLPGenerator` draws $z \sim N(0, I)$ and returns $g_\theta(z)$: sampling is easy, but there is
# no $\log p_\theta(x)$ to evaluate, and ppgen says so with an `ImplicitModelError`. Compare such
# models with sample-based distances (MMD, energy distance) instead of likelihoods: by default the
# GAN beats the single Gaussian on both, since it can put its mass on the two bumps. (In fast
# mode it trains for only 150 steps and still loses.) Note that `fit` trains a copy: the fitted
# generator is `gan.model`, and `generator` stays as it was built.

# %%
x_ring = target.sample((2000,))[:, None].float()
generator = MLPGenerator(latent_dim=1, data_dim=1, hidden=(32, 32))
gan = ppgen.fit(
    generator,
    x_ring,
    method="adversarial",
    loss="non_saturating",
    steps=150 if FAST else 2000,
    lr_g=1e-3,
    lr_d=1e-3,  # tutorial 09's 1-D recipe; the default learning rates collapse onto one bump here
    critic=MLPCritic((32, 32)),
    seed=0,
    progress=False,
)
try:
    gan.model.log_prob(x_ring[:5])  # the fitted generator (fit trains a copy: `generator` is untouched)
except ImplicitModelError as err:
    print("log_prob:", type(err).__name__, "-", str(err)[:150])
with torch.no_grad():
    fake = gan.sample(2000)
    gaussian_draws = forward.sample(2000).float()
for name, draws in (("GAN", fake), ("MLE Gaussian", gaussian_draws)):
    print(
        f"{name:13s} samples vs data: MMD {mmd(draws, x_ring):.4f}, "
        f"energy {energy_distance(draws, x_ring):.4f}"
    )

# %% [markdown]
# ## 6. Why adversarial training oscillates
# The smallest saddle-point game: $\min_x \max_y\, xy$, whose only equilibrium is $(0, 0)$.
# Simultaneous gradient descent–ascent rotates around it and, with any step size $\eta$, moves
# outward: each step multiplies the distance by $\sqrt{1 + \eta^2}$. Smaller steps spiral out
# more slowly (the continuous-time flow is a circle); alternating the updates keeps the orbit
# bounded; extragradient (look ahead, then step) converges.


# %%
def play(rule: str, eta: float, steps: int) -> torch.Tensor:
    x, y = 1.0, 0.0
    path = [(x, y)]
    for _ in range(steps):
        if rule == "simultaneous":
            x, y = x - eta * y, y + eta * x
        elif rule == "alternating":
            x = x - eta * y
            y = y + eta * x
        else:  # extragradient
            xh, yh = x - eta * y, y + eta * x
            x, y = x - eta * yh, y + eta * xh
        path.append((x, y))
    return torch.tensor(path)


runs = {
    "simultaneous, eta=0.2": play("simultaneous", 0.2, 100),
    "simultaneous, eta=0.02": play("simultaneous", 0.02, 1000),
    "alternating, eta=0.2": play("alternating", 0.2, 100),
    "extragradient, eta=0.2": play("extragradient", 0.2, 100),
}
for name, path in runs.items():
    print(f"{name:24s} distance from the saddle at time t = 20: {float(path[-1].norm()):.3f} (start 1)")
print(f"theory for simultaneous eta=0.2: (1 + 0.04)^(100/2) = {(1 + 0.04) ** 50:.3f}")
fig, ax = plt.subplots(figsize=(5, 5))
for name, path in runs.items():
    ax.plot(path[:, 0], path[:, 1], label=name, lw=1)
ax.plot([0], [0], "k*", ms=10)
ax.set_aspect("equal")
ax.set_xlabel("x (minimiser)")
ax.set_ylabel("y (maximiser)")
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIGURES / "10_saddle.png", dpi=120)

# %% [markdown]
# The alternating orbit never settles, but it circles the saddle: the *average* of its iterates
# sits almost on it. That is why a GAN's generator is sampled from a moving average of its
# weights rather than from its last iterate (`ema=0.999` in ppgen's 2-D recipe; Yazıcı et al.
# 2019) — the players keep circling, the average keeps still.

# %%
orbit = play("alternating", 0.2, 1000)
moving = orbit[0].clone()
for point in orbit[1:]:
    moving = 0.99 * moving + 0.01 * point  # an exponential moving average, window ≈ 100 steps
print(
    f"alternating, eta=0.2, 1000 steps: last iterate {float(orbit[-1].norm()):.3f} from the saddle, "
    f"mean of the iterates {float(orbit.mean(0).norm()):.3f}, moving average {float(moving.norm()):.3f}"
)

# %%
print(f"tutorial 10 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
