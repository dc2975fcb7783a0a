"""Figures used by the tutorials and the tour report (imports matplotlib on call only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ppgen.core import is_program
from ppgen.errors import OptionError
from ppgen.result import Fit

__all__ = ["posterior_vs_mle", "posterior_narrowing", "predictive_check"]

_COLOURS = ["#4a6fa5", "#d1495b", "#66a182", "#edae49", "#8d6a9f", "#2e4057"]


def _scalar_names(fits: Sequence[Fit]) -> list[str]:
    names: list[str] = []
    for fit in fits:
        source = fit.draws if fit.draws is not None else fit.params
        for name, value in source.items():
            size = value[0].numel() if fit.draws is not None else value.numel()
            labels = [name] if size == 1 else [f"{name}[{i}]" for i in range(size)]
            names += [label for label in labels if label not in names]
    return names


def _values(fit: Fit, label: str) -> np.ndarray | None:
    name, _, index = label.partition("[")
    i = int(index.rstrip("]")) if index else 0
    source = fit.draws if fit.draws is not None else {k: v.unsqueeze(0) for k, v in fit.params.items()}
    if source is None or name not in source:
        return None
    value = source[name]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(value.shape[0], -1).numpy()
    return value[:, i]


def posterior_vs_mle(
    fits: Sequence[Fit], labels: Sequence[str] | None = None, params: Sequence[str] | None = None
):
    """One panel per scalar parameter: posterior densities (histograms of draws) for
    Bayesian fits, vertical lines for point estimates (MLE, MAP).

    Arguments:
        fits: fits of the same story (or stories with the same parameter names).
        labels: legend entries; default ``"<Model> (<method>)"``.
        params: which scalar parameters to show (e.g. ``["loc", "scale"]``); default all.

    Returns:
        A matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    labels = list(labels) if labels else [f"{type(f.model).__name__} ({f.method})" for f in fits]
    names = [n for n in _scalar_names(fits) if params is None or n.split("[")[0] in params or n in params]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for k, (fit, label) in enumerate(zip(fits, labels)):
            values = _values(fit, name)
            if values is None:
                continue
            colour = _COLOURS[k % len(_COLOURS)]
            if values.shape[0] > 1:
                grid = np.linspace(*np.percentile(values, [0.1, 99.9]), 300)
                density = _density(fit, name, grid, values)
                ax.plot(grid, density, color=colour, lw=2, label=label)
                ax.fill_between(grid, density, color=colour, alpha=0.12)
            else:
                ax.axvline(values[0], color=colour, lw=2, ls="--", label=label)
        ax.set_title(name)
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _density(fit: Fit, label: str, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The exact marginal density where the fit has one, else a KDE of the draws."""
    name, _, index = label.partition("[")
    exact = getattr(fit.exact_posterior, "marginals", {}).get(name)
    if exact is not None and exact.batch_shape.numel() <= 1 and not exact.event_shape:
        with torch.no_grad():
            points = torch.as_tensor(grid, dtype=torch.float64).reshape(-1, *([1] * len(exact.batch_shape)))
            try:
                return exact.log_prob(points.to(exact.mean.dtype)).exp().reshape(-1).numpy()
            except (ValueError, NotImplementedError):
                pass
    from scipy.stats import gaussian_kde

    return gaussian_kde(values)(grid)


def posterior_narrowing(sizes: Sequence[int], sds: Sequence[float], reference: str = r"$\sigma/\sqrt{n}$"):
    """Log–log plot of a posterior standard deviation against the number of observations."""
    import matplotlib.pyplot as plt

    sizes, sds = np.asarray(sizes, dtype=float), np.asarray(sds, dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.loglog(sizes, sds, "o-", color=_COLOURS[0], label="posterior sd")
    ax.loglog(sizes, sds[0] * np.sqrt(sizes[0] / sizes), ":", color="grey", label=reference)
    ax.set_xlabel("n observations")
    ax.set_ylabel("posterior sd")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: Statistics ``predictive_check`` knows by name; each maps one replicate (a tensor) to a number.
STATISTICS = {
    "mean": lambda y: y.double().mean(),
    "sd": lambda y: y.double().std(),
    "min": lambda y: y.double().min(),
    "max": lambda y: y.double().max(),
    "spread": lambda y: y.double().max() - y.double().min(),
}


def predictive_check(
    fits: Sequence[Fit],
    statistic: str | Callable = "sd",
    *,
    site: str | None = None,
    labels: Sequence[str] | None = None,
    num_samples: int = 500,
    seed: int | None = 0,
):
    """The observed statistic ``T(y)`` against its predictive distribution ``T(y_rep)`` under each fit.

    One panel per fit: a histogram of ``T`` over replicated data sets (plug-in replicates for point
    fits, posterior predictive for Bayesian ones), the observed value as a line, and the predictive
    p-value ``P(T(y_rep) >= T(y))`` in the title — values near 0 or 1 flag what the fit misses.

    Arguments:
        fits: fits of the same data.
        statistic: ``"mean"``, ``"sd"``, ``"min"``, ``"max"``, ``"spread"`` or a function of one
            replicate (a tensor shaped like the observed site) returning a number.
        site: the observed site (a program's; default its only one, ``"x"`` for ppgen models).
        num_samples: replicates per fit.

    Returns:
        A matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    if not fits:
        raise OptionError("Expected at least one Fit to check, but got none.")
    if isinstance(statistic, str):
        if statistic not in STATISTICS:
            raise OptionError(
                f"Expected statistic in {sorted(STATISTICS)} or a function, but got {statistic!r}."
            )
        name, function = statistic, STATISTICS[statistic]
    elif callable(statistic):
        name, function = getattr(statistic, "__name__", "T"), statistic
    else:
        raise OptionError(f"Expected statistic as a name or a function, but got {statistic!r}.")
    labels = (
        list(labels)
        if labels
        else [f"{getattr(f.model, 'name', type(f.model).__name__)} ({f.method})" for f in fits]
    )
    fig, axes = plt.subplots(1, len(fits), figsize=(3.8 * len(fits), 3.0), squeeze=False, sharex=True)
    for k, (fit, label, ax) in enumerate(zip(fits, labels, axes[0])):
        replicates = fit.predict(num_samples=num_samples, seed=seed)
        chosen = site or next(iter(replicates))
        if chosen not in replicates:
            raise OptionError(
                f"Expected site among the observed sites {sorted(replicates)}, but got {site!r}."
            )
        observed = float(function(_observed_site(fit, chosen)))
        values = np.array([float(function(y)) for y in replicates[chosen]])
        p_value = float((values >= observed).mean())
        ax.hist(values, bins=30, color=_COLOURS[k % len(_COLOURS)], alpha=0.75)
        ax.axvline(observed, color="black", lw=2)
        ax.set_title(f"{label}\nP(T_rep ≥ T_obs) = {p_value:.2f}", fontsize=9)
        ax.set_xlabel(f"{name}({chosen})")
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _observed_site(fit: Fit, site: str) -> torch.Tensor:
    if is_program(fit.model):
        return fit.model.observed_values(fit.data)[site]
    return fit.data
