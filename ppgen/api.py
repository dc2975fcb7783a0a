"""``ppgen.fit`` — one call over every inference backend — and ``ppgen.compare``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyro
import torch

from ppgen.core import GenerativeModel, is_program, with_local_params
from ppgen.data import as_data
from ppgen.errors import MethodError, OptionError, PpgenError
from ppgen.inference import BACKENDS, distributed
from ppgen.measures.criteria import information_criteria
from ppgen.programs.door import as_fit_model, as_model
from ppgen.programs.gradient_paths import globals_mle_leaves_unread, latents_without_gradient_path
from ppgen.programs.params import readable_name
from ppgen.programs.subsampling import subsampled_plates
from ppgen.result import Fit

__all__ = ["fit", "compare", "methods", "applicable_methods"]


def methods() -> list[str]:
    """Every method name :func:`fit` accepts."""
    return list(BACKENDS)


@with_local_params
def applicable_methods(
    model: Any, data: Any = None, *, observed: dict | None = None, guide: Any = None
) -> list[str]:
    """The methods whose requirements ``model`` meets (capabilities, priors).

    A Pyro program shows what it is only when run: give ``data`` (its arguments, and ``observed=``
    as for :func:`fit`) to know its latent and observed sites; without them the answer assumes a
    program with neither. ``guide=``: the hand-written guide you would pass to ``fit(method="svi")``
    (one that draws a discrete latent, as Pyro's autoname mixture examples do, makes 'svi' apply).
    """
    model = as_fit_model(model, observed) if data is not None else as_model(model)
    if data is not None and is_program(model) and model.structure is None:
        model.bind(data, observed=observed)
    found = _applicable(model)
    if guide is not None and "svi" not in found and _applicable(model, {"guide": guide}).count("svi"):
        found = [name for name in BACKENDS if name in found or name == "svi"]
    return found


def _applicable(model: GenerativeModel, options: dict | None = None) -> list[str]:
    """The methods :func:`fit` accepts for a model already through the door (the same checks)."""
    found = []
    for name in BACKENDS:
        try:
            _check_applies(model, name, options or {})
        except PpgenError:
            continue
        found.append(name)
    return found


def _check_applies(model: GenerativeModel, method: str, options: dict) -> None:
    """Every check :func:`fit` makes of the model before any work, for ``method``."""
    BACKENDS[method].check(model)
    if is_program(model) and (
        method == "mcmc" or method in ("svi", "map") and _uses_autoguide(model, options)
    ):
        model.check_transformable(method)  # NUTS and Normal autoguides move latents in real space
    if is_program(model) and method in ("svi", "map", "mle") and model.structure is not None:
        model.check_plated(method)
    subsampled = is_program(model) and method in ("mcmc", "importance") and subsampled_plates(model)
    if subsampled:
        plate, (size, full) = next(iter(subsampled.items()))
        raise MethodError(
            f"Expected the exact log-density of every unit for method={method!r}, but plate {plate!r} "
            f"subsamples {size} of {full} units per run (subsample_size=): each run scores a random "
            "part of the data. Drop subsample_size= for this method, or fit with 'svi', 'map' or 'mle', "
            "which are built for minibatches."
        )
    if is_program(model) and model.is_bayesian and method in GRADIENT_LATENT_METHODS:
        cut = latents_without_gradient_path(model)
        if cut:
            raise MethodError(
                f"Expected every latent to reach the likelihood through differentiable operations for "
                f"method={method!r}, but site {cut[0]!r} does not (the program reads it as a number, e.g. "
                f"float({cut[0]}), .item() or .numpy(), or never uses it): gradients would move it by its "
                "prior alone. Use method='importance', which needs no gradients."
            )
    if is_program(model) and model.is_bayesian and method == "mle":
        unread = globals_mle_leaves_unread(model)
        if unread:
            raise MethodError(
                f"Expected every global latent to reach the data for method='mle', which drops the globals' "
                f"priors and estimates them from the likelihood, but {unread} enter only those priors (of "
                "other globals, as a hierarchy's upper levels do): nothing identifies their maximum-"
                "likelihood value. Fit with 'map', 'svi' or 'mcmc', which keep the priors."
            )


#: Methods that move a program's latents by gradients of its log-density.
GRADIENT_LATENT_METHODS = ("mle", "svi", "map", "mcmc")


@with_local_params
def fit(
    model: Any,
    data: Any,
    method: str = "mle",
    *,
    seed: int | None = None,
    dtype: torch.dtype | None = None,
    **options: Any,
) -> Fit:
    """Fit ``model`` to ``data`` with one inference backend and return a :class:`Fit`.

    Arguments:
        model: a :class:`~ppgen.core.GenerativeModel`, or any Pyro program as Pyro's examples
            write it — a function, a model method (``guide=`` its guide), a ``PyroModule`` — see
            :class:`ppgen.programs.program.Program`. The model itself is not modified: the fit works on a
            copy (``fit.model``).
        data: for a ppgen model, the observations (tensor, numpy, list, DataFrame, an embedded
            dataset name) or ``{"x": ..., **covariates}``; for a program, its arguments by name
            (a dict or DataFrame; a bare tensor binds to an argument ``x``).
        method: ``"exact"``, ``"em"``, ``"mle"``, ``"svi"``, ``"map"``, ``"mcmc"``,
            ``"importance"`` or ``"adversarial"`` (see :func:`methods`).
        seed: makes the fit bit-reproducible.
        dtype: floating dtype of data and model (default: the data's own, float64 stays; for
            ``method="adversarial"`` the generator's own, float32 as PyTorch builds it, and the data
            are cast to it).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) for the gradient
            methods (mle, svi, map, adversarial); the returned fit lives on the CPU. Under
            ``torchrun`` these methods train data-parallel (see :mod:`ppgen.inference.distributed`).
        observed: programs only: ``{site: values}`` conditions those sites from outside
            (``poutine.condition``), for a purely generative program such as ``model(sigma)``.
        plate: programs only: the plate whose entries are the units (default: the outermost
            plate around every observed site).
        options: backend options, e.g. ``num_steps``, ``lr``, ``batch_size``, ``guide`` (a name,
            or a hand-written guide function), ``num_samples``, ``num_chains``, ``validation``
            (mle/svi: early stopping on held-out rows — a fraction, data, or ``None``; neural
            models default to 0.1, see :mod:`ppgen.inference.validation`); an unknown option
            raises :class:`OptionError`.

    Example:
        >>> import ppgen, torch
        >>> from ppgen.models import Gaussian
        >>> x = torch.randn(200, 1, dtype=torch.float64) * 2 + 3
        >>> fit = ppgen.fit(Gaussian(dim=1), x, method="exact")
        >>> round(float(fit.params["loc"]), 2) == round(float(x.mean()), 2)
        True
    """
    if not isinstance(method, str) or method not in BACKENDS:
        raise OptionError(f"Expected method in {list(BACKENDS)}, but got {method!r}.")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise OptionError(f"Expected a floating dtype such as torch.float64, but got {dtype!r}.")
    if seed is not None:  # before the program first runs: its random initialisers are seeded too
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise OptionError(f"Expected seed to be an integer, but got {seed!r}.")
        pyro.set_rng_seed(seed)
        options["seed"] = seed
    observed = options.pop("observed", None)
    model = as_fit_model(model, observed, options)  # the door: normalised once, a private copy
    backend = BACKENDS[method]
    program = is_program(model)
    if program:  # a user's program: bind its arguments and discover its sites before the checks
        x, covariates = model.bind(data, dtype=dtype, observed=observed)
    _check_method(model, method, options)
    if program and method == "mcmc":
        _warn_masked_latents(model)
    if program and method in ("mcmc", "importance"):
        _warn_fixed_parameters(model, method, x, covariates)
    device = _device_for(method, options.pop("device", None))
    _check_data_parallel(method, backend)
    if program:
        if dtype is not None:
            model = model.to(dtype)
    else:
        x, covariates, model = _model_data(model, data, backend, dtype)
        if method in ("mle", "svi", "map", "mcmc", "importance") and model.is_bayesian:
            model.check_support(x, covariates)
    if device.type != "cpu":
        x, covariates, model = _to_device(device, x, covariates, model)
    result = backend.fit(model, x, covariates, **options)
    if device.type != "cpu":
        result, x = _fit_to_cpu(result), x.cpu()
        result.options["device"] = str(device)
    if program:  # a program's data are its bound arguments
        result.data, result.covariates = covariates, {}
        result.options.update({"observed": sorted(observed or {})} if observed else {})
        return result
    result.data = x
    if covariates and not result.covariates:
        result.covariates = covariates
    return result


def _warn_fixed_parameters(model: GenerativeModel, method: str, x, covariates: dict) -> None:
    """Sampling methods draw latent sites only: the model's ``pyro.param``/``pyro.module`` values stay
    where they start (Pyro's NUTS and Importance do the same, silently; dmm.py's and ss_vae_M2.py's
    networks would be random). A proposal guide's parameters are not the model's: it is traced alone."""
    networks = getattr(model, "networks", {})
    before = dict(networks)
    networks.clear()  # to see the networks the model itself registers (pyro.module emits no param site)
    try:
        with torch.no_grad(), pyro.poutine.block():
            trace = pyro.poutine.trace(model.model).get_trace(x, **covariates)
        registered = [
            f"{name}.{path}"
            for name, net in networks.items()
            for path, p in net.named_parameters()
            if p.requires_grad
        ]
    finally:
        networks.update(before)
    names = registered + [readable_name(n) for n, site in trace.nodes.items() if site["type"] == "param"]
    if names:
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        warnings.warn(
            f"method={method!r} samples the program's latent sites only: its parameters ({shown}) stay at "
            "their initial values, as in Pyro. Give them priors (pyro.sample) to sample them, or estimate "
            "them with method='mle', 'map' or 'svi'.",
            UserWarning,
            stacklevel=3,
        )


def _warn_masked_latents(model: GenerativeModel) -> None:
    masked = model.partly_masked_latents()
    if masked:
        warnings.warn(
            f"Latent site {masked[0]!r} has entries whose density is masked out (obs_mask= imputes only the "
            "masked positions, yet samples the site at every position; a .mask(...) past a sequence's end "
            "does the same): NUTS moves those entries with no density, so they wander and fill the tree "
            "depth, as in Pyro. Their draws mean nothing; for imputation prefer method='map' or 'svi', or "
            "impute in a site of its own.",
            UserWarning,
            stacklevel=3,
        )


def _model_data(model: GenerativeModel, data: Any, backend: Any, dtype: torch.dtype | None):
    """A ppgen model's data, validated, and the model in the dtype the fit computes in."""
    x, covariates = as_data(data, dtype=dtype)
    if dtype is None and model.is_bayesian and not list(model.parameters()):
        # A Bayesian story computes in its priors' dtype; float64 priors give float64 fits.
        prior_dtype = model.prior_dtype(x, covariates)
        if prior_dtype is not None and prior_dtype != x.dtype:
            x = x.to(prior_dtype)
    if callable(getattr(model, "setup", None)):
        model.setup(x, covariates)  # models with lazily created parameters build them now
    params = list(model.parameters())
    if dtype is None and params and getattr(backend, "computes_in_model_dtype", False):
        x = x.to(params[0].dtype)
    target = x.dtype if dtype is None and params else (dtype or x.dtype)
    if params and params[0].dtype != target:
        model = model.to(target)
    return x, covariates, model


def _check_method(model: Any, method: str, options: dict) -> None:
    try:
        _check_applies(model, method, options)
    except MethodError as err:
        usable = _applicable(model, options)
        raise MethodError(f"{err} Methods that apply to this model: {usable}.") from None


def _uses_autoguide(model: Any, options: dict) -> bool:
    guide = options.get("guide")
    return isinstance(guide, str) and guide != "model" or guide is None and model.user_guide is None


GRADIENT_METHODS = ("mle", "svi", "map", "adversarial")
#: Methods whose training loop averages gradients over torch.distributed ranks; a backend
#: joins by setting ``data_parallel = True``.
DATA_PARALLEL_METHODS = ("mle", "svi", "map")


def _check_data_parallel(method: str, backend: Any) -> None:
    if not distributed.is_distributed() or method not in GRADIENT_METHODS:
        return  # closed-form / EM / MCMC fits simply run the same full-data fit on every rank
    if method not in DATA_PARALLEL_METHODS and not getattr(backend, "data_parallel", False):
        raise OptionError(
            f"Expected a data-parallel method {list(DATA_PARALLEL_METHODS)} under torch.distributed, but "
            f"method={method!r} does not average gradients over processes yet; run it in one process."
        )


def _device_for(method: str, device: Any) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if method not in GRADIENT_METHODS and str(device).strip().lower() in ("cpu", "auto"):
        return torch.device("cpu")
    if method not in GRADIENT_METHODS:
        raise OptionError(
            f"Expected device='cpu' for method={method!r}, but got {device!r}; devices apply to the "
            f"gradient methods {list(GRADIENT_METHODS)}."
        )
    return distributed.resolve_device(device)


def _to_device(device: torch.device, x: torch.Tensor, covariates: dict, model):
    moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in covariates.items()}
    return x.to(device), moved, model.to(device)


def _fit_to_cpu(result: Fit) -> Fit:
    """Bring a fit trained on an accelerator back to the CPU (to score, save, load anywhere)."""

    def cpu(value):
        if isinstance(value, torch.Tensor):
            return value.cpu()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        return value

    result.model = result.model.to("cpu")
    for name in ("guide", "critic"):
        part = getattr(result, name)
        if isinstance(part, torch.nn.Module):
            setattr(result, name, part.to("cpu"))
    result.params = cpu(result.params)
    result.draws = cpu(result.draws) if result.draws is not None else None
    result.covariates = cpu(result.covariates)
    return result


@with_local_params
def compare(
    fits: Sequence[Fit], x_test: Any | None = None, *, names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Side-by-side table of fits of the same data.

    Columns: model, method, mean train and held-out log-likelihood per example (posterior
    predictive for Bayesian fits), ELPD by PSIS-LOO and WAIC where pointwise
    log-likelihoods exist, with PSIS-LOO's reliability: ``loo_pareto_k_max`` (the largest
    Pareto shape ``k`` of the importance ratios) and ``loo_pareto_k_bad`` (how many data
    points have ``k > 0.7``, where the LOO estimate of that point is unreliable; Vehtari et
    al. 2017), then the parameters (mean ± sd), and wall time.
    """
    if not fits:
        raise OptionError("Expected at least one Fit to compare, but got none.")
    rows = []
    for i, result in enumerate(fits):
        if not isinstance(result, Fit):
            raise OptionError(f"Expected Fit objects, but item {i} is {type(result).__name__}.")
        row: dict[str, Any] = {
            "model": names[i] if names else getattr(result.model, "name", type(result.model).__name__),
            "method": result.method,
        }
        row["train_loglik"] = _safe_score(result, result.data)
        if x_test is not None:
            row["test_loglik"] = _safe_score(result, x_test)
        row["log_evidence"] = result.extras.get("log_evidence", math.nan)  # importance estimates it
        row.update(information_criteria(result))
        row["params"] = _param_text(result)
        row["seconds"] = round(result.elapsed, 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _safe_score(result: Fit, x) -> float:
    if x is None:
        return math.nan
    try:
        return result.score(x, **result.covariates) if not isinstance(x, dict) else result.score(x)
    except PpgenError:
        return math.nan


def _param_text(result: Fit, most: int = 4) -> str:
    table = result.summary()
    if table.empty:
        return ""
    parts = []
    for _, row in table.head(most).iterrows():
        sd = row.get("sd")
        text = f"{row['parameter']}={row['estimate']:.3g}"
        if sd is not None and not (isinstance(sd, float) and math.isnan(sd)):
            text += f"±{sd:.2g}"
        parts.append(text)
    if len(table) > most:
        parts.append(f"… ({len(table)} total)")
    return ", ".join(parts)
