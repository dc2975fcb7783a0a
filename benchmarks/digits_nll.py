"""Held-out NLL on digits, one table across every explicit model.

Default: the 17-level digits (``ppgen.data.load("digits-17", "train" | "val" | "test")``,
integer pixels 0..16; train 1000, val 350, test 447 in scikit-learn's order). Categorical
models (mixture by EM, MADE, VAE, conditional VAE) are scored by their PMF; continuous ones
(KDE, Gaussian, pPCA, FA, flow) by the dequantized bound ``E_u[-log p(x + u)]``. Neural models
are early-stopped on val. The table is built by :func:`ppgen.app.chapters.digits17.nll_table`.
Beside those tuned rows, two "defaults" rows fit MADE and VAE exactly as a new user would
(``ppgen.fit(model, train, method=..., seed=0)``, nothing else: early stopping on a held-out tenth
of train, MADE's default dropout); ``--defaults`` runs only those two rows.

``--binary``: the earlier table on binarized digits (75/25 split, seed 0): Bernoulli mixture
(EM), MADE (MLE) and VAE (SVI; IWAE k = 1000 and ELBO).

Prints the table and writes ``benchmarks/out/digits_nll.json`` (``digits_nll_binary.json``).
Run: ``.venv/bin/python benchmarks/digits_nll.py`` (``--fast`` for a quick smoke run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import pandas as pd
import torch

import ppgen
from ppgen.app.chapters.digits17 import nll_table
from ppgen.data import load
from ppgen.models import MADE, VAE, BernoulliMixture


def binary_table(fast: bool = False, seed: int = 0) -> pd.DataFrame:
    """Fit the three models and return one row each: NLL in nats and bits/dim, train and test."""
    x_train = load("digits-binary", "train", dtype=torch.float32)
    x_test = load("digits-binary", "test", dtype=torch.float32)
    d = x_train.shape[1]
    steps = 300 if fast else 6000
    rows = []

    def add(name, method, fit, kind, note, log_prob=None):
        log_prob = log_prob or (lambda x: fit.log_prob(x))
        with torch.no_grad():
            test = float(log_prob(x_test).mean())
            train = float(log_prob(x_train).mean())
        rows.append(
            {
                "model": name,
                "method": method,
                "train_nll": -train,
                "test_nll": -test,
                "test_bits_per_dim": -test / (d * math.log(2)),
                "kind": kind,
                "seconds": round(fit.elapsed, 1),
                "note": note,
            }
        )

    for k in (10,) if fast else (10, 30):
        fit = ppgen.fit(BernoulliMixture(k, d), x_train.double(), method="em", seed=seed)
        add(
            f"BernoulliMixture(K={k})",
            "em",
            fit,
            "exact",
            "EM, min_prob 1e-6",
            lambda x, fit=fit: fit.log_prob(x.double()),
        )
    made = MADE(d, hidden=(256,), num_orderings=1, seed=seed)
    fit = ppgen.fit(
        made, x_train, method="mle", num_steps=steps, batch_size=128, lr=1e-3, patience=20, seed=seed
    )
    add("MADE(hidden=256)", "mle", fit, "exact", f"{len(fit.history)} steps, batch 128")
    vae = VAE(d, 16, hidden=(256,))
    fit = ppgen.fit(
        vae, x_train, method="svi", num_steps=steps, batch_size=128, lr=1e-3, patience=20, seed=seed
    )
    k_iwae = 100 if fast else 1000
    add(f"VAE(latent=16), IWAE k={k_iwae}", "svi", fit, "estimate", f"{len(fit.history)} steps, batch 128")
    elbo = lambda x: torch.stack([fit.model.elbo(x) for _ in range(10)]).mean(0)
    add("VAE(latent=16), ELBO", "svi", fit, "bound", "same fit; mean of 10 one-draw ELBOs", elbo)
    return pd.DataFrame(rows)


def defaults_table(fast: bool = False, seed: int = 0) -> pd.DataFrame:
    """MADE (mle) and VAE (svi) fitted with their defaults on digits-17 train, scored on test.

    ``fast`` caps the runs at 200 steps (a smoke run, not the defaults' result).
    """
    levels, dim = 17, 64
    x_train, x_test = (load("digits-17", split, dtype=torch.float32) for split in ("train", "test"))
    options = {"num_steps": 200} if fast else {}
    rows = []

    def add(name, kind, fit, test, note):
        rows.append(
            {
                "model": name,
                "likelihood": "PMF" if kind == "exact" else "PMF given z",
                "kind": kind,
                "test_nll": test,
                "stderr": 0.0 if kind == "exact" else math.nan,
                "test_bits_per_dim": test / (dim * math.log(2)),
                "val_nll": fit.extras.get("best_validation_loss", math.nan),
                "seconds": round(fit.elapsed, 1),
                "note": f"{note}; {len(fit.history)} steps, best step {fit.extras.get('best_step')}"
                + (" (--fast: capped at 200 steps)" if fast else ""),
            }
        )

    made = MADE(likelihood="categorical", num_categories=levels)
    fit = ppgen.fit(made, x_train, method="mle", seed=seed, progress=False, **options)
    with torch.no_grad():
        test = -float(fit.log_prob(x_test).mean())
    add("defaults: MADE(likelihood='categorical')", "exact", fit, test, "mle, every option at its default")
    vae = VAE(latent_dim=16, likelihood="categorical", num_categories=levels)
    fit = ppgen.fit(vae, x_train, method="svi", seed=seed, progress=False, **options)
    k = 100 if fast else 1000
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        test = -float(fit.model.log_prob(x_test, k=k).mean())
    add(
        "defaults: VAE(latent_dim=16, likelihood='categorical'), IS k=" + str(k),
        "estimate",
        fit,
        test,
        "svi, every option at its default; val = -ELBO",
    )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--binary", action="store_true", help="the binarized-digits table instead")
    parser.add_argument("--defaults", action="store_true", help="only the two rows fitted with defaults")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.binary:
        frame, name = binary_table(fast=args.fast), "digits_nll_binary.json"
    elif args.defaults:
        frame, name = defaults_table(fast=args.fast), "digits_nll_defaults.json"
    else:
        frame, _ = nll_table(fast=args.fast, log=lambda line: print(line, flush=True))
        frame = pd.concat([frame, defaults_table(fast=args.fast)], ignore_index=True)
        name = "digits_nll.json"
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 70):
        print(frame.round(2).to_string(index=False))
    print(f"total {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(frame.to_dict(orient="records"), indent=2))


if __name__ == "__main__":
    main()
