"""Tour chapter "zoo": every registered model × every method it supports, on the same data.

Data: Old Faithful (272 eruptions × 2), standardised, one seeded 75/25 split. For each fit:
held-out log-likelihood per eruption (and whether that number is exact, a bound or an
estimate), MMD between 500 samples and the test set, the data-copying z statistic
(nearest-neighbour distances of samples vs held-out points to the training set; z ≪ 0 means
the model reproduces its training points), the gap to the closed-form fit of the same model
where one exists, and wall time. Gradient fits of latent-variable models start from the
model's ``initialize()``, as the README tells users to. The report's overview figure — one
panel of samples per model family over the data — is drawn from these fits.
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import pyro.distributions as dist
import torch

import ppgen
from ppgen.app import registry
from ppgen.app.tour_context import TourContext
from ppgen.errors import PpgenError
from ppgen.inference.adversarial import TOY_2D
from ppgen.measures import metrics
from ppgen.models import MLPCritic

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
#: for the overview figure: which of a model's fits to show (the first method it has)
SHOWN = ("exact", "em", "mle", "adversarial", "mcmc", "svi", "map")
#: adversarial rows play against a (64, 64) critic, and the GAN's generator is (64, 64) too, with
#: the measured 2-D rates (TOY_2D): 3x cheaper per step than the (256, 256, 256) defaults, and on
#: these 204 points the default generator against a small critic does not converge in 600 steps
#: (MMD 0.5 vs 0.0 here)
HIDDEN = (64, 64)


def _options(ctx: TourContext, name: str, method: str) -> dict | None:
    """The fit options of ``method`` in this chapter, or None for a method the zoo does not show
    (``importance``: prior proposals on 200 points keep a handful of draws; tutorial 11 shows it)."""
    steps = ctx.pick(200, 300, 1000)
    if name == "flow":  # 30 ms a step (spline coupling); held-out log-lik peaks early at this rate
        steps = ctx.pick(60, 120, 600)
    gradient = {"num_steps": steps, "lr": 0.01 if name != "flow" else 5e-3, "progress": False}
    if name == "gan":
        adversarial = {**TOY_2D, "steps": ctx.pick(300, 600, 3000), "progress": False}
    else:  # the Gaussian plays with the published rates (a larger one only moves it elsewhere)
        adversarial = {"steps": ctx.pick(200, 400, 3000), "recipe": "published", "progress": False}
    return {
        "exact": {},
        "em": {"max_iter": ctx.pick(50, 100, 300), "n_init": 2, "progress": False},
        "mle": gradient,
        "svi": gradient,
        "map": gradient,
        "mcmc": {
            "num_samples": ctx.pick(100, 200, 500),
            "warmup_steps": ctx.pick(100, 200, 500),
            "progress": False,
        },
        "adversarial": adversarial,
    }.get(method)


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


def faithful_split(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Old Faithful standardised, one seeded 75/25 split (the zoo's data)."""
    raw = ppgen.data.load("faithful")
    x = (raw - raw.mean(0)) / raw.std(0)
    return ppgen.data.train_test_split(x, test_fraction=0.25, seed=seed)


def _start(model, method: str, train: torch.Tensor, seed: int):
    """A gradient fit of a latent-variable model starts from ``initialize()`` (k-means++ for a
    mixture, PCA for factor analysis), as the README says; EM does its own restarts."""
    if method in ("mle", "svi", "map") and hasattr(model, "initialize"):
        return copy.deepcopy(model).initialize(train, seed=seed)
    return model


def _run(ctx: TourContext) -> None:
    train, test = faithful_split(ctx.seed)
    built = {"gan": {"hidden": HIDDEN}}  # constructor options; the rest are the registry's defaults
    candidates = [(n, lambda n=n: registry.build(n, train, built.get(n))[0]) for n in MODELS]
    candidates.append(("gaussian (diag) + priors", _bayesian_gaussian))
    rows, exact_scores, shown = [], {}, {}
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
            options = _options(ctx, name, method)
            if options is None:
                continue
            if method == "adversarial":
                options["critic"] = MLPCritic(HIDDEN)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings of the short runs are expected
                start = time.perf_counter()
                try:
                    fit = ppgen.fit(
                        _start(model, method, train, ctx.seed), train, method=method, seed=ctx.seed, **options
                    )
                except PpgenError as err:
                    rows.append({"model": name, "method": method, "note": f"refused: {err}"[:120]})
                    continue
                seconds = time.perf_counter() - start
            steps = options.get("num_steps") or options.get("steps") or options.get("num_samples")
            row, samples = _row(ctx, name, method, fit, train, test, seconds, exact_scores, steps)
            rows.append(row)
            if name not in shown or SHOWN.index(method) < SHOWN.index(shown[name][0]):
                shown[name] = (method, samples, row["heldout_loglik"])
            ctx.shared[f"zoo/{name}/{method}"] = fit
    import pandas as pd

    table = pd.DataFrame(rows)
    ctx.figure(_overview(train, test, shown), _CAPTION, overview=True)
    ctx.text(
        "Every registered model, fitted by every method it supports, on the same standardised Old "
        "Faithful data (the overview figure at the top shows one fit of each). Held-out log-likelihood "
        "is per eruption (higher is better); 'kind' says whether it is exact, a bound or an estimate. "
        "MMD compares 500 samples with the test set (lower is better). copy z is the data-copying "
        "statistic: strongly negative means the samples sit on the training points (the empirical "
        "distribution is the extreme case). Gradient fits of the mixture and factor models start from "
        "initialize() as the README says, so the mixture's mle/svi rows reach EM's optimum; the "
        "collapse of a symmetric start is shown, labelled, in the mixtures chapter. 'steps' is the "
        f"length of each iterative fit in this {ctx.mode} run (--full runs longer ones)."
    )
    best = table.dropna(subset=["heldout_loglik"]).sort_values("heldout_loglik", ascending=False)
    ctx.text(
        "Best held-out log-likelihood: "
        + "; ".join(f"{r.model} ({r.method}) {r.heldout_loglik:.3f}" for r in best.head(3).itertuples())
        + f". A single Gaussian scores {exact_scores.get('gaussian', math.nan):.3f}."
    )
    ctx.table(table, "Model zoo on Old Faithful (standardised), one seeded 75/25 split")
    ctx.number("rows", table.to_dict(orient="records"))


_CAPTION = (
    "Overview: each model family fitted on Old Faithful (standardised). 500 samples (colour) over "
    "the held-out eruptions (black); the title gives the method and the held-out log-likelihood per "
    "eruption (higher is better; '—' for the GAN, which has no density)."
)


def _overview(train, test, shown):
    import matplotlib.pyplot as plt

    names = list(shown)
    cols = 6
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.35 * rows), sharex=True, sharey=True)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        method, samples, score = shown[name]
        ax.scatter(*samples.numpy().T, s=3, alpha=0.35, color="#d1495b")
        ax.scatter(*test.numpy().T, s=3, color="black")
        score_text = "—" if score is None or not math.isfinite(score) else f"{score:.2f}"
        ax.set_title(f"{name.replace(' + priors', '+prior')}\n{method}, {score_text}", fontsize=8)
        ax.set(xlim=(-2.6, 2.6), ylim=(-2.6, 2.6), xticks=[], yticks=[])
    fig.tight_layout()
    return fig


def _row(ctx, name, method, fit, train, test, seconds, exact_scores, steps) -> tuple[dict, torch.Tensor]:
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
    mmd = metrics.mmd(test, samples)
    ctx.zoo_row(
        model=name,
        method=method,
        data="faithful (standardised)",
        heldout_loglik=heldout,
        kind=kind,
        seconds=round(seconds, 3),
        note=f"MMD {mmd:.3f}, copy z {copying['z']:.1f}",
    )
    row = {
        "model": name,
        "method": method,
        "heldout_loglik": heldout,
        "kind": kind,
        "gap_to_exact": gap,
        "mmd_vs_test": mmd,
        "copy_z": copying["z"],
        "steps": steps if method not in ("exact",) else None,
        "seconds": round(seconds, 3),
    }
    return row, samples
