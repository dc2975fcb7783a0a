# %% [markdown]
# # 04 — One Gaussian story, fitted by MLE and by Bayes
#
# *Runs in about 30 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# The story: draw standard noise and stretch it, `x = μ + σ ε`, `ε ~ N(0, 1)`.
# Maximum likelihood picks the single `(μ, σ)` that makes the data most likely;
# Bayesian inference puts a prior on `(μ, σ)` and returns a whole distribution over them.
# In ppgen the two are the *same* Pyro program — only the parameters change from
# `PyroParam` (point estimates) to `PyroSample` (random variables) — and every fit comes
# from one call, `ppgen.fit(model, data, method=...)`.
#
# Data: the waiting times (minutes) between eruptions of Old Faithful.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro.distributions as dist
import torch

import ppgen
from ppgen.app.plots import posterior_narrowing, posterior_vs_mle
from ppgen.models import Gaussian, NormalInverseGamma

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_default_dtype(torch.float64)  # float64 priors -> float64 fits, for exact comparisons

waiting = ppgen.data.load("faithful")[:, 1:]  # (272, 1)
train, test = ppgen.data.train_test_split(waiting, test_fraction=0.25, seed=0)
small = train[:12]  # a small sample makes the prior matter
print(f"{len(train)} training and {len(test)} test waiting times; small sample n = {len(small)}")

# %% [markdown]
# ## Likelihood is not a probability over parameters
#
# `L(μ) = Π p(x_i | μ, σ)` scores parameter values, but nothing makes it integrate to one
# over μ. We integrate it numerically on a grid (σ fixed at its MLE).

# %%
mle = ppgen.fit(Gaussian(dim=1, covariance="diag"), small, method="exact")
mu_hat, sigma_hat = float(mle.params["loc"]), float(mle.params["scale"])
grid = torch.linspace(mu_hat - 30, mu_hat + 30, 4001)
log_lik = dist.Normal(grid[:, None], sigma_hat).log_prob(small[:, 0]).sum(-1)
integral = float(torch.trapezoid(log_lik.exp(), grid))
print(f"MLE: mu = {mu_hat:.2f}, sigma = {sigma_hat:.2f} (variance with 1/n, as MLE demands)")
print(f"integral of the likelihood over mu = {integral:.3e}  (not 1: a likelihood is no density over mu)")

# %% [markdown]
# ## The same story with priors, four ways
#
# A Normal-Inverse-Gamma prior: `σ² ~ InvGamma(α₀, β₀)`, `μ | σ² ~ N(μ₀, σ²/κ₀)`.
# It is conjugate, so `method="exact"` gives the posterior in closed form — the reference
# for MAP (a point: the posterior mode), SVI (AutoNormal: a fitted Gaussian) and NUTS
# (draws from the exact posterior, up to Monte Carlo error).

# %%
prior = NormalInverseGamma(mu0=70.0, kappa0=0.1, alpha0=2.0, beta0=100.0)
steps = 300 if FAST else 3000
draws = 100 if FAST else 1000
fits = {"MLE (exact)": mle}
timings = {}
for label, method, options in [
    ("exact posterior", "exact", {}),
    ("MAP", "map", {"num_steps": steps, "lr": 0.05}),
    ("SVI (AutoNormal)", "svi", {"num_steps": steps, "lr": 0.1, "lr_decay": 0.02, "guide": "normal"}),
    ("NUTS", "mcmc", {"num_samples": draws, "warmup_steps": draws // 2, "progress": False}),
]:
    start = time.perf_counter()
    fits[label] = ppgen.fit(prior, small, method=method, seed=0, **options)
    timings[label] = time.perf_counter() - start

table = ppgen.compare(list(fits.values()), test, names=list(fits))
print(table.to_string(index=False))

# %% [markdown]
# Read the table: all methods agree on the centre; the Bayesian rows also carry an sd, and
# their held-out score is the log *posterior predictive* density, which averages over the
# parameter uncertainty instead of trusting one value. LOO and WAIC (ArviZ) estimate the
# same held-out quantity from the training data alone.

# %%
exact = fits["exact posterior"].exact_posterior
nuts = fits["NUTS"]
for site in ("loc", "scale"):
    m, s = float(exact.mean()[site]), float(exact.sd()[site])
    svi_mean = float(fits["SVI (AutoNormal)"].draws[site].mean())
    map_value = float(fits["MAP"].params[site])
    print(
        f"{site:5s}: exact {m:7.3f} ± {s:.3f} | NUTS {float(nuts.draws[site].mean()):7.3f} ± "
        f"{float(nuts.draws[site].std()):.3f} | SVI {svi_mean:7.3f} | MAP {map_value:7.3f}"
    )

fig = posterior_vs_mle(
    [fits["exact posterior"], fits["NUTS"], fits["SVI (AutoNormal)"], fits["MAP"]],
    labels=["exact posterior", "NUTS", "SVI (AutoNormal)", "MAP"],
)
for ax, name in zip(fig.axes, ("scale", "loc")):
    ax.axvline(float(mle.params[name]), color="black", lw=1.5, label="MLE")
fig.axes[-1].legend(fontsize=7)
fig.savefig(FIGURES / "04_posterior_vs_mle.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## The posterior narrows as data arrive
#
# With n observations the posterior sd of μ shrinks like σ/√n, and the prior's pull fades:
# MLE and posterior mean converge.

# %%
sizes = [3, 6, 12, 24, 48, 96, len(train)]
sds, gaps = [], []
for n in sizes:
    post = prior.conjugate_posterior(train[:n])
    sds.append(float(post.sd()["loc"]))
    gaps.append(abs(float(post.mean()["loc"]) - float(train[:n].mean())))
for n, s, g in zip(sizes, sds, gaps):
    print(f"n = {n:3d}: posterior sd(mu) = {s:6.3f}, |posterior mean - MLE| = {g:.4f}")
fig = posterior_narrowing(sizes, sds)
fig.savefig(FIGURES / "04_posterior_narrowing.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## When do you need MCMC?
#
# Never for this model: the conjugate posterior is exact and costs microseconds. NUTS is for
# stories without a closed form (non-conjugate priors, hierarchical models, mixtures) —
# here it serves as a check that the sampler and the algebra agree.

# %%
for label, seconds in timings.items():
    print(f"{label:18s} {seconds:7.3f} s")

# %%
print(f"tutorial 04 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
