"""Pyro's autoguides for the ``svi``/``map`` backends: which sites they cover, where they start,
minibatches of per-unit latents, the Laplace approximation, and the posterior draws they give.

The autoguide covers the global latents; per-unit latents belong to the model's own guide (or are
enumerated). A plain Pyro program without a guide gets them all covered.
"""

from __future__ import annotations

import pyro
import pyro.infer.autoguide as autoguides
import torch
from pyro import poutine

from ppgen.core import GenerativeModel, in_data_plate
from ppgen.errors import MethodError, OptionError
from ppgen.inference.minibatches import Minibatches
from ppgen.inference.posterior import inference_data
from ppgen.inference.restarts import check_init, init_to_prior_centre
from ppgen.result import Fit

__all__ = [
    "build_autoguide",
    "build_parameters",
    "laplace",
    "attach_guide_posterior",
    "attach_draws",
    "units_plate",
    "start_leaves",
]

#: Draws a fitted autoguide gives the posterior.
POSTERIOR_DRAWS = 1000


def build_autoguide(
    model: GenerativeModel,
    guide_name: str,
    own_guide: bool,
    globals_: dict,
    options: dict,
    batches: Minibatches,
    x: torch.Tensor,
    covariates: dict,
):
    """The autoguide for ``guide_name`` and the guide the ELBO runs (it adds the model's own guide)."""
    config_batch_size = batches.batch_size
    # The autoguide covers the globals; local latents belong to the model's own guide
    # (or are enumerated). A plain Pyro program without a guide gets them all covered.
    own_locals = model.guides_own_locals or own_guide

    def hidden(msg):
        enumerated = msg["infer"].get("enumerate") == "parallel"
        return msg["is_observed"] or enumerated or (own_locals and in_data_plate(msg, model.unit_plate))

    blocked = poutine.block(model.model, hide_fn=hidden)
    cls = {
        "delta": autoguides.AutoDelta,
        "normal": autoguides.AutoNormal,
        "laplace": autoguides.AutoLaplaceApproximation,  # MAP, then a Gaussian from the Hessian
    }.get(guide_name, autoguides.AutoMultivariateNormal)
    # Start at the prior median (Pyro's AutoNormal default starts at 0 in the unconstrained space,
    # which for a prior centred far away costs thousands of steps), moved toward 0 where a positive
    # prior's median lies far out (init_to_prior_centre).
    median = init_to_prior_centre(num_samples=15)
    start = check_init(options.get("init"), globals_)
    kwargs = {"init_loc_fn": autoguides.init_to_value(values=start, fallback=median) if start else median}
    if "init_scale" in options:
        kwargs["init_scale"] = options["init_scale"]
    if cls in (autoguides.AutoDelta, autoguides.AutoNormal):
        # Per-unit latents under minibatches: the guide's plate subsamples the batch's rows
        kwargs["create_plates"] = lambda *a, **k: units_plate(auto, model, batches)
    elif config_batch_size is not None and _local_latents(model, blocked, x, covariates):
        raise OptionError(
            "Expected guide='normal' or 'delta' for batch_size= with per-unit latents "
            f"({_local_latents(model, blocked, x, covariates)}): a joint Gaussian over them cannot "
            "follow a minibatch; use guide='normal', or full batches."
        )
    auto = cls(blocked, **kwargs)
    auto = auto.to(x.dtype)

    def guide(*args, **kwargs):
        values = auto(*args, **kwargs)
        # A user's full guide (intro_long's custom_guide given with method='map') draws the globals
        # too: the autoguide's values own them, so its own draws of those sites are hidden.
        poutine.block(model.guide, hide=list(values))(*args, **kwargs)
        return values

    return auto, guide


def build_parameters(
    auto, model: GenerativeModel, guide_name: str, x: torch.Tensor, covariates: dict
) -> None:
    """Run the autoguide once: it builds its parameters lazily (and finds what it cannot cover)."""
    try:
        with torch.no_grad():
            auto(x, **covariates)  # autoguides build their parameters lazily
    except NotImplementedError as err:  # e.g. a positive-definite support has no bijection
        raise MethodError(
            f"Expected global latents whose support Pyro's autoguides can transform, but got: "
            f"{err}; use method='exact' (conjugate) instead."
        ) from None
    except RuntimeError as err:
        if "no latent variables" not in str(err):
            raise
        raise OptionError(
            f"Expected latent sites for guide={guide_name!r}, but {type(model).__name__} has none "
            "(nothing for a joint Gaussian to cover); use method='mle'."
        ) from None


def start_leaves(auto) -> list[torch.Tensor]:
    """The autoguide's starting values in the unconstrained space (its locations, not its scales)."""
    if isinstance(auto, autoguides.AutoDelta):
        return list(auto.parameters())
    return [p for name, p in auto.named_parameters() if name.startswith("locs.") or name == "loc"]


def units_plate(auto, model: GenerativeModel, batches: Minibatches | None = None) -> list:
    """The units' plate of an autoguide, subsampled to the rows of the current minibatch.

    The model sees the batch's rows as its whole plate (the arguments are sliced); the guide keeps a
    parameter per unit of the full data and picks the batch's (Pyro's ``PyroParam`` subsampling). A
    units plate declared without a size (Pyro's ss_vae_M2.py: ``pyro.plate("data")``) gets the size
    the data gave it: the autoguide would rebuild it with size -1 and fail inside ``torch.arange``."""
    plate = model.unit_plate
    frame = auto._prototype_frames.get(plate) if plate is not None else None
    if frame is None:
        return []
    if batches is not None and batches.indices is not None:
        return [pyro.plate(plate, batches.n, dim=frame.dim, subsample=batches.indices)]
    n_units = (getattr(model, "structure", None) or {}).get("n_units", -1)
    if frame.size < 0 and n_units > 0:
        with poutine.block():  # its subsample site, which the model's plate has not (Pyro would warn)
            return [pyro.plate(plate, n_units, dim=frame.dim)]
    return []


def _local_latents(model: GenerativeModel, blocked, x: torch.Tensor, covariates: dict) -> list[str]:
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(blocked).get_trace(x, **covariates)
    return sorted(
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and in_data_plate(site, model.unit_plate)
    )


def laplace(auto, story, x, covariates):
    """Pyro's ``laplace_approximation`` with the Hessian of the *whole* story's log joint.

    (Pyro's own differentiates ``auto.model``, which here hides the observed sites so the autoguide
    covers latents only; its Hessian would be the prior's.) ``H = -∇² log p(y, z)`` at the MAP in the
    unconstrained space; the Gaussian ``N(ẑ, H⁻¹)`` is returned as an ``AutoMultivariateNormal``."""
    from pyro.ops.hessian import hessian

    guide_trace = poutine.trace(auto).get_trace(x, **covariates)
    model_trace = poutine.trace(poutine.replay(story, trace=guide_trace)).get_trace(x, **covariates)
    loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
    curvature = hessian(loss, auto.loc)
    with torch.no_grad():
        cov = torch.linalg.inv(curvature)
        scale = cov.diagonal().sqrt()
        if not torch.isfinite(scale).all():
            raise MethodError(
                "Expected a MAP with a positive-definite Hessian for guide='laplace', but the curvature "
                "there is singular or negative; the posterior is not locally Gaussian — use guide='mvn'."
            )
        correlation_tril = torch.linalg.cholesky(cov / scale[:, None] / scale[None, :])
    gaussian = autoguides.AutoMultivariateNormal(auto.model)
    gaussian._setup_prototype(x, **covariates)
    del gaussian.loc, gaussian.scale, gaussian.scale_tril
    gaussian.register_buffer("loc", auto.loc.detach().clone())
    gaussian.register_buffer("scale", scale)
    gaussian.register_buffer("scale_tril", correlation_tril)
    return gaussian.to(x.dtype)


def attach_guide_posterior(fit: Fit, auto, x, covariates, point: bool) -> None:
    """Posterior draws (and InferenceData) from a fitted autoguide."""
    with torch.no_grad():
        if point:
            fit.draws = {k: v.detach().unsqueeze(0) for k, v in auto.median(x, **covariates).items()}
            fit.params.update({k: v[0] for k, v in fit.draws.items()})
            return
        draws = guide_draws(auto, POSTERIOR_DRAWS, getattr(fit.model, "max_plate_nesting", 1), x, covariates)
    attach_draws(fit, draws, x, covariates)


def guide_draws(auto, count: int, nesting: int, x, covariates) -> dict[str, torch.Tensor]:
    """``count`` draws of an autoguide's sites ``{site: (S, *shape)}``: one run of the guide inside a
    draws plate left of the program's plates (as Pyro's vectorised ELBO particles), checked against
    one plain draw's shapes; a guide that does not broadcast is run once per draw instead."""
    one = auto(x, **covariates)
    try:
        with pyro.plate("_draws", count, dim=-nesting - 1):
            batch = auto(x, **covariates)
        if set(batch) == set(one) and all(batch[k].numel() == count * one[k].numel() for k in one):
            return {k: batch[k].detach().reshape(count, *one[k].shape) for k in one}
    except (RuntimeError, ValueError, IndexError, NotImplementedError):
        pass
    samples = [auto(x, **covariates) for _ in range(count)]
    return {k: torch.stack([s[k] for s in samples]).detach() for k in samples[0]}


def attach_draws(fit: Fit, draws: dict[str, torch.Tensor], x, covariates) -> None:
    """Posterior draws ``{site: (S, ...)}``: ``fit.draws``, their means in ``fit.params``, InferenceData."""
    if not draws:
        return
    fit.draws = draws
    # a discrete latent drawn by the user's guide: its most frequent draw (a mean of labels is no label)
    fit.params.update({k: v.mean(0) if v.is_floating_point() else v.mode(0).values for k, v in draws.items()})
    by_chain = {k: v.unsqueeze(0) for k, v in draws.items()}
    fit.posterior = inference_data(fit.model, x, by_chain, covariates)
