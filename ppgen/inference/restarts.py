"""Where an optimiser starts, and restarts (``init=``, ``n_init=``) for ``mle``, ``map`` and ``svi``.

A set of *exchangeable* globals — mixture components, clusters, factors: one site in a plate of K
whose prior is the same for every element — has a tie that gradients never break: started all at
the prior median, the K elements feel the same gradient and move together, and the fit settles
on the saddle where every component sits on the data's mean (Pyro's GMM tutorial program under
``mle``: both locs near 0.2, one wide scale). scikit-learn answers with k-means++ starts and
``n_init`` restarts (``GaussianMixture``, ``KMeans``), Pyro's GMM tutorial with a data-driven
``init_loc_fn`` over seeds. ppgen does the same for any program:

- an exchangeable site whose values live where the observations do (value shape ``(K, *row)``
  with ``row`` the shape of one observed unit, and the same support) starts at K k-means centres of
  the observed rows: greedy k-means++ seeding (Arthur & Vassilvitskii 2007: each next centre drawn
  with probability proportional to its squared distance to the nearest centre so far, the best of a
  few candidates kept) refined by Lloyd's iterations, as scikit-learn starts ``GaussianMixture``;
- other exchangeable sites of a plate that got no data-driven start start where Stan starts every
  parameter: uniformly in (−2, 2) in the unconstrained space. A prior draw breaks the tie too, but a
  heavy prior puts it far out: Pyro's sparse_gamma_def.py's Gamma(0.1, 0.3) weights drew values near
  10⁻¹⁰, and svi ended at a total −ELBO of 1510–2160 over three seeds, against 257–320 from Stan's
  range and 216 for Pyro's own AutoNormal from ``init_to_feasible`` (every value at unconstrained 0);
- ``n_init=k`` runs k fits from k such draws (restart ``i`` with ``seed + i``, every other global
  drawn the same way for ``i ≥ 1``) and keeps the one with the lowest final loss (its last
  tenth averaged, since an ELBO is noisy); ``fit.extras["starts"]`` lists each start's loss.

Every other site starts at its prior median (Pyro's ``init_to_median``), moved toward Stan's box where
a positive or bounded prior's median lies far out in the unconstrained space
(:func:`init_to_prior_centre`). Values given with ``init=`` always win.

A start where the data are impossible (Pyro's sir_hmc.py continuous model at its prior median: the
first loss is infinite) is redrawn as Stan draws its inits, uniformly in (−2, 2) in the unconstrained
space, up to ``FEASIBLE_TRIES`` times (:func:`feasible_start`).
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.transforms import biject_to
from pyro.infer import autoguide as autoguides
from pyro.poutine.util import prune_subsample_sites

from ppgen.core import GenerativeModel, in_data_plate, set_seed
from ppgen.errors import OptionError
from ppgen.inference.loop import outside_support
from ppgen.result import Fit

__all__ = [
    "check_init",
    "exchangeable_sites",
    "kmeans_plus_plus",
    "kmeans_starts",
    "start_values",
    "best_of_starts",
    "feasible_start",
    "init_to_prior_centre",
    "FEASIBLE_TRIES",
]

#: Redraws of an impossible start before the fit goes on (and stops at step 0 saying so): Stan's 100.
FEASIBLE_TRIES = 100


def check_init(init, sites: dict) -> dict[str, torch.Tensor]:
    """``init=`` as ``{site: tensor}`` for the global latents, checked against their shapes and supports."""
    if init is None:
        return {}
    if isinstance(init, Fit):
        init = {k: v for k, v in init.params.items() if k in sites}
        if not init:
            raise OptionError(
                f"Expected a fit with point estimates for {sorted(sites)} as init, but it has none."
            )
    if not isinstance(init, dict):
        raise OptionError(f"Expected init as a dict {{site: value}} or a Fit, but got {type(init).__name__}.")
    unknown = sorted(set(init) - set(sites))
    if unknown:
        raise OptionError(f"Expected init values for the global latents {sorted(sites)}, but got {unknown}.")
    values = {}
    for name, value in init.items():
        fn = sites[name]["fn"]
        shape = tuple(sites[name]["value"].shape)
        value = torch.as_tensor(value).detach().to(sites[name]["value"].dtype)
        if tuple(value.shape) != shape:
            raise OptionError(f"Expected init[{name!r}] of shape {shape}, but got {tuple(value.shape)}.")
        if not bool(torch.isfinite(value).all()) or not bool(fn.support.check(value).all()):
            raise OptionError(f"Expected init[{name!r}] inside the support of its prior ({fn.support}).")
        values[name] = value
    return values


def _trace(model: GenerativeModel, x: torch.Tensor, covariates: dict):
    # Off the user's random stream: a seeded fit draws the same numbers whatever its starts cost.
    with torch.no_grad(), poutine.block(), torch.random.fork_rng():
        return prune_subsample_sites(poutine.trace(model.model).get_trace(x, **covariates))


def _is_global(site: dict, unit_plate: str | None) -> bool:
    return (
        site["type"] == "sample"
        and not site["is_observed"]
        and site["infer"].get("enumerate") != "parallel"
        and not in_data_plate(site, unit_plate)
    )


def _exchangeable(site: dict) -> str | None:
    """The plate over whose elements the site's prior is identical, if any.

    The site must fill a plate of K ≥ 2 as its leftmost value dimension; the prior is identical along
    it when the log-density of a reversed draw is the reversed log-density of the draw.
    """
    value, fn = site["value"], site["fn"]
    event = len(fn.event_shape)
    if value.dim() - event != 1 or value.shape[0] < 2:
        return None
    frames = [f for f in site["cond_indep_stack"] if f.size == value.shape[0] and f.name != "_draws"]
    if not frames:
        return None
    with torch.no_grad(), torch.random.fork_rng():
        draw = fn.sample()
        log_density = fn.log_prob(draw)
        reversed_density = fn.log_prob(draw.flip(0))
    if not torch.allclose(reversed_density, log_density.flip(0), rtol=1e-6, atol=1e-8):
        return None
    return frames[0].name


def exchangeable_sites(model: GenerativeModel, x: torch.Tensor, covariates: dict) -> dict[str, str]:
    """``{site: plate}`` of the global latents whose prior is identical over the K elements of a plate."""
    return _exchangeable_in(_trace(model, x, covariates), model.unit_plate)


def _exchangeable_in(trace, unit_plate: str | None) -> dict[str, str]:
    found = {}
    for name, site in trace.nodes.items():
        if _is_global(site, unit_plate):
            plate = _exchangeable(site)
            if plate is not None:
                found[name] = plate
    return found


def _observed_rows(trace, unit_plate: str | None) -> list[tuple[torch.Tensor, Any]]:
    """Each observed site in the units' plate as ``(rows, support)``, one row per unit."""
    rows = []
    for site in trace.nodes.values():
        if site["type"] != "sample" or not site["is_observed"] or not in_data_plate(site, unit_plate):
            continue
        frame = next(f for f in site["cond_indep_stack"] if f.name == unit_plate)
        value = site["value"].detach()
        axis = value.dim() - len(site["fn"].event_shape) + frame.dim
        if 0 <= axis < value.dim() and value.shape[axis] > 1:
            rows.append((value.movedim(axis, 0).reshape(value.shape[axis], -1), site["fn"].support))
    return rows


def kmeans_plus_plus(rows: torch.Tensor, k: int, generator: torch.Generator, trials: int = 1) -> torch.Tensor:
    """k-means++ seeding: ``k`` of the rows ``(n, d)``, each next one drawn ∝ squared distance to the nearest
    one chosen so far; with ``trials > 1`` the greedy variant (scikit-learn's): that many candidates are
    drawn and the one that lowers the summed squared distance most is kept."""
    n = rows.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = (rows - rows[chosen[0]]).pow(2).sum(1)
    for _ in range(1, k):
        total = float(nearest.sum())
        weights = torch.ones(n, dtype=torch.float64) if total <= 0 else (nearest / total).double()
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator)
        options = torch.minimum(nearest, (rows[candidates][:, None, :] - rows[None]).pow(2).sum(-1))
        best = int(options.sum(1).argmin())
        chosen.append(int(candidates[best]))
        nearest = options[best]
    return rows[chosen]


def kmeans_starts(
    rows: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 20
) -> torch.Tensor:
    """Greedy k-means++ centres (``2 + log k`` candidates a step) refined by Lloyd's iterations, as
    scikit-learn initialises ``GaussianMixture``: plain seeding puts two centres in one cluster about one
    time in nine on two well-separated clusters, and the fit can stay in that local optimum."""
    centres = kmeans_plus_plus(rows, k, generator, trials=2 + int(math.log(k)))
    for _ in range(iterations):
        label = torch.cdist(rows, centres).argmin(1)
        counts = torch.bincount(label, minlength=k).unsqueeze(1).to(rows.dtype)
        sums = torch.zeros_like(centres).index_add_(0, label, rows)
        moved = torch.where(counts > 0, sums / counts.clamp(min=1), centres)  # an empty cluster stays
        if torch.equal(moved, centres):
            break
        centres = moved
    return centres


def _same_support(a, b) -> bool:
    return a == b or (str(a) == str(b))


def start_values(
    trace, unit_plate: str | None, attempt: int, seed: int | None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Start values for attempt ``attempt`` and how each was chosen (``"k-means++"`` or
    ``"uniform(-2, 2)"``),
    from one trace of the program (:func:`_trace`).

    Attempt 0 changes only the exchangeable sites (the rest start at the prior median as always);
    later attempts draw every other global latent too.
    """
    generator = torch.Generator().manual_seed((0 if seed is None else int(seed)) * 1000 + attempt)
    exchangeable = _exchangeable_in(trace, unit_plate)
    observed = _observed_rows(trace, unit_plate)
    values, how = {}, {}
    for name in exchangeable:
        site = trace.nodes[name]
        row_shape = site["value"].shape[1:]
        for rows, support in observed:
            matches = rows.shape[1] == row_shape.numel() and _same_support(site["fn"].support, support)
            if not matches:
                continue
            inside = rows[
                site["fn"].support.check(rows.reshape(-1, *row_shape)).reshape(rows.shape[0], -1).all(1)
            ]
            if inside.shape[0] == 0:
                continue
            centres = kmeans_starts(inside.to(site["value"].dtype), site["value"].shape[0], generator)
            values[name], how[name] = centres.reshape(site["value"].shape), "k-means++"
            break
    broken = {exchangeable[name] for name in values}
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        for name, site in trace.nodes.items():
            if name in values or not _is_global(site, unit_plate):
                continue
            if (name in exchangeable and exchangeable[name] not in broken) or attempt > 0:
                values[name] = _stan_draw(site, generator)
                how[name] = "uniform(-2, 2)"
    return values, how


def init_to_prior_centre(site: dict | None = None, num_samples: int = 15):
    """The prior median, moved into Stan's box (−2, 2) of the unconstrained space as far as the prior's
    central half allows: ``u = clamp(clamp(median_u, -2, 2), q25_u, q75_u)``, per element.

    Only a positive or bounded support moves, because its unconstrained image can be wide and skewed:
    ``log`` of sparse_gamma_def.py's Gamma(0.1, 0.3) has its median at −6 (a value of 0.002) and a
    standard deviation of 10, so −2 is as central a start, and svi from it reaches Pyro's
    ``init_to_feasible`` answer (total −ELBO 215–224 over three seeds, against 317–401 from the
    median). A median already inside the box (Normal, HalfNormal, LogNormal(0, 2), Gamma(2, 2)) is
    kept bit for bit, from the same 15 draws Pyro's ``init_to_median`` takes. Used as an autoguide's
    ``init_loc_fn``.
    """
    if site is None:
        return functools.partial(init_to_prior_centre, num_samples=num_samples)
    fn = site["fn"]
    base = fn.support
    while isinstance(base, constraints.independent):
        base = base.base_constraint
    if base is constraints.real or base.is_discrete or base.event_dim > 0:  # simplex, correlation, ...
        return autoguides.init_to_median(site, num_samples=num_samples)
    with torch.no_grad():
        try:  # as Pyro's init_to_median: a distribution that cannot draw starts at a feasible point
            draws = fn.sample((num_samples,))
        except (RuntimeError, ValueError):
            return autoguides.init_to_feasible(site)
        median = draws.median(dim=0)[0]
        if torch.isnan(median).any():
            return autoguides.init_to_feasible(site)
        try:
            transform = biject_to(fn.support)
        except NotImplementedError:  # a support with no bijection: Pyro's own start
            return median
        # the quartiles as order statistics, symmetric about the median (torch.quantile caps its input)
        ordered = transform.inv(draws).sort(dim=0).values
        low, high = ordered[(num_samples - 1) // 4], ordered[num_samples - 1 - (num_samples - 1) // 4]
        median_u = transform.inv(median)
        start = torch.maximum(torch.minimum(median_u.clamp(-2.0, 2.0), high), low)
        value = torch.where(start == median_u, median, transform(start))  # an unmoved median, bit for bit
    value._pyro_custom_init = False
    return value


def _stan_draw(site: dict, generator: torch.Generator) -> torch.Tensor:
    """A value of the site drawn as Stan draws its inits (:func:`_stan_uniform`), constrained."""
    transform = biject_to(site["fn"].support)
    with torch.no_grad():
        return transform(_stan_uniform(transform.inv(site["value"].detach()), generator)).detach()


def _stan_uniform(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform in (−2, 2), shaped as ``like``: Stan's default inits in the unconstrained space."""
    return torch.rand(like.shape, generator=generator, dtype=like.dtype) * 4.0 - 2.0


def final_loss(history: list[float]) -> float:
    """The mean of the last tenth of the loss history (at least its last value): an ELBO is noisy."""
    if not history:
        return float("inf")
    tail = history[-max(1, len(history) // 10) :]
    value = sum(tail) / len(tail)
    return value if value == value else float("inf")  # NaN ranks last


def best_of_starts(
    fit_once: Callable[[GenerativeModel, dict], Fit],
    model: GenerativeModel,
    x: torch.Tensor,
    covariates: dict,
    options: dict,
    automatic: bool = True,
) -> Fit:
    """Run ``fit_once(model, options)`` from each start (``n_init`` of them); keep the lowest final loss.

    Restarts after the first train a copy of the model as it was before any training (a program's own
    ``pyro.param`` values start afresh), so the returned ``fit.model`` is the best start's.
    ``automatic=False`` (a guide that takes no ``init``): restarts differ by their seeds only.
    """
    n_init = options.get("n_init", 1)
    if isinstance(n_init, bool) or not isinstance(n_init, numbers.Integral) or n_init < 1:
        raise OptionError(f"Expected n_init as a positive integer, but got {n_init!r}.")
    options = {k: v for k, v in options.items() if k != "n_init"}
    seed = options.get("seed")
    given = options.get("init")
    trace = _trace(model, x, covariates) if automatic else None  # one run tells every start
    if automatic:
        given = check_init(given, {n: s for n, s in trace.nodes.items() if _is_global(s, model.unit_plate)})
    fresh = [copy.deepcopy(model) for _ in range(int(n_init) - 1)]
    tried: list[tuple[float, Fit, dict]] = []
    for attempt in range(int(n_init)):
        values, how = start_values(trace, model.unit_plate, attempt, seed) if automatic else ({}, {})
        how = {k: v for k, v in how.items() if k not in (given or {})}
        run = dict(options)
        if attempt > 0:
            run["seed"] = (0 if seed is None else int(seed)) + attempt
            set_seed(run["seed"])
        if values:
            run["init"] = {**values, **given}
        fit = fit_once(model if attempt == 0 else fresh[attempt - 1], run)
        tried.append((final_loss(fit.history), fit, {k: (how[k], values[k]) for k in how}))
    best = min(range(len(tried)), key=lambda i: tried[i][0])
    fit = tried[best][1]
    if n_init > 1 or tried[best][2]:
        fit.extras["starts"] = [
            {
                "loss": loss,
                "how": {k: h for k, (h, _) in how.items()},
                "init": {k: v for k, (_, v) in how.items()},
            }
            for loss, _, how in tried
        ]
        fit.extras["start"] = best
    fit.options = {**options, **({"n_init": n_init} if n_init > 1 else {})}
    return fit


def feasible_start(loss_fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor], seed: int | None) -> int:
    """Redraw the unconstrained starting values ``leaves`` uniformly in (−2, 2), as Stan does, until
    ``loss_fn()`` is finite. Returns how many redraws it took: 0 when the start was possible (nothing
    changed, the random stream included), −1 when none of ``FEASIBLE_TRIES`` was."""
    if not leaves or _finite_at_start(loss_fn):
        return 0
    generator = torch.Generator().manual_seed((0 if seed is None else int(seed)) * 1000 + 999)
    for attempt in range(1, FEASIBLE_TRIES + 1):
        with torch.no_grad():
            for leaf in leaves:
                leaf.copy_(_stan_uniform(leaf, generator))
        if _finite_at_start(loss_fn):
            return attempt
    return -1


def _finite_at_start(loss_fn: Callable[[], torch.Tensor]) -> bool:
    try:
        with torch.random.fork_rng():  # a look, not a step: the training's random stream is unmoved
            value = loss_fn()
    except ValueError as error:
        if not outside_support(error):
            raise
        return False
    return bool(torch.isfinite(value.detach()).all())
