"""The neural rows of the digits-17 NLL table: a flow, MADEs (categorical and ordinal, one ordering
or order-agnostic, and their ensembles), a VAE and a conditional VAE, each trained with early
stopping on the validation split (:func:`train_early_stopping`).

:func:`ppgen.app.chapters.digits17.nll_table` calls the ``add_*`` functions in the table's order;
each appends its rows to an :class:`NllRows` and its fitted models to ``models``, and draws from
the global torch RNG in that order (the table is reproducible by ``seed``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ppgen.app.chapters.digits17_data import DIM, FLOW_SCALE, FLOW_SHIFT, LEVELS, Splits, load_split_labels
from ppgen.measures.dequantize import dequantize, discrete_nll_bound
from ppgen.models import MADE, VAE, ConditionalVAE, Flow

__all__ = [
    "NllRows",
    "train_early_stopping",
    "made_ensemble_log_prob",
    "add_flow",
    "add_categorical_mades",
    "add_ordinal_mades",
    "add_vaes",
]


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


@dataclass
class NllRows:
    """The rows of the NLL table in the order they are added; ``log`` gets one line per row."""

    log: Callable[[str], None]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        name: str,
        likelihood: str,
        kind: str,
        test: float,
        val: float,
        seconds: float,
        note: str,
        stderr: float | None = None,
    ) -> None:
        """One row: test and val NLL in nats per image, ``kind`` exact / bound / estimate."""
        # Monte Carlo standard error: 0 for exact PMFs, NaN where none is computed (VAE estimates)
        stderr = (0.0 if kind == "exact" else math.nan) if stderr is None else stderr
        self.rows.append(
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
        self.log(f"{name}: test {test:.2f} nats ({kind}), val {val:.2f}, {seconds:.1f} s")


def add_flow(table: NllRows, models: dict[str, Any], digits: Splits, s: dict[str, Any], seed: int) -> None:
    """A spline-coupling flow on dequantized, standardised data (fresh noise every minibatch)."""
    flow = Flow(DIM, "spline_coupling", s["flow_layers"], hidden=(s["flow_hidden"],), seed=seed)
    generator = torch.Generator().manual_seed(seed)

    def flow_loss(model, batch):
        return -model.log_prob(dequantize(batch, generator, scale=FLOW_SCALE, shift=FLOW_SHIFT)).mean()

    def flow_score(model, x):
        return discrete_nll_bound(model, x, 2, scale=FLOW_SCALE, shift=FLOW_SHIFT, seed=seed).nll

    info = train_early_stopping(
        flow,
        digits.train,
        digits.val,
        flow_loss,
        flow_score,
        max_epochs=s["flow_epochs"],
        patience=s["patience"] // 3 + 1,
        seed=seed,
    )
    models["flow"] = flow
    result = discrete_nll_bound(
        flow, digits.test, s["samples"], scale=FLOW_SCALE, shift=FLOW_SHIFT, seed=seed + 1
    )
    table.add(
        f"Flow (spline coupling x{s['flow_layers']})",
        "PDF, dequantized",
        "bound",
        result.nll,
        info["val"],
        info["seconds"],
        f"best epoch {info['epoch']}; log-Jacobian of the rescaling included",
        result.stderr,
    )


def _train_made(made: MADE, digits: Splits, max_epochs: int, patience: int, seed: int) -> tuple[dict, float]:
    """Early-stop ``made`` on val (a random ordering per minibatch when it has several); return the
    training summary and its test NLL."""
    pick = torch.Generator().manual_seed(seed)

    def loss(model, batch):
        if model.num_orderings == 1:
            return -model.log_prob(batch).mean()
        ordering = int(torch.randint(model.num_orderings, (1,), generator=pick))
        return -model.conditional_log_prob(batch, ordering).mean()

    info = train_early_stopping(
        made,
        digits.train,
        digits.val,
        loss,
        lambda m, x: -float(m.log_prob(x).mean()),
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
    )
    with torch.no_grad():
        return info, -float(made.log_prob(digits.test).mean())


def _add_made(table: NllRows, name: str, test: float, info: dict, note: str) -> None:
    table.add(name, "PMF", "exact", test, info["val"], info["seconds"], note)


def add_categorical_mades(
    table: NllRows, models: dict[str, Any], digits: Splits, s: dict[str, Any], seed: int
) -> None:
    """MADE with a categorical output: one raster order; then K orderings sharing one network,
    trained on a random ordering per minibatch (order-agnostic), whose PMF is the uniform mixture
    over them; then the ensemble of the two."""
    made = MADE(DIM, (s["made_hidden"],), "categorical", num_categories=LEVELS, dropout=0.5)
    info, test = _train_made(made, digits, s["epochs"], s["patience"], seed)
    _add_made(
        table,
        f"MADE (categorical, {s['made_hidden']} units, dropout 0.5)",
        test,
        info,
        f"raster order; best epoch {info['epoch']}",
    )
    k, hidden, rate = s["orderings"], s["agnostic_hidden"], s["agnostic_dropout"]
    agnostic = MADE(
        DIM, (hidden,), "categorical", num_categories=LEVELS, num_orderings=k, dropout=rate, seed=seed + 1
    )
    info_agnostic, test = _train_made(agnostic, digits, s["agnostic_epochs"], 2 * s["patience"], seed)
    _add_made(
        table,
        f"MADE ({k} orderings, order-agnostic, {hidden} units, dropout {rate})",
        test,
        info_agnostic,
        f"p = mean of the {k} orderings' PMFs; best epoch {info_agnostic['epoch']}",
    )
    models["made"] = [made, agnostic]
    table.add(
        "MADE ensemble (the two above)",
        "PMF",
        "exact",
        -float(made_ensemble_log_prob(models["made"], digits.test).mean()),
        -float(made_ensemble_log_prob(models["made"], digits.val).mean()),
        info["seconds"] + info_agnostic["seconds"],
        "uniform mixture of the two MADEs: log-mean-exp of their PMFs",
    )


def add_ordinal_mades(
    table: NllRows, models: dict[str, Any], digits: Splits, s: dict[str, Any], seed: int
) -> None:
    """The same MADEs with an ordinal output: per pixel a mixture of discretized logistics
    (PixelCNN++), so neighbouring grey levels share mass instead of 17 free logits each.

    The global RNG is restored afterwards so the VAE rows after these start as they did without them.
    """
    rng_state = torch.get_rng_state()
    k, mixtures = s["orderings"], s["mixtures"]
    ordinal = MADE(
        DIM,
        (s["made_hidden"],),
        "discretized_logistic",
        num_categories=LEVELS,
        num_mixtures=mixtures,
        dropout=0.5,
    )
    info, test = _train_made(ordinal, digits, s["epochs"], s["patience"], seed)
    _add_made(
        table,
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
    infos = [_train_made(m, digits, s["agnostic_epochs"], 2 * s["patience"], seed) for m in ordinal_agnostic]
    info_agnostic, test = infos[0]
    _add_made(
        table,
        f"MADE (discretized logistic K={mixtures}, {k} orderings, order-agnostic, {hidden} units, "
        f"dropout {rate})",
        test,
        info_agnostic,
        f"p = mean of the {k} orderings' PMFs; best epoch {info_agnostic['epoch']}",
    )
    models["made_ordinal"] = [ordinal, *ordinal_agnostic]
    if len(ordinal_agnostic) > 1:
        table.add(
            f"MADE ensemble ({len(ordinal_agnostic)} order-agnostic discretized logistic MADEs)",
            "PMF",
            "exact",
            -float(made_ensemble_log_prob(ordinal_agnostic, digits.test).mean()),
            -float(made_ensemble_log_prob(ordinal_agnostic, digits.val).mean()),
            sum(i["seconds"] for i, _ in infos),
            f"the row above and {len(ordinal_agnostic) - 1} more with other orderings (seeds); "
            "log-mean-exp of their PMFs",
        )
    torch.set_rng_state(rng_state)


def add_vaes(table: NllRows, models: dict[str, Any], digits: Splits, s: dict[str, Any], seed: int) -> None:
    """A VAE and a conditional VAE with categorical decoders: importance-sampled ``log p(x)``."""
    vae = VAE(DIM, s["latent"], "categorical", (s["vae_hidden"],), num_categories=LEVELS)
    info = train_early_stopping(
        vae,
        digits.train,
        digits.val,
        lambda m, b: m.loss(b) / b.shape[0],
        lambda m, x: -float(m.elbo(x).mean()),
        max_epochs=s["epochs"],
        patience=s["patience"],
        seed=seed,
    )
    models["vae"] = vae
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        elbo = -float(torch.stack([vae.elbo(digits.test) for _ in range(10)]).mean())
        iwae = -float(vae.log_prob(digits.test, k=s["k"]).mean())
        iwae_val = -float(vae.log_prob(digits.val, k=s["k"]).mean())
    table.add(
        f"VAE (categorical, latent {s['latent']})",
        "PMF given z",
        "estimate",
        iwae,
        iwae_val,
        info["seconds"],
        f"importance sampling k={s['k']} (stochastic lower bound on log p)",
    )
    table.add(
        f"VAE (categorical, latent {s['latent']}), -ELBO",
        "PMF given z",
        "bound",
        elbo,
        info["val"],
        info["seconds"],
        "same fit; mean of 10 one-draw ELBOs",
    )

    labels = load_split_labels()
    log_prior = torch.log(torch.bincount(labels["train"], minlength=10).float() / len(labels["train"]))

    def cvae_marginal(model, x, k):
        """``log p(x) = logsumexp_y [log p(y) + log p(x | y)]`` with each term by importance sampling."""
        terms = [log_prior[c] + model.log_prob(x, y=torch.full((x.shape[0],), c), k=k) for c in range(10)]
        return torch.logsumexp(torch.stack(terms), 0)

    cvae = ConditionalVAE(DIM, 10, s["latent"], "categorical", (s["vae_hidden"],), num_categories=LEVELS)
    order = {"train": digits.train, "val": digits.val}
    info = train_early_stopping(
        cvae,
        torch.arange(len(digits.train)),
        torch.arange(len(digits.val)),
        lambda m, i: m.loss(order["train"][i], labels["train"][i]) / len(i),
        lambda m, i: -float(m.elbo(order["val"][i], labels["val"][i]).mean()),
        max_epochs=s["epochs"],
        patience=s["patience"],
        seed=seed,
    )
    models["cvae"] = cvae
    with torch.no_grad():
        test = -float(cvae_marginal(cvae, digits.test, s["k"] // 10).mean())
        val = -float(cvae_marginal(cvae, digits.val, s["k"] // 10).mean())
    table.add(
        f"ConditionalVAE (categorical, latent {s['latent']})",
        "PMF given z, y",
        "estimate",
        test,
        val,
        info["seconds"],
        f"log sum_y p(y) p(x|y), p(x|y) by importance sampling k={s['k'] // 10} per class",
    )
