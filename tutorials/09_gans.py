# %% [markdown]
# # 09 — GANs: pushforward generators, discriminators as density ratios, and Wasserstein critics
#
# *Runs in about 1–2 min by default (measured on 2 shared cores). `PPGEN_FULL=1`
# trains 128×128×128 networks for 3,000–4,000 steps per fit (default 64×64, 400–1,000 steps;
# over 10 min).
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# A GAN generator is the simplest possible story: draw noise $z \sim N(0, I)$ and push it
# through a network, $x = g_\theta(z)$. Its density has no closed form, so we train it with a
# second network: a discriminator (or critic) $D_\psi$ that tries to tell real from generated
# samples,
#
# $$\min_\theta \max_\psi\; \mathbb E_{P_{\text{data}}}[\log D_\psi(x)]
#   + \mathbb E_{z}[\log(1 - D_\psi(g_\theta(z)))].$$
#
# In ppgen this is `ppgen.fit(generator, x, method="adversarial", loss=...)`; the critic is the
# "adversarial guide" and comes back as `fit.critic`.

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.datasets import make_moons

import ppgen
from ppgen.app.tour_context import load_benchmark
from ppgen.inference.adversarial import log_density_ratio, toy_2d_recipe
from ppgen.measures.metrics import energy_distance, mode_coverage
from ppgen.models import Flow, Gaussian, MLPCritic, MLPGenerator

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.manual_seed(0)
torch.set_num_threads(1)  # the networks are tiny: one thread beats two fighting over a busy CPU
HIDDEN = (32, 32) if FAST else (128, 128, 128) if FULL else (64, 64)

# %% [markdown]
# ## A pushforward generator in one dimension
# Two bumps from one Gaussian: the generator must learn a map that sends most of $z$'s mass to
# $-2$ or $+2$ and little in between.

# %%
n = 4000
x1 = torch.cat([torch.randn(n // 2, 1) * 0.4 - 2, torch.randn(n // 2, 1) * 0.4 + 2])
gen1 = MLPGenerator(latent_dim=1, data_dim=1, hidden=HIDDEN)
fit1 = ppgen.fit(
    gen1,
    x1,
    method="adversarial",
    loss="non_saturating",
    steps=150 if FAST else 3000 if FULL else 1000,
    lr_g=1e-3,
    lr_d=1e-3,
    critic=MLPCritic(HIDDEN),
    seed=0,
    progress=False,
)
s1 = fit1.sample(4000)
print(
    f"1-D: data mean {x1.mean():.2f} sd {x1.std():.2f} | generated mean {s1.mean():.2f} sd {s1.std():.2f}, "
    f"fraction |x| > 1: data {(x1.abs() > 1).float().mean():.2f}, "
    f"generated {(s1.abs() > 1).float().mean():.2f}"
)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].hist(x1.flatten(), bins=80, density=True, alpha=0.5, label="data")
axes[0].hist(s1.flatten(), bins=80, density=True, alpha=0.5, label="generated")
axes[0].legend()
z = torch.linspace(-3, 3, 200).unsqueeze(-1)
with torch.no_grad():
    axes[1].plot(z, fit1.model.net(z))
axes[1].set(title="the learned pushforward x = g(z)", xlabel="z", ylabel="x")
fig.savefig(FIGURES / "09_pushforward_1d.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## Why the non-saturating loss: gradients when the discriminator is confident
# Write $D = \sigma(v)$. Early on a generated sample gets $v \ll 0$ ($D \approx 0$). The minimax
# generator loss $\log(1-\sigma(v))$ has slope $-\sigma(v) \to 0$ there — it *saturates* —
# while the non-saturating $-\log \sigma(v)$ has slope $-(1-\sigma(v)) \to -1$.

# %%
v = torch.tensor([-8.0, -4.0, -2.0, 0.0, 2.0], requires_grad=True)
rows = []
for name, loss in [("minimax", lambda v: -F.softplus(v)), ("non_saturating", lambda v: F.softplus(-v))]:
    (grad,) = torch.autograd.grad(loss(v).sum(), v)
    rows.append({"loss": name, **{f"D={torch.sigmoid(t):.4f}": float(g) for t, g in zip(v, grad)}})
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# ## The trained discriminator is a density-ratio estimator
# Hold the generator fixed at $N(1, 1.5^2)$ (`lr_g=0`) and train only the discriminator
# against data from $N(0,1)$. The optimum is $D^*(x) = p_{\text{data}}/(p_{\text{data}} + p_\theta)$,
# so its logit is $\log p_{\text{data}}(x) - \log p_\theta(x)$ — which we can check here because both
# densities are known.

# %%
x0 = torch.randn(20_000, 1, dtype=torch.float64)
fixed = Gaussian(dim=1, loc=torch.tensor([1.0]), scale_tril=torch.tensor([[1.5]])).double()
ratio_fit = ppgen.fit(
    fixed,
    x0,
    method="adversarial",
    loss="minimax",
    lr_g=0.0,
    lr_d=2e-3,
    steps=300 if FAST else 3000 if FULL else 1000,
    batch_size=512,
    critic=MLPCritic((64, 64), activation="tanh"),
    seed=0,
    progress=False,
)
grid = torch.linspace(-3, 4, 200, dtype=torch.float64).unsqueeze(-1)
N = torch.distributions.Normal
true_logit = (N(0.0, 1.0).log_prob(grid) - N(1.0, 1.5).log_prob(grid)).squeeze(-1)
logit = log_density_ratio(ratio_fit, grid)
central = grid.squeeze(-1).abs() < 1.96
err = (torch.sigmoid(logit) - torch.sigmoid(true_logit))[central].abs().max()
print(f"max |D(x) - D*(x)| on the central 95% of the data: {err:.3f}")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(grid, true_logit, label="true log p_data/p_θ")
ax.plot(grid, logit, "--", label="discriminator logit")
ax.legend()
fig.savefig(FIGURES / "09_density_ratio.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## Mode collapse and its cures on the 8-Gaussian ring
# Eight tight Gaussians (std 0.02) on a circle of radius 2. The standard protocol draws 2,500
# samples, assigns each to its nearest mode, calls it *high quality* within 3 std, and counts a
# mode as captured when it gets at least one such sample. Packing (`pack=m`: the critic judges
# m samples jointly, so a collapsed batch is easy to spot) and Wasserstein critics are the usual
# cures; `benchmarks/gan_modes.py` runs the full comparison over five seeds and two data draws.

# %%
angles = torch.arange(8) * torch.pi / 4
ring_means = 2 * torch.stack([angles.cos(), angles.sin()], 1)
ring = ring_means[torch.randint(8, (50_000,))] + 0.02 * torch.randn(50_000, 2)
steps = 100 if FAST else 4000 if FULL else 1000


# On 2-D data the default is the measured recipe (R1 penalty γ = 0.1 on the critic, samples from
# a moving average of the generator's weights); recipe="published" starts from the papers' rates.
annealed = dict(recipe="published", lr_g=1e-3, lr_d=1e-3, lr_schedule="linear")
recipes = {
    "default (2-D recipe: R1, EMA)": dict(loss="non_saturating"),
    "non_saturating, no R1/EMA": dict(loss="non_saturating", **annealed),
    "non_saturating pack=4": dict(loss="non_saturating", pack=4, **annealed),
    # hinge's 2-D recipe is the same with a plain critic: R1 instead of SNGAN's spectral norm
    "hinge (2-D recipe: R1, EMA)": dict(loss="hinge"),
    # WGAN-GP's measured 2-D recipe: n_critic = 5 as published, lr 1e-3 annealed, the toy λ = 0.1
    "wgan_gp (2-D recipe: λ=0.1, EMA)": dict(loss="wgan_gp"),
    "wgan (weight clipping)": dict(loss="wgan", recipe="published"),
}
rows, samples = [], {}
for label, recipe in recipes.items():
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=2, data_dim=2, hidden=HIDDEN)
    f = ppgen.fit(
        g, ring, method="adversarial", critic=MLPCritic(HIDDEN), steps=steps, seed=0, progress=False, **recipe
    )
    samples[label] = f.sample(2500)
    cover = mode_coverage(samples[label], ring_means, 0.02)
    rows.append(
        {
            "recipe": label,
            "modes (of 8)": cover["modes"],
            "high quality %": 100 * cover["high_quality"],
            "KL to uniform": cover["kl_uniform"],
            "energy distance": energy_distance(ring[:2500], samples[label]),
            "steps": steps,
            "seconds": f.elapsed,
        }
    )
print(f"trained just now, {steps} steps each, {'x'.join(map(str, HIDDEN))} networks:")
print(pd.DataFrame(rows).round(3).to_string(index=False))

# %% [markdown]
# Short runs undercount: WGAN-GP needs thousands of steps of 5 critic updates each to
# find all the modes. The full-length comparison — the default call (the measured 2-D recipes),
# 256×256×256 networks, five seeds × two data draws, the ring and a 5×5 grid — takes about an
# hour on two cores, so it is read from the last
# `make bench` run (`benchmarks/results.json`), with its date and the command that reproduces it.

# %%
quote = load_benchmark("gan_modes")
if quote is None:
    print("no benchmark results found: run `python benchmarks/gan_modes.py` (or `make bench`)")
else:
    summary = quote.results["gan_modes.json"]["summary"]
    quoted = pd.DataFrame(
        [
            {"data": key.split("/")[0], "loss": key.split("/")[1], "modes": v["modes"],
             "min": v.get("modes_min", v["modes"]), "runs": v.get("runs", 3),
             "high quality %": 100 * v["high_quality"], "KL to uniform": v["kl_uniform"],
             "steps": toy_2d_recipe(key.split("/")[1])["steps"], "seconds per fit": v["seconds"]}
            for key, v in summary.items()
        ]
    )  # fmt: skip
    print(f"quoted, not trained here ({quote.source()}); mean over seeds x data draws:")
    print(quoted.round(2).to_string(index=False))
fig, axes = plt.subplots(1, len(samples), figsize=(4 * len(samples), 4))
for ax, (label, s) in zip(axes, samples.items()):
    ax.scatter(*ring[:2500].T, s=2, alpha=0.3, label="data")
    ax.scatter(*s.T, s=2, alpha=0.3, label="generated")
    ax.set(title=label, xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
fig.savefig(FIGURES / "09_ring_modes.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ## The same game for an explicit model: a flow trained adversarially vs by MLE
# The adversarial backend needs only differentiable samples, so an explicit model whose sampler
# is reparameterised can be trained either way — and, unlike a GAN, scored by held-out
# log-likelihood. A flow's sampler ``x = f(z)`` is; we expose it as ``rsample``.


# %%
class ReparamFlow(Flow):
    def rsample(self, n: int) -> torch.Tensor:
        return self.forward(self.base().rsample((int(n),)))


moons, _ = make_moons(4000, noise=0.08, random_state=0)
moons = torch.tensor((moons - moons.mean(0)) / moons.std(0), dtype=torch.float32)
train, test = moons[:3000], moons[3000:]
flow_steps = 50 if FAST else 3000 if FULL else 400
mle = ppgen.fit(
    ReparamFlow(dim=2, num_layers=4),
    train,
    method="mle",
    num_steps=flow_steps,
    lr=3e-3,
    batch_size=256,
    seed=0,
    progress=False,
)
adv = ppgen.fit(
    ReparamFlow(dim=2, num_layers=4),
    train,
    method="adversarial",
    loss="non_saturating",
    steps=flow_steps,
    lr_g=1e-3,
    lr_d=1e-3,
    critic=MLPCritic(HIDDEN),
    seed=0,
    progress=False,
)
print(
    pd.DataFrame(
        [
            {
                "flow fitted by": "MLE",
                "held-out log-lik": mle.score(test),
                "energy distance": energy_distance(test, mle.sample(1000)),
            },
            {
                "flow fitted by": "adversarial",
                "held-out log-lik": adv.score(test),
                "energy distance": energy_distance(test, adv.sample(1000)),
            },
        ]
    )
    .round(3)
    .to_string(index=False)
)
print(
    "MLE maximises exactly what the held-out log-likelihood measures; the adversarial fit learns only "
    "through samples, so nothing keeps its density calibrated where the data are sparse (its held-out "
    f"log-likelihood is {mle.score(test) - adv.score(test):.1f} nats/point lower after {flow_steps} steps)."
)

# %%
print(f"tutorial 09 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
