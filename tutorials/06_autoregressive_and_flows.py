# %% [markdown]
# # 06 — Autoregressive models and normalizing flows: exact likelihoods
#
# *Runs in about 45 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# trains longer (about 3 min): MADE 4,000 steps, the name model 1,500 and the flow 1,500
# (default 1,500 / 500 / 600).
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Two ways to make a neural network *be* a density you can evaluate exactly.
#
# **Autoregressive.** The chain rule holds for any joint distribution,
# $p(x_1,\dots,x_D) = \prod_i p(x_i \mid x_{<i})$, so it suffices to model each conditional.
# MADE does it with one masked MLP: output $i$ is wired to see only inputs before $i$.
# Scoring is one pass; sampling needs $D$ passes, one coordinate at a time.
#
# **Flows.** Push $z \sim \mathcal N(0, I)$ through an invertible $f$. The change of variables
# gives $\log p(x) = \log \mathcal N(f^{-1}(x); 0, I) + \log|\det \partial f^{-1}/\partial x|$,
# exact as long as $f^{-1}$ and its Jacobian determinant are cheap.
#
# Neither model has latent variables to infer, so both are fitted with `method="mle"` —
# which is SVI with the empty guide: with nothing to infer, the ELBO *is* the log-likelihood.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.data import load
from ppgen.measures.metrics import bits_per_dim, heldout_nll
from ppgen.models import MADE, CharRNN, Flow
from ppgen.models.char_rnn import first_names

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)  # these networks are small: one thread avoids contention on shared CPUs
torch.manual_seed(0)

# %% [markdown]
# ## MADE on binarized digits
# 8×8 digits thresholded at half intensity: 64 binary pixels. Each conditional is a Bernoulli
# whose logit comes from the masked network. We train by minibatch maximum likelihood and
# report the held-out negative log-likelihood in nats per image and in bits per pixel.

# %%
x_train = load("digits-binary", "train", dtype=torch.float32)
x_test = load("digits-binary", "test", dtype=torch.float32)
made_fit = ppgen.fit(
    MADE(64, hidden=(256,)),
    x_train,
    method="mle",
    num_steps=200 if FAST else 4000 if FULL else 1500,
    batch_size=128,
    lr=1e-3,
    seed=0,
    progress=not FAST,
)
made = made_fit.model
with torch.no_grad():
    test_lp = made.log_prob(x_test)
print(f"MADE held-out NLL: {heldout_nll(test_lp):.2f} nats/image, {bits_per_dim(test_lp, 64):.3f} bits/pixel")
print(f"(independent pixels would need {64:.0f} bits at most; the chain rule buys the difference)")

# %% [markdown]
# ### Scoring is parallel, sampling is sequential
# `log_prob` evaluates all 64 conditionals of every image in one pass; `sample` must draw
# pixel 1, feed it back, draw pixel 2, ... — 64 passes.

# %%
n = x_test.shape[0]
with torch.no_grad():
    start = time.perf_counter()
    made.log_prob(x_test)
    score_time = time.perf_counter() - start
    start = time.perf_counter()
    samples = made.sample(n)
    sample_time = time.perf_counter() - start
print(f"score {n} images: {score_time * 1e3:.1f} ms; sample {n} images: {sample_time * 1e3:.1f} ms")
print(f"sampling / scoring time: {sample_time / score_time:.0f}x (D = 64 sequential passes)")

fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for i, ax in enumerate(axes.flat):
    image = (x_test if i < 8 else samples)[i % 8].reshape(8, 8)
    ax.imshow(image, cmap="gray_r")
    ax.axis("off")
axes[0, 0].set_title("data", fontsize=8, loc="left")
axes[1, 0].set_title("MADE samples", fontsize=8, loc="left")
fig.savefig(FIGURES / "06_made_samples.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## A character-level model of first names
# The same chain rule on text: a name is a sequence of letters ended by a stop token, and a
# small GRU gives $p(c_t \mid c_{<t})$. The list is the US Census first names shipped by the
# `names` package. A *temperature* $T$ divides the logits before sampling: $T < 1$ favours
# likely letters, $T > 1$ flattens the choice.

# %%
words = first_names()
names_model = CharRNN(max_len=12, hidden=64)
x_names = names_model.encode(words)
train_names, test_names = ppgen.data.train_test_split(x_names, 0.2, seed=0)
names_fit = ppgen.fit(
    names_model,
    train_names,
    method="mle",
    num_steps=60 if FAST else 1500 if FULL else 500,
    batch_size=256,
    lr=5e-3,
    seed=0,
    progress=not FAST,
)
with torch.no_grad():
    nll = heldout_nll(names_fit.model.log_prob(test_names))
print(f"{len(words)} names; held-out NLL {nll:.2f} nats/name (uniform over 27 symbols x ~7: {7 * 3.30:.1f})")
torch.manual_seed(1)
for temperature in (0.5, 1.0):
    print(
        f"T={temperature}:",
        ", ".join(names_fit.model.decode(names_fit.model.sample(10, temperature=temperature))),
    )

# %% [markdown]
# ## A flow on two moons
# A spline-coupling flow (`Flow(dim=2)`: four rational-quadratic spline couplings with
# permutations between them) fitted by maximum likelihood.

# %%
moons = load("moons", "train")
moons = (moons - moons.mean(0)) / moons.std(0)
flow_fit = ppgen.fit(
    Flow(dim=2), moons, method="mle", num_steps=100 if FAST else 1500 if FULL else 600, batch_size=256,
    lr=5e-3, seed=0, progress=not FAST,
)  # fmt: skip
flow = flow_fit.model
print(f"flow train log-lik {flow_fit.score(moons):.3f} nats/point")

# %% [markdown]
# ### The density integrates to one
# Change of variables keeps the total mass: a midpoint rule on a grid recovers 1.

# %%
h = 0.05
ticks = torch.arange(-4 + h / 2, 4, h, dtype=moons.dtype)
grid = torch.cartesian_prod(ticks, ticks)
with torch.no_grad():
    density = flow.log_prob(grid).exp()
print(f"∫ p(x) dx on [-4, 4]² ≈ {float(density.sum() * h * h):.4f}")

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
side = ticks.numel()
axes[0].imshow(
    density.reshape(side, side).T, origin="lower", extent=(-4, 4, -4, 4), cmap="magma", aspect="equal"
)
axes[0].set_title("learned density")
axes[1].scatter(*moons[:600].T, s=3, alpha=0.5, label="data")
with torch.no_grad():
    draws = flow.sample(600)
axes[1].scatter(*draws.T, s=3, alpha=0.5, label="flow samples")
axes[1].legend(markerscale=4)
axes[1].set_title("data vs samples")
# The map from base to data: straight grid lines in z, bent by f into data space.
lines = torch.linspace(-2.5, 2.5, 11, dtype=moons.dtype)
dense = torch.linspace(-2.5, 2.5, 200, dtype=moons.dtype)
with torch.no_grad():
    for value in lines:
        for path in (torch.stack([dense, value.expand(200)], 1), torch.stack([value.expand(200), dense], 1)):
            axes[2].plot(*flow.forward(path).T, lw=0.6, color="tab:blue")
axes[2].set_title("f(z) of a grid in z-space")
for ax in axes:
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
fig.savefig(FIGURES / "06_flow_moons.png", dpi=100, bbox_inches="tight")
print("figures saved to", FIGURES)

# %%
print(f"tutorial 06 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
