# %% [markdown]
# # 05 — Latent variable models: mixtures, EM and factor analysis
#
# *Runs in about 35 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Some datasets are not one blob. Old Faithful's eruptions come in two kinds (short waits
# with short eruptions, long with long); handwritten digits come in ten. A **latent
# variable** names the hidden cause behind each observation: a discrete label `z` for a
# mixture, a continuous low-dimensional vector `z` for factor analysis. Fitting such a
# model means learning the parameters *and* inferring the hidden causes.
#
# In ppgen each model is one Pyro story, and the same story is fitted four ways:
# `em` (expectation–maximisation), `svi` (the ELBO with `z` summed out exactly),
# `mcmc` (NUTS over the globals with `z` summed out) and, for pPCA, `exact`.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyro.distributions as dist
import torch

import ppgen
from ppgen.models import PPCA, BernoulliMixture, FactorAnalysis, Gaussian, GaussianMixture

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)  # tiny tensors: one thread is fastest (and far faster on a busy machine)

# %% [markdown]
# ## 1. A mixture is a story with a hidden cause
#
# `p(x) = Σ_k π_k p(x | z = k)`: first pick a component `k` with probability `π_k`, then draw
# `x` from that component. Given a point, Bayes' rule turns the story around: the
# **responsibility** `r_k = π_k p(x|k) / Σ_j π_j p(x|j)` is how likely component `k` made it.
#
# The source text's worked example: two 1-D Gaussians with `π = (0.6, 0.4)`,
# `μ = (−1, 2)`, `σ = 1`, and the point `x = 0`. The first Gaussian is closer, so it
# takes most of the credit — the library's own `responsibilities` gives the numbers.

# %%
f64 = {"dtype": torch.float64}
toy = GaussianMixture(2, dim=1, covariance="spherical").double()
toy.set_params(pi=torch.tensor([0.6, 0.4], **f64), mu=torch.tensor([[-1.0], [2.0]], **f64))
r = toy.responsibilities([[0.0]])[0]
print(f"responsibilities at x=0: r1 = {r[0]:.4f}, r2 = {r[1]:.4f}   (the text: about 0.87 and 0.13)")

# %% [markdown]
# ## 2. Old Faithful: one Gaussian or two?
#
# We standardise both columns (so priors later can be simple), keep a quarter of the
# eruptions aside, and compare a single Gaussian (closed-form MLE) with a two-component
# mixture fitted by EM — on held-out log-likelihood and on BIC (`−2 log L + p log N`,
# lower is better: it charges each extra parameter).

# %%
raw_train = ppgen.data.load("faithful", "train")
raw_test = ppgen.data.load("faithful", "test")
center, spread = raw_train.mean(0), raw_train.std(0)
x_train, x_test = (raw_train - center) / spread, (raw_test - center) / spread

one = ppgen.fit(Gaussian(dim=2), x_train, method="exact")
two = ppgen.fit(GaussianMixture(2), x_train, method="em", seed=0, n_init=3, progress=False)
n = x_train.shape[0]
bic_one = -2 * one.score(x_train) * n + 5 * np.log(n)  # 2 means + 3 covariances
print(f"1 Gaussian : held-out log-lik {one.score(x_test):.3f} per eruption, BIC {bic_one:.1f}")
print(f"2-mixture  : held-out log-lik {two.score(x_test):.3f} per eruption, BIC {two.model.bic(x_train):.1f}")
print(f"EM stopped after {two.extras['n_iter']} iterations, converged={two.converged}")

# %% [markdown]
# ## 3. What EM does, iteration by iteration
#
# EM alternates two closed-form steps: the **E-step** computes every point's
# responsibilities under the current parameters; the **M-step** refits each component as
# a weighted Gaussian (weights = responsibilities) and sets `π_k` to the average
# responsibility. Each round can only raise the log-likelihood — the backend checks it and
# would raise if it ever fell. Here we run the two steps by hand from a deliberately poor
# (random) start, keeping snapshots for the plot.


# %%
def ellipse(ax, mu, cov, color):
    """The 2-standard-deviation contour of N(mu, cov)."""
    vals, vecs = np.linalg.eigh(cov)
    angle = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(angle), np.sin(angle)]) * 2 * np.sqrt(vals)[:, None]
    path = mu[:, None] + vecs @ circle
    ax.plot(path[0], path[1], color=color, lw=1.5)


model = GaussianMixture(2, dim=2).double().initialize(x_train, init="random", seed=3)
states, trajectory = [], []
with torch.no_grad():
    for _ in range(60):
        states.append((model.mu.clone().numpy(), model.covariances().numpy()))
        resp, loglik = model.e_step(x_train)
        trajectory.append(float(loglik.mean()))
        model.m_step(x_train, resp)
assert all(b >= a - 1e-9 for a, b in zip(trajectory, trajectory[1:])), "EM must never go down"
# From a symmetric start EM first creeps along a plateau, then the components split.
gain = np.array(trajectory) - trajectory[0]
shown = [0, int(np.argmax(gain > 0.2 * gain[-1])), int(np.argmax(gain > 0.8 * gain[-1])), len(trajectory) - 1]
print("mean log-lik at iterations", shown, ":", [round(trajectory[i], 4) for i in shown])
snapshots = {t: states[t] for t in shown}

fig, axes = plt.subplots(1, 5, figsize=(17, 3.4))
axes[0].plot(trajectory, marker=".")
axes[0].set(xlabel="EM iteration", ylabel="mean log-likelihood", title="EM climbs monotonically")
for ax, (t, (mu, cov)) in zip(axes[1:], snapshots.items()):
    ax.scatter(x_train[:, 0], x_train[:, 1], s=5, color="grey")
    for k, color in enumerate(("C0", "C3")):
        ellipse(ax, mu[k], cov[k], color)
    ax.set(title=f"iteration {t}", xlabel="eruption (std)", ylabel="waiting (std)")
fig.tight_layout()
fig.savefig(FIGURES / "05_em_trajectory.png", dpi=90)

# %% [markdown]
# ## 4. EM vs SVI vs NUTS on the same story
#
# The story marks `z` with `infer={"enumerate": "parallel"}`, so Pyro's `TraceEnum_ELBO`
# sums it out exactly: with the model's own (empty) guide, SVI *is* gradient ascent on
# the exact log-likelihood. Giving the globals priors (`ppgen.bayesian`) lets NUTS sample
# their posterior, again with `z` summed out.
#
# **A known failure of naive SVI on mixtures.** Start every component at the same place
# (the default: all means zero) and the gradients of the components are identical, so they
# never separate: the fit collapses to one Gaussian. Initialising from k-means++ (what EM
# does by default) fixes it. We use diagonal covariances here so the priors for NUTS are
# simple. Label switching (the components may swap names between runs or chains) does not
# affect the predictive density in the table; for 1-D means `OrderedMeans` removes it.

# %%
steps = 150 if FAST else 1500
em = ppgen.fit(GaussianMixture(2, covariance="diag"), x_train, method="em", seed=0, progress=False)
naive = ppgen.fit(
    GaussianMixture(2, 2, "diag"), x_train, method="svi", num_steps=steps, lr=0.05, seed=0, progress=False
)
start = GaussianMixture(2, 2, "diag").double().initialize(x_train, init="kmeans++", seed=0)
svi = ppgen.fit(start, x_train, method="svi", num_steps=steps, lr=0.05, seed=0, progress=False)
bayes = ppgen.bayesian(
    GaussianMixture(2, 2, "diag").double(),
    pi=dist.Dirichlet(torch.ones(2, **f64)),
    mu=dist.Normal(torch.zeros(2, 2, **f64), 3.0).to_event(2),
    scale=dist.LogNormal(torch.zeros(2, 2, **f64), 1.0).to_event(2),
)
draws = 50 if FAST else 500
nuts = ppgen.fit(bayes, x_train, method="mcmc", num_samples=draws, warmup_steps=draws, seed=0, progress=False)
table = ppgen.compare(
    [em, naive, svi, nuts], x_test, names=["EM", "SVI (collapsed start)", "SVI (k-means++ start)", "NUTS"]
)
print(table[["model", "method", "train_loglik", "test_loglik", "elpd_loo", "seconds"]].to_string(index=False))
print(f"naive SVI component means (collapsed): {naive.params['mu'].numpy().round(3).tolist()}")

# %% [markdown]
# ## 5. A Bernoulli mixture on binarized digits
#
# For binary images each component is a grid of independent coin flips; its parameters
# *are* an image (the probability that each pixel is on). Ten components, fitted by EM,
# rediscover most of the digit classes without ever seeing a label.

# %%
bin_train = ppgen.data.load("digits-binary", "train")
bin_test = ppgen.data.load("digits-binary", "test")
bern = ppgen.fit(
    BernoulliMixture(10), bin_train, method="em", seed=0, n_init=1 if FAST else 4, progress=False
)
nll = -bern.score(bin_test)
print(
    f"Bernoulli mixture (K=10): held-out NLL {nll:.2f} nats per image = {nll / 64 / np.log(2):.3f} bits/pixel"
)
fig, axes = plt.subplots(1, 10, figsize=(12, 1.6))
order = bern.params["pi"].argsort(descending=True)
for ax, k in zip(axes, order):
    ax.imshow(bern.params["probs"][k].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set(title=f"π={bern.params['pi'][k]:.2f}", xticks=[], yticks=[])
fig.savefig(FIGURES / "05_bernoulli_components.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## 6. Factor analysis and probabilistic PCA
#
# Factor analysis replaces the discrete label by a continuous code:
# `x = μ + W z + ε`, `z ~ N(0, I)`, `ε ~ N(0, Ψ)` with diagonal `Ψ`. This is a VAE with a
# linear decoder — and because everything is Gaussian, the marginal `N(μ, WWᵀ + Ψ)` and the
# posterior of `z` are exact. Probabilistic PCA ties the noise (`Ψ = σ² I`) and has a
# closed-form MLE from the eigendecomposition of the covariance (`method="exact"`).
#
# The digits' grey levels take 17 values; we add uniform noise of one level's width
# (dequantisation), so a continuous density is meaningful (constant pixels would otherwise
# give a zero noise variance and an infinite density). Factor analysis gives each pixel its
# own noise level — the border pixels are nearly constant — so it beats pPCA's single `σ²`
# by a wide margin on held-out log-likelihood.

# %%
grey_train, labels_train = ppgen.data.load("digits", "train", return_labels=True)
grey_test = ppgen.data.load("digits", "test")
gen = torch.Generator().manual_seed(0)
grey_train = grey_train + torch.rand(grey_train.shape, generator=gen, **f64) / 16
grey_test = grey_test + torch.rand(grey_test.shape, generator=gen, **f64) / 16

codes = ppgen.fit(PPCA(2), grey_train, method="exact").model.transform(grey_train)
fig, ax = plt.subplots(figsize=(5, 4.5))
points = ax.scatter(codes[:, 0], codes[:, 1], c=labels_train, cmap="tab10", s=6)
fig.colorbar(points, ax=ax, label="digit")
ax.set(title="pPCA codes E[z|x] of the digits", xlabel="z1", ylabel="z2")
fig.savefig(FIGURES / "05_ppca_codes.png", dpi=90, bbox_inches="tight")

factors = [2, 5, 10] if FAST else [1, 2, 5, 10, 20, 30]
rows = []
for q in factors:
    ppca = ppgen.fit(PPCA(q), grey_train, method="exact")
    fa = ppgen.fit(FactorAnalysis(q), grey_train, method="em", tol=1e-4, max_iter=300, progress=False)
    rows.append((q, ppca.score(grey_test), fa.score(grey_test)))
    print(f"q={q:>2}: held-out log-lik per image  pPCA {rows[-1][1]:8.2f}   FA {rows[-1][2]:8.2f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot([r[0] for r in rows], [r[1] for r in rows], marker="o", label="pPCA (exact)")
axes[0].plot([r[0] for r in rows], [r[2] for r in rows], marker="s", label="factor analysis (EM)")
axes[0].set(
    xlabel="number of factors q", ylabel="held-out log-lik per image", title="More factors, better fit"
)
axes[0].legend()
fa10 = ppgen.fit(FactorAnalysis(10), grey_train, method="em", tol=1e-4, max_iter=300, progress=False).model
recon = fa10.reconstruct(grey_test[:8])
strip = torch.cat(
    [torch.cat(list(grey_test[:8].reshape(8, 8, 8)), 1), torch.cat(list(recon.reshape(8, 8, 8)), 1)]
)
axes[1].imshow(strip, cmap="gray_r")
axes[1].set(title="test digits (top) and FA reconstructions μ + W E[z|x] (q=10)", xticks=[], yticks=[])
fig.savefig(FIGURES / "05_factor_analysis.png", dpi=90, bbox_inches="tight")
print(f"figures in {FIGURES}")

# %% [markdown]
# ## What to remember
#
# * A mixture is "pick a hidden cause, then draw": `log p(x)` has a sum inside the log,
#   which EM handles by alternating responsibilities and weighted refits.
# * The same Pyro story gives EM, exact-ELBO SVI and NUTS; naive SVI can collapse from a
#   symmetric start — initialise like EM does.
# * Factor analysis / pPCA are continuous-latent stories with exact posteriors: the linear
#   ancestors of the VAE (tutorial 06 replaces `W z` by a neural network).

# %%
print(f"tutorial 05 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
