"""Tour chapter "deep": autoregressive models, normalizing flows and VAEs — exact likelihoods,
the change of variables, the ELBO and its importance-weighted tightening."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

import ppgen
from ppgen.app.tour_context import TourContext
from ppgen.data import load
from ppgen.models import MADE, VAE, BernoulliMixture, CharRNN, Flow
from ppgen.models.char_rnn import first_names


def run(ctx: TourContext) -> None:
    import matplotlib.pyplot as plt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread avoids contention on shared CPUs
    try:
        _digits(ctx, plt)
        _names(ctx)
        _flow(ctx, plt)
    finally:
        torch.set_num_threads(threads)


def _digits(ctx: TourContext, plt) -> None:
    x_train = load("digits-binary", "train", dtype=torch.float32)
    x_test = load("digits-binary", "test", dtype=torch.float32)
    steps = ctx.pick(300, 1500, 6000)
    k = ctx.pick(100, 500, 1000)
    rows, fits = [], {}

    def record(name, method, fit, kind, log_prob, note):
        with torch.no_grad():
            test = float(log_prob(x_test).mean())
        rows.append(
            {
                "model": name,
                "method": method,
                "test NLL (nats)": -test,
                "bits/pixel": -test / (64 * math.log(2)),
            }
        )
        ctx.zoo_row(
            model=name,
            method=method,
            data="digits-binary",
            heldout_loglik=test,
            kind=kind,
            seconds=round(fit.elapsed, 2),
            note=note,
        )

    mixture = ppgen.fit(
        BernoulliMixture(ctx.pick(10, 30, 30), 64), x_train.double(), method="em", seed=0, progress=False
    )
    record("BernoulliMixture", "em", mixture, "exact", lambda x: mixture.log_prob(x.double()), "EM")
    options = dict(num_steps=steps, batch_size=128, lr=1e-3, patience=20, seed=ctx.seed, progress=False)
    fits["made"] = ppgen.fit(MADE(64, hidden=(256,)), x_train, method="mle", **options)
    record("MADE", "mle", fits["made"], "exact", fits["made"].log_prob, "SVI with the empty guide = MLE")
    fits["vae"] = ppgen.fit(VAE(64, 16, hidden=(256,)), x_train, method="svi", **options)
    vae = fits["vae"].model
    record("VAE", "svi", fits["vae"], "estimate", lambda x: vae.log_prob(x, k=k), f"IWAE k={k}")
    ctx.table(pd.DataFrame(rows).round(3), "Held-out NLL on binarized digits (same 75/25 split)")
    ctx.number("digits_test_nll", {r["model"]: r["test NLL (nats)"] for r in rows})

    with torch.no_grad():
        bounds = {kk: float(vae.iwae_bound(x_test, kk).mean()) for kk in (1, 10, k)}
        reconstruction, kl = vae.elbo_terms(x_test)
        made = fits["made"].model
        start = time.perf_counter()
        made.log_prob(x_test)
        score = time.perf_counter() - start
        start = time.perf_counter()
        samples = made.sample(x_test.shape[0])
        sample = time.perf_counter() - start
    ctx.number("iwae_by_k", bounds)
    ctx.number("made_sample_over_score_time", sample / score)
    ctx.text(
        f"MADE scores {x_test.shape[0]} images in one pass ({score * 1e3:.0f} ms) but samples them pixel by "
        f"pixel, 64 passes ({sample * 1e3:.0f} ms, {sample / score:.0f}x). The VAE's ELBO splits into "
        f"reconstruction {float(reconstruction.mean()):.1f} nats minus KL {float(kl.mean()):.1f} nats; "
        "averaging importance weights tightens it: "
        + ", ".join(f"IWAE_{kk} = {v:.2f}" for kk, v in bounds.items())
        + " (a stochastic lower bound on log p(x), so the VAE row is an estimate)."
    )
    fig, axes = plt.subplots(2, 10, figsize=(9, 2))
    with torch.no_grad():
        vae_samples = vae.decode(torch.randn(10, 16)).mean
    for c in range(10):
        axes[0, c].imshow(np.asarray(samples[c].reshape(8, 8)), cmap="gray_r")
        axes[1, c].imshow(np.asarray(vae_samples[c].reshape(8, 8)), cmap="gray_r", vmin=0, vmax=1)
        axes[0, c].axis("off")
        axes[1, c].axis("off")
    ctx.figure(fig, "MADE samples (top) and VAE decoder means for z ~ N(0, I) (bottom)")


def _names(ctx: TourContext) -> None:
    model = CharRNN(max_len=12, hidden=64)
    x = model.encode(first_names())
    train, test = ppgen.data.train_test_split(x, 0.2, seed=ctx.seed)
    steps = ctx.pick(60, 400, 1500)
    fit = ppgen.fit(
        model, train, method="mle", num_steps=steps, batch_size=256, lr=5e-3, seed=ctx.seed, progress=False
    )
    with torch.no_grad():
        test_ll = float(fit.log_prob(test).mean())
    torch.manual_seed(ctx.seed)
    names = fit.model.decode(fit.model.sample(12, temperature=0.7))
    ctx.zoo_row(
        model="CharRNN (GRU)",
        method="mle",
        data="US first names",
        heldout_loglik=test_ll,
        kind="exact",
        seconds=round(fit.elapsed, 2),
        note="nats per name",
    )
    ctx.number("names_test_loglik", test_ll)
    ctx.text(
        f"A character-level GRU on {x.shape[0]} US Census first names: held-out log-likelihood "
        f"{test_ll:.2f} nats per name; samples at temperature 0.7: {', '.join(names)}."
    )


def _flow(ctx: TourContext, plt) -> None:
    moons = load("moons", "train")
    test = load("moons", "test")
    mean, std = moons.mean(0), moons.std(0)
    moons, test = (moons - mean) / std, (test - mean) / std
    fit = ppgen.fit(
        Flow(dim=2), moons, method="mle", num_steps=ctx.pick(100, 400, 1500), batch_size=256, lr=5e-3,
        seed=ctx.seed, progress=False,
    )  # fmt: skip
    flow = fit.model
    h = 0.05
    ticks = torch.arange(-4 + h / 2, 4, h, dtype=moons.dtype)
    with torch.no_grad():
        density = flow.log_prob(torch.cartesian_prod(ticks, ticks)).exp()
        test_ll = float(flow.log_prob(test).mean())
    mass = float(density.sum() * h * h)
    ctx.zoo_row(
        model="Flow (spline coupling)",
        method="mle",
        data="moons (standardised)",
        heldout_loglik=test_ll,
        kind="exact",
        seconds=round(fit.elapsed, 2),
        note="change of variables",
    )
    ctx.number("flow_moons_test_loglik", test_ll)
    ctx.number("flow_grid_mass", mass)
    ctx.text(
        f"A spline-coupling flow on two moons: held-out log-likelihood {test_ll:.3f} nats per point; the "
        f"density summed on a grid over [-4, 4]² gives {mass:.4f} — the change of variables keeps mass 1."
    )
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    side = ticks.numel()
    axes[0].imshow(
        np.asarray(density.reshape(side, side).T), origin="lower", extent=(-4, 4, -4, 4), cmap="magma"
    )
    axes[0].set_title("learned density")
    with torch.no_grad():
        axes[1].scatter(*flow.sample(800).T, s=3, alpha=0.5)
    axes[1].set_xlim(-4, 4)
    axes[1].set_ylim(-4, 4)
    axes[1].set_title("flow samples")
    ctx.figure(fig, "Spline-coupling flow fitted to two moons by maximum likelihood")
