# %% [markdown]
# # 12 — Which fit can you trust? Calibration of every method by simulation
#
# *Runs in about 14 min by default (measured 820 s: 2 worker processes on 2 cores shared with other
# work). `PPGEN_FULL=1` runs 100 simulations per model (2.5 times as long). `PPGEN_FAST=1` is the test
# suite's seconds-long smoke run (the hierarchy only, `mle` and `svi`, 2 simulations).
# The last line prints the time taken.*
#
# Tutorial 11 fitted one program every way and compared the answers on one data set. Which of those
# intervals *mean what they say*? Simulation-based calibration (SBC) answers for your own program at
# your own data size: draw the globals θ from the prior, data y from θ, fit y, and look at the rank of
# the true θ among the fit's draws. For an exact posterior the rank is uniform; a too narrow posterior
# puts the truth in its tails (∪-shaped ranks, under-coverage), a biased one to one side.
# `ppgen.calibrate` does this for every method at once, with the MLE's and MAP's intervals taken from
# the normal (Wald / Laplace) approximation at their optimum — the interval a frequentist reports.
#
# References: S. Talts, M. Betancourt, D. Simpson, A. Vehtari, A. Gelman (2018), "Validating Bayesian
# inference algorithms with simulation-based calibration", arXiv:1804.06788; T. Säilynoja, P.-C.
# Bürkner, A. Vehtari (2022), "Graphical test for discrete uniformity and its applications in
# goodness-of-fit evaluation and multiple sample comparison", *Statistics and Computing* 32(32).

# %%
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pyro
import pyro.distributions as dist
import torch

import ppgen

FAST = os.environ.get("PPGEN_FAST") == "1"  # the test suite's smoke run: seconds
FULL = os.environ.get("PPGEN_FULL") == "1" and not FAST  # the long version (see the top)
MODE = "fast" if FAST else "full" if FULL else "default"
START = time.perf_counter()
# the fast smoke run leaves the tutorial's figures alone: it draws into ./figures of where it runs
FIGURES = Path("figures") if FAST else Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
SIMULATIONS = 2 if FAST else 100 if FULL else 40
WORKERS = 1 if FAST else 2
STEPS = 30 if FAST else 500
DRAWS = 19 if FAST else 99  # L: each rank is among L draws (L + 1 = 20 or 100 rank values)
NUTS = {"num_samples": 20, "warmup_steps": 10} if FAST else {"num_samples": 400, "warmup_steps": 300}
COLUMNS = ["method", "parameter", "n", "failed", "not_converged", "gamma_p", "cover50", "cover95", "mae"]


def show(calibration):
    table = calibration.table()
    print(table[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return table


# %% [markdown]
# ## A small hierarchy: eight groups, known noise
#
# The eight-schools story with a standard error of 10 in every group: a population mean `mu`, a spread
# `tau`, one effect per group. `mle` is empirical Bayes (tau and mu by maximum marginal likelihood, the
# effects integrated out) with Wald intervals from the marginal likelihood's curvature; `svi` is the
# mean-field normal guide (`guide="normal"`), which cannot represent the correlation between `tau` and
# the effects; `mcmc` is NUTS.


# %%
def hierarchy(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(5.0))
    with pyro.plate("groups", sigma.shape[0]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        return pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


groups = {"sigma": torch.full((8,), 10.0), "y": torch.zeros(8)}  # y: only its size matters
small = ppgen.calibrate(
    hierarchy,
    groups,
    methods=("mle", "svi") if FAST else ("mle", "svi", "mcmc"),  # smoke run: a point fit and draws
    num_simulations=SIMULATIONS,
    num_workers=WORKERS,
    num_draws=DRAWS,
    progress=False,
    mle={"num_steps": STEPS},
    svi={"num_steps": STEPS, "guide": "normal"},
    mcmc=NUTS,
)
small_table = show(small)
fig = small.plot()
fig.savefig(FIGURES / "12_hierarchy_ranks.png", dpi=100)

# %% [markdown]
# Read the table by its columns: `gamma_p` is the p-value of Säilynoja et al.'s test that the ranks are
# uniform (small: not calibrated), `cover50`/`cover95` how often the central 50 % / 95 % interval held
# the truth, `failed` the fits with no interval at all (an empirical-Bayes `tau` estimated at 0 has no
# Wald interval — a failure that dropping would hide). The picture shows each method's ECDF of the
# ranks minus the uniform CDF inside the 95 % simultaneous band: a calibrated method stays in the band.
#
# **What the default run measured** (40 simulations, seed 0; `figures/12_hierarchy_ranks.png`):
#
# | method | failed | not converged | γ p (mu, tau) | 95 % coverage (mu, tau) |
# |---|---|---|---|---|
# | `mle` (empirical Bayes, Wald) | 31 of 40 | 3 | 0.46, 0.069 | 9/9, 9/9 of those with an interval |
# | `svi` (mean-field normal, 500 steps) | 0 | 40 of 40 | 0.00025, 0.00025 | 0.075, 0.125 |
# | `mcmc` (NUTS, 300 warm-up + 400) | 0 | 0 | 0.090, 0.002 | 0.875, 0.875 (± 0.05) |
#
# - **MLE's Wald intervals**: with 8 groups at noise 10, `tau` is estimated at 0 in 31 of 40 simulated
#   data sets, where there is no Wald interval at all. The 9 intervals that existed all covered — the
#   under-coverage here is the interval that is missing 78 % of the time, not a too-narrow one.
# - **Mean-field SVI** is far too narrow: 7.5 % and 12.5 % coverage for a nominal 95 %, the truth outside
#   all 99 draws in most simulations, `tau` collapsed below the truth. Every fit is also flagged not
#   converged at 500 steps, so part of this is the short run, not mean-field alone.
# - **NUTS** is the closest to calibrated, but not cleanly: in this centered parameterisation it
#   over-estimates small `tau` (ranks pile low, γ p = 0.002) — the eight-schools funnel; writing the
#   program non-centered is the usual fix. Its intervals are the only ones roughly as wide as they claim.

# %% [markdown]
# ## Pyro's baseball program
#
# The partially pooled model of tutorial 11, at the 18 players' 45 at-bats. Every method of the tour,
# side by side; MAP on this funnel has no mode in `scale` and its Laplace approximation is refused —
# counted as failed fits, not dropped.


# %%
def partially_pooled_with_logit(at_bats, hits=None):
    num_players = at_bats.shape[0]
    loc = pyro.sample("loc", dist.Normal(-1, 1))
    scale = pyro.sample("scale", dist.HalfCauchy(scale=1))
    with pyro.plate("num_players", num_players):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


tables = {"hierarchy": small_table}
if not FAST:  # the smoke run stops at the hierarchy
    players = ppgen.data.load("baseball")
    early = {"at_bats": players["At-Bats"], "hits": players["Hits"]}
    baseball = ppgen.calibrate(
        partially_pooled_with_logit,
        early,
        methods=("mle", "map", "svi", "mcmc"),
        num_simulations=SIMULATIONS,
        num_workers=WORKERS,
        num_draws=DRAWS,
        progress=False,
        mle={"num_steps": STEPS},
        map={"num_steps": STEPS},
        svi={"num_steps": STEPS},
        mcmc=NUTS,
    )
    tables["baseball"] = show(baseball)
    fig = baseball.plot()
    fig.savefig(FIGURES / "12_baseball_ranks.png", dpi=100)
    failures = baseball.failures()
    print(failures.groupby("method").size().to_string() if len(failures) else "no failed fits")

# %% [markdown]
# **What the default run measured** (40 simulations, seed 0; `figures/12_baseball_ranks.png`):
#
# | method | failed | not converged | γ p (loc, scale) | 95 % coverage (loc, scale) |
# |---|---|---|---|---|
# | `mle` (empirical Bayes, Wald) | 1 | 27 of 39 | 0.30, 0.017 | 0.92, 0.77 |
# | `map` (Laplace) | 19 of 40 | 0 | 0.20, 0.00025 | 0.90, 0.57 |
# | `svi` (AutoNormal, 500 steps) | 0 | 40 of 40 | 0.002, 0.00025 | 0.78, 0.53 |
# | `mcmc` (NUTS, 300 warm-up + 400) | 0 | 0 | 0.72, 0.090 | 0.95, 0.85 (± 0.06) |
#
# - **MLE's Wald interval** for the population `scale` under-covers: 77 % for a nominal 95 % (γ p =
#   0.017); for `loc` it is close (92 %). 27 of the 39 fits were also flagged not converged at 500 steps.
# - **MAP + Laplace** fails in 19 of 40 simulations (no mode in `scale`, the funnel) and where it has an
#   interval it covers `scale` 57 % of the time — counted, not dropped.
# - **Mean-field SVI** is too narrow, worst for `scale` (53 %; ranks leave the band), `loc` 78 %; again
#   every fit is flagged not converged at 500 steps.
# - **NUTS** is the calibrated one here: its ranks stay in the band for both parameters (γ p 0.72 and
#   0.09), 95 % coverage for `loc`, 85 % for `scale` (within two binomial standard errors of 40
#   simulations, a little low).


# %% [markdown]
# ## What to take away
#
# - The verdict is per program *and* data size: rerun `ppgen.calibrate(your_program, your_data)`.
# - NUTS is the reference when it mixes; a method whose ranks leave the band, or whose 95 % intervals
#   cover far less than 95 %, gives intervals you should not report as such.
# - Measured here: Wald's `scale` interval covers 77 %, MAP + Laplace's 57 % (and fails in half the
#   simulations), mean-field SVI's 53 %; NUTS's 85-95 %. Read `not_converged` before blaming a method:
#   every SVI fit ran out of its 500 steps, so raise `num_steps` and rerun before drawing the line.
# - Point fits are judged by the interval they would report (Wald at the MLE, Laplace at the MAP); where
#   that interval does not exist, the table says how often.
# - For more simulations than one machine can run, pass `executor=distributed.Client(address).get_executor()`
#   (`pip install ppgen[cluster]`); `checkpoint="folder"` lets a long run resume.

# %%
for name, table in tables.items():
    worst = table.sort_values("gamma_p").iloc[0]
    print(
        f"{name}: least calibrated {worst['method']} on {worst['parameter']} "
        f"(gamma p = {worst['gamma_p']:.2g})"
    )
print(f"tutorial 12 ran in {time.perf_counter() - START:.0f} s ({MODE} mode)")
