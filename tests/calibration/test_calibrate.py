"""``ppgen.calibrate`` against references that can fail (Talts et al. 2018; Säilynoja et al. 2022).

- The conjugate normal model with known variance (``NormalKnownScale``, loc ~ N(0, 2²), x_i ~ N(loc, 1),
  n = 8): the exact posterior's ranks are uniform (γ and χ² p > 0.01/3 for each of three fixed seeds, 150
  simulations each: a Bonferroni level, so the family of three fails by chance 1 % of the time), and
  the same posterior with its spread halved is flagged (γ p < 1e-3): the check can fail.
- The MLE of a Bernoulli proportion at n = 20 (p ~ Beta(4, 4)): coverage of its Wald interval (on the
  logit scale, where the fit's normal approximation lives) against the exact coverage, by enumeration
  over the 21 binomial outcomes, within 3 binomial standard errors.
- Bit-identity: parallel == serial, resumed == uninterrupted, a Dask ``LocalCluster`` == serial.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from scipy.special import betaln, comb, expit, logit

import ppgen
from ppgen.calibration.simulate import Simulator, derive_seed
from ppgen.calibration.uniformity import gamma_p
from ppgen.models import NormalKnownScale

MODEL, DATA = NormalKnownScale(prior_scale=2.0), torch.zeros(8, 1)


def overconfident(model, data, seed):
    """The exact posterior with its sd halved: draws pulled halfway to their mean."""
    draws = ppgen.fit(model, data, method="exact", seed=seed, num_draws=200).draws["loc"]
    return {"loc": draws.mean(0) + (draws - draws.mean(0)) / 2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_posterior_is_calibrated(seed):
    cal = ppgen.calibrate(MODEL, DATA, methods=("exact",), num_simulations=150, seed=seed, num_workers=1)
    row = cal.table().iloc[0]
    assert row["n"] == 150 and row["failed"] == 0
    assert row["gamma_p"] > 0.01 / 3 and row["chi2_p"] > 0.01 / 3, row
    assert abs(row["cover95"] - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 150)


def test_overconfident_posterior_is_flagged():
    cal = ppgen.calibrate(MODEL, DATA, methods=(overconfident,), num_simulations=150, seed=0, num_workers=1)
    row = cal.table().iloc[0]
    assert row["method"] == "overconfident" and not row["calibrated"]
    assert row["gamma_p"] < 1e-3, row
    assert row["cover95"] < 0.75  # a ±0.98 sd interval covers 68 %


@pytest.mark.slow
def test_gamma_test_size_on_uniform_ranks():
    """Reference: uniform ranks reject at 5 % about 5 % of the time (300 samples of 50, ± 3 se)."""
    rng = np.random.default_rng(1)
    rejected = np.mean([gamma_p(rng.integers(0, 100, size=50), 99, seed=i) < 0.05 for i in range(300)])
    assert abs(rejected - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 300)


def coin(flips):
    p = pyro.sample("p", dist.Beta(4.0, 4.0))
    with pyro.plate("flips", flips.shape[0]):
        pyro.sample("obs", dist.Bernoulli(p), obs=flips)


def exact_wald_coverage(level: float, n: int = 20, a: float = 4.0, b: float = 4.0) -> float:
    """E over k ~ BetaBinomial(n, a, b) of P(p in the logit Wald interval of k | k), p | k ~ Beta(a+k, b+n-k);
    at k = 0 or n the MLE is at infinity (no interval: counted as not covering)."""
    z = stats.norm.ppf(0.5 + level / 2)
    total = 0.0
    for k in range(1, n):
        weight = comb(n, k) * np.exp(betaln(a + k, b + n - k) - betaln(a, b))
        p_hat = k / n
        half = z / np.sqrt(n * p_hat * (1 - p_hat))
        lo, hi = expit(logit(p_hat) - half), expit(logit(p_hat) + half)
        total += weight * (stats.beta.cdf(hi, a + k, b + n - k) - stats.beta.cdf(lo, a + k, b + n - k))
    return float(total)


def test_wald_coverage_of_the_bernoulli_mle_matches_enumeration():
    sims = 60
    cal = ppgen.calibrate(
        coin,
        {"flips": torch.zeros(20)},
        methods=("mle",),
        num_simulations=sims,
        seed=0,
        num_workers=1,
        num_steps=60,
    )
    row = cal.table().iloc[0]
    for level in (0.5, 0.8, 0.95):
        reference = exact_wald_coverage(level)
        tolerance = 3 * np.sqrt(reference * (1 - reference) / sims) + 0.02
        assert abs(row[f"cover{round(level * 100)}"] - reference) < tolerance, (level, reference, row)
    # each simulation's interval is the closed-form one at its own k (reference: Φ((logit p - logit p̂)/se),
    # se = 1/√(n p̂(1-p̂)); tolerance 1e-3, the optimiser's precision on p̂)
    simulator = Simulator(coin, {"flips": torch.zeros(20)})
    for record in cal.records[:20]:
        truth, (args, _) = simulator.draw(derive_seed(0, record["index"], 0))
        k = float(args["flips"].sum())
        if k in (0, 20):
            continue
        p_hat, p = k / 20, float(truth["p"])
        expected = stats.norm.cdf((logit(p) - logit(p_hat)) * np.sqrt(20 * p_hat * (1 - p_hat)))
        assert abs(float(record["methods"]["mle"]["cdf"]["p"]) - expected) < 1e-3


def _same(a, b) -> bool:
    """Records equal bit for bit (every rank, CDF and estimate), fit times aside."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(k == "seconds" or _same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


CHEAP = {"methods": ("exact", "map"), "map": {"num_steps": 30}, "seed": 3}


def test_parallel_equals_serial():
    serial = ppgen.calibrate(MODEL, DATA, num_simulations=4, num_workers=1, **CHEAP)
    parallel = ppgen.calibrate(MODEL, DATA, num_simulations=4, num_workers=2, **CHEAP)
    assert _same(serial.records, parallel.records)
    assert serial.table().drop(columns="seconds").equals(parallel.table().drop(columns="seconds"))


def test_resumed_equals_uninterrupted(tmp_path):
    whole = ppgen.calibrate(MODEL, DATA, num_simulations=5, num_workers=1, **CHEAP)
    ppgen.calibrate(MODEL, DATA, num_simulations=5, num_workers=1, checkpoint=tmp_path, **CHEAP)
    for index in (1, 3, 4):  # an interrupted run: only some simulations finished
        (tmp_path / f"simulation-{index:05d}.pkl").unlink()
    resumed = ppgen.calibrate(MODEL, DATA, num_simulations=5, num_workers=1, checkpoint=tmp_path, **CHEAP)
    assert _same(whole.records, resumed.records)
    with pytest.raises(ppgen.OptionError, match="another"):  # a folder of another calibration is refused
        ppgen.calibrate(
            MODEL, DATA, num_simulations=5, num_workers=1, checkpoint=tmp_path, methods=("exact",)
        )


def test_failures_are_counted_not_dropped():
    def flaky(model, data, seed):
        if seed % 2:
            raise RuntimeError("diverged")
        return overconfident(model, data, seed)

    cal = ppgen.calibrate(MODEL, DATA, methods=(flaky,), num_simulations=8, num_workers=1)
    row = cal.table().iloc[0]
    assert row["failed"] + row["n"] == 8 and row["failed"] > 0 and not row["calibrated"]
    assert set(cal.failures()["error"]) == {"RuntimeError: diverged"}


def test_dask_local_cluster_equals_serial():
    distributed = pytest.importorskip("distributed")
    serial = ppgen.calibrate(MODEL, DATA, methods=("exact",), num_simulations=8, num_workers=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            on_cluster = ppgen.calibrate(
                MODEL, DATA, methods=("exact",), num_simulations=8, executor=client.get_executor()
            )
    assert _same(serial.records, on_cluster.records)


def test_save_load_and_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    cal = ppgen.calibrate(MODEL, DATA, methods=("exact", overconfident), num_simulations=20, num_workers=1)
    same = ppgen.Calibration.load(cal.save(tmp_path / "cal.pkl"))
    assert _same(cal.records, same.records) and same.table().equals(cal.table())
    for kind in ("ecdf", "hist"):
        fig = cal.plot(kind=kind)
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
