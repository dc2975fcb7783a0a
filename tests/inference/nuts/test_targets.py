"""The whole sampler on targets with known moments: means and variances within 4 Monte Carlo
standard errors (ArviZ's MCSE from the effective sample size), for diagonal and dense mass."""

import logging

import arviz as az
import numpy as np
import pytest

from ppgen.inference.nuts import Chain, Settings, diagnose


class Gaussian:
    """U(q) = ½ (q − μ)ᵀ P (q − μ): a potential with known mean μ and covariance P⁻¹."""

    compiler, names = "numpy", ["q"]

    def __init__(self, mean: np.ndarray, cov: np.ndarray) -> None:
        self.mean, self.cov, self.precision, self.size = mean, cov, np.linalg.inv(cov), len(mean)

    def __call__(self, q):
        r = q - self.mean
        g = self.precision @ r
        return 0.5 * float(r @ g), g


def _sample(target, dense: bool, warmup: int, draws: int, chains: int = 2, seed: int = 0):
    settings = Settings(num_warmup=warmup, num_samples=draws, dense_mass=dense)
    out = []
    for c in range(chains):
        rng = np.random.default_rng([seed, c])
        chain = Chain(target, settings, target.mean + rng.normal(size=target.size), seed, c)
        chain.run(None, None, progress=False)
        out.append(chain.result())
    return np.stack([d for d, _ in out]), {k: np.stack([s[k] for _, s in out]) for k in out[0][1]}


def _mcse(draws: np.ndarray) -> np.ndarray:
    return az.mcse(az.convert_to_dataset({"q": draws}), method="mean")["q"].values


def _assert_moments_within_4_mcse(draws: np.ndarray, mean: np.ndarray, var: np.ndarray) -> None:
    # draws (C, S, D); the MCSE of a variance is that of the mean of (x − μ)², from its own ESS
    mcse_mean = _mcse(draws)
    assert np.all(np.abs(draws.mean((0, 1)) - mean) < 4 * mcse_mean), "means"
    squares = (draws - mean) ** 2
    mcse_var = _mcse(squares)
    assert np.all(np.abs(squares.mean((0, 1)) - var) < 4 * mcse_var), "variances"


def _ill_conditioned(dim: int, rotate: bool, seed: int = 0):
    """Variances log-spaced over [0.1, 10]: condition number 100; rotated to be dense if asked."""
    variances = np.logspace(-1, 1, dim)
    if not rotate:
        return np.diag(variances)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return q @ np.diag(variances) @ q.T


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal-mass", "dense-mass"])
def test_100d_gaussian_with_condition_number_100(dense):
    # diagonal mass on the axis-aligned target; dense mass on the same spectrum rotated
    cov = _ill_conditioned(100, rotate=dense)
    target = Gaussian(np.linspace(-1, 1, 100), cov)
    draws, stats = _sample(target, dense, warmup=400, draws=500)
    _assert_moments_within_4_mcse(draws, target.mean, np.diag(cov))
    assert stats["diverging"].sum() == 0
    assert stats["tree_depth"].max() <= 7  # adapted mass rounds the target: ~D^¼ steps, not ~√100·D^¼


@pytest.mark.parametrize("dense", [False, True], ids=["diagonal-mass", "dense-mass"])
def test_correlated_2d_gaussian(dense):
    cov = np.array([[1.0, 0.95 * 2.0], [0.95 * 2.0, 4.0]])
    target = Gaussian(np.array([1.0, -2.0]), cov)
    draws, _ = _sample(target, dense, warmup=300, draws=1000)
    _assert_moments_within_4_mcse(draws, target.mean, np.diag(cov))
    corr = np.corrcoef(draws.reshape(-1, 2).T)[0, 1]
    assert abs(corr - 0.95) < 0.02


class Funnel:
    """Neal's funnel: v ~ N(0, 3²), x_i | v ~ N(0, e^v), i = 1..9 (centred)."""

    compiler, names, size = "numpy", ["v", "x"], 10

    def __call__(self, q):
        v, x = q[0], q[1:]
        scaled = x * np.exp(-v)
        u = v * v / 18.0 + 0.5 * float(x @ scaled) + 4.5 * v
        grad = np.concatenate([[v / 9.0 - 0.5 * float(x @ scaled) + 4.5], scaled])
        return u, grad


def test_neals_funnel_reports_divergences(caplog):
    # The funnel's neck has a curvature no single step size follows: NUTS diverges there, and
    # the diagnostics count the divergent draws and give Stan's advice on the logger.
    target = Funnel()
    settings = Settings(num_warmup=200, num_samples=1000, target_accept_prob=0.6)
    chain = Chain(target, settings, np.zeros(10), 2, 0)
    chain.run(None, None, progress=False)
    _, stats = chain.result()
    divergent = int(stats["diverging"].sum())
    assert divergent > 0
    posterior = az.from_dict(posterior={"v": chain.result()[0][None, :, 0]})
    with caplog.at_level(logging.WARNING, logger="ppgen.mcmc"):
        lines = diagnose(posterior, {k: v[None] for k, v in stats.items()}, 10, 0.8)
    assert any(f"{divergent} of 1000 draws diverged" in line and "reparameterise" in line for line in lines)
    assert any("diverged" in record.message for record in caplog.records)


class NonCentredFunnel:
    """The same funnel non-centred: v ~ N(0, 3²), raw ~ N(0, I₉), x = raw · e^{v/2} (a deterministic)."""

    compiler, names, size = "numpy", ["v", "raw"], 10

    def __call__(self, q):
        return q[0] * q[0] / 18.0 + 0.5 * float(q[1:] @ q[1:]), np.concatenate([[q[0] / 9.0], q[1:]])


def test_non_centred_funnel_has_the_right_moments_and_no_divergences():
    # Reference: v ~ N(0, 3²): mean 0, variance 9, recovered within 4 MCSE once the funnel is
    # non-centred (Stan's remedy the divergence line gives); x's scale e^{v/2} is then exact too.
    settings = Settings(num_warmup=200, num_samples=600)
    chains = [Chain(NonCentredFunnel(), settings, np.zeros(10), 1, c) for c in range(2)]
    for chain in chains:
        chain.run(None, None, progress=False)
    results = [chain.result() for chain in chains]
    v = np.stack([draws[:, 0] for draws, _ in results])
    _assert_moments_within_4_mcse(v[..., None], np.zeros(1), np.full(1, 9.0))
    assert sum(int(stats["diverging"].sum()) for _, stats in results) == 0
