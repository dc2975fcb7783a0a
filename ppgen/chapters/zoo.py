"""Tour chapter "zoo": every registered model × every method it supports, on the same data.

Data: Old Faithful (272 eruptions × 2), standardised, one seeded 75/25 split. For each fit:
held-out log-likelihood per eruption (and whether that number is exact, a bound or an
estimate), MMD between 500 samples and the test set, the data-copying z statistic
(nearest-neighbour distances of samples vs held-out points to the training set; z ≪ 0 means
the model reproduces its training points), the gap to the closed-form fit of the same model
where one exists, and wall time.
"""

from __future__ import annotations

import math
import time
import warnings

import pyro.distributions as dist
import torch

import ppgen
from ppgen import metrics, registry
from ppgen.errors import PpgenError
from ppgen.report import TourContext

MODELS = [
    "gaussian",
    "normal_inverse_wishart",
    "kde",
    "empirical",
    "gmm",
    "fa",
    "ppca",
    "made",
    "flow",
    "vae",
]
MODELS += ["gan"]


def _options(method: str, fast: bool) -> dict:
    steps = 300 if fast else 600
    return {
        "exact": {},
        "em": {"max_iter": 50 if fast else 300, "n_init": 2, "progress": False},
        "mle": {"num_steps": steps, "lr": 0.01, "progress": False},
        "svi": {"num_steps": steps, "lr": 0.01, "progress": False},
        "map": {"num_steps": steps, "lr": 0.01, "progress": False},
        "mcmc": {
            "num_samples": 150 if fast else 500,
            "warmup_steps": 150 if fast else 500,
            "progress": False,
        },
        "adversarial": {"steps": 300 if fast else 3000, "progress": False},
    }[method]


def _bayesian_gaussian():
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    return ppgen.bayesian(
        ppgen.models.Gaussian(dim=2, covariance="diag"),
        loc=dist.Normal(f64([0.0, 0.0]), f64([3.0, 3.0])).to_event(1),
        scale=dist.LogNormal(f64([0.0, 0.0]), f64([1.0, 1.0])).to_event(1),
    )


def _kind(fit) -> str:
    if isinstance(fit.model, ppgen.ImplicitModel):
        return "n/a (implicit)"
    if "log_prob" not in fit.model.capabilities and fit.draws is None and fit.exact_posterior is None:
        return "n/a (no density)"
    if getattr(fit.model, "log_prob_is_estimate", False):
        return "estimate (IWAE)"
    if fit.method in ("mcmc", "svi") and fit.draws is not None:
        return "estimate (predictive)"
    return "exact"


def run(ctx: TourContext) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # dozens of small models: thread hand-offs would cost more than they save
    try:
        _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx: TourContext) -> None:
    raw = ppgen.data.load("faithful")
    x = (raw - raw.mean(0)) / raw.std(0)
    train, test = ppgen.data.train_test_split(x, test_fraction=0.25, seed=ctx.seed)
    candidates = [(name, lambda name=name: registry.build(name, train)[0]) for name in MODELS]
    candidates.append(("gaussian (diag) + priors", _bayesian_gaussian))
    rows, exact_scores = [], {}
    for name, build in candidates:
        try:
            model = build()
        except PpgenError:
            continue
        for method in ppgen.applicable_methods(model):
            if method == "svi" and name != "gaussian" and not (model.has_local_latents or model.is_bayesian):
                continue  # without latents SVI's empty guide is the mle row again (shown once, for gaussian)
            if method == "adversarial" and name not in ("gaussian", "gan"):
                continue  # an adversarial flow is tutorial 09's story; here it would dominate the run time
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings in fast mode are expected
                start = time.perf_counter()
                try:
                    fit = ppgen.fit(model, train, method=method, seed=ctx.seed, **_options(method, ctx.fast))
                except PpgenError as err:
                    rows.append({"model": name, "method": method, "note": f"refused: {err}"[:120]})
                    continue
                seconds = time.perf_counter() - start
            rows.append(_row(ctx, name, method, fit, train, test, seconds, exact_scores))
    import pandas as pd

    table = pd.DataFrame(rows)
    ctx.text(
        "Every registered model, fitted by every method it supports, on the same standardised Old "
        "Faithful data. Held-out log-likelihood is per eruption (higher is better); 'kind' says whether "
        "it is exact, a bound or an estimate. MMD compares 500 samples with the test set (lower is "
        "better). copy z is the data-copying statistic: strongly negative means the samples sit on "
        "the training points (the empirical distribution is the extreme case). Gradient fits start from "
        "each model's default initialisation: the mixture's gradient rows show the known collapse of "
        "naive SVI/MLE on mixtures that EM avoids (tutorial 05 shows the k-means++ cure)."
    )
    ctx.table(table, "Model zoo on Old Faithful (standardised), one seeded 75/25 split")
    ctx.number("rows", table.to_dict(orient="records"))


def _row(ctx, name, method, fit, train, test, seconds, exact_scores) -> dict:
    kind = _kind(fit)
    heldout = math.nan
    if not kind.startswith("n/a"):
        try:
            heldout = fit.score(test)
        except PpgenError:
            kind = "n/a (no density)"
    if method == "exact" and math.isfinite(heldout):
        exact_scores[name] = heldout
    gap = heldout - exact_scores[name] if name in exact_scores and method != "exact" else math.nan
    samples = fit.sample(500, seed=ctx.seed).detach().to(test.dtype)
    copying = metrics.data_copying(train, test, samples)
    ctx.zoo_row(
        model=name,
        method=method,
        data="faithful (standardised)",
        heldout_loglik=heldout,
        kind=kind,
        seconds=round(seconds, 3),
        note=f"MMD {metrics.mmd(test, samples):.3f}, copy z {copying['z']:.1f}",
    )
    return {
        "model": name,
        "method": method,
        "heldout_loglik": heldout,
        "kind": kind,
        "gap_to_exact": gap,
        "mmd_vs_test": metrics.mmd(test, samples),
        "copy_z": copying["z"],
        "seconds": round(seconds, 3),
    }
