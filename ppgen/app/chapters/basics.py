"""Tour chapter "data": from a dataset to a distribution — the embedded data, the empirical
distribution (sampling = memorisation), CDFs and Monte Carlo error bars."""

from __future__ import annotations

import torch

import ppgen
from ppgen.app.tour_context import TourContext
from ppgen.measures import probability as P
from ppgen.models import KDE, Empirical


def run(ctx: TourContext) -> None:
    import matplotlib.pyplot as plt

    table = ppgen.data.registry_table()
    ctx.text(
        "Every dataset ships inside ppgen (or scikit-learn): real ones (Old Faithful, 8x8 digits, the "
        "source text's 11-point sample) and synthetic ones whose true density is known, so a model's "
        "held-out log-likelihood can be compared with the ceiling."
    )
    ctx.table(table[["name", "shape", "kind", "true log_prob", "labels", "licence"]], "Embedded datasets")
    ctx.number("n_datasets", len(table))

    x = ppgen.data.load("faithful")
    empirical = ppgen.fit(Empirical(), x, method="exact", seed=ctx.seed)
    kde = ppgen.fit(KDE("scott", covariance="full"), x, method="exact")
    m = ctx.pick(500, 5000, 5000)
    copies, fresh = empirical.sample(m, seed=ctx.seed), kde.sample(m, seed=ctx.seed)
    share = lambda s: float((s[:, None, :] == x[None]).all(-1).any(1).double().mean())  # noqa: E731
    ctx.number("empirical_share_copies", share(copies))
    ctx.number("kde_share_copies", share(fresh))
    ctx.number("p_waiting_over_70", empirical.model.probability(lambda v: v[:, 1] > 70))
    ctx.text(
        f"The empirical distribution of the 272 eruptions puts mass 1/272 on each. Sampling it "
        f"returns training points only ({share(copies):.0%} of {m} draws are exact copies); a KDE — "
        f"the same story plus kernel noise — returns new points ({share(fresh):.0%} copies)."
    )
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True, sharey=True)
    for ax, sample, title in ((axes[0], copies, "empirical: copies"), (axes[1], fresh, "KDE: new points")):
        ax.scatter(*sample.numpy().T, s=6, alpha=0.3)
        ax.scatter(*x.numpy().T, s=4, c="k")
        ax.set_title(title)
    ctx.figure(fig, "Samples (colour) over the data (black)")

    data = ppgen.data.load("bimodal1d")
    truth = ppgen.data.datasets()["bimodal1d"].log_prob
    fine = torch.linspace(-1.0, 2.0, 20001, dtype=torch.float64)[:, None]
    exact = float(torch.trapezoid(truth(fine).exp(), fine[:, 0]))
    F = P.ecdf(data, torch.tensor([-1.0, 2.0], dtype=torch.float64))
    ctx.number("interval_prob_ecdf", float(F[1] - F[0]))
    ctx.number("interval_prob_true", exact)
    rows = []
    true_second = 0.3 * (4 + 0.25) + 0.7 * (1.5**2 + 0.64)
    for n in (100, 1000, 10000):
        est = P.monte_carlo(lambda v: v[:, 0] ** 2, ppgen.data.generate("bimodal1d", n, seed=ctx.seed + 1))
        rows.append({"n": n, "estimate": est.estimate, "std. error": est.stderr, "truth": true_second})
    import pandas as pd

    ctx.table(
        pd.DataFrame(rows), "Monte Carlo estimate of E[X²] for bimodal1d: the error bar shrinks as 1/√n"
    )
    ctx.text(
        f"P(-1 < X ≤ 2) from the empirical CDF of 1000 draws: {float(F[1] - F[0]):.3f}; by integrating "
        f"the true density: {exact:.3f}."
    )
