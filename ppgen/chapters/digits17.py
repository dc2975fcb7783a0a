"""One NLL table on 17-level digits (the "pixels" chapter, ``benchmarks/digits_nll.py`` and
tutorial 10 build it here).

Every explicit model of the library is scored on the same integer images
(``load("digits-17", "test")``, 447 images of 8×8 pixels with levels 0..16) in nats per image:
categorical and ordinal models (mixture, MADE, VAE) by their PMF, continuous ones (Gaussian, pPCA/FA,
KDE, flow) by the dequantized bound ``E_u[-log p(x + u)] ≥ -log P(x)``. Neural models are
early-stopped on the validation split. :func:`nll_table` builds the table in three lengths
(``mode``): ``"fast"`` (the smoke run), ``"default"`` (the tour's: every row, briefly trained, in
well under a minute) and ``"full"`` (the benchmark's: every row at the settings that reached
83.1 nats).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

import ppgen
from ppgen.data import load
from ppgen.dequantize import dequantize, discrete_nll_bound
from ppgen.errors import OptionError
from ppgen.models import (
    KDE,
    MADE,
    PPCA,
    VAE,
    CategoricalMixture,
    ConditionalVAE,
    Empirical,
    FactorAnalysis,
    Flow,
    Gaussian,
)

__all__ = [
    "nll_table",
    "pmf_vs_pdf",
    "SpikyDensity",
    "train_early_stopping",
    "made_ensemble_log_prob",
    "COMMAND",
]

#: the command that reproduces the full table (2 CPU cores, one thread per process).
COMMAND = ".venv/bin/python benchmarks/digits_nll.py"
LEVELS, DIM = 17, 64
#: the flow sees y = (x + u - 8.5) / 4.25 in [-2, 2) (inside its spline bound).
FLOW_SCALE, FLOW_SHIFT = 1 / 4.25, -2.0


def train_early_stopping(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    loss: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    score: Callable[[torch.nn.Module, torch.Tensor], float],
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 100,
    max_epochs: int = 500,
    patience: int = 30,
    seed: int = 0,
) -> dict[str, Any]:
    """Adam on minibatches; after every epoch score the validation set and keep the best state.

    Stops after ``patience`` epochs without a better validation score and restores the best
    parameters (early stopping on val). ``loss(model, batch)`` is a mean per-example loss,
    ``score(model, x_val)`` the validation NLL (called in eval mode without gradients).
    Returns ``{"val": best score, "epoch": best epoch, "epochs": epochs run, "seconds": ...}``.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, best_epoch, epoch = math.inf, None, -1, -1
    start = time.perf_counter()
    for epoch in range(max_epochs):
        model.train()
        order = torch.randperm(x_train.shape[0], generator=generator)
        for i in range(0, x_train.shape[0], batch_size):
            value = loss(model, x_train[order[i : i + batch_size]])
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            current = float(score(model, x_val))
        if current < best:
            best, best_state, best_epoch = current, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return {"val": best, "epoch": best_epoch, "epochs": epoch + 1, "seconds": time.perf_counter() - start}


def made_ensemble_log_prob(models: list[MADE], x: torch.Tensor) -> torch.Tensor:
    """``log (1/M) Σ_m p_m(x)``: the uniform mixture of ``M`` MADEs is itself an exact PMF."""
    with torch.no_grad():
        return torch.logsumexp(torch.stack([m.log_prob(x) for m in models]), 0) - math.log(len(models))


#: The table's three lengths. "full" is the benchmark's (≈ 7 min on 2 cores); "default" keeps
#: every row but trains each briefly (one ordinal order-agnostic MADE instead of an ensemble of
#: two, smaller networks, fewer epochs); "fast" is the smoke run of the test suite.
SETTINGS: dict[str, dict[str, Any]] = {
    "fast": dict(
        mixture=[(10, 1e-3)],
        factors=[10],
        epochs=8,
        made_hidden=256,
        orderings=2,
        agnostic_hidden=256,
        agnostic_dropout=0.3,
        agnostic_epochs=8,
        mixtures=3,
        ordinal_hidden=256,
        ordinal_dropout=0.4,
        ordinal_members=2,
        flow_layers=2,
        flow_hidden=64,
        flow_epochs=8,
        latent=8,
        vae_hidden=128,
        k=100,
        samples=4,
        patience=3,
    ),
    "default": dict(
        mixture=[(k, 1e-3) for k in (5, 10)],
        factors=[10, 30],
        epochs=25,
        made_hidden=256,
        orderings=8,
        agnostic_hidden=256,
        agnostic_dropout=0.3,
        agnostic_epochs=30,
        mixtures=3,
        ordinal_hidden=256,
        ordinal_dropout=0.4,
        ordinal_members=1,
        flow_layers=2,
        flow_hidden=64,
        flow_epochs=6,
        latent=16,
        vae_hidden=256,
        k=200,
        samples=8,
        patience=8,
    ),
    "full": dict(
        mixture=[(k, 1e-3) for k in (5, 10, 15, 20, 30)],
        factors=[10, 20, 30, 40],
        epochs=600,
        made_hidden=512,
        orderings=8,
        agnostic_hidden=512,
        agnostic_dropout=0.3,
        agnostic_epochs=1500,
        mixtures=3,
        ordinal_hidden=1024,
        ordinal_dropout=0.4,
        ordinal_members=2,
        flow_layers=4,
        flow_hidden=128,
        flow_epochs=120,
        latent=16,
        vae_hidden=256,
        k=1000,
        samples=16,
        patience=30,
    ),
}


def _mode(fast: bool, mode: str | None) -> str:
    if mode is None:
        return "fast" if fast else "full"
    if mode not in SETTINGS:
        raise OptionError(f"Expected mode in {sorted(SETTINGS)}, but got {mode!r}.")
    return mode


def nll_table(
    fast: bool = False, seed: int = 0, log: Callable[[str], None] | None = None, *, mode: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit every explicit model on ``digits-17`` train (select on val) and score it on test.

    ``mode`` is ``"fast"``, ``"default"`` or ``"full"`` (:data:`SETTINGS`); without it
    ``fast=True`` means ``"fast"`` and ``fast=False`` the full benchmark table.

    Returns the table (one row per model: test NLL in nats per image and bits per dimension,
    its Monte Carlo standard error where there is one, val NLL, kind = exact / bound / estimate,
    training seconds) and the fitted models by name.
    """
    log = log or (lambda message: None)
    s = SETTINGS[_mode(fast, mode)]
    x_train, x_val, x_test = (
        load("digits-17", split, dtype=torch.float32) for split in ("train", "val", "test")
    )
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}

    def add(name, likelihood, kind, test, val, seconds, note, stderr=None):
        # Monte Carlo standard error: 0 for exact PMFs, NaN where none is computed (VAE estimates)
        stderr = (0.0 if kind == "exact" else math.nan) if stderr is None else stderr
        rows.append(
            {
                "model": name,
                "likelihood": likelihood,
                "kind": kind,
                "test_nll": test,
                "stderr": stderr,
                "test_bits_per_dim": test / (DIM * math.log(2)),
                "val_nll": val,
                "seconds": round(seconds, 1),
                "note": note,
            }
        )
        log(f"{name}: test {test:.2f} nats ({kind}), val {val:.2f}, {seconds:.1f} s")

    # -- empirical PMF: every test image is new, so it gets probability 0
    fit = ppgen.fit(Empirical(kind="discrete"), x_train.double(), method="exact")
    test = -float(fit.log_prob(x_test.double()).mean())
    add(
        "Empirical (training images)",
        "PMF",
        "exact",
        test,
        -float(fit.log_prob(x_val.double()).mean()),
        fit.elapsed,
        "no test image occurs in train: P = 0",
    )

    # -- continuous densities on dequantized data y = x + u (level units: scale 1, no Jacobian)
    y_train = dequantize(x_train.double(), seed=seed)
    x_val64, x_test64 = x_val.double(), x_test.double()

    def bound(model, x, scale=1.0, shift=0.0):
        return discrete_nll_bound(model, x, s["samples"], scale=scale, shift=shift, seed=seed + 1)

    def add_bound(name, fit, note, seconds=None, scale=1.0, shift=0.0):
        result = bound(fit, x_test64, scale, shift)
        add(
            name,
            "PDF, dequantized",
            "bound",
            result.nll,
            bound(fit, x_val64, scale, shift).nll,
            fit.elapsed if seconds is None else seconds,
            note,
            result.stderr,
        )

    start = time.perf_counter()
    kde = ppgen.fit(KDE(bandwidth="cv", covariance="diag"), y_train, method="exact")
    add_bound(
        "KDE (diag bandwidth, CV)",
        kde,
        f"h = {float(kde.params['bandwidth']):.3f}",
        time.perf_counter() - start,
    )
    models["kde"] = kde
    models["gaussian"] = fit = ppgen.fit(Gaussian(DIM), y_train, method="exact")
    add_bound("Gaussian (full covariance)", fit, "closed form")
    for cls, method in ((PPCA, "exact"), (FactorAnalysis, "em")):
        start = time.perf_counter()
        options = {"progress": False} if method == "em" else {}
        fits = {q: ppgen.fit(cls(q), y_train, method=method, **options) for q in s["factors"]}
        q = min(fits, key=lambda q: bound(fits[q], x_val64).nll)
        models[cls.__name__.lower()] = fits[q]
        add_bound(
            f"{cls.__name__}(q={q})", fits[q], f"q from {s['factors']} on val", time.perf_counter() - start
        )

    # -- categorical mixture by EM (exact PMF), K and the probability floor chosen on val
    start = time.perf_counter()
    fits = {
        (k, p): ppgen.fit(
            CategoricalMixture(k, LEVELS, min_prob=p),
            x_train.double(),
            method="em",
            seed=seed,
            progress=False,
        )
        for k, p in s["mixture"]
    }
    val = {key: -float(f.log_prob(x_val64).mean()) for key, f in fits.items()}
    (k, p) = min(val, key=val.get)
    models["mixture"] = fits[(k, p)]
    if (10, 1e-3) in fits:
        models["mixture_k10"] = fits[(10, 1e-3)]  # pmf_vs_pdf's mixture, reused when given ``models``
    add(
        f"CategoricalMixture(K={k})",
        "PMF",
        "exact",
        -float(fits[(k, p)].log_prob(x_test64).mean()),
        val[(k, p)],
        time.perf_counter() - start,
        f"EM, min_prob {p}; K, floor on val",
    )

    # -- flow on dequantized, standardised data (fresh noise every minibatch)
    flow = Flow(DIM, "spline_coupling", s["flow_layers"], hidden=(s["flow_hidden"],), seed=seed)
    generator = torch.Generator().manual_seed(seed)

    def flow_loss(model, batch):
        return -model.log_prob(dequantize(batch, generator, scale=FLOW_SCALE, shift=FLOW_SHIFT)).mean()

    def flow_score(model, x):
        return discrete_nll_bound(model, x, 2, scale=FLOW_SCALE, shift=FLOW_SHIFT, seed=seed).nll

    info = train_early_stopping(
        flow,
        x_train,
        x_val,
        flow_loss,
        flow_score,
        max_epochs=s["flow_epochs"],
        patience=s["patience"] // 3 + 1,
        seed=seed,
    )
    models["flow"] = flow
    result = discrete_nll_bound(flow, x_test, s["samples"], scale=FLOW_SCALE, shift=FLOW_SHIFT, seed=seed + 1)
    add(
        f"Flow (spline coupling x{s['flow_layers']})",
        "PDF, dequantized",
        "bound",
        result.nll,
        info["val"],
        info["seconds"],
        f"best epoch {info['epoch']}; log-Jacobian of the rescaling included",
        result.stderr,
    )

    # -- MADE, categorical: one raster order; then K orderings sharing one network, trained on a
    #    random ordering per minibatch (order-agnostic), whose PMF is the uniform mixture over them
    def train_made(made, max_epochs, patience):
        pick = torch.Generator().manual_seed(seed)

        def loss(model, batch):
            if model.num_orderings == 1:
                return -model.log_prob(batch).mean()
            ordering = int(torch.randint(model.num_orderings, (1,), generator=pick))
            return -model.conditional_log_prob(batch, ordering).mean()

        info = train_early_stopping(
            made,
            x_train,
            x_val,
            loss,
            lambda m, x: -float(m.log_prob(x).mean()),
            max_epochs=max_epochs,
            patience=patience,
            seed=seed,
        )
        with torch.no_grad():
            return info, -float(made.log_prob(x_test).mean())

    def add_made(name: str, test: float, info: dict, note: str) -> None:
        add(name, "PMF", "exact", test, info["val"], info["seconds"], note)

    made = MADE(DIM, (s["made_hidden"],), "categorical", num_categories=LEVELS, dropout=0.5)
    info, test = train_made(made, s["epochs"], s["patience"])
    add_made(
        f"MADE (categorical, {s['made_hidden']} units, dropout 0.5)",
        test,
        info,
        f"raster order; best epoch {info['epoch']}",
    )
    k, hidden, rate = s["orderings"], s["agnostic_hidden"], s["agnostic_dropout"]
    agnostic = MADE(
        DIM, (hidden,), "categorical", num_categories=LEVELS, num_orderings=k, dropout=rate, seed=seed + 1
    )
    info_agnostic, test = train_made(agnostic, s["agnostic_epochs"], 2 * s["patience"])
    add_made(
        f"MADE ({k} orderings, order-agnostic, {hidden} units, dropout {rate})",
        test,
        info_agnostic,
        f"p = mean of the {k} orderings' PMFs; best epoch {info_agnostic['epoch']}",
    )
    models["made"] = [made, agnostic]
    add(
        "MADE ensemble (the two above)",
        "PMF",
        "exact",
        -float(made_ensemble_log_prob(models["made"], x_test).mean()),
        -float(made_ensemble_log_prob(models["made"], x_val).mean()),
        info["seconds"] + info_agnostic["seconds"],
        "uniform mixture of the two MADEs: log-mean-exp of their PMFs",
    )

    # -- the same MADEs with an ordinal output: per pixel a mixture of discretized logistics
    #    (PixelCNN++), so neighbouring grey levels share mass instead of 17 free logits each.
    #    The global RNG is restored afterwards so the VAE rows below start as they did without these.
    rng_state = torch.get_rng_state()
    mixtures = s["mixtures"]
    ordinal = MADE(
        DIM,
        (s["made_hidden"],),
        "discretized_logistic",
        num_categories=LEVELS,
        num_mixtures=mixtures,
        dropout=0.5,
    )
    info, test = train_made(ordinal, s["epochs"], s["patience"])
    add_made(
        f"MADE (discretized logistic K={mixtures}, {s['made_hidden']} units, dropout 0.5)",
        test,
        info,
        f"raster order; best epoch {info['epoch']}",
    )
    hidden, rate = s["ordinal_hidden"], s["ordinal_dropout"]
    ordinal_agnostic = [
        MADE(
            DIM,
            (hidden,),
            "discretized_logistic",
            num_categories=LEVELS,
            num_mixtures=mixtures,
            num_orderings=k,
            dropout=rate,
            seed=seed + 1 + member,
        )
        for member in range(s["ordinal_members"])
    ]
    infos = [train_made(m, s["agnostic_epochs"], 2 * s["patience"]) for m in ordinal_agnostic]
    info_agnostic, test = infos[0]
    add_made(
        f"MADE (discretized logistic K={mixtures}, {k} orderings, order-agnostic, {hidden} units, "
        f"dropout {rate})",
        test,
        info_agnostic,
        f"p = mean of the {k} orderings' PMFs; best epoch {info_agnostic['epoch']}",
    )
    models["made_ordinal"] = [ordinal, *ordinal_agnostic]
    if len(ordinal_agnostic) > 1:
        add(
            f"MADE ensemble ({len(ordinal_agnostic)} order-agnostic discretized logistic MADEs)",
            "PMF",
            "exact",
            -float(made_ensemble_log_prob(ordinal_agnostic, x_test).mean()),
            -float(made_ensemble_log_prob(ordinal_agnostic, x_val).mean()),
            sum(i["seconds"] for i, _ in infos),
            f"the row above and {len(ordinal_agnostic) - 1} more with other orderings (seeds); "
            "log-mean-exp of their PMFs",
        )
    torch.set_rng_state(rng_state)

    # -- VAE and conditional VAE with categorical decoders: importance-sampled log p(x)
    vae = VAE(DIM, s["latent"], "categorical", (s["vae_hidden"],), num_categories=LEVELS)
    info = train_early_stopping(
        vae,
        x_train,
        x_val,
        lambda m, b: m.loss(b) / b.shape[0],
        lambda m, x: -float(m.elbo(x).mean()),
        max_epochs=s["epochs"],
        patience=s["patience"],
        seed=seed,
    )
    models["vae"] = vae
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        elbo = -float(torch.stack([vae.elbo(x_test) for _ in range(10)]).mean())
        iwae = -float(vae.log_prob(x_test, k=s["k"]).mean())
        iwae_val = -float(vae.log_prob(x_val, k=s["k"]).mean())
    add(
        f"VAE (categorical, latent {s['latent']})",
        "PMF given z",
        "estimate",
        iwae,
        iwae_val,
        info["seconds"],
        f"importance sampling k={s['k']} (stochastic lower bound on log p)",
    )
    add(
        f"VAE (categorical, latent {s['latent']}), -ELBO",
        "PMF given z",
        "bound",
        elbo,
        info["val"],
        info["seconds"],
        "same fit; mean of 10 one-draw ELBOs",
    )

    labels = {split: load("digits-17", split, return_labels=True)[1] for split in ("train", "val", "test")}
    log_prior = torch.log(torch.bincount(labels["train"], minlength=10).float() / len(labels["train"]))

    def cvae_marginal(model, x, k):
        """``log p(x) = logsumexp_y [log p(y) + log p(x | y)]`` with each term by importance sampling."""
        terms = [log_prior[c] + model.log_prob(x, y=torch.full((x.shape[0],), c), k=k) for c in range(10)]
        return torch.logsumexp(torch.stack(terms), 0)

    cvae = ConditionalVAE(DIM, 10, s["latent"], "categorical", (s["vae_hidden"],), num_categories=LEVELS)
    order = {"train": x_train, "val": x_val}
    info = train_early_stopping(
        cvae,
        torch.arange(len(x_train)),
        torch.arange(len(x_val)),
        lambda m, i: m.loss(order["train"][i], labels["train"][i]) / len(i),
        lambda m, i: -float(m.elbo(order["val"][i], labels["val"][i]).mean()),
        max_epochs=s["epochs"],
        patience=s["patience"],
        seed=seed,
    )
    models["cvae"] = cvae
    with torch.no_grad():
        test = -float(cvae_marginal(cvae, x_test, s["k"] // 10).mean())
        val = -float(cvae_marginal(cvae, x_val, s["k"] // 10).mean())
    add(
        f"ConditionalVAE (categorical, latent {s['latent']})",
        "PMF given z, y",
        "estimate",
        test,
        val,
        info["seconds"],
        f"log sum_y p(y) p(x|y), p(x|y) by importance sampling k={s['k'] // 10} per class",
    )
    return pd.DataFrame(rows), models


class SpikyDensity:
    """A categorical mixture turned into a *density*: each level ``c`` becomes a narrow ``N(c, σ²)``.

    ``p(v) = Σ_k π_k Π_j Σ_c p_kjc N(v_j; c, σ²)`` integrates to one over ``R^D`` like any density,
    yet at the integers ``p(x) ≈ P(x) (σ √(2π))^{-D}``: its "NLL" there beats the PMF it came
    from by ``D log(1 / (σ √(2π)))`` nats and goes to ``-∞`` as ``σ → 0``.
    """

    def __init__(self, mixture: Any, sigma: float):
        model = getattr(mixture, "model", mixture)
        with torch.no_grad():
            self.log_pi, self.log_probs = model.pi.log(), model.probs.log()  # (K,), (K, D, C)
        self.sigma = float(sigma)

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        levels = torch.arange(self.log_probs.shape[-1], dtype=v.dtype)
        kernel = torch.distributions.Normal(levels, self.sigma).log_prob(v[..., None])  # (N, D, C)
        per_pixel = torch.logsumexp(self.log_probs[None] + kernel[:, None], -1)  # (N, K, D)
        return torch.logsumexp(self.log_pi + per_pixel.sum(-1), -1)


def pmf_vs_pdf(
    fast: bool = False, seed: int = 0, sigma: float = 0.05, models: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The same test digits scored three ways: as a PMF, as a dequantized density, naively as a density.

    The naive score evaluates a density at the integers themselves: it is not a probability and
    can be made arbitrarily "good" (:class:`SpikyDensity` with a small ``sigma``), while the
    dequantized bound of that same density exposes it. ``models`` (the second value of
    :func:`nll_table`, same ``seed``) reuses its K=10 mixture and Gaussian instead of refitting them.
    """
    x_train, x_test = load("digits-17", "train"), load("digits-17", "test")
    samples = 4 if fast else 16
    models = models or {}
    mixture, gaussian = models.get("mixture_k10"), models.get("gaussian")
    if mixture is None:
        mixture = ppgen.fit(
            CategoricalMixture(10, LEVELS, min_prob=1e-3), x_train, method="em", seed=seed, progress=False
        )
    if gaussian is None:
        gaussian = ppgen.fit(Gaussian(DIM), dequantize(x_train, seed=seed), method="exact")
    spiky = SpikyDensity(mixture, sigma)
    with torch.no_grad():
        pmf = -float(mixture.log_prob(x_test).mean())
        naive = -float(spiky.log_prob(x_test).mean())
    rows = [
        ("CategoricalMixture(K=10)", "PMF at the integers", "exact NLL", pmf),
        (f"the same, spikes sigma={sigma}", "density at the raw integers", "not a probability", naive),
        (
            f"the same, spikes sigma={sigma}",
            "density of x + u, averaged over u",
            "bound on NLL",
            discrete_nll_bound(spiky, x_test, samples, seed=seed).nll,
        ),
        (
            "Gaussian (full)",
            "density of x + u, averaged over u",
            "bound on NLL",
            discrete_nll_bound(gaussian, x_test, samples, seed=seed).nll,
        ),
    ]
    return pd.DataFrame(rows, columns=["model", "scored as", "meaning", "test 'NLL' (nats/image)"])
