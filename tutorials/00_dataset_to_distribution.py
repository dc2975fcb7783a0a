# %% [markdown]
# # 00 — From a dataset to a distribution
#
# *Runs in about 5 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# A dataset is a finite bag of observations $\mathcal D = \{x^{(1)}, \dots, x^{(n)}\}$ that we
# model as i.i.d. draws from an unknown $P_{\text{data}}$. The first distribution we can build
# from it without any modelling choice is the **empirical distribution**
#
# $$\widehat P_n = \frac1n \sum_{i=1}^n \delta_{x^{(i)}},
# \qquad \widehat P_n(A) = \frac1n \#\{i : x^{(i)} \in A\}.$$
#
# This script loads the embedded datasets, builds $\widehat P_n$ as a Pyro program
# (`ppgen.models.Empirical`: "pick a training point uniformly"), and shows why sampling from it
# is memorisation — the reason we need models that generalise.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.models import KDE, Empirical

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# ## The embedded datasets
# Everything ships with the package (or with scikit-learn): no downloads. Each entry says what
# kind of values it holds, where it comes from and its licence; the synthetic sets also know
# their true density.

# %%
table = ppgen.data.registry_table()
print(table[["name", "shape", "kind", "true log_prob", "labels"]].to_string(index=False))

# %% [markdown]
# ## The data space decides PMF vs PDF
# A digit image is a point in $\mathcal X = [0,1]^{64}$ (grey levels, continuous) or, binarized,
# in $\{0,1\}^{64}$ (discrete). Same pictures, two different data spaces — and therefore a
# density in one case and a probability mass function in the other.

# %%
digits, labels = ppgen.data.load("digits", return_labels=True)
binary = ppgen.data.load("digits-binary")
print(
    f"digits: {tuple(digits.shape)}, d = {digits.shape[1]}, "
    f"values in [{digits.min():.0f}, {digits.max():.0f}]"
)
print(f"distinct grey levels: {digits.unique().numel()}, distinct binary values: {binary.unique().numel()}")
fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
for k in range(8):
    axes[0, k].imshow(digits[k].reshape(8, 8).numpy(), cmap="gray_r")
    axes[1, k].imshow(binary[k].reshape(8, 8).numpy(), cmap="gray_r")
    axes[0, k].set_title(int(labels[k]))
for ax in axes.flat:
    ax.axis("off")
fig.savefig(FIGURES / "00_digits.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## The empirical distribution of Old Faithful
# 272 eruptions, each a point (duration, waiting time) in $\mathbb R^2$. The empirical
# probability of an event is just the fraction of the data inside it.

# %%
x = ppgen.data.load("faithful")
fit = ppgen.fit(Empirical(), x, method="exact")
p_long_wait = fit.model.probability(lambda v: v[:, 1] > 70)
print(f"n = {x.shape[0]}, P_n(waiting > 70 min) = {p_long_wait:.3f}")
both = fit.model.probability(lambda v: (v[:, 0] > 3) & (v[:, 1] > 70))
print(f"P_n(duration > 3 min and waiting > 70 min) = {both:.3f}")

# %% [markdown]
# ## Sampling from $\widehat P_n$ is memorisation
# Every draw is an exact copy of a training point. A kernel density estimate (the same story
# plus a little noise, tutorial 03) produces new points instead.

# %%
m = 500 if FAST else 5000
copies = fit.sample(m, seed=1)
kde = ppgen.fit(KDE("scott", covariance="full"), x, method="exact")
fresh = kde.sample(m, seed=1)


def share_of_copies(samples: torch.Tensor) -> float:
    return float((samples[:, None, :] == x[None]).all(-1).any(1).double().mean())


print(
    f"share of draws identical to a training point: empirical {share_of_copies(copies):.3f}, "
    f"KDE {share_of_copies(fresh):.3f}"
)
print(
    f"distinct draws: empirical {copies.unique(dim=0).shape[0]} of {m} (at most {x.shape[0]}), "
    f"KDE {fresh.unique(dim=0).shape[0]} of {m}"
)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharex=True, sharey=True)
for ax, sample, title in ((axes[0], copies, "empirical: copies"), (axes[1], fresh, "KDE: new points")):
    ax.scatter(*sample.numpy().T, s=6, alpha=0.3, label="samples")
    ax.scatter(*x.numpy().T, s=4, c="k", label="data")
    ax.set_title(title)
    ax.set_xlabel("eruption (min)")
axes[0].set_ylabel("waiting (min)")
axes[0].legend()
fig.savefig(FIGURES / "00_empirical_vs_kde.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## Synthetic data with a known truth
# For the toy sets we know $P_{\text{data}}$ exactly, so we can measure how far a model is
# from it. Here: the 8-Gaussian ring and the 25-Gaussian grid (the classic GAN mode-collapse
# benchmarks) and their true average log-density on their own samples.

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, name in zip(axes, ["ring8", "grid25", "moons", "pinwheel"]):
    data = ppgen.data.load(name)
    ax.scatter(*data.numpy().T, s=2)
    ax.set_title(name)
    truth = ppgen.data.datasets()[name].log_prob
    if truth is not None:
        print(f"{name:8s} true mean log p(x) on its samples: {float(truth(data).mean()):.3f}")
fig.savefig(FIGURES / "00_toy_sets.png", dpi=90, bbox_inches="tight")
print("figures in", FIGURES)

# %%
print(f"tutorial 00 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
