"""Every in-scope program of Pyro's tutorial notebooks through every method ppgen lists, against Pyro run
directly on the same program and seed (NUTS for the posterior, SVI with an AutoDelta guide for the
MAP / MLE) or a closed form where one exists.

    .venv/bin/python benchmarks/pyro_tutorials.py [name ...] [--out benchmarks/out/pyro_tutorials.md]

Criteria (stated once, applied to every row): a posterior method (mcmc, svi, importance) agrees when
every scalar entry of every compared site has its posterior mean within ``0.5`` reference posterior sds
of the reference mean (NUTS with 1000 draws has an MCSE near 0.05 sd; a mean-field ELBO's bias on
these small posteriors stays under a third of an sd); a point method (map, mle) agrees when within
``0.1`` sd (or 2e-3 absolute for a closed form) of the reference optimum. The programs and their
notebooks are tests/programs/wild_tutorials.py; the catalogue is docs/wild/tutorials.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import warnings
from pathlib import Path

import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.poutine.util import site_is_subsample

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ppgen  # noqa: E402
from tests.programs import wild_tutorials as W  # noqa: E402

POSTERIOR_TOL, POINT_TOL = 0.5, 0.1
ONLY_METHODS: list[str] = []  # --methods: rerun some methods only
SMALL = {
    "mle": {"num_steps": 1500, "lr": 0.02},
    "map": {"num_steps": 1500, "lr": 0.02},
    "svi": {"num_steps": 3000, "lr": 0.02},  # intro_long's Adam rate (ppgen's default is 0.01)
    "mcmc": {"num_samples": 500, "warmup_steps": 500},
    "importance": {"num_samples": 20000},
    "adversarial": {"steps": 300},
}


class _PriorsDropped(poutine.messenger.Messenger):
    """Masks every latent's prior: Pyro's AutoDelta then maximises the likelihood (mle_map's masked_model)."""

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and msg["infer"].get("enumerate") != "parallel":
            msg["mask"] = False


def _call(program, data: dict):
    return lambda: program(**data)


def pyro_nuts(program, data: dict, sites: list[str], seed: int = 0) -> dict:
    """Pyro's MCMC(NUTS) on the program as written: {site: (mean, sd)}, 500 draws after 300 warmup."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    mcmc = MCMC(
        NUTS(_call(program, data), max_plate_nesting=3),
        num_samples=500,
        warmup_steps=300,
        disable_progbar=True,
    )
    mcmc.run()
    draws = mcmc.get_samples()
    return {s: (draws[s].double().mean(0), draws[s].double().std(0)) for s in sites}


def pyro_point(program, data: dict, sites: list[str], mle: bool, steps: int = 3000, seed: int = 0) -> dict:
    """Pyro's SVI with AutoDelta (TraceEnum_ELBO, so enumerated sites are summed): the MAP, or with the
    priors masked out the MLE; a program of ``pyro.param`` only uses the empty guide, as mle_map does."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = _call(program, data)
    if mle:
        model = _PriorsDropped()(model)
    hidden = poutine.block(model, hide_fn=lambda m: m["infer"].get("enumerate") == "parallel")
    latent = [
        n
        for n, s in poutine.trace(hidden).get_trace().nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
    ]
    guide = AutoDelta(hidden) if latent else (lambda: None)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.02}), TraceEnum_ELBO(max_plate_nesting=3))
    for _ in range(steps):
        svi.step()
    values = {n: pyro.param(n).detach() for n in pyro.get_param_store().keys()}
    if latent:
        values.update(guide.median())
    return {s: values[s].detach().double() for s in sites if s in values}


def _estimate(fit, site: str, method: str) -> torch.Tensor:
    if method in ("map", "mle") and site in fit.params:
        return torch.as_tensor(fit.params[site]).double()
    return fit.draws[site].double().mean(0)


def compare(fit, method: str, ref_post: dict, ref_point: dict | None, closed: dict | None) -> str:
    """'agrees (worst d)' or 'DIFFERS (site d)': d in reference sds (absolute for a closed form)."""
    worst, where = 0.0, ""
    for site, (mean, sd) in ref_post.items():
        est = _estimate(fit, site, method)
        if method in ("map", "mle"):
            target = (closed or {}).get(method, {}).get(site)
            if target is not None:
                d = float((est - torch.as_tensor(target).double()).abs().max())
                tol = 2e-3
            elif ref_point is not None and site in ref_point:
                d = float(((est - ref_point[site]).abs() / sd.clamp_min(1e-6)).max())
                tol = POINT_TOL
            else:
                continue
        else:
            d = float(((est - mean).abs() / sd.clamp_min(1e-6)).max())
            tol = POSTERIOR_TOL
        if d / tol > worst:
            worst, where = d / tol, f"{site} {d:.3g}"
    return ("agrees" if worst <= 1 else "DIFFERS") + f" ({where})"


DICE_COUNTS = torch.unique(W.DICE_ROLLS, return_counts=True)[1].double()
DICE_POINT = {"map": {"theta": DICE_COUNTS / 30}, "mle": {"theta": DICE_COUNTS / 30}}  # flat prior


def _dirichlet(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sd of each component of Dirichlet(alpha): the dice's conjugate posterior."""
    mean = alpha / alpha.sum()
    return mean, (mean * (1 - mean) / (alpha.sum() + 1)).sqrt()


DICE_POST = _dirichlet(1 + DICE_COUNTS)
AT_MLE = {"map": {"latent_fairness": 0.6}, "mle": {"latent_fairness": 0.6}}


def cases() -> list[dict]:
    """One row per program: what to fit, the sites compared, and where Pyro has a closed form."""
    coin = {"data": W.coin_data()}
    beta_post = {"latent_fairness": (16 / 30, (16 * 14 / (30**2 * 31)) ** 0.5)}
    return [
        dict(
            nb="intro_long",
            name="simple_model (pyro.param only)",
            prog=W.rugged_simple_model,
            data=W.rugged_data(),
            sites=["a", "bA", "bR", "bAR", "sigma"],
            point_only=True,
        ),
        dict(
            nb="intro_long, bayesian_regression_ii",
            name="model + AutoNormal",
            prog=W.rugged_model,
            data=W.rugged_data(),
            sites=["a", "bA", "bR", "bAR", "sigma"],
            predict={"is_cont_africa": torch.tensor([0.0, 1.0]), "ruggedness": torch.tensor([1.0, 5.0])},
        ),
        dict(
            nb="intro_long",
            name="model + custom_guide",
            prog=W.rugged_model,
            data=W.rugged_data(),
            sites=["a", "bA", "bR", "bAR", "sigma"],
            opts={"guide": W.rugged_custom_guide},
            methods=["svi", "map"],
        ),
        dict(
            nb="bayesian_regression",
            name="BayesianRegression (PyroModule[nn.Linear])",
            prog=W.BayesianRegression(3, 1),
            data=W.regression_data(),
            sites=["sigma", "linear.weight", "linear.bias"],
            predict={"x": torch.tensor([[1.0, 2.0, 2.0]])},
        ),
        dict(
            nb="mle_map",
            name="original_model",
            prog=W.coin_original_model,
            data=coin,
            sites=["latent_fairness"],
            closed={"map": {"latent_fairness": 15 / 28}, "mle": {"latent_fairness": 0.6}},
            post=beta_post,
        ),
        dict(
            nb="mle_map",
            name="model_mle (constrained pyro.param)",
            prog=W.coin_model_mle,
            data=coin,
            sites=["latent_fairness"],
            closed={"mle": {"latent_fairness": 0.6}},
            point_only=True,
        ),
        dict(
            nb="mle_map",
            name="masked_model (.mask(False) prior)",
            prog=W.coin_masked_model,
            data=coin,
            sites=["latent_fairness"],
            closed=AT_MLE,
            # the prior's density masked out: NUTS samples the likelihood alone, Beta(7, 5)
            post={"latent_fairness": (7 / 12, (7 * 5 / (12**2 * 13)) ** 0.5)},
        ),
        dict(
            nb="mle_map",
            name="original_model_uniform_prior",
            prog=W.coin_uniform_model,
            data=coin,
            sites=["latent_fairness"],
            closed=AT_MLE,
            post={"latent_fairness": (7 / 12, (7 * 5 / (12**2 * 13)) ** 0.5)},
        ),
        dict(
            nb="svi_part_i",
            name="model (obs_i loop) + Beta guide",
            prog=W.coin_loop_model,
            data={"data": list(W.coin_data())},
            sites=["latent_fairness"],
            opts={"guide": W.coin_beta_guide},
            closed={"map": {"latent_fairness": 15 / 28}, "mle": {"latent_fairness": 0.6}},
            post=beta_post,
        ),
        dict(
            nb="svi_part_iii",
            name="BernoulliBetaExample (sizeless plate, data on self)",
            prog=W.BernoulliBetaExample().model,
            data={"use_decaying_avg_baseline": True},
            sites=["latent_fairness"],
            opts={"guide": W.BernoulliBetaExample().guide},
            closed={"map": {"latent_fairness": 15 / 28}, "mle": {"latent_fairness": 0.6}},
            post=beta_post,
        ),
        dict(
            nb="intro_part_ii",
            name="pyro.condition(scale) + constrained guide",
            prog=W.conditioned_scale,
            data={"guess": 8.5},
            sites=["weight"],
            opts={"guide": W.scale_parametrized_guide_constrained},
            closed={"map": {"weight": (0.75**2 * 8.5 + 9.5) / (1 + 0.75**2)}, "mle": {"weight": 9.5}},
            post={"weight": ((0.75**2 * 8.5 + 9.5) / (1 + 0.75**2), (0.75**2 / (1 + 0.75**2)) ** 0.5)},
        ),
        dict(
            nb="intro_part_ii",
            name="scale_obs",
            prog=W.scale_obs,
            data={"guess": 8.5},
            sites=["weight"],
            closed={"map": {"weight": (0.75**2 * 8.5 + 9.5) / (1 + 0.75**2)}, "mle": {"weight": 9.5}},
            post={"weight": ((0.75**2 * 8.5 + 9.5) / (1 + 0.75**2), (0.75**2 / (1 + 0.75**2)) ** 0.5)},
        ),
        dict(
            nb="csis",
            name="model(prior_mean, observations=dict)",
            prog=W.csis_model,
            data={
                "prior_mean": torch.tensor(1.0),
                "observations": {"x1": torch.tensor(8.0), "x2": torch.tensor(9.0)},
            },
            sites=["z"],
            closed={"map": {"z": 7.25}, "mle": {"z": 8.5}},
            post={"z": (7.25, (5 / 6) ** 0.5)},
        ),
        dict(
            nb="prodlda",
            name="dice model(counts), Multinomial",
            prog=W.dice_counts_model,
            data={"counts": DICE_COUNTS},
            sites=["theta"],
            closed=DICE_POINT,
            post={"theta": DICE_POST},
        ),
        dict(
            nb="prodlda",
            name="dice model(data), Categorical in a plate",
            prog=W.dice_rolls_model,
            data={"data": W.DICE_ROLLS - 1},
            sites=["theta"],
            closed=DICE_POINT,
            post={"theta": DICE_POST},
        ),
        dict(
            nb="boosting_bbvi",
            name="model (z*z, bimodal)",
            prog=W.boosting_model,
            data={"data": W.boosting_data()[:, 0]},
            sites=["z"],
        ),
        dict(
            nb="enumeration",
            name="mixture, config_enumerate",
            prog=W.enum_mixture,
            data={"data": W.enum_mixture_data()},
            sites=["scale"],
        ),
        dict(
            nb="enumeration",
            name="hmm_model (pyro.markov)",
            prog=W.enum_hmm_model,
            data={
                "data": torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(0)),
                "data_dim": 3,
                "hidden_dim": 2,
            },
            sites=[],
        ),
        dict(
            nb="gmm",
            name="model (K=2, five points)",
            prog=W.gmm_model,
            data={"data": W.GMM_DATA},
            sites=["scale"],
        ),
        dict(
            nb="predictive_deterministic",
            name="model (GammaPoisson, deterministic rate) + guide",
            prog=W.counts_model,
            data=W.counts_data(),
            sites=["scale", "coef", "concentration"],
            predict={"features": torch.tensor([[-1.0], [1.0]])},
        ),
        dict(
            nb="jit",
            name="model (loc, scale)",
            prog=W.jit_model,
            data={"data": 0.5 + 2.0 * torch.randn(100, generator=torch.Generator().manual_seed(0))},
            sites=["loc", "scale"],
        ),
        dict(
            nb="jit",
            name="Gaussian HMM (poutine.scale, pyro.markov)",
            prog=W.jit_hmm,
            data={
                "sequence": torch.randn(12, generator=torch.Generator().manual_seed(0)),
                "num_sequences": 1,
                "length": 12,
                "state_dim": 2,
            },
            sites=["emit_scale"],
        ),
        dict(
            nb="modules",
            name="GlobalModel (PyroSample attribute)",
            prog=W.GlobalModel(),
            data={"data": 1.0 + torch.randn(20, generator=torch.Generator().manual_seed(0))},
            sites=["loc"],
        ),
        dict(
            nb="modules",
            name="BayesianLinear in a regression",
            prog=W.LinearRegressionModule(2),
            data={
                "input": torch.randn(30, 2, generator=torch.Generator().manual_seed(0)),
                "output": 1.0 + 0.5 * torch.randn(30, generator=torch.Generator().manual_seed(1)),
            },
            sites=["layer.bias", "layer.weight"],
            predict={"input": torch.zeros(1, 2)},
        ),
        dict(
            nb="prior_predictive",
            name="model (Student-t walk, deterministic trend)",
            prog=W.trend_model,
            data=W.trend_data(),
            sites=["m_scale"],
        ),
        dict(
            nb="stable",
            name="model (Stable, params only)",
            prog=W.stable_model,
            data={"r": 0.01 * torch.randn(200, generator=torch.Generator().manual_seed(0))},
            sites=[],
            point_only=True,
        ),
        dict(
            nb="svi_flow_guide",
            name="model (obs plate in data plate, MVN)",
            prog=W.flow_model,
            data={"x": W.flow_data()},
            sites=["z"],
        ),
    ]


def run_case(case: dict) -> list[dict]:
    rows = []
    start = time.perf_counter()
    try:
        listed = ppgen.applicable_methods(case["prog"], case["data"])
    except Exception as err:  # noqa: BLE001 - recorded in the table
        return [dict(case, method="-", result=f"FAILS applicable_methods: {type(err).__name__}: {err}"[:200])]
    ref_post = None
    if case.get("post"):
        ref_post = {
            k: (torch.as_tensor(m).double(), torch.as_tensor(s).double())
            for k, (m, s) in case["post"].items()
        }
    elif case["sites"] and not case.get("point_only"):
        try:
            ref_post = pyro_nuts(case["prog"], case["data"], case["sites"])
        except Exception as err:  # noqa: BLE001 - Pyro's own failure, recorded
            return [dict(case, method="Pyro NUTS", result=f"Pyro fails: {type(err).__name__}: {err}"[:160])]
    points = {}
    for method in [m for m in case.get("methods", listed) if not ONLY_METHODS or m in ONLY_METHODS]:
        opts = {**SMALL.get(method, {}), **case.get("opts", {})}
        if method not in ("svi", "map", "mle") or (method != "svi" and "guide" in opts and method == "mle"):
            opts.pop("guide", None)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = ppgen.fit(case["prog"], case["data"], method=method, seed=0, progress=False, **opts)
        except ppgen.errors.PpgenError as err:
            rows.append(
                dict(case, method=method, result=f"refused: {str(err)[:120]}", secs=time.perf_counter() - t0)
            )
            continue
        except Exception as err:  # noqa: BLE001
            rows.append(
                dict(
                    case,
                    method=method,
                    result=f"FAILS {type(err).__name__}: {str(err)[:100]}",
                    secs=time.perf_counter() - t0,
                )
            )
            continue
        secs = time.perf_counter() - t0
        warned = [str(w.message) for w in caught if "ppgen" in w.filename or "unreliable" in str(w.message)]
        result = "fits"
        if case["sites"] and method in ("map", "mle"):
            if method not in points:
                try:
                    prog, data, sites = case["prog"], case["data"], case["sites"]
                    points[method] = pyro_point(prog, data, sites, mle=method == "mle")
                except (ValueError, RuntimeError) as err:  # Pyro's own AutoDelta ran into NaN, say
                    points[method] = f"Pyro's AutoDelta fails: {type(err).__name__}: {str(err)[:70]}"
            if isinstance(points[method], str):
                rows.append(dict(case, method=method, result=f"fits; {points[method]}", secs=secs))
                continue
            ref = ref_post or {s: (torch.zeros(()), torch.ones(())) for s in case["sites"]}
            result = compare(fit, method, ref, points[method], case.get("closed"))
            if ref_post is None:
                result += " [vs Pyro AutoDelta, abs]"
        elif case["sites"] and ref_post is not None and method in ("mcmc", "svi", "importance"):
            result = compare(fit, method, ref_post, None, None)
        if case.get("predict") is not None:
            try:
                pred = (
                    fit.predict(case["predict"], num_samples=50)
                    if method not in ("map", "mle")
                    else fit.predict(case["predict"])
                )
                result += "; predict " + ",".join(f"{k}{tuple(v.shape)}" for k, v in list(pred.items())[:1])
            except Exception as err:  # noqa: BLE001
                result += f"; predict FAILS {type(err).__name__}: {str(err)[:80]}"
        if warned:
            result += f"; warns: {warned[0][:90]}"
        rows.append(dict(case, method=method, result=result, secs=secs))
    for row in rows:
        row["listed"] = listed
    del start
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*")
    parser.add_argument("--out", default="benchmarks/out/pyro_tutorials.md")
    parser.add_argument("--methods", nargs="*", default=[])
    args = parser.parse_args()
    ONLY_METHODS[:] = args.methods
    lines = [
        f"Run {datetime.date.today()} (torch {torch.__version__}, pyro {pyro.__version__}, 2 CPU cores)",
        "",
        "| notebook | program | method | result vs Pyro / closed form | s |",
        "|---|---|---|---|---|",
    ]
    for case in cases():
        if args.names and not any(n in case["name"] or n in case["nb"] for n in args.names):
            continue
        for row in run_case(case):
            cells = [row["nb"], row["name"], row["method"], row["result"], f"{row.get('secs', 0):.1f}"]
            line = "| " + " | ".join(cells) + " |"
            lines.append(line.replace("\n", " "))
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
