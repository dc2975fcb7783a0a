"""Wall time of ``ppgen.calibrate`` on Pyro's baseball program (4 methods), serial vs 2 workers, and vs the
same loop written by hand around Pyro's ``SVI``/``MCMC`` (issue 25).

Each simulation: draw (loc, scale, alpha, hits) from the prior at the 18 players' at-bats, fit by mle
(300 steps), map (300), svi (AutoNormal, 500) and NUTS (200 warm-up + 300 draws), rank the truth. The
hand loop does the same fits with ``pyro.infer.SVI`` (Adam, lr 0.01; the empirical-Bayes MLE as the
program with ``pyro.param`` globals and an AutoNormal guide over the players) and ``pyro.infer.MCMC(NUTS)``
and ranks among the draws; it has no Laplace step, no checkpoints, no failure accounting.

    .venv/bin/python benchmarks/calibration.py [N]     # N simulations (default 10)
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal
from pyro.optim import Adam

import ppgen
from ppgen.calibration.simulate import derive_seed

STEPS = {"mle": 300, "map": 300, "svi": 500}
NUTS_DRAWS, NUTS_WARMUP, L = 300, 200, 99


def partially_pooled_with_logit(at_bats, hits=None):
    num_players = at_bats.shape[0]
    loc = pyro.sample("loc", dist.Normal(-1, 1))
    scale = pyro.sample("scale", dist.HalfCauchy(scale=1))
    with pyro.plate("num_players", num_players):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


def empirical_bayes(at_bats, hits=None):
    loc = pyro.param("loc", torch.tensor(-1.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    with pyro.plate("num_players", at_bats.shape[0]):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


def by_hand(at_bats, n: int) -> float:
    """The calibration loop written with Pyro alone; returns its seconds."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    for index in range(n):
        pyro.set_rng_seed(derive_seed(0, index, 0))
        trace = pyro.poutine.trace(partially_pooled_with_logit).get_trace(at_bats)
        hits = trace.nodes["obs"]["value"]
        truth = {k: trace.nodes[k]["value"] for k in ("loc", "scale")}
        draws = {}
        for name, model, guide in (
            ("mle", empirical_bayes, AutoNormal(empirical_bayes)),
            ("map", partially_pooled_with_logit, AutoDelta(partially_pooled_with_logit)),
            ("svi", partially_pooled_with_logit, AutoNormal(partially_pooled_with_logit)),
        ):
            pyro.clear_param_store()
            svi = SVI(model, guide, Adam({"lr": 0.01}), Trace_ELBO())
            for _ in range(STEPS[name]):
                svi.step(at_bats, hits)
            if name == "svi":
                draws[name] = {k: torch.stack([guide()[k] for _ in range(L)]) for k in truth}
        mcmc = MCMC(
            NUTS(partially_pooled_with_logit),
            num_samples=NUTS_DRAWS,
            warmup_steps=NUTS_WARMUP,
            disable_progbar=True,
        )
        mcmc.run(at_bats, hits)
        samples = mcmc.get_samples()
        keep = torch.linspace(0, NUTS_DRAWS - 1, L).round().long()
        draws["mcmc"] = {k: samples[k][keep] for k in truth}
        _ = {m: {k: int((d[k] < truth[k]).sum()) for k in truth} for m, d in draws.items()}
    return time.perf_counter() - start


def main(n: int) -> None:
    players = ppgen.data.load("baseball")
    early = {"at_bats": players["At-Bats"], "hits": players["Hits"]}
    options = {
        "mle": {"num_steps": STEPS["mle"]},
        "map": {"num_steps": STEPS["map"]},
        "svi": {"num_steps": STEPS["svi"]},
        "mcmc": {"num_samples": NUTS_DRAWS, "warmup_steps": NUTS_WARMUP},
    }
    times = {}
    for workers in (1, 2):
        start = time.perf_counter()
        cal = ppgen.calibrate(
            partially_pooled_with_logit,
            early,
            num_simulations=n,
            num_workers=workers,
            progress=False,
            **options,
        )
        times[workers] = time.perf_counter() - start
        per_method = cal.table().groupby("method")["seconds"].first().round(2).to_dict()
        print(f"ppgen.calibrate, {workers} worker(s): {times[workers]:.1f} s; mean s per fit {per_method}")
    times["hand"] = by_hand(torch.as_tensor(np.asarray(early["at_bats"]), dtype=torch.float32), n)
    print(f"hand loop (Pyro SVI/MCMC), 1 process: {times['hand']:.1f} s")
    print(
        f"| baseball program, {n} simulations × 4 methods (mle, map, svi, mcmc) | serial {times[1]:.1f} s "
        f"({times[1] / n:.2f} s/sim); 2 workers {times[2]:.1f} s | hand loop around Pyro SVI/MCMC "
        f"{times['hand']:.1f} s ({times['hand'] / n:.2f} s/sim) | {times[1] / times['hand']:.2f}× the hand "
        "loop; "
        f"{times[1] / times[2]:.2f}× speed-up with 2 workers |"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}, torch {torch.__version__}, Pyro {pyro.__version__}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
