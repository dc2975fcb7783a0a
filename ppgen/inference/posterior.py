"""``arviz.InferenceData`` built by hand from posterior draws (PYRO_NOTES 3: ``az.from_pyro`` drops
the ``log_likelihood`` group for enumerated and ``to_event`` stories, and LOO/WAIC need it)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from ppgen.core import GenerativeModel
from ppgen.errors import IncompleteFitWarning, PpgenError

__all__ = ["inference_data", "kept_after_training"]


def _warn_incomplete(what: str, err: Exception) -> None:
    detail = " ".join(str(err).split())[:200]
    warnings.warn(
        f"The fit trained, but {what} could not be computed ({type(err).__name__}: {detail}); the fit is "
        "returned without it. Please report the program if this looks like ppgen's fault.",
        IncompleteFitWarning,
        stacklevel=4,
    )


@contextlib.contextmanager
def kept_after_training(what: str) -> Iterator[None]:
    """Around work done *after* a fit trained (posterior draws, InferenceData): an unexpected failure
    warns (:class:`IncompleteFitWarning`) and leaves that part out instead of losing the fit. A
    :class:`PpgenError` is a deliberate refusal and still raises."""
    try:
        yield
    except PpgenError:
        raise
    except Exception as err:  # noqa: BLE001 - anything else must not cost the user the trained fit
        _warn_incomplete(what, err)


def inference_data(
    model: GenerativeModel,
    x: torch.Tensor,
    by_chain: dict[str, torch.Tensor],
    covariates: dict | None = None,
    sample_stats: dict | None = None,
    max_draws_for_loglik: int | None = None,
):
    """Build ``arviz.InferenceData`` by hand (PYRO_NOTES 3): posterior draws by chain
    ``{site: (C, S, ...)}``, pointwise ``log_likelihood`` from the model's own ``log_prob``
    (so LOO/WAIC always work), observed data and optional sample stats."""
    import arviz as az  # ~1 s to import: only fits that build a posterior pay for it

    if max_draws_for_loglik is not None:
        draws_per_chain = next(iter(by_chain.values())).shape[1]
        if draws_per_chain > max_draws_for_loglik:
            keep = torch.linspace(0, draws_per_chain - 1, max_draws_for_loglik).round().long()
            by_chain = {k: v[:, keep] for k, v in by_chain.items()}
    chains, draws = next(iter(by_chain.values())).shape[:2]
    flat = {k: v.reshape(chains * draws, *v.shape[2:]) for k, v in by_chain.items()}
    if callable(getattr(model, "deterministic_draws", None)):  # a program's pyro.deterministic sites
        with torch.no_grad():
            computed = model.deterministic_draws(flat, covariates)
        by_chain = {**by_chain, **{k: v.reshape(chains, draws, *v.shape[1:]) for k, v in computed.items()}}
    groups = {"posterior": {k: v.detach().cpu().numpy() for k, v in by_chain.items()}}
    try:
        with torch.no_grad():
            per_site = model.log_likelihood_by_site(x, flat, covariates or {})
        groups["log_likelihood"] = {
            k: v.reshape(chains, draws, -1).cpu().numpy() for k, v in per_site.items()
        }
    except NotImplementedError:
        pass  # a story without a tractable marginal: no LOO/WAIC, the rest still works
    except PpgenError:
        raise
    except Exception as err:  # noqa: BLE001 - the draws are done: keep them, say what is missing
        _warn_incomplete("the pointwise log-likelihood (so LOO/WAIC)", err)
    groups["observed_data"] = {
        k: v.detach().cpu().numpy() for k, v in model.observed_data(x, covariates or {}).items()
    }
    if sample_stats:
        groups["sample_stats"] = sample_stats
    return az.from_dict(**groups)
