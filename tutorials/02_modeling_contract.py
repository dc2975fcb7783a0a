# %% [markdown]
# # 02 — The modeling contract: explicit, implicit, pushforward
#
# *Runs in about 5 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# A generative model is a family $\{P_\theta\}$; learning picks $\theta$ so that $P_\theta$ is
# close to $P_{\text{data}}$. In ppgen every model is a Pyro program: a story that ends by
# emitting the data site `"x"` inside the `"data"` plate. What a backend can do with it depends
# on one capability: can the model evaluate $p_\theta(x)$ (explicit) or only sample (implicit)?
#
# The bridge between the two is the **pushforward**: draw simple noise $Z \sim P_Z$ and map
# it, $X = g_\theta(Z)$, so $P_\theta = (g_\theta)_\# P_Z$. If $g$ is invertible, change of
# variables gives the density
# $\log p(x) = \log p_Z(g^{-1}(x)) - \log\lvert\det \partial g/\partial z\rvert$; if not, we
# can still sample.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro.distributions as dist
import torch
from pyro import poutine

import ppgen
from ppgen.models import KDE, Gaussian, Pushforward

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
F64 = torch.float64

# %% [markdown]
# ## A story is a Pyro program
# Tracing a model shows its sites: the Gaussian observes `x` directly; the KDE first picks a
# training point `i` (a local latent, enumerated when scoring) and then adds kernel noise.

# %%
x = ppgen.data.load("faithful")
for model in (ppgen.fit(Gaussian(dim=2), x, method="exact").model, ppgen.fit(KDE(), x, method="exact").model):
    trace = poutine.trace(model.model).get_trace(n=3)
    sites = {
        name: tuple(site["value"].shape) for name, site in trace.nodes.items() if site["type"] == "sample"
    }
    print(f"{type(model).__name__:8s} sites {sites}; capabilities {sorted(model.capabilities)}")

# %% [markdown]
# ## The source text's sanity check: $g(z) = a z + b$
# With $Z \sim \mathcal N(0, 1)$, $X = aZ + b \sim \mathcal N(b, a^2)$. The density by change of
# variables, $p_Z((x-b)/a)/|a|$, equals the normal density exactly.

# %%
a, b = 2.0, 1.0
push = Pushforward.affine(torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64))
points = torch.tensor([[-3.0], [0.0], [1.0], [4.0]], dtype=F64)
by_change = push.log_prob(points)
closed = dist.Normal(torch.tensor(b, dtype=F64), abs(a)).log_prob(points[:, 0])
for p, u, v in zip(points[:, 0].tolist(), by_change.tolist(), closed.tolist()):
    print(f"x = {p:5.1f}: change of variables {u:.12f}   N(b, a^2) {v:.12f}")
print(f"max |difference| = {float((by_change - closed).abs().max()):.1e}")
samples = push.sample(4000 if FAST else 40000)
print(
    f"sample mean {float(samples.mean()):.3f} (b = {b}), "
    f"sample sd {float(samples.std()):.3f} (|a| = {abs(a)})"
)

# %% [markdown]
# ## An implicit model: same noise, non-invertible map
# $g(z) = \sin(3z) + z/2$ folds the line onto itself: it is easy to sample, but there is no
# single $g^{-1}(x)$, so the model has no tractable density. ppgen says so instead of
# returning a wrong number, and points to the methods that still work.

# %%
fold = Pushforward(lambda z: torch.sin(3 * z) + z / 2, dist.Normal(torch.tensor(0.0, dtype=F64), 1.0))
draws = fold.sample(4000 if FAST else 40000)
print("capabilities:", sorted(fold.capabilities) or "none (sampling only)")
try:
    fold.log_prob(draws[:3])
except ppgen.ImplicitModelError as err:
    print("log_prob ->", type(err).__name__ + ":", str(err)[:140], "...")

# %% [markdown]
# ## Explicit vs implicit on one figure
# For the affine map the histogram of samples and the density agree; for the folded map we
# only have the histogram.

# %%
grid = torch.linspace(-6, 8, 400, dtype=F64)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].hist(samples[:, 0].numpy(), bins=60, density=True, alpha=0.5, label="samples of 2z + 1")
axes[0].plot(
    grid[:, 0].numpy(), push.log_prob(grid).exp().numpy(), "k", label="density (change of variables)"
)
axes[0].legend(fontsize=8)
axes[0].set_title("explicit: sample and score")
axes[1].hist(draws[:, 0].numpy(), bins=60, density=True, alpha=0.5, color="C1")
axes[1].set_title("implicit: sin(3z) + z/2, sample only")
fig.savefig(FIGURES / "02_pushforward.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## What the contract buys: one `fit` call, methods chosen by capability
# Backends ask a model what it can do; the methods that apply are listed before any work.

# %%
for model in (
    Gaussian(dim=1),
    KDE(),
    ppgen.bayesian(Gaussian(dim=1), loc=dist.Normal(0.0, 10.0).expand([1]).to_event(1)),
):
    print(
        f"{type(model).__name__:8s} bayesian={model.is_bayesian!s:5s} "
        f"methods {ppgen.applicable_methods(model)}"
    )

# %%
print(f"tutorial 02 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
