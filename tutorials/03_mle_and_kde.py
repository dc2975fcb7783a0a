# %% [markdown]
# # 03 — Maximum likelihood vs kernel density estimation
#
# *Runs in about 45 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Two ways to turn samples into a density. **MLE** picks the member of a fixed family that
# makes the data most likely, $\hat\theta = \arg\max_\theta \sum_i \log p_\theta(x^{(i)})$ —
# for a Gaussian, the sample mean and variance. **KDE** keeps every point and smooths it,
# $\hat p_h(x) = \frac1n\sum_i K_h(x - x^{(i)})$: no family to be wrong about, but a bandwidth
# $h$ to choose and a hunger for data that explodes with the dimension.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
from sklearn.neighbors import KernelDensity

import ppgen
from ppgen.models import KDE, Gaussian

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
F64 = torch.float64

# %% [markdown]
# ## One data set, two estimators
# `bimodal1d` is $0.3\,\mathcal N(-2, 0.5^2) + 0.7\,\mathcal N(1.5, 0.8^2)$. The Gaussian MLE
# is the best single bump — and a single bump is the wrong shape. We score every fit by its
# mean log-density on held-out points; the true density gives the ceiling.

# %%
train, test = ppgen.data.load("bimodal1d", "train"), ppgen.data.load("bimodal1d", "test")
truth = ppgen.data.datasets()["bimodal1d"].log_prob
fits = {
    "Gaussian (MLE)": ppgen.fit(Gaussian(dim=1), train, method="exact"),
    "KDE scott": ppgen.fit(KDE("scott"), train, method="exact"),
    "KDE silverman": ppgen.fit(KDE("silverman"), train, method="exact"),
    "KDE cv": ppgen.fit(KDE("cv"), train, method="exact"),
    "KDE cv, Epanechnikov": ppgen.fit(KDE("cv", kernel="epanechnikov"), train, method="exact"),
}
rows = [{"model": "true density", "h": float("nan"), "test loglik": float(truth(test).mean())}]
for name, fit in fits.items():
    h = float(fit.params["bandwidth"]) if "bandwidth" in fit.params else float("nan")
    rows.append({"model": name, "h": h, "test loglik": fit.score(test)})
print(pd.DataFrame(rows).round(4).to_string(index=False))

grid = torch.linspace(-5, 5, 500, dtype=F64)[:, None]
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(train[:, 0].numpy(), bins=40, density=True, alpha=0.3, color="gray", label="train")
ax.plot(grid[:, 0].numpy(), truth(grid).exp().numpy(), "k--", label="truth")
for name in ("Gaussian (MLE)", "KDE cv"):
    ax.plot(grid[:, 0].numpy(), fits[name].log_prob(grid).exp().numpy(), label=name)
ax.legend(fontsize=8)
fig.savefig(FIGURES / "03_mle_vs_kde.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## The bandwidth on the 11-point toy sample
# $h = 0.15$ puts a narrow spike on every point; $h = 0.60$ blurs them into one smooth hill.
# Leave-one-out cross-validation scores each $h$ by how well the other ten points predict the
# one left out, $\frac1n\sum_j \log \hat p_{h,-j}(x^{(j)})$, and picks the best.

# %%
toy = ppgen.data.load("toy11")
probe = torch.tensor([[-2.3], [-1.0], [0.0], [0.6]], dtype=F64)
for h in (0.15, 0.60):
    kde = ppgen.fit(KDE(h), toy, method="exact")
    values = ", ".join(f"{v:.3f}" for v in kde.log_prob(probe).exp().tolist())
    print(f"h = {h:.2f}: p(x) at x = -2.3, -1.0, 0.0, 0.6 -> {values}")
h_grid = torch.logspace(-1.5, 0.5, 41, dtype=F64)
loo = KDE("cv").loo_log_likelihood(toy, h_grid)
cv = ppgen.fit(KDE("cv", grid=h_grid), toy, method="exact")
print(
    f"LOO log-lik: h=0.15 -> {float(KDE().loo_log_likelihood(toy, [0.15])):.3f}, "
    f"h=0.60 -> {float(KDE().loo_log_likelihood(toy, [0.60])):.3f}, "
    f"best h = {float(cv.params['bandwidth']):.3f} -> {float(loo.max()):.3f}"
)
for rule in ("scott", "silverman"):
    print(f"{rule:9s} rule: h = {float(ppgen.fit(KDE(rule), toy, method='exact').params['bandwidth']):.3f}")

t = torch.linspace(-3.5, 3.5, 600, dtype=F64)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for h, style in ((0.15, "-"), (0.60, "-"), (float(cv.params["bandwidth"]), "--")):
    kde = ppgen.fit(KDE(h), toy, method="exact")
    axes[0].plot(t[:, 0].numpy(), kde.log_prob(t).exp().numpy(), style, label=f"h = {h:.2f}")
axes[0].plot(toy[:, 0].numpy(), torch.zeros(11).numpy(), "k|", markersize=12)
axes[0].legend()
axes[0].set_title("KDE of the 11-point sample")
axes[1].semilogx(h_grid.numpy(), loo.numpy())
axes[1].axvline(float(cv.params["bandwidth"]), color="k", ls="--")
axes[1].set_xlabel("h")
axes[1].set_title("leave-one-out log-likelihood")
fig.savefig(FIGURES / "03_toy11_bandwidth.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## A pitfall: rules of thumb must scale with the data
# Scott's and Silverman's rules are *relative* to the data's spread. ppgen multiplies by it
# (as scipy does); scikit-learn's `bandwidth="scott"` returns the bare factor $n^{-1/(d+4)}$,
# so the same data in millimetres instead of metres gets a bandwidth 1000 times too small.

# %%
for scale in (1.0, 1000.0):
    ours = float(ppgen.fit(KDE("scott"), train * scale, method="exact").params["bandwidth"])
    theirs = KernelDensity(bandwidth="scott").fit((train * scale).numpy()).bandwidth_
    print(f"data x {scale:6.0f}: ppgen scott h = {ours:10.4f}   scikit-learn scott h = {theirs:.4f}")

# %% [markdown]
# ## The curse of dimensionality
# A box of side 0.2 around a point covers $0.2^d$ of the unit cube: 20% in 1-D, one part in
# ten million in 10-D. Local averaging then finds no neighbours unless $n$ grows like
# $5^d$. We check the fraction by Monte Carlo and watch a KDE fall behind the true density
# as $d$ grows at fixed $n$ (data $\mathcal N(0, I_d)$, bandwidth by cross-validation).

# %%
dims = (1, 2, 4, 8) if FAST else (1, 2, 4, 8, 16, 32)
n_train = 300 if FAST else 2000
rows = []
g = torch.Generator().manual_seed(0)
for d in dims:
    u = torch.rand(200_000, d, generator=g, dtype=F64)
    inside = float(((u - 0.5).abs() < 0.1).all(1).double().mean())
    xd = torch.randn(n_train, d, generator=g, dtype=F64)
    xt = torch.randn(1000, d, generator=g, dtype=F64)
    fit = ppgen.fit(KDE("cv", grid=torch.logspace(-1.5, 0.7, 30, dtype=F64)), xd, method="exact")
    true = float(torch.distributions.Normal(0.0, 1.0).log_prob(xt).sum(1).mean())
    score = fit.score(xt)
    rows.append(
        {
            "d": d,
            "0.2^d": 0.2**d,
            "MC fraction in box": inside,
            "KDE h": float(fit.params["bandwidth"]),
            "KDE test loglik": score,
            "true loglik": true,
            "gap per dim": (true - score) / d,
        }
    )
print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"))

frame = pd.DataFrame(rows)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].semilogy(frame["d"], frame["0.2^d"], "o-")
axes[0].set_title("share of the cube within ±0.1 of its centre")
axes[0].set_xlabel("d")
axes[1].plot(frame["d"], frame["true loglik"] - frame["KDE test loglik"], "o-")
axes[1].set_title(f"KDE's held-out log-lik deficit (n = {n_train})")
axes[1].set_xlabel("d")
fig.savefig(FIGURES / "03_curse_of_dimensionality.png", dpi=90, bbox_inches="tight")

# %%
print(f"tutorial 03 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
