# %% [markdown]
# # 07 — Variational autoencoders and the ELBO
#
# *Runs in about 30 s by default (measured on 2 shared cores). `PPGEN_FULL=1`
# changes nothing here: the default is the whole tutorial.
# `PPGEN_FAST=1` is the test suite's seconds-long smoke run. The last line prints the time taken.*
#
# A VAE is a latent-variable story with a neural decoder: $z \sim \mathcal N(0, I)$, then
# $x \sim p_\theta(x \mid z)$. Its likelihood $p_\theta(x) = \int p_\theta(x\mid z)p(z)\,dz$ has
# no closed form, so an encoder $q_\phi(z \mid x)$ proposes codes and we maximise the
# evidence lower bound
#
# $$\mathrm{ELBO}(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
#   - \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z)) \le \log p_\theta(x).$$
#
# In ppgen the decoder story is `VAE.model` (with `z` inside the `"data"` plate) and the
# encoder is `VAE.guide`; `ppgen.fit(vae, x, method="svi")` maximises the ELBO over both.

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
from ppgen.models import VAE, ConditionalVAE

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)  # small networks: one thread avoids contention on shared CPUs
torch.manual_seed(0)

# %% [markdown]
# ## A 2-d code for binarized digits
# A two-dimensional latent space is too small for the best likelihood, but we can look at it.

# %%
x_train, y_train = load("digits-binary", "train", dtype=torch.float32, return_labels=True)
x_test, y_test = load("digits-binary", "test", dtype=torch.float32, return_labels=True)
steps = 200 if FAST else 5000
fit = ppgen.fit(
    VAE(64, latent_dim=2, hidden=(256,)), x_train, method="svi", num_steps=steps, batch_size=128, lr=2e-3,
    seed=0, progress=not FAST,
)  # fmt: skip
vae = fit.model

# %% [markdown]
# ### ELBO = reconstruction − KL, term by term
# The reconstruction term rewards decoding the image back from a code drawn from $q$; the KL
# term is what it costs to move $q(z\mid x)$ away from the prior. Both are per image, in nats.

# %%
with torch.no_grad():
    reconstruction, kl = (torch.stack(t) for t in zip(*(vae.elbo_terms(x_test) for _ in range(20))))
    reconstruction, kl = reconstruction.mean(0), kl.mean(0)
print(f"held-out reconstruction E_q[log p(x|z)] = {float(reconstruction.mean()):.2f} nats")
print(f"held-out KL(q(z|x) || p(z))             = {float(kl.mean()):.2f} nats")
print(f"held-out ELBO                           = {float((reconstruction - kl).mean()):.2f} nats")

with torch.no_grad():
    loc, _ = vae.encode(x_test)
    recon = vae.reconstruct(x_test[:8])
    samples = vae.sample(8)
    ends = vae.encode(x_test[:2])[0]
    path = torch.stack([ends[0] + t * (ends[1] - ends[0]) for t in torch.linspace(0, 1, 8)])
    interpolation = vae.decode(path).mean
fig = plt.figure(figsize=(11, 4.5))
ax = fig.add_subplot(1, 2, 1)
points = ax.scatter(*loc.T, c=y_test, cmap="tab10", s=6)
fig.colorbar(points, ax=ax, label="digit")
ax.set_title("encoder means of held-out digits")
rows = [
    ("data", x_test[:8]),
    ("reconstruction", recon),
    ("samples", samples),
    ("interpolation", interpolation),
]
for r, (name, images) in enumerate(rows):
    for c in range(8):
        sub = fig.add_subplot(4, 16, r * 16 + 9 + c)
        sub.imshow(images[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        sub.axis("off")
        if c == 0:
            sub.set_title(name, fontsize=7, loc="left")
fig.savefig(FIGURES / "07_vae_latent.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Why reparameterise? Gradient variance
# Two unbiased estimators of $\nabla_\phi \mathbb E_{q_\phi}[f(z)]$: the reparameterisation
# trick differentiates $f(\mu + \sigma \odot \varepsilon)$; the score-function (REINFORCE)
# estimator uses $f(z)\nabla_\phi \log q_\phi(z)$ and needs no derivative of $f$ — at the cost
# of variance. We compare both on the same ELBO (reconstruction term; KL kept analytic).

# %%
batch = x_test[:64]
target = vae.encoder[-1].bias  # gradient w.r.t. the encoder's output bias


def reparameterised() -> torch.Tensor:
    rec, kl = vae.elbo_terms(batch)
    return torch.autograd.grad((rec - kl).mean(), target)[0]


def score_function() -> torch.Tensor:
    loc, scale = vae.encode(batch)
    q = torch.distributions.Normal(loc, scale)
    z = q.sample()
    rec = vae.decode(z).log_prob(batch)
    kl = 0.5 * (loc**2 + scale**2 - 1 - 2 * scale.log()).sum(1)
    surrogate = (rec.detach() * q.log_prob(z).sum(1) - kl).mean()
    return torch.autograd.grad(surrogate, target)[0]


repeats = 50 if FAST else 300
grads = {
    name: torch.stack([fn() for _ in range(repeats)])
    for name, fn in [("reparam", reparameterised), ("score", score_function)]
}
variance = {name: float(g.var(0).sum()) for name, g in grads.items()}
ratio = variance["score"] / variance["reparam"]
print(f"total gradient variance over {repeats} draws: reparameterised {variance['reparam']:.3g}")
print(f"                                    score function {variance['score']:.3g} ({ratio:.0f}x larger)")

# %% [markdown]
# ## Tighter bounds with importance weights (IWAE)
# Averaging $k$ importance weights inside the log gives
# $\mathrm{IWAE}_k = \log \frac1k \sum_j p(x, z_j)/q(z_j\mid x)$, with
# $\mathrm{ELBO} = \mathrm{IWAE}_1 \le \mathrm{IWAE}_k \le \mathrm{IWAE}_{k'} \to \log p(x)$.
# `vae.log_prob(x, k=1000)` is this estimate — a stochastic lower bound, reported with its $k$.

# %%
with torch.no_grad():
    for k in (1, 10, 100) if FAST else (1, 10, 100, 1000):
        print(f"k = {k:5d}: mean held-out IWAE bound {float(vae.iwae_bound(x_test, k).mean()):.3f} nats")

# %% [markdown]
# ## A conditional VAE draws the digit you ask for
# Feeding the label $y$ to encoder and decoder, $p_\theta(x \mid z, y)$, separates *what*
# digit (the label) from *how* it is written (the code). Data go in as a dict; the extra
# entry `y` is passed to the model and sliced with each minibatch.

# %%
cvae = ConditionalVAE(64, num_classes=10, latent_dim=2, hidden=(256,))
labelled = {"x": x_train, "y": y_train}
cfit = ppgen.fit(
    cvae, labelled, method="svi", num_steps=200 if FAST else 5000, batch_size=128, lr=2e-3, seed=0,
    progress=not FAST,
)  # fmt: skip
print(f"conditional VAE held-out IWAE (k=100): {cfit.model.log_prob(x_test, y_test, k=100).mean():.2f} nats")
fig, axes = plt.subplots(10, 8, figsize=(5, 6.5))
torch.manual_seed(2)
with torch.no_grad():
    z = torch.randn(8, 2)
    for digit in range(10):
        means = cfit.model.decode(z, torch.full((8,), digit)).mean
        for c in range(8):
            axes[digit, c].imshow(means[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[digit, c].axis("off")
fig.suptitle("same 8 codes z, labels 0-9 (decoder means)", fontsize=9)
fig.savefig(FIGURES / "07_cvae_digits.png", dpi=100, bbox_inches="tight")
print("figures saved to", FIGURES)

# %%
print(f"tutorial 07 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
