"""One NLL table on 17-level digits (the "pixels" chapter, ``benchmarks/digits_nll.py`` and
tutorial 10 build it here): its settings, the classical rows, and the order of all rows.

Every explicit model of the library is scored on the same integer images
(``load("digits-17", "test")``, 447 images of 8×8 pixels with levels 0..16) in nats per image:
categorical and ordinal models (mixture, MADE, VAE) by their PMF, continuous ones (Gaussian, pPCA/FA,
KDE, flow) by the dequantized bound ``E_u[-log p(x + u)] ≥ -log P(x)``. Neural models are
early-stopped on the validation split. :func:`nll_table` builds the table in three lengths
(``mode``): ``"fast"`` (the smoke run), ``"default"`` (the tour's: every row, briefly trained, in
well under a minute) and ``"full"`` (the benchmark's: every row at the settings that reached
83.1 nats). The data: :mod:`~ppgen.app.chapters.digits17_data`; the neural rows and their early
stopping: :mod:`~ppgen.app.chapters.digits17_rows`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

import ppgen
from ppgen.app.chapters.digits17_data import DIM, LEVELS, load_splits
from ppgen.app.chapters.digits17_rows import (
    NllRows,
    add_categorical_mades,
    add_flow,
    add_ordinal_mades,
    add_vaes,
)
from ppgen.errors import OptionError
from ppgen.measures.dequantize import dequantize, discrete_nll_bound
from ppgen.models import KDE, PPCA, CategoricalMixture, Empirical, FactorAnalysis, Gaussian

__all__ = ["nll_table", "SETTINGS", "COMMAND"]

#: the command that reproduces the full table (2 CPU cores, one thread per process).
COMMAND = ".venv/bin/python benchmarks/digits_nll.py"

#: The table's three lengths. "full" is the benchmark's (≈ 7 min on 2 cores); "default" keeps
#: every row but trains each briefly (one ordinal order-agnostic MADE instead of an ensemble of
#: two, smaller networks, fewer epochs); "fast" is the smoke run of the test suite.
SETTINGS: dict[str, dict[str, Any]] = {
    "fast": dict(
        mixture=[(10, 1e-3)],
        factors=[10],
        epochs=3,
        made_hidden=64,
        orderings=2,
        agnostic_hidden=64,
        agnostic_dropout=0.3,
        agnostic_epochs=3,
        mixtures=3,
        ordinal_hidden=64,
        ordinal_dropout=0.4,
        ordinal_members=2,
        flow_layers=2,
        flow_hidden=32,
        flow_epochs=2,
        latent=8,
        vae_hidden=64,
        k=50,
        samples=2,
        patience=2,
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
    s = SETTINGS[_mode(fast, mode)]
    digits = load_splits()
    table = NllRows(log or (lambda message: None))
    models: dict[str, Any] = {}

    # -- empirical PMF: every test image is new, so it gets probability 0
    fit = ppgen.fit(Empirical(kind="discrete"), digits.train.double(), method="exact")
    test = -float(fit.log_prob(digits.test.double()).mean())
    table.add(
        "Empirical (training images)",
        "PMF",
        "exact",
        test,
        -float(fit.log_prob(digits.val.double()).mean()),
        fit.elapsed,
        "no test image occurs in train: P = 0",
    )

    # -- continuous densities on dequantized data y = x + u (level units: scale 1, no Jacobian)
    y_train = dequantize(digits.train.double(), seed=seed)
    x_val64, x_test64 = digits.val.double(), digits.test.double()

    def bound(model, x, scale=1.0, shift=0.0):
        return discrete_nll_bound(model, x, s["samples"], scale=scale, shift=shift, seed=seed + 1)

    def add_bound(name, fit, note, seconds=None, scale=1.0, shift=0.0):
        result = bound(fit, x_test64, scale, shift)
        table.add(
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
            digits.train.double(),
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
    table.add(
        f"CategoricalMixture(K={k})",
        "PMF",
        "exact",
        -float(fits[(k, p)].log_prob(x_test64).mean()),
        val[(k, p)],
        time.perf_counter() - start,
        f"EM, min_prob {p}; K, floor on val",
    )

    # -- the neural rows, early-stopped on val, in this order: each draws from the global torch RNG
    add_flow(table, models, digits, s, seed)
    add_categorical_mades(table, models, digits, s, seed)
    add_ordinal_mades(table, models, digits, s, seed)
    add_vaes(table, models, digits, s, seed)
    return pd.DataFrame(table.rows), models
