# %% [markdown]
# # 01 — Probability building blocks
#
# *Runs in about 5 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Three things come back in every generative model: probabilities of events (PMF, PDF, CDF),
# the bookkeeping between joint, marginal and conditional distributions, and replacing
# integrals by averages over samples (Monte Carlo — which is why minibatches work).
# Each section computes a number two ways and prints both.

# %%
import math
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import ppgen
from ppgen.measures import probability as P

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# ## PMF vs PDF: a histogram two ways
# The same counts can be read as a PMF (probability per bin, sums to 1) or as a density
# (probability per unit length, *integrates* to 1). A density value can exceed 1; a
# probability cannot. `bimodal1d` has a known true density to compare against.

# %%
x = ppgen.data.load("bimodal1d")
truth = ppgen.data.datasets()["bimodal1d"].log_prob
pmf, edges = P.histogram(x, bins=30)
dens, _ = P.histogram(x, bins=30, density=True)
width = float(edges[1] - edges[0])
print(
    f"bin width {width:.3f}: sum of PMF = {float(pmf.sum()):.3f}, "
    f"sum of density x width = {float((dens * edges.diff()).sum()):.3f}"
)
print(f"largest PMF value {float(pmf.max()):.3f}, largest density value {float(dens.max()):.3f}")

grid = torch.linspace(-4.5, 4.5, 400, dtype=torch.float64)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].bar(edges[:-1].numpy(), pmf.numpy(), width=width, align="edge", alpha=0.6)
axes[0].set_title("histogram as a PMF (bars sum to 1)")
axes[1].bar(edges[:-1].numpy(), dens.numpy(), width=width, align="edge", alpha=0.6, label="density histogram")
axes[1].plot(grid[:, 0].numpy(), truth(grid).exp().numpy(), "k", label="true p(x)")
axes[1].set_title("as a density (area = 1)")
axes[1].legend()
fig.savefig(FIGURES / "01_pmf_vs_pdf.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## The CDF and quantiles
# $F(t) = P(X \le t)$ turns interval probabilities into differences,
# $P(a < X \le b) = F(b) - F(a)$. The empirical CDF $\widehat F_n$ estimates it by counting.

# %%
a, b = -1.0, 2.0
t = torch.tensor([a, b], dtype=torch.float64)
F_hat = P.ecdf(x, t)
fine = torch.linspace(a, b, 20001, dtype=torch.float64)[:, None]
exact = float(torch.trapezoid(truth(fine).exp(), fine[:, 0]))
print(f"P({a} < X <= {b}): empirical CDF {float(F_hat[1] - F_hat[0]):.4f}, true (integral) {exact:.4f}")
print("empirical quartiles:", [round(v, 3) for v in P.quantile(x, [0.25, 0.5, 0.75]).tolist()])

# %% [markdown]
# ## Joint, marginal, conditional
# Discrete: a table $p(x, y)$; the marginal sums the other variable out and the conditional
# renormalises one slice. Continuous: for a bivariate Gaussian both have closed forms, which
# we check against samples that land near the conditioning value.

# %%
joint = torch.tensor([[0.10, 0.20, 0.05], [0.30, 0.15, 0.20]], dtype=torch.float64)
print("p(x) =", [round(v, 3) for v in P.marginal(joint, 0).tolist()], end="  ")
print("p(y) =", [round(v, 3) for v in P.marginal(joint, 1).tolist()])
print("p(x | y=2) =", [round(v, 3) for v in P.conditional(joint, given=1, value=2).tolist()])

loc = torch.tensor([0.0, 1.0], dtype=torch.float64)
cov = torch.tensor([[1.0, 0.8], [0.8, 2.0]], dtype=torch.float64)
mean_c, cov_c = P.gaussian_conditional(loc, cov, [1], [2.0])
n = 200_000 if FAST else 2_000_000
draws = torch.distributions.MultivariateNormal(loc, cov).sample((n,))
near = draws[(draws[:, 1] - 2.0).abs() < 0.02, 0]
print(
    f"x0 | x1 = 2: closed form mean {float(mean_c):.3f}, var {float(cov_c):.3f}; "
    f"from {near.numel()} samples with |x1 - 2| < 0.02: "
    f"mean {float(near.mean()):.3f}, var {float(near.var()):.3f}"
)

# %% [markdown]
# ## Monte Carlo: integrals become averages
# $\mathbb E[h(X)] \approx \frac1n\sum_i h(x^{(i)})$ with standard error $\mathrm{sd}(h)/\sqrt n$.
# For $X \sim$ `bimodal1d`, $\mathbb E[X^2] = \sum_k \pi_k(\mu_k^2 + \sigma_k^2)$; the error bar
# shrinks like $1/\sqrt n$ and covers the truth about 95% of the time.

# %%
true_second = 0.3 * (4 + 0.25) + 0.7 * (1.5**2 + 0.64)
for n in (100, 1000, 10000) if FAST else (100, 1000, 10000, 100000):
    est = P.monte_carlo(lambda v: v[:, 0] ** 2, ppgen.data.generate("bimodal1d", n, seed=1))
    lo, hi = est.interval()
    print(f"n={n:>6}: E[X^2] ~ {est}  95% interval [{lo:.3f}, {hi:.3f}]  truth {true_second:.3f}")
repeats = 100 if FAST else 1000
covered = 0
for s in range(repeats):
    low, high = P.monte_carlo(
        lambda v: v[:, 0] ** 2, ppgen.data.generate("bimodal1d", 200, seed=s)
    ).interval()
    covered += low <= true_second <= high
print(f"coverage of the 95% interval over {repeats} repeats (n=200 each): {covered / repeats:.2f}")

# %% [markdown]
# ## Why minibatches work
# The loss is an average over data, so a minibatch average is a Monte Carlo estimate of it —
# and so is its gradient. Over a shuffled partition into equal batches the batch gradients
# average to the full gradient *exactly*; any single batch is noisy but unbiased.

# %%
mu = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
log_sigma = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)


def nll(v: torch.Tensor) -> torch.Tensor:
    """Per-example negative log-likelihood of N(mu, sigma²)."""
    return -torch.distributions.Normal(mu, log_sigma.exp()).log_prob(v).sum(-1)


full, batches = P.minibatch_gradients(nll, [mu, log_sigma], x, batch_size=50)
print("full-data gradient      ", [round(v, 6) for v in full.tolist()])
print("mean of 20 batch grads  ", [round(v, 6) for v in batches.mean(0).tolist()])
print("spread of single batches", [round(v, 4) for v in batches.std(0).tolist()])
print(f"max |mean - full| = {float((batches.mean(0) - full).abs().max()):.2e}")
print(
    f"({math.sqrt(batches.shape[0]):.1f}x less noise in the mean of {batches.shape[0]} batches than in one)"
)

# %%
print(f"tutorial 01 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
