"""Every in-scope program of Pyro's ``examples/`` (written afresh in tests/programs/wild_examples.py) through
every method ``ppgen.applicable_methods`` lists, each compared with Pyro run directly on the same program
and seed; writes ``benchmarks/out/pyro_examples.json`` and prints the Markdown table of
docs/wild/examples.md.

References (Pyro 1.9, run here on the same program):

- ``mcmc``: Pyro's ``MCMC(NUTS)``; agrees when every scalar of every global latent has
  ``|mean_ppgen - mean_pyro| <= 4 sqrt(mcse_ppgen² + mcse_pyro²)`` (ArviZ's MCSE of the mean).
- ``svi``: Pyro's ``SVI`` loop with the same guide (the program's own, else ``AutoNormal``), Adam(0.01),
  the same number of steps; agrees when the two guides' posterior means differ by at most 0.25 posterior
  sd (Pyro's NUTS sd) + 0.02 — two stochastic optimisations of one ELBO.
- ``map``: Pyro's ``SVI`` with ``AutoDelta``; agrees within 0.05 (1 + |value|) per scalar, or where ppgen's
  negative log joint is at most 0.05 above Pyro's at its point (relabelled hidden states, a ridge: another
  point of an objective as good is as much an answer; the same for ``mle``).
- ``mle``: for a program without per-unit latents, Pyro's ``AutoDelta`` on the program with its priors
  masked, within 0.05 (1 + |value|); with per-unit latents ppgen's mle is empirical Bayes, which Pyro has
  no one-call analogue of ("ran" only).
- ``importance``: Pyro's NUTS means within 4 standard errors (posterior sd / sqrt(ESS) of both).
- a program with ``pyro.param`` estimates and no continuous latent (``hmm.py`` model_6): Pyro's SVI with an
  empty guide, Adam(0.05) for 3000 steps; agrees within 0.05 (1 + |value|) per scalar, or where ppgen's
  negative log-likelihood is at most 0.05 above Pyro's (a weakly identified likelihood has many maximisers).

Exchangeable labels (the toy mixture's hidden switch, lda's topics) are compared in the relabelling of
ppgen's estimates nearest Pyro's: two correct fits may sit in mirror modes of one likelihood.

Run: ``python benchmarks/pyro_examples.py [name ...]`` (about half an hour for all on two cores).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
import sys
import time
import traceback
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ppgen  # noqa: E402
from ppgen.errors import PpgenError  # noqa: E402
from tests.programs import wild_examples  # noqa: E402
from tests.programs.wild_examples import CASES  # noqa: E402

STEPS, SAMPLES, WARMUP = 1000, 200, 200


def _mirror_hidden_switch(values: dict) -> dict:
    """The toy mixture's hidden binary B relabelled (B -> 1 - B): p_B -> 1 - p_B, p_C reversed."""
    out = dict(values)
    if "p_B" in out:
        out["p_B"] = 1 - out["p_B"]
    if "p_C" in out:
        out["p_C"] = out["p_C"][..., ::-1]
    return out


def _topic_orders(values: dict) -> list[dict]:
    """Every order of lda.py's exchangeable topics, applied to every site indexed by topic."""
    k = next(v.shape[-1] for name, v in values.items() if name == "topic_weights")
    orders = []
    for perm in itertools.permutations(range(k)):
        order = list(perm)
        out = dict(values)
        for name, axis in (("topic_weights", -1), ("topic_words", -2), ("doc_topics", -1)):
            if name in out:
                out[name] = np.take(out[name], order, axis=axis)
        orders.append(out)
    return orders


def _hmm_states(axes: dict[str, tuple[int, ...]]):
    """Every relabelling of an hmm.py chain's hidden states that keeps state 0 (every sequence starts
    from it, so its row is the initial distribution too): ``axes`` maps a site to the axes indexed by
    the state."""

    def relabel(values: dict) -> list[dict]:
        site, axis = next((name, dims[0]) for name, dims in axes.items() if name in values)
        size = values[site].shape[axis]
        out = []
        for rest in itertools.permutations(range(1, size)):
            order = [0, *rest]
            moved = dict(values)
            for name, dims in axes.items():
                if name in moved:
                    for dim in dims:
                        moved[name] = np.take(moved[name], order, axis=dim)
            out.append(moved)
        return out

    return relabel


# Likelihood-preserving relabellings (label switching): each ppgen estimate is compared in the labelling
# nearest Pyro's, since two correct fits of an exchangeable model may sit in mirror modes.
RELABELLINGS = {
    "toy_mixture_model_discrete_enumeration.py": lambda values: [values, _mirror_hidden_switch(values)],
    "lda.py": lambda values: _topic_orders(values) if "topic_weights" in values else [values],
    # hmm.py's models 3 and 4 have two-state chains, which keeping state 0 leaves no relabelling
    "hmm.py:model_0": _hmm_states({"probs_x": (-2, -1), "probs_y": (-2,)}),
    "hmm.py:model_2": _hmm_states({"probs_x": (-2, -1), "probs_y": (-3,)}),
}
OUT = Path(__file__).parent / "out" / "pyro_examples.json"
ONLY_METHODS: list[str] = []  # --methods: rerun some methods only


class _NoPriors(poutine.messenger.Messenger):
    """The program with its latents' densities masked: AutoDelta on it is the MLE of the globals."""

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and not msg["infer"].get("enumerate"):  # summed-out states keep theirs
            msg["mask"] = False


def _pyro_program(program, observed):
    return poutine.condition(program, data=observed) if observed else program


def _elbo(program, data, observed):
    enumerated = any(
        site["type"] == "sample" and site["infer"].get("enumerate")
        for site in poutine.trace(_pyro_program(program, observed)).get_trace(**data).nodes.values()
    )
    return TraceEnum_ELBO(max_plate_nesting=3) if enumerated else Trace_ELBO()


def _pyro_nuts(program, data, observed, seed):
    pyro.set_rng_seed(seed)
    mcmc = MCMC(
        NUTS(_pyro_program(program, observed)), num_samples=SAMPLES, warmup_steps=WARMUP, disable_progbar=True
    )
    mcmc.run(**data)
    return {k: v.detach().double().numpy() for k, v in mcmc.get_samples().items()}


def _pyro_svi(program, data, observed, guide, seed, steps=STEPS):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = _pyro_program(program, observed)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), _elbo(program, data, observed))
    for _ in range(steps):
        svi.step(**data)
    return guide


def _guide_draws(model, guide, data, names, n=1000):
    draws = Predictive(model, guide=guide, num_samples=n, return_sites=list(names))(**data)
    return {k: v.detach().double().numpy() for k, v in draws.items() if k in names}


def _mcse(draws: np.ndarray) -> np.ndarray:
    flat = draws.reshape(1, draws.shape[0], -1)
    return np.array([float(az.mcse(flat[..., i], method="mean")) for i in range(flat.shape[-1])])


def _ppgen_draws(fit, names):
    post = fit.posterior.posterior
    return {k: post[k].values.reshape(-1, *post[k].shape[2:]).astype(float) for k in names if k in post}


def _pyro_params(program, data, observed, seed, steps=3 * STEPS):
    """Pyro's SVI with an empty guide, Adam(0.05): the maximum likelihood of a ``pyro.param``-only
    program (its discrete states summed out by ``TraceEnum_ELBO``)."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = _pyro_program(program, observed)
    svi = SVI(
        model, lambda *args, **kwargs: None, pyro.optim.Adam({"lr": 0.05}), _elbo(program, data, observed)
    )
    for _ in range(steps):
        svi.step(**data)
    return {k: v.detach().double().numpy() for k, v in pyro.get_param_store().items()}


def _point_loss(program, data, observed, values: dict, method: str) -> float:
    """The negative log joint (map) or log-likelihood (mle: the latents' priors masked) at the latents'
    ``values``, discrete states summed out."""
    pyro.get_param_store().clear()
    model = (
        _NoPriors()(_pyro_program(program, observed)) if method == "mle" else _pyro_program(program, observed)
    )
    fixed = {name: torch.as_tensor(np.asarray(value), dtype=torch.float32) for name, value in values.items()}
    with torch.no_grad():  # condition outside the mask: the mask sees the latents before they are fixed
        conditioned = poutine.condition(model, data=fixed)
        return float(_elbo(program, data, observed).loss(conditioned, lambda *args, **kwargs: None, **data))


def _param_nll(program, data, observed, values: dict) -> float:
    """The program's negative log-likelihood (discrete states summed out) at ``pyro.param`` values."""
    store = pyro.get_param_store()
    store.clear()
    for name, value in values.items():
        store[name] = torch.as_tensor(np.asarray(value), dtype=torch.float32)
    model = _pyro_program(program, observed)
    with torch.no_grad():
        return float(_elbo(program, data, observed).loss(model, lambda *args, **kwargs: None, **data))


def _relative(mine: dict, ref: dict) -> float:
    return max(
        float(np.max((np.abs(mine[k] - ref[k]) / (1 + np.abs(ref[k]))).ravel())) for k in ref if k in mine
    )


def _network_reset():
    """A callable that puts every module-level network of the example programs (hmm.py's
    ``tones_generator``, which ``pyro.module`` registers) back to its weights now. ppgen's fit and Pyro's
    reference train that one global object in place: without the reset Pyro's run starts from ppgen's
    trained weights, and ppgen's point is scored with Pyro's."""
    nets = [value for value in vars(wild_examples).values() if isinstance(value, torch.nn.Module)]
    saved = [copy.deepcopy(net.state_dict()) for net in nets]

    def reset() -> None:
        for net, state in zip(nets, saved):
            net.load_state_dict(state)

    return reset


def _compare(name, method, fit, program, data, observed, opts, nuts_fn, seed, reset=lambda: None):
    """(verdict, worst statistic) of a ppgen fit against Pyro run directly, in the labelling of ppgen's
    estimates nearest Pyro's where the case has likelihood-preserving relabellings. ``reset`` puts shared
    networks back to their starting weights before Pyro's runs (:func:`_network_reset`)."""
    relabel = RELABELLINGS.get(name, lambda values: [values])
    continuous = [n for n, s in fit.model.latent_sites.items() if not s["enumerated"] and not s["discrete"]]
    if not continuous:  # the program's pyro.param values are the estimates
        ref = _pyro_params(program, data, observed, seed)
        pyro_nll = _param_nll(program, data, observed, ref)
        mine = {k: v.detach().double().numpy() for k, v in fit.params.items() if k in ref}
        if not mine:
            return "ran", "no pyro.param estimate to compare"
        ppgen_nll = _param_nll(program, data, observed, mine)
        worst = min(_relative(variant, ref) for variant in relabel(mine))
        # one likelihood, maximised twice: a different point at least as good is as much an MLE
        # (an HMM's states and sparse transitions leave it weakly identified)
        agrees = worst <= 0.05 or ppgen_nll <= pyro_nll + 0.05
        statistic = (
            f"max rel diff = {worst:.3f}; -log lik ppgen {ppgen_nll:.3f}, Pyro {pyro_nll:.3f} (bound +0.05)"
        )
        return ("agrees" if agrees else "FAILS"), statistic
    model = _pyro_program(program, observed)
    # Pyro's autoguides refuse enumerated discrete sites: hide them, as Pyro's enumeration tutorial does
    hidden = poutine.block(model, hide_fn=lambda site: bool(site["infer"].get("enumerate")))
    if method in ("map", "mle"):
        if method == "mle" and any(
            s["local"] for s in fit.model.latent_sites.values() if not s["enumerated"]
        ):
            return "ran", "empirical Bayes: no Pyro one-call reference"
        target = _NoPriors()(hidden) if method == "mle" else hidden
        mine = {k: v.detach().double().numpy() for k, v in fit.params.items() if k in continuous}
        for name, net in getattr(fit.model, "networks", {}).items():  # ppgen's weights, scored in place
            net.load_state_dict(fit.network(name).state_dict())
        ours = _point_loss(program, data, observed, mine, method)
        reset()
        guide = _pyro_svi(program, data, observed, AutoDelta(target), seed)
        ref = {k: v.detach().double().numpy() for k, v in guide.median(**data).items()}
        worst = min(_relative(variant, ref) for variant in relabel(mine))
        if worst <= 0.05:
            return "agrees", f"max rel diff = {worst:.3f} (bound 0.05)"
        # another point: as good an optimum of the same objective (relabelled hidden states, a ridge)?
        theirs = _point_loss(program, data, observed, ref, method)
        verdict = "agrees" if ours <= theirs + 0.05 else "FAILS"
        return (
            verdict,
            f"max rel diff = {worst:.3f}; -objective ppgen {ours:.3f}, Pyro {theirs:.3f} (bound +0.05)",
        )
    reset()
    nuts = nuts_fn()
    names = list(nuts)
    if method == "mcmc":
        mine = _ppgen_draws(fit, names)
        worst = min(
            max(
                float(
                    np.max(
                        np.abs(variant[k].mean(0) - nuts[k].mean(0)).ravel()
                        / np.sqrt(_mcse(variant[k]) ** 2 + _mcse(nuts[k]) ** 2 + 1e-12)
                    )
                )
                for k in names
            )
            for variant in relabel(mine)
        )
        return ("agrees" if worst <= 4 else "FAILS"), f"max z = {worst:.2f} (bound 4)"
    if method == "importance":
        mine = _ppgen_draws(fit, names)
        ess = float(fit.extras.get("ess", 0)) if hasattr(fit, "extras") else 0.0
        ess = ess or float(getattr(fit, "ess", 0) or 100)
        worst = min(
            max(
                float(
                    np.max(
                        np.abs(variant[k].mean(0) - nuts[k].mean(0)).ravel()
                        / (nuts[k].std(0).ravel() * np.sqrt(1 / ess + 1 / 100) + 1e-12)
                    )
                )
                for k in names
            )
            for variant in relabel(mine)
        )
        return ("agrees" if worst <= 4 else "FAILS"), f"max z = {worst:.2f} (bound 4, ESS {ess:.0f})"
    if method == "svi":
        guide = opts.get("guide") or AutoNormal(hidden)
        guide = _pyro_svi(program, data, observed, guide, seed)
        ref = _guide_draws(model, guide, data, names)
        mine = _ppgen_draws(fit, names)
        worst = min(
            max(
                float(
                    np.max(
                        (np.abs(variant[k].mean(0) - ref[k].mean(0)) / (0.25 * nuts[k].std(0) + 0.02)).ravel()
                    )
                )
                for k in names
                if k in ref and k in variant
            )
            for variant in relabel(mine)
        )
        return ("agrees" if worst <= 1 else "FAILS"), f"max |Δmean| / (0.25 sd + 0.02) = {worst:.2f}"
    return "ran", ""


def run_case(name: str, seed: int = 0) -> list[dict]:
    program, data_fn, opts = CASES[name]
    data, opts = data_fn(), dict(opts)
    observed = opts.get("observed")
    rows = []
    try:
        methods = ppgen.applicable_methods(program, data, observed=observed)
    except PpgenError as error:
        return [{"example": name, "method": "-", "result": f"refused: {error}"[:300]}]
    nuts: dict = {}
    reset = _network_reset()  # applicable_methods ran the program: its lazily built networks exist

    def nuts_fn() -> dict:  # Pyro's NUTS once per case, only for a method that needs it, kept on disk
        if not nuts:
            cache = OUT.parent / "nuts" / f"{re.sub(r'[^A-Za-z0-9]+', '_', name)}_{SAMPLES}_{seed}.npz"
            if cache.exists():
                nuts.update(np.load(cache))
            else:
                nuts.update(_pyro_nuts(program, data, observed, seed))
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, **nuts)
        return nuts

    for method in [m for m in methods if not ONLY_METHODS or m in ONLY_METHODS]:
        settings = {
            "mcmc": {"num_samples": SAMPLES, "warmup_steps": WARMUP},
            "importance": {"num_samples": 4000},
        }
        options = {**opts, **settings.get(method, {"num_steps": STEPS})}
        if method in ("mle", "map", "importance", "mcmc"):
            options.pop("guide", None)
        start = time.perf_counter()
        row = {"example": name, "method": method}
        reset()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = ppgen.fit(program, data, method=method, seed=seed, progress=False, **options)
            row["seconds"] = round(time.perf_counter() - start, 1)
            row["result"], row["statistic"] = _compare(
                name, method, fit, program, data, observed, opts, nuts_fn, seed, reset
            )
        except PpgenError as error:
            row["result"] = f"refused: {error}"[:300]
        except Exception as error:  # noqa: BLE001 - every raw exception is a finding to report
            row["result"] = f"FAILS: {type(error).__name__}: {error}"[:300]
            traceback.print_exc(limit=-3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    global SAMPLES, WARMUP
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draws",
        type=int,
        default=SAMPLES,
        help="NUTS draws and warmup steps, both samplers (Pyro's NUTS "
        "on an enumerated hmm.py model takes over 15 minutes at the default)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="results JSON (kept and extended)")
    parser.add_argument("--methods", nargs="*", default=[], help="only these methods (the rest skipped)")
    args = parser.parse_args()
    ONLY_METHODS[:] = args.methods
    SAMPLES = WARMUP = args.draws
    args.out.parent.mkdir(exist_ok=True)
    done = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.names:
        done[name] = run_case(name, args.seed)
        args.out.write_text(json.dumps(done, indent=1))
    print(table(done))


def table(done: dict) -> str:
    """The Markdown table; an importance fit with ESS < 30 is too noisy to compare ("ran")."""
    lines = ["| example | method | result | statistic | seconds |", "|---|---|---|---|---|"]
    for name in done:
        for row in done[name]:
            ess = re.search(r"ESS (\d+)", row.get("statistic", ""))
            if ess and int(ess.group(1)) < 30:
                row = dict(row, result="ran (ESS < 30: no comparison)")
            lines.append(
                f"| {row['example']} | {row['method']} | {row['result']} | {row.get('statistic', '').replace('|', '')} "  # noqa: E501
                f"| {row.get('seconds', '')} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
