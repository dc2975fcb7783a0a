"""The picture of a :class:`~ppgen.calibration.result.Calibration`: one panel per method.

``kind="ecdf"``: the ECDF of each parameter's fractional ranks minus the uniform CDF, inside the 95 %
*simultaneous* band of Säilynoja et al. (2022), computed by ArviZ's ``ecdf_confidence_band`` (the band
``az.plot_ecdf(..., confidence_bands=True, difference=True)`` draws). A calibrated method stays inside;
a too narrow posterior is ∪-shaped in rank (a dip then a rise of the difference: "S"), a too wide one
∩-shaped, a biased one off to one side. ``kind="hist"``: rank histograms with the 99 % band of a
uniform bin count (Talts et al. 2018, Fig. 1).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["plot_calibration"]

MAX_LINES = 8  # parameter elements per panel (a hierarchy's many group effects would hide each other)


def plot_calibration(calibration, kind: str = "ecdf", parameters=None, axes=None):
    import matplotlib.pyplot as plt
    from arviz.stats.ecdf_utils import ecdf_confidence_band

    if kind not in ("ecdf", "hist"):
        raise ValueError(f"Expected kind='ecdf' or 'hist', but got {kind!r}.")
    labels = [label for *_, label in calibration._elements()]
    chosen = list(parameters) if parameters is not None else labels[:MAX_LINES]
    methods = calibration.methods
    if axes is None:
        columns = min(4, len(methods))
        rows = -(-len(methods) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
        axes = axes.ravel()
    else:
        axes = np.atleast_1d(axes).ravel()
        fig = axes[0].figure
    big_l = calibration.num_draws
    for ax, method in zip(axes, methods):
        table = {label: calibration.ranks(method, label) for label in chosen}
        n = max((len(r) for r in table.values()), default=0)
        if n == 0:
            ax.text(0.5, 0.5, "every fit failed", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(method)
            continue
        if kind == "ecdf":
            grid = np.arange(big_l + 1) / (big_l + 1)  # fractional rank r/(L+1) at r = 0..L
            cdf_at = (np.arange(big_l + 1) + 1) / (big_l + 1)
            points = np.unique(np.linspace(0, big_l, min(n, big_l + 1)).astype(int))
            lower, upper = ecdf_confidence_band(
                n, grid[points], cdf_at[points], prob=0.95, method="optimized"
            )
            ax.fill_between(
                grid[points], lower - cdf_at[points], upper - cdf_at[points], color="0.85", step="post"
            )
            for label, ranks in table.items():
                ecdf = (ranks[:, None] <= np.arange(big_l + 1)[None, :]).mean(0)
                ax.step(grid, ecdf - cdf_at, where="post", lw=1.2, label=label)
            ax.axhline(0, color="0.4", lw=0.6)
            ax.set_xlabel("fractional rank")
            ax.set_ylabel("ECDF − uniform")
        else:
            bins = int(min(20, max(2, n // 5)))
            low, high = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
            ax.axhspan(low, high, color="0.85")
            for label, ranks in table.items():
                ax.hist(ranks, bins=bins, range=(0, big_l + 1), histtype="step", lw=1.2, label=label)
            ax.set_xlabel(f"rank among L = {big_l} draws")
            ax.set_ylabel("simulations")
        statuses = [r["methods"][method]["status"] for r in calibration.records]
        failed = statuses.count("failed")
        ax.set_title(f"{method}" + (f" ({failed} failed)" if failed else ""))
    for ax in axes[len(methods) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
