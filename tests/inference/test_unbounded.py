"""A point fit says when it stopped short of an optimum (ppgen/inference/unbounded.py).

References: the objectives' closed forms — baseball's partial pooling gains ½·log κ per player at
complete pooling against the Pareto prior's −2.5·log κ, so the log joint rises without bound as κ → ∞;
an MLE's dropped-prior upper latents reach no observed site (no path in the graph: refused); a Normal MAP has
its optimum at the conjugate closed form.
"""

import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import ConvergenceWarning, MethodError
from ppgen.inference.unbounded import unbounded_estimates
from tests.programs import wild_examples as E

QUIET = {"seed": 0, "progress": False}


def test_a_hierarchy_at_its_complete_pooling_limit_is_named():
    # Pyro's baseball.py partially_pooled: the MAP's kappa runs to ~1e6 where float32 stops it
    with pytest.warns(ConvergenceWarning, match="kappa: the objective keeps improving as it increases"):
        fit = ppgen.fit(E.partially_pooled, E.baseball_data(), method="map", **QUIET)
    assert fit.extras["unbounded"]["kappa"] == "grows"
    assert float(fit.params["kappa"]) > 1e4


def test_an_mle_whose_dropped_priors_leave_latents_unreached_is_refused_before_any_work():
    # Pyro's contrib/autoname/tree_data.py: with every global prior dropped, the upper levels' z reach
    # no data (autograd finds no path from them to any density mle keeps), so their MLE is undefined:
    # refused before any work (the fit used to run and warn "flat"), and not offered. An empirical-
    # Bayes hyper-latent that reaches the data through a per-unit latent's prior keeps mle (the
    # eight schools' mu and tau), as does every global of cjs.py's model_1.
    data = E.tree_data()
    assert ppgen.applicable_methods(E.tree_model, data) == ["svi", "map", "mcmc", "importance"]
    with pytest.raises(MethodError, match=r"'latent.list\[1\].z'.* enter only those priors"):
        ppgen.fit(E.tree_model, data, method="mle", **QUIET)
    assert "mle" in ppgen.applicable_methods(E.eight_schools_svi_model, E.eight_schools_data())
    assert "mle" in ppgen.applicable_methods(E.cjs_model_1, E.cjs_data())


def _normal_mean(y, prior_sd: float, noise_sd: float):
    loc = pyro.sample("loc", dist.Normal(0.0, prior_sd))
    with pyro.plate("rows", len(y)):
        pyro.sample("obs", dist.Normal(loc, noise_sd), obs=y)


def test_a_real_optimum_is_not_flagged_and_one_float32_cannot_reach_is():
    # Closed form: the conjugate MAP ȳ·n/(n + σ²/τ²). On data near 100 (sd 10) L-BFGS lands on it and
    # nothing is flagged. On data near 2e5 (sd 1e4) the per-row objective changes by 1e-8 a unit of
    # loc, below float32's resolution at its value: Adam and L-BFGS stop ~1e4 short, and the fit
    # says so (|g| is 800 local sds) instead of returning a wrong mean silently.
    def closed_form(y, prior_sd, noise_sd):
        return float(y.mean()) * len(y) / (len(y) + (noise_sd / prior_sd) ** 2)

    noise = torch.randn(200, generator=torch.Generator().manual_seed(0))
    y = 100.0 + 10.0 * noise
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = ppgen.fit(_normal_mean, {"y": y, "prior_sd": 1e3, "noise_sd": 10.0}, method="map", **QUIET)
    assert "unbounded" not in fit.extras
    assert float(fit.params["loc"]) == pytest.approx(closed_form(y, 1e3, 10.0), abs=1e-3)

    y = 2e5 + 1e4 * noise
    with pytest.warns(ConvergenceWarning, match="loc: the objective keeps improving as it increases"):
        fit = ppgen.fit(_normal_mean, {"y": y, "prior_sd": 1e6, "noise_sd": 1e4}, method="map",
                        init={"loc": 1.9e5}, **QUIET)  # fmt: skip
    assert float(fit.params["loc"]) < closed_form(y, 1e6, 1e4) - 1e3


def test_the_rule_reads_each_coordinate_in_its_own_units():
    # (g, H) by hand: an optimum (g ≈ 0), a coordinate one Newton step of 3 sds away, a saddle and a
    # coordinate nothing reads. Each parameter is its own estimate here.
    params = [torch.zeros(1, requires_grad=True) for _ in range(4)]

    def estimates():
        return {f"p{i}": p.detach().clone() for i, p in enumerate(params)}

    gradient = torch.tensor([1e-3, -3.0 * 1e3, 0.0, 0.0], dtype=torch.float64)
    hessian = torch.diag(torch.tensor([1e6, 1e6, -1.0, 0.0], dtype=torch.float64))
    found = unbounded_estimates(gradient, hessian, params, estimates)
    assert found == {"p1": "grows", "p2": "saddle", "p3": "flat"}
