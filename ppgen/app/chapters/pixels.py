"""Tour chapter "pixels": discrete pixels done right — one NLL table on 17-level digits.

Every row of :func:`~ppgen.app.chapters.digits17.nll_table` is trained in the run (briefly by
default, at the benchmark's settings with ``--full``) and shown beside the same row of the
last ``make bench`` run, read from ``benchmarks/results.json`` with its date and command (the
83.1-nat ordinal MADE ensemble takes minutes to train; the tour quotes it). The table itself
is built by :mod:`ppgen.app.chapters.digits17`.
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from ppgen.app.chapters.digits17 import COMMAND, nll_table
from ppgen.app.chapters.digits17_data import pmf_vs_pdf
from ppgen.app.tour_context import Quote, TourContext

__all__ = ["run", "row_key", "beside_benchmark"]


def _method(name: str) -> str:
    """How a row of :func:`nll_table` was fitted (for the model zoo)."""
    for prefix, method in (
        ("FactorAnalysis", "em"),
        ("CategoricalMixture", "em"),
        ("Flow", "mle"),
        ("MADE", "mle"),
    ):
        if name.startswith(prefix):
            return method + ("" if method == "em" else ", early-stopped on val")
    if "VAE" in name:
        return "svi (ELBO), early-stopped on val"
    return "exact"


def row_key(name: str) -> str:
    """The family of a row of :func:`nll_table`, the same at every length (names carry sizes:
    ``"MADE (categorical, 512 units, dropout 0.5)"`` → ``"made"``), to set a run beside the benchmark."""
    if name.startswith("MADE"):
        ordinal = "discretized logistic" in name
        if name.startswith("MADE ensemble"):
            return "made ensemble, ordinal" if ordinal else "made ensemble"
        agnostic = "order-agnostic" in name
        return "made" + (", ordinal" if ordinal else "") + (", order-agnostic" if agnostic else "")
    if name.startswith("VAE"):
        return "vae -elbo" if "-ELBO" in name else "vae"
    return name.split(" ")[0].split("(")[0].lower()


def beside_benchmark(frame: pd.DataFrame, quote: Quote | None) -> pd.DataFrame:
    """The rows of :func:`nll_table` with the benchmark's test NLL (and its model settings) in
    extra columns, matched by :func:`row_key`; benchmark rows the run did not train (the ordinal
    ensemble outside ``--full``) are added with a note. ``quote``: ``load_benchmark("digits_nll")``."""
    table = frame[["model", "kind", "test_nll", "stderr", "test_bits_per_dim", "seconds", "note"]].copy()
    table.insert(0, "family", [row_key(name) for name in table["model"]])
    if quote is None:
        return table
    bench = pd.DataFrame(quote.results.get("digits_nll.json", []))
    if bench.empty:
        return table
    bench = pd.DataFrame(
        {
            "family": [row_key(name) for name in bench["model"]],
            "bench model": bench["model"],
            "bench test_nll": bench["test_nll"],
            "bench seconds": bench["seconds"],
        }
    )
    merged = table.merge(bench, on="family", how="outer", sort=False)
    missing = merged["model"].isna()
    merged.loc[missing, "note"] = "not trained in this run (--full trains it); benchmark row"
    order = {family: i for i, family in enumerate(bench["family"])}
    merged["order"] = [order.get(f, len(order)) for f in merged["family"]]
    return merged.sort_values("order", kind="stable").drop(columns="order").reset_index(drop=True)


def run(ctx: TourContext) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread avoids contention on shared CPUs
    try:
        frame, models = nll_table(seed=ctx.seed, mode=ctx.mode)
        comparison = pmf_vs_pdf(fast=ctx.fast, seed=ctx.seed, models=models)
    finally:
        torch.set_num_threads(threads)
    table = beside_benchmark(frame, ctx.benchmark("digits_nll"))
    quote = ctx.numbers.get("quoted", {}).get("digits_nll")
    length = {
        "fast": "the smoke-test version: tiny networks, a few epochs",
        "default": "every row, briefly trained: smaller networks and a few dozen epochs",
        "full": "the benchmark's settings",
    }[ctx.mode]
    ctx.text(
        "Pixels are integers: a categorical model assigns them a probability mass, a continuous "
        "model a density. On 17-level digits (train 1000, val 350, test 447) every explicit model "
        "is scored in nats per image: PMFs exactly (or by importance sampling for VAEs), densities "
        "through the dequantized bound E_u[-log p(x + u)], which upper-bounds a genuine discrete NLL. "
        f"This run trained {length}. "
        + (
            f"The 'bench' columns are the same families at full length from the last `make bench` "
            f"({quote['date']}; reproduce with `python {quote['command']}`), quoted, not trained here."
            if quote
            else f"No benchmark results found: `{COMMAND}` trains the full table."
        )
        + " Published numbers on this split, for context: causal-convolution autoregressive model "
        "≈ 86.0 (test), VAE ≈ 100.5 (negative ELBO, val), integer discrete flow ≈ 137.6 (val), "
        "RealNVP on dequantized data ≈ 168 as a discrete bound."
    )
    finite = lambda value: value if math.isfinite(value) else None  # noqa: E731 (JSON has no inf)
    best = frame.loc[frame["test_nll"].idxmin()]
    summary = f"Best in this run: {best['model']}, {best['test_nll']:.1f} nats"
    if quote and "bench test_nll" in table:
        bench_best = table.loc[table["bench test_nll"].idxmin()]
        summary += (
            f"; best in the benchmark: {bench_best['bench model']}, {bench_best['bench test_nll']:.1f} nats"
        )
        ctx.number("quoted_best_test_nll", float(bench_best["bench test_nll"]))
    ctx.text(summary + ".")
    ctx.table(table.round(2), "Test NLL on digits-17 (nats per image; lower is better)")
    ctx.number(
        "digits17_test_nll", {r["model"]: finite(r["test_nll"]) for r in frame.to_dict(orient="records")}
    )
    for row in frame.to_dict(orient="records"):
        ctx.zoo_row(
            model=row["model"],
            method=_method(row["model"]),
            data="digits-17",
            heldout_loglik=finite(-row["test_nll"]),
            kind=row["kind"],
            seconds=row["seconds"],
            note=row["note"],
        )
    ctx.table(comparison.round(2), "PMF vs PDF: the same test digits scored three ways")
    ctx.text(
        "The naive rows evaluate a density at the integers themselves. A density is not a "
        "probability: on pixels that are almost always 0 it grows without bound, so these numbers "
        "look far better than any PMF while saying nothing about how likely the images are."
    )
