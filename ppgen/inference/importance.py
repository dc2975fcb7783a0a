"""``method="importance"``: self-normalised importance sampling, as Pyro's ``Importance`` does.

For programs whose likelihood gradients cannot pass through — a simulator that reads a latent as a
Python number (Pyro's inclined-plane example), a discrete search, a call into other code — every
gradient method and NUTS is lost, but the prior (or a guide) can still propose and the program can
still score. With ``S`` proposals ``z_s ~ q``:

    w_s = p(x, z_s) / q(z_s),   p(z | x) ≈ Σ_s w̄_s δ(z_s),   log p(x) ≈ log (1/S) Σ_s w_s

with ``w̄ = w / Σ w``. From the prior, ``p(x, z)`` is the program's log joint as Pyro scores it (a
latent's ``poutine.scale``, ``poutine.mask`` or ``.mask(False)`` included) and ``q`` the distribution
each latent is drawn from: the two cancel for a plain latent, and a masked prior is divided out, so
the target is the one NUTS samples (mle_map's ``masked_model``: Beta(1 + heads, 1 + tails), where
Pyro's ``Importance`` masks its proposal too and returns the Beta(10, 10) posterior). The log
evidence comes with its delta-method standard error ``sd(w) / (√S · mean(w))``, the weights with
their effective sample size ``(Σ w)² / Σ w²`` (Kong 1992). The proposal is the prior
(``proposal="prior"``), the program's own guide (``"guide"``), or a fitted ``svi`` fit of the same
program (its guide: importance-reweighting a variational fit).

Where the program broadcasts, all proposals run in one pass inside a particles plate (as Pyro's
vectorised ELBO particles), checked on the first and last proposal against a plain run; a simulator
that reads its latents as numbers runs once per proposal, as Pyro's ``Importance`` always does.
``fit.draws`` are ``num_samples`` draws resampled by the weights (multinomial, seeded), so
``summary``, ``predict`` and LOO read a posterior like any other.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings

import pyro
import torch
from pyro import poutine
from pyro.distributions import Independent, MaskedDistribution
from pyro.distributions.util import sum_rightmost
from tqdm.auto import tqdm

from ppgen.core import GenerativeModel, is_program
from ppgen.errors import ConvergenceWarning, DataError, MethodError, OptionError, PpgenError
from ppgen.inference.autoguide import attach_draws
from ppgen.inference.options import check_options
from ppgen.inference.posterior import kept_after_training
from ppgen.result import Fit

__all__ = ["Importance", "LowEffectiveSampleSizeWarning", "log_evidence"]

PROPOSALS = ("prior", "guide")
#: Below this many effective samples the weighted posterior is mostly a few proposals.
LOW_ESS = 100


class LowEffectiveSampleSizeWarning(ConvergenceWarning):
    """Importance weights concentrate on few proposals: the posterior and the evidence are unreliable."""


def log_evidence(log_weights: torch.Tensor) -> tuple[float, float, float]:
    """``(log p̂(x), its standard error, effective sample size)`` from unnormalised log weights."""
    count = log_weights.numel()
    log_mean = torch.logsumexp(log_weights, 0) - math.log(count)
    relative = (log_weights - log_weights.max()).exp()
    ess = float(relative.sum() ** 2 / relative.pow(2).sum())
    # delta method: Var(log Ẑ) ≈ Var(w) / (S · mean(w)²), computed on weights scaled by their max
    se = float(relative.std(unbiased=True) / (math.sqrt(count) * relative.mean())) if count > 1 else math.nan
    return float(log_mean), se, ess


class Importance:
    """Importance sampling from the prior, the program's guide or a fitted ``svi`` guide."""

    name = "importance"
    options = {"num_samples", "proposal", "seed", "progress", "max_plate_nesting"}

    def check(self, model: GenerativeModel) -> None:
        if not model.is_bayesian:
            raise MethodError(
                f"Expected a model with priors for method='importance' (the proposals are its latents), "
                f"but {type(model).__name__} has none; use method='mle'."
            )
        if is_program(model) and callable(getattr(model, "check_density", None)):
            model.check_density(self.name)  # a generator's deterministic output has no weight

    def fit(self, model: GenerativeModel, x: torch.Tensor, covariates: dict, **options) -> Fit:
        check_options(options, self.options, self.name)
        count = options.get("num_samples", 1000)
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 2:
            raise OptionError(f"Expected num_samples as an integer ≥ 2, but got {count!r}.")
        proposal, label = self._proposal(model, options.get("proposal", "prior"))
        start = time.perf_counter()
        try:
            latents, log_weights = _propose(model, proposal, int(count), x, covariates, options)
        except PpgenError:
            raise
        except (ValueError, RuntimeError, IndexError) as err:  # raised inside the program or Pyro
            raise DataError(
                f"Expected the program to run and score its data under each proposal from the {label}, but "
                f"it raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        log_z, se, ess = log_evidence(log_weights)
        if not math.isfinite(log_z):
            raise MethodError(
                f"Expected some proposals where the data are possible, but all {count} proposals from the "
                f"{label} give the data zero density; raise num_samples or give a guide closer to the "
                "posterior (proposal='guide' or a fitted svi Fit)."
            )
        generator = torch.Generator().manual_seed(options.get("seed") or 0)
        weights = (log_weights - log_weights.max()).exp().double()
        picks = torch.multinomial(weights / weights.sum(), int(count), replacement=True, generator=generator)
        fit = Fit(
            model=model,
            method=self.name,
            params={},
            history=[],
            converged=ess >= LOW_ESS,
            elapsed=time.perf_counter() - start,
            options=options,
            covariates=covariates,
            n_train=x.shape[0],
            extras={
                "log_evidence": log_z,
                "log_evidence_se": se,
                "ess": ess,
                "num_samples": int(count),
                "proposal": label,
                "log_weights": log_weights,
            },
        )
        if ess < LOW_ESS:
            warnings.warn(
                f"The importance weights have an effective sample size of {ess:.1f} out of {count} "
                f"proposals from the {label}: the posterior and log evidence rest on a few draws. Raise "
                "num_samples or propose from a guide closer to the posterior (proposal=an svi Fit).",
                LowEffectiveSampleSizeWarning,
                stacklevel=3,
            )
        with kept_after_training("the resampled posterior and its pointwise log-likelihood"):
            attach_draws(fit, {k: v[picks] for k, v in latents.items()}, x, covariates)
            fit.params.update(_weighted_means(latents, weights))
        return fit

    @staticmethod
    def _proposal(model: GenerativeModel, proposal):
        """The proposal as a callable of the model's arguments, and its label for messages."""
        if isinstance(proposal, Fit):
            if proposal.method != "svi" or not callable(proposal.guide):
                raise OptionError(
                    f"Expected proposal=a fitted svi Fit (its guide proposes), but got a {proposal.method!r} "
                    "fit without a guide."
                )
            return proposal.guide, "svi guide"
        if proposal not in PROPOSALS:
            raise OptionError(f"Expected proposal in {PROPOSALS} or an svi Fit, but got {proposal!r}.")
        if proposal == "guide":
            if not is_program(model) or model.user_guide is None:
                raise OptionError(
                    "Expected a program with its own guide for proposal='guide' (ppgen.fit(program, data, "
                    "method='importance', guide=my_guide, proposal='guide')), but it has none."
                )
            return model.guide, "guide"
        return None, "prior"  # one run of the program per proposal (see _propose)


def _propose(model, proposal, count: int, x, covariates, options) -> tuple[dict, torch.Tensor]:
    """``count`` proposals in one vectorised run where the program broadcasts over a particles plate
    (checked on the first and last proposal against a plain run), else one run per proposal."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = _propose_together(model, proposal, count, x, covariates)
        if found is not None:
            return found
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError):
        pass  # a simulator reads numbers, or shapes do not broadcast: one run per proposal
    return _propose_each(model, proposal, count, x, covariates, options)


def _propose_together(model, proposal, count: int, x, covariates) -> tuple[dict, torch.Tensor] | None:
    nesting = max(1, getattr(model, "max_plate_nesting", 1))
    with poutine.block(), pyro.plate("_particles", count, dim=-nesting - 1):
        if proposal is None:
            model_trace = poutine.trace(model.model).get_trace(x, **covariates)
            log_weights = _per_particle(model_trace, count, nesting, lambda site: site["is_observed"])
            log_weights = log_weights + _per_particle(model_trace, count, nesting, _is_latent, _not_proposed)
        else:
            guide_trace = poutine.trace(proposal).get_trace(x, **covariates)
            replayed = poutine.replay(model.model, trace=guide_trace)
            model_trace = poutine.trace(replayed).get_trace(x, **covariates)
            _check_covers(model_trace, guide_trace)
            log_weights = _per_particle(model_trace, count, nesting) - _per_particle(
                guide_trace, count, nesting
            )
    plain = poutine.trace(model.model).get_trace(x, **covariates)
    shapes = {n: site["value"].shape for n, site in plain.nodes.items() if _is_latent(site)}
    values = {}
    for name, site in model_trace.nodes.items():
        if _is_latent(site) and name in shapes:
            value = site["value"].detach()
            if value.numel() != count * shapes[name].numel():
                return None
            values[name] = value.reshape(count, *shapes[name])
    for index in (0, count - 1):  # the same weight as one plain run at that proposal's values
        one = {k: v[index] for k, v in values.items()}
        scored = poutine.trace(poutine.condition(model.model, data=one)).get_trace(x, **covariates)
        if proposal is None:  # conditioned on the proposal, its latents read as observed sites
            expected = _prior_log_weight(scored, set(one))
        else:
            guided = poutine.trace(poutine.condition(proposal, data=one)).get_trace(x, **covariates)
            expected = scored.log_prob_sum() - guided.log_prob_sum()
        if not torch.allclose(log_weights[index], expected.double(), rtol=1e-4, atol=1e-3):
            return None
    return values, log_weights


def _per_particle(
    trace, count: int, nesting: int, keep=lambda site: True, term=lambda site: site["log_prob"]
) -> torch.Tensor:
    """Each particle's sum of ``term`` (by default the log-density) over the trace's sample sites that
    ``keep`` picks, ``(S,)``; Pyro's ``compute_log_prob`` applies each site's scale and mask."""
    wanted = lambda name, site: type(site["fn"]).__name__ != "_Subsample" and keep(site)  # noqa: E731
    trace.compute_log_prob(wanted)
    total = torch.zeros(count, dtype=torch.float64)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or not wanted(name, site):
            continue
        log_prob = term(site)
        log_prob = log_prob.reshape((1,) * (nesting + 1 - log_prob.dim()) + log_prob.shape)
        if log_prob.dim() > nesting + 1:
            raise ValueError("enumeration or extra dims: not one particle per row")
        axis = log_prob.dim() - nesting - 1
        per = log_prob.movedim(axis, 0).reshape(log_prob.shape[axis], -1).sum(1)
        total = total + per.double().expand(count)
    return total


def _propose_each(model, proposal, count: int, x, covariates, options) -> tuple[dict, torch.Tensor]:
    """``count`` proposals: the latents' values ``{site: (S, ...)}`` and the log weights ``(S,)``.

    From the prior the latents' terms cancel, so one run of the program scores its observations;
    from a guide the program is replayed on the guide's draws and ``log p(x, z) - log q(z)`` kept.
    """
    values: dict[str, list[torch.Tensor]] = {}
    log_weights = []
    bar = tqdm(range(count), desc="importance", disable=not options.get("progress", True), leave=False)
    with torch.no_grad():
        for _ in bar:
            if proposal is None:
                model_trace = poutine.trace(model.model).get_trace(x, **covariates)
                drawn = {name for name, site in model_trace.nodes.items() if _is_latent(site)}
                log_weights.append(_prior_log_weight(model_trace, drawn))
            else:
                guide_trace = poutine.trace(proposal).get_trace(x, **covariates)
                replayed = poutine.replay(model.model, trace=guide_trace)
                model_trace = poutine.trace(replayed).get_trace(x, **covariates)
                _check_covers(model_trace, guide_trace)
                log_weights.append(model_trace.log_prob_sum() - guide_trace.log_prob_sum())
            for name, site in model_trace.nodes.items():
                if _is_latent(site):
                    values.setdefault(name, []).append(site["value"].detach())
    return {k: torch.stack(v) for k, v in values.items()}, torch.stack(log_weights).double().reshape(-1)


def _is_latent(site: dict) -> bool:
    return site["type"] == "sample" and not site["is_observed"] and type(site["fn"]).__name__ != "_Subsample"


def _prior_log_weight(trace, drawn: set[str]) -> torch.Tensor:
    """One proposal's log weight from the prior: the observations' log-density plus each drawn latent's
    :func:`_not_proposed` term (zero for a plain latent: its own term cancels its proposal's)."""
    trace.compute_log_prob()
    observed = trace.log_prob_sum(lambda name, site: site["is_observed"] and name not in drawn)
    return observed + sum(_not_proposed(trace.nodes[name]).sum() for name in drawn)


def _not_proposed(site: dict) -> torch.Tensor:
    """A latent's term in the program's log joint (its ``log_prob``, from ``compute_log_prob``) less the
    log-density it was drawn from: zero for a plain latent, ``-log p(z)`` for a masked prior,
    ``(scale - 1) log p(z)`` under ``poutine.scale``."""
    return site["log_prob"] - _drawn_log_prob(site["fn"], site["value"])


def _drawn_log_prob(fn, value: torch.Tensor) -> torch.Tensor:
    """The log-density of the distribution that draws ``fn``'s samples: ``.mask(False)`` hides the density
    but not the draw."""
    if isinstance(fn, MaskedDistribution):
        return _drawn_log_prob(fn.base_dist, value)
    if isinstance(fn, Independent):
        return sum_rightmost(_drawn_log_prob(fn.base_dist, value), fn.reinterpreted_batch_ndims)
    return fn.log_prob(value)


def _check_covers(model_trace, guide_trace) -> None:
    missing = [n for n, s in model_trace.nodes.items() if _is_latent(s) and n not in guide_trace.nodes]
    if missing:
        raise MethodError(
            f"Expected the proposal to draw every latent site of the program, but it misses {missing}; "
            "add them to the guide, or use proposal='prior'."
        )


def _weighted_means(latents: dict[str, torch.Tensor], weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The self-normalised posterior mean of each latent: Σ w̄_s z_s."""
    normalised = weights / weights.sum()
    means = {}
    for name, value in latents.items():
        if value.is_floating_point():
            shaped = normalised.to(value.dtype).reshape(-1, *([1] * (value.dim() - 1)))
            means[name] = (shaped * value).sum(0)
    return means
