"""Tour chapter: one Pyro program (Pyro's partially pooled baseball model) fitted by every method.

Efron & Morris's 18 players, 45 at-bats each: no pooling, complete pooling and James–Stein by
formula, then empirical Bayes (``method="mle"``), MAP and NUTS of one program, scored on the rest
of the season. Tutorial 11 is the long version (and adds the ruggedness regression).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch

import ppgen
from ppgen.app.tour_context import TourContext
from ppgen.errors import ConvergenceWarning


def partially_pooled_with_logit(at_bats, hits=None):
    """Pyro's baseball example, as written there: players' log-odds drawn around a shared mean."""
    num_players = at_bats.shape[0]
    loc = pyro.sample("loc", dist.Normal(-1, 1))
    scale = pyro.sample("scale", dist.HalfCauchy(scale=1))
    with pyro.plate("num_players", num_players):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


def run(ctx: TourContext) -> None:
    players = ppgen.data.load("baseball")
    early = {"at_bats": players["At-Bats"], "hits": players["Hits"]}
    rest = {"at_bats": players["RemainingAt-Bats"], "hits": players["SeasonHits"] - players["Hits"]}
    first = (players["Hits"] / players["At-Bats"]).to_numpy()
    truth = players["RemainingAverage"].to_numpy()
    k, y_bar = len(first), first.mean()
    shrink = 1 - (k - 3) * (y_bar * (1 - y_bar) / 45) / ((first - y_bar) ** 2).sum()  # James–Stein's c
    estimates = {
        "no pooling (each player's MLE)": first,
        "complete pooling": np.full(k, players["Hits"].sum() / players["At-Bats"].sum()),
        "James-Stein": y_bar + shrink * (first - y_bar),
    }
    steps = ctx.pick(200, 800, 3000)
    draws = ctx.pick(80, 200, 1000)
    quiet = {"seed": ctx.seed, "progress": False}
    fits, seconds = {}, {}
    for label, method, options in [
        ("empirical Bayes (mle)", "mle", {"num_steps": steps}),
        ("MAP", "map", {"num_steps": steps, "lr": 0.05}),
        ("full Bayes (NUTS)", "mcmc", {"num_samples": draws, "warmup_steps": draws}),
    ]:
        start = time.perf_counter()
        with warnings.catch_warnings():  # MAP's warning that it has no optimum: the text says it below
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[label] = ppgen.fit(partially_pooled_with_logit, early, method=method, **quiet, **options)
        seconds[label] = time.perf_counter() - start
    eb, map_, nuts = fits.values()
    estimates["empirical Bayes (mle)"] = torch.sigmoid(eb.draws["alpha"]).mean(0).numpy()
    estimates["MAP"] = torch.sigmoid(map_.params["alpha"]).detach().numpy()
    estimates["full Bayes (NUTS)"] = torch.sigmoid(nuts.draws["alpha"]).mean(0).numpy()

    at_bats = torch.tensor(rest["at_bats"].to_numpy(), dtype=torch.float32)
    hits = torch.tensor(rest["hits"].to_numpy(), dtype=torch.float32)
    rows = []
    for label, p in estimates.items():
        if label in fits:
            heldout = fits[label].score(rest)  # averages over the draws of each player's alpha
        else:  # a point estimate's plug-in binomial
            rate = torch.tensor(p, dtype=torch.float32)
            heldout = float(dist.Binomial(at_bats, probs=rate).log_prob(hits).mean())
        rows.append(
            {
                "estimator": label,
                "squared error": round(float(((p - truth) ** 2).sum()), 4),
                "held-out log predictive per player": round(heldout, 3),
                "seconds": round(seconds.get(label, 0.0), 2),
            }
        )
    for label, fit in fits.items():
        ctx.zoo_row(
            model="baseball program",
            method=fit.method,
            data="Efron-Morris, 18 players x 45 at-bats",
            heldout_loglik=fit.score(rest),
            kind="estimate",
            seconds=round(seconds[label], 3),
            note="rest of season; " + ("plug-in" if label == "MAP" else "averaged over alpha draws"),
        )
    table = pd.DataFrame(rows)
    sse = dict(zip(table["estimator"], table["squared error"]))
    no_pooling = sse["no pooling (each player's MLE)"]
    ctx.number("sse_no_pooling", no_pooling)
    ctx.number("sse_james_stein", sse["James-Stein"])
    ctx.number("sse_empirical_bayes", sse["empirical Bayes (mle)"])
    ctx.number("sse_nuts", sse["full Bayes (NUTS)"])
    ctx.number("empirical_bayes_scale", float(eb.params["scale"]))
    ctx.number("map_scale", float(map_.params["scale"]))

    ctx.text(
        "Your Pyro program, fitted as written: Pyro's partially pooled baseball model "
        "(partially_pooled_with_logit) on Efron and Morris's 18 players, 45 at-bats each, "
        "predicting the rest of their 1970 season. No pooling (each player's own average, the MLE), "
        "complete pooling and James–Stein need no fitting; empirical Bayes (method='mle': "
        "the priors of loc and scale dropped, each player's log-odds integrated out), MAP and NUTS are "
        "three fits of the one program. Squared error is against the remaining-season averages; the "
        "held-out score is the log predictive density of the hits in the rest of the season."
    )
    ctx.table(
        table.sort_values("held-out log predictive per player", ascending=False),
        f"Efron–Morris baseball: no pooling's squared error is {no_pooling:.4f}, James–Stein's "
        f"{sse['James-Stein']:.4f} ({no_pooling / sse['James-Stein']:.1f}× smaller; Efron and Morris "
        "report about 3.5× with their arcsine version)",
    )
    ctx.text(
        f"MAP collapses onto complete pooling (scale = {float(map_.params['scale']):.4f}): the joint "
        "density of a hierarchy grows without bound as the scale goes to zero (the funnel), which is "
        "also why the Laplace approximation is refused on this program, and why the MAP fit warns "
        f"that it stopped short of an optimum along {', '.join(sorted(map_.extras.get('unbounded', {})))}. "
        "Empirical Bayes finds "
        f"scale = {float(eb.params['scale']):.3f} and shrinks like James–Stein; NUTS averages over "
        "the scale as well. Below: the spread of the hits across players in replicated data, under "
        "MAP's plug-in and under NUTS's posterior predictive."
    )
    fig = ppgen.plots.predictive_check(
        [map_, nuts],
        statistic="sd",
        labels=["MAP (plug-in)", "NUTS (posterior predictive)"],
        num_samples=ctx.pick(200, 500, 1000),
        seed=ctx.seed,
    )
    ctx.figure(fig, "Baseball: predictive check of the spread of hits across players, MAP plug-in vs NUTS")
