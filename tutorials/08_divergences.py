# %% [markdown]
# # 08 — f-divergences, mode covering vs mode seeking, and variational bounds
#
# *Runs in about 40 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# Learning a generative model means choosing a discrepancy $D(P_{\text{data}}\,\|\,P_\theta)$
# and making it small. The **f-divergences** form one family:
#
# $$D_f(P\|Q) = \int q(x)\, f\!\left(\frac{p(x)}{q(x)}\right) dx, \qquad f \text{ convex},\ f(1)=0.$$
#
# Their convex conjugates $f^*(t) = \sup_u\,(tu - f(u))$ turn every member into a bound that
# only needs *samples*:
#
# $$D_f(P\|Q) \;\ge\; \mathbb E_{P}[T(x)] - \mathbb E_{Q}[f^*(T(x))] \quad\text{for every critic } T,$$
#
# with equality at $T^* = f'(p/q)$. This script walks through the catalog in
# `ppgen.divergences`, shows why the *direction* of KL matters, and watches a trained critic's
# bound climb to the true divergence.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

import ppgen
from ppgen.measures import divergences
from ppgen.models import Gaussian, MLPCritic

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)  # small networks: one thread beats two fighting over a busy CPU

# %% [markdown]
# ## The catalog: $f$, $f^*$ and the output activation $g_f$
# A critic network outputs any real number $v$; $g_f$ squashes it into the domain where $f^*$
# is finite (the f-GAN paper's table).

# %%
rows = []
for name in divergences.names():
    d = divergences.get(name)
    rows.append({"name": name, "divergence": d.formula, "dom f*": f"({d.domain[0]:.3g}, {d.domain[1]:.3g})"})
print(pd.DataFrame(rows).to_string(index=False))

fig, axes = plt.subplots(1, 3, figsize=(14, 4))
u = torch.linspace(0.02, 4, 400, dtype=torch.float64)
v = torch.linspace(-4, 4, 400, dtype=torch.float64)
for name in divergences.names():
    d = divergences.get(name)
    axes[0].plot(u, d.f(u), label=name)
    t = d.activation(v)
    axes[1].plot(t, d.conjugate(t), label=name)
    axes[2].plot(v, t, label=name)
axes[0].set(title="generator f(u)", xlabel="u = p/q", ylim=(-1, 4))
axes[1].set(title="conjugate f*(t) on g_f(ℝ)", xlabel="t", ylim=(-2, 6), xlim=(-4, 4))
axes[2].set(title="activation g_f(v)", xlabel="critic output v", ylim=(-4, 4))
axes[0].legend(fontsize=7)
fig.savefig(FIGURES / "08_catalog.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## Closed forms agree with each other
# Between two discrete distributions every divergence is a finite sum; between two Gaussians
# KL has a closed form, and a Monte Carlo average of $f(p/q)$ under $Q$ estimates any of them.

# %%
p, q = torch.tensor([0.1, 0.2, 0.7]), torch.tensor([0.3, 0.3, 0.4])
print({name: round(divergences.discrete(name, p, q), 4) for name in divergences.names()})
P = Gaussian(dim=1, loc=torch.tensor([0.0]), scale_tril=torch.tensor([[1.0]]))
Q = Gaussian(dim=1, loc=torch.tensor([1.0]), scale_tril=torch.tensor([[1.5]]))
exact_kl = float(divergences.kl_gaussians([0.0], [[1.0]], [1.0], [[2.25]]))
mc_kl, se = divergences.monte_carlo("kl", P, Q, n=20_000 if FAST else 200_000)
print(f"KL(N(0,1) ‖ N(1,1.5²)): closed form {exact_kl:.4f}, Monte Carlo {mc_kl:.4f} ± {se:.4f}")

# %% [markdown]
# ## Mode covering vs mode seeking
# Fit a single Gaussian to a two-bump target. Maximum likelihood minimises the forward
# $\mathrm{KL}(P_{\text{data}}\|P_\theta)$, which punishes $p_\theta \approx 0$ where the data
# live: the fit *covers* both bumps. The reverse $\mathrm{KL}(P_\theta\|P_{\text{data}})$ is
# weighted by $p_\theta$ and only punishes mass where the data are not: it *seeks* one mode. We
# fit the reverse direction without ever evaluating the model's density — adversarially, with
# the f-GAN loss `f:reverse_kl` — and compare with a direct reparameterised minimisation of
# $\mathbb E_{q}[\log q - \log p]$, which needs both densities. The adversarial route only sees
# the reverse KL through a learned critic, so its pull towards one mode is weaker and noisier:
# compare the printed numbers (and run without PPGEN_FAST for the longer fit).

# %%
n = 4000
bump = torch.randint(2, (n, 1)).float()
x = (bump * 2 - 1) * 2.0 + 0.5 * torch.randn(n, 1)
target = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(torch.tensor([0.5, 0.5])),
    torch.distributions.Normal(torch.tensor([-2.0, 2.0]), 0.5),
)

mle = ppgen.fit(Gaussian(dim=1), x, method="exact")
steps = 400 if FAST else 3000
start = Gaussian(dim=1, loc=torch.tensor([0.5]), scale_tril=torch.tensor([[1.0]]))
adv = ppgen.fit(
    start,
    x,
    method="adversarial",
    loss="f:reverse_kl",
    steps=steps,
    lr_g=1e-2,
    lr_d=2e-3,
    batch_size=256,
    critic=MLPCritic((64, 64)),
    seed=0,
    progress=False,
)

direct = Gaussian(dim=1, loc=torch.tensor([0.5]), scale_tril=torch.tensor([[1.0]]))
opt = torch.optim.Adam(direct.parameters(), lr=5e-2)
for _ in range(steps):
    opt.zero_grad()
    z = direct.rsample(256)
    loss = (direct.log_prob(z) - target.log_prob(z.squeeze(-1))).mean()  # KL(q ‖ p), reparameterised
    loss.backward()
    opt.step()

table = pd.DataFrame(
    [
        {
            "fit": "MLE = min KL(data‖model)",
            "mu": float(mle.params["loc"]),
            "sigma": float(mle.params["scale_tril"]),
        },
        {
            "fit": "adversarial f:reverse_kl",
            "mu": float(adv.params["loc"]),
            "sigma": float(adv.params["scale_tril"]),
        },
        {
            "fit": "direct min KL(model‖data)",
            "mu": float(direct.loc.detach()),
            "sigma": float(direct.scale_tril.detach()),
        },
    ]
)
print(table.round(3).to_string(index=False))

fig, ax = plt.subplots(figsize=(7, 4))
grid = torch.linspace(-5, 5, 400).unsqueeze(-1)
ax.hist(x.flatten(), bins=80, density=True, alpha=0.3, label="data")
ax.plot(grid, mle.log_prob(grid).exp(), label="MLE (covers)")
ax.plot(grid, adv.log_prob(grid).exp(), label="adversarial reverse KL")
with torch.no_grad():
    ax.plot(grid, direct.log_prob(grid).exp(), "--", label="direct reverse KL (seeks)")
ax.legend()
fig.savefig(FIGURES / "08_covering_vs_seeking.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## Variational lower bounds climb to the true divergence
# Train a critic to maximise $\mathbb E_P[g_f(V)] - \mathbb E_Q[f^*(g_f(V))]$ between
# $P = N(0,1)$ and $Q = N(1, 1.5^2)$. Because $\log p/q$ is quadratic here, a quadratic critic
# $V(x) = ax^2 + bx + c$ can reach the supremum; the truth comes from numerical quadrature.


# %%
class Quadratic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1).double()
        torch.nn.init.zeros_(self.lin.weight)
        torch.nn.init.zeros_(self.lin.bias)

    def forward(self, x):
        return self.lin(torch.cat([x, x**2], -1))


Pn = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
Qn = torch.distributions.Normal(torch.tensor(1.0, dtype=torch.float64), 1.5)
grid = torch.linspace(-15, 15, 60_001, dtype=torch.float64)
ratio = torch.exp(Pn.log_prob(grid) - Qn.log_prob(grid))
rows = []
fig, ax = plt.subplots(figsize=(7, 4))
for name in ["kl", "js", "hellinger", "pearson"]:
    d = divergences.get(name)
    truth = float(torch.trapezoid(Qn.log_prob(grid).exp() * d.f(ratio), grid))
    critic, curve = Quadratic(), []
    opt = torch.optim.Adam(critic.parameters(), lr=0.05)
    for _ in range(100 if FAST else 800):
        opt.zero_grad()
        bound = divergences.variational_bound(name, critic, Pn.sample((1024, 1)), Qn.sample((1024, 1)))
        (-bound).backward()
        opt.step()
        curve.append(float(bound.detach()))
    est, se, _ = divergences.variational_estimate(
        name,
        lambda k: Pn.sample((k, 1)),
        lambda k: Qn.sample((k, 1)),
        critic=critic,
        steps=1,
        n_eval=20_000 if FAST else 200_000,
        progress=False,
    )
    rows.append(
        {
            "divergence": name,
            "true": truth,
            "bound": est,
            "std error": se,
            "gap %": 100 * (truth - est) / truth,
        }
    )
    ax.plot(curve, label=name)
    ax.axhline(truth, ls=":", color=ax.lines[-1].get_color())
ax.set(xlabel="critic step", ylabel="minibatch bound", title="bounds (solid) vs truth (dotted)")
ax.legend()
fig.savefig(FIGURES / "08_bounds.png", dpi=90, bbox_inches="tight")
print(pd.DataFrame(rows).round(4).to_string(index=False))

# %%
print(f"tutorial 08 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
