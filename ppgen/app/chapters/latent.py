"""Tour chapter "latent": mixtures as hidden causes, EM via responsibilities (the source's
worked example), EM vs SVI vs NUTS on one story, a Bernoulli mixture of digits, and
factor analysis / pPCA as the VAE's linear ancestors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyro.distributions as dist
import torch

import ppgen
from ppgen.app.tour_context import TourContext
from ppgen.models import PPCA, BernoulliMixture, FactorAnalysis, Gaussian, GaussianMixture


def run(ctx: TourContext) -> None:
    import matplotlib.pyplot as plt

    f64 = {"dtype": torch.float64}
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors throughout: one thread is fastest
    try:
        # --- the worked example -------------------------------------------------------
        toy = GaussianMixture(2, dim=1, covariance="spherical").double()
        toy.set_params(pi=torch.tensor([0.6, 0.4], **f64), mu=torch.tensor([[-1.0], [2.0]], **f64))
        r = toy.responsibilities([[0.0]])[0]
        ctx.number("worked_example_responsibilities", [round(float(v), 4) for v in r])
        ctx.text(
            "A mixture says: pick a hidden cause k with probability π_k, then draw x from component k. "
            "EM's E-step asks the reverse question with Bayes' rule. The source's worked example "
            f"(π=(0.6,0.4), μ=(−1,2), σ=1, x=0) gives responsibilities r=({r[0]:.3f}, {r[1]:.3f}) from "
            "the library's own GaussianMixture.responsibilities — the text's (0.87, 0.13)."
        )

        # --- Old Faithful: one Gaussian vs two, EM vs SVI vs NUTS -----------------------
        train, test = ppgen.data.load("faithful", "train"), ppgen.data.load("faithful", "test")
        center, spread = train.mean(0), train.std(0)
        train, test = (train - center) / spread, (test - center) / spread
        one = ppgen.fit(Gaussian(dim=2), train, method="exact")
        em = ppgen.fit(
            GaussianMixture(2, covariance="diag"), train, method="em", seed=ctx.seed, progress=False
        )
        steps = ctx.pick(150, 300, 1000)
        start = GaussianMixture(2, 2, "diag").double().initialize(train, init="kmeans++", seed=ctx.seed)
        svi = ppgen.fit(start, train, method="svi", num_steps=steps, lr=0.05, seed=ctx.seed, progress=False)
        naive = ppgen.fit(
            GaussianMixture(2, 2, "diag"), train, method="svi", num_steps=steps, lr=0.05, progress=False
        )
        bayes = ppgen.bayesian(
            GaussianMixture(2, 2, "diag").double(),
            pi=dist.Dirichlet(torch.ones(2, **f64)),
            mu=dist.Normal(torch.zeros(2, 2, **f64), 3.0).to_event(2),
            scale=dist.LogNormal(torch.zeros(2, 2, **f64), 1.0).to_event(2),
        )
        draws = ctx.pick(100, 150, 500)
        nuts = ppgen.fit(
            bayes, train, method="mcmc", num_samples=draws, warmup_steps=draws, seed=ctx.seed, progress=False
        )
        fits = [one, em, naive, svi, nuts]
        names = [
            "Gaussian",
            "mixture",
            "mixture, symmetric start (known failure)",
            "mixture (k-means++ start)",
            "Bayesian mixture",
        ]
        table = ppgen.compare(fits, test, names=names)
        ctx.table(
            table[["model", "method", "train_loglik", "test_loglik", "elpd_loo", "seconds"]],
            "Old Faithful (standardised): one Gaussian vs a 2-component diagonal mixture fitted by EM, "
            "SVI (z enumerated; from a symmetric start and from k-means++) and NUTS",
        )
        ctx.text(
            "The story marks z for parallel enumeration, so SVI with the model's empty guide maximises "
            "the exact log-likelihood, and NUTS samples the globals with z summed out. Naive SVI from a "
            "symmetric start (all means equal) never separates the components and collapses to one "
            "Gaussian; starting from k-means++ (EM's default) it reaches the EM optimum."
        )
        for fit, label in zip(fits, names):
            kind = "estimate" if fit.method == "mcmc" else "exact"
            note = "posterior predictive" if fit.method == "mcmc" else ""
            if "known failure" in label:
                note = "collapses to one Gaussian: start SVI from initialize(), as the README says"
            ctx.zoo_row(
                model=label,
                method=fit.method,
                data="faithful (standardised)",
                heldout_loglik=fit.score(test),
                kind=kind,
                seconds=fit.elapsed,
                note=note,
            )
        ctx.number("faithful_test_loglik", {"gaussian": one.score(test), "em": em.score(test)})
        ctx.number("faithful_bic", {"gaussian": _bic(one, train, 5), "mixture": em.model.bic(train)})

        # EM trajectory from a random start.
        model = GaussianMixture(2, dim=2).double().initialize(train, init="random", seed=3)
        trajectory = []
        with torch.no_grad():
            for _ in range(60):
                resp, loglik = model.e_step(train)
                trajectory.append(float(loglik.mean()))
                model.m_step(train, resp)
        ctx.number("em_monotone", bool(np.all(np.diff(trajectory) >= -1e-9)))
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(trajectory, marker=".")
        ax.set(xlabel="EM iteration", ylabel="mean log-likelihood")
        ctx.figure(
            fig, "EM from a random start: a plateau near the symmetric saddle, then a climb; never down"
        )

        # --- Bernoulli mixture of binarized digits ------------------------------------
        bin_train, bin_test = (
            ppgen.data.load("digits-binary", "train"),
            ppgen.data.load("digits-binary", "test"),
        )
        bern = ppgen.fit(BernoulliMixture(10), bin_train, method="em", seed=ctx.seed, progress=False)
        ctx.zoo_row(
            model="BernoulliMixture(10)",
            method="em",
            data="digits-binary",
            heldout_loglik=bern.score(bin_test),
            kind="exact",
            seconds=bern.elapsed,
        )
        fig, axes = plt.subplots(1, 10, figsize=(12, 1.5))
        for ax, k in zip(axes, bern.params["pi"].argsort(descending=True)):
            ax.imshow(bern.params["probs"][k].reshape(8, 8).numpy(), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
        ctx.figure(
            fig, f"Bernoulli mixture components (K=10), held-out NLL {-bern.score(bin_test):.1f} nats/image"
        )

        # --- factor analysis and pPCA on dequantised digits ---------------------------
        gen = torch.Generator().manual_seed(ctx.seed)
        grey_train, grey_test = ppgen.data.load("digits", "train"), ppgen.data.load("digits", "test")
        grey_train = grey_train + torch.rand(grey_train.shape, generator=gen, **f64) / 16
        grey_test = grey_test + torch.rand(grey_test.shape, generator=gen, **f64) / 16
        rows = []
        for q in ctx.pick([2, 5, 10], [1, 2, 5, 10, 20], [1, 2, 5, 10, 20]):
            ppca = ppgen.fit(PPCA(q), grey_train, method="exact")
            fa = ppgen.fit(FactorAnalysis(q), grey_train, method="em", tol=1e-4, max_iter=300, progress=False)
            rows.append({"q": q, "pPCA (exact)": ppca.score(grey_test), "FA (EM)": fa.score(grey_test)})
        frame = pd.DataFrame(rows)
        ctx.table(frame, "Held-out log-likelihood per digit image (dequantised) vs number of factors")
        best = rows[-1]
        for name, method in (("pPCA (exact)", "exact"), ("FA (EM)", "em")):
            ctx.zoo_row(
                model=f"{name.split()[0]}(q={best['q']})",
                method=method,
                data="digits (dequantised)",
                heldout_loglik=best[name],
                kind="exact",
                seconds=0.0,
            )
        ctx.text(
            "Factor analysis is a VAE with a linear decoder: z ~ N(0, I), x = μ + Wz + ε. Its marginal "
            "N(μ, WWᵀ + Ψ) and posterior are exact, so EM is closed form and pPCA (Ψ = σ²I) even has a "
            "closed-form MLE. A per-pixel noise level (FA) beats one shared σ² (pPCA) on digits."
        )
    finally:
        torch.set_num_threads(before)


def _bic(fit, x, n_params: int) -> float:
    return -2 * fit.score(x) * x.shape[0] + n_params * float(np.log(x.shape[0]))
