"""The f-divergence catalog and its estimators, each against an independent reference."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from ppgen.errors import DataError, OptionError
from ppgen.measures import divergences
from tests.common import assert_close

NAMES = divergences.names()

#: Points t inside each conjugate's domain where the sup over u is attained in (1e-6, 1e4).
T_GRID = {
    "kl": np.linspace(-3, 3, 13),
    "reverse_kl": np.linspace(-5, -0.2, 13),
    "js": np.linspace(-2, 0.3, 13),
    "total_variation": np.linspace(-0.45, 0.45, 13),
    "pearson": np.linspace(-4, 4, 17),  # includes t < -2, where the sup sits at the boundary u = 0
    "neyman": np.linspace(-5, 0.9, 13),
    "hellinger": np.linspace(-5, 0.9, 13),
    "gan": np.linspace(-5, 0.65, 13),
}


def f_numpy(name, u):
    return divergences.get(name).f(torch.as_tensor(u, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("name", NAMES)
def test_generator_is_convex_with_f_of_one_zero(name):
    # Reference: the definition. Midpoint convexity on 20,000 random pairs (exact in float64 up to
    # rounding, hence 1e-12), and f(1) = 0 exactly.
    assert abs(float(f_numpy(name, 1.0))) < 1e-15
    rng = np.random.default_rng(0)
    a, b = np.exp(rng.uniform(-6, 4, 20_000)), np.exp(rng.uniform(-6, 4, 20_000))
    gap = (f_numpy(name, a) + f_numpy(name, b)) / 2 - f_numpy(name, (a + b) / 2)
    assert gap.min() > -1e-12 * (1 + np.abs(f_numpy(name, a)).max())


@pytest.mark.parametrize("name", NAMES)
def test_conjugate_is_numerical_supremum(name):
    # Reference: f*(t) = sup_{u>=0} (t u - f(u)) found numerically — the max over a log grid of
    # 200,001 points refined by a bounded Brent search — independent of the closed forms; 1e-6.
    div = divergences.get(name)
    u = np.concatenate([[0.0], np.logspace(-8, 4, 200_001)])
    fu = f_numpy(name, u)
    fu[0] = f_numpy(name, 1e-300)  # f(0) as a limit (reverse_kl, neyman: +inf)
    for t in T_GRID[name]:
        values = t * u - fu
        i = int(np.nanargmax(values))
        lo, hi = u[max(i - 1, 0)], u[min(i + 1, len(u) - 1)]
        res = minimize_scalar(
            lambda v, t=t: -(t * v - float(f_numpy(name, v))),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12},
        )
        numeric = max(values[i], -res.fun)
        closed = float(div.conjugate(torch.tensor(t, dtype=torch.float64)))
        assert abs(numeric - closed) < 1e-6, (name, t, numeric, closed)


@pytest.mark.parametrize("name", NAMES)
def test_activation_maps_into_the_conjugate_domain(name):
    # Reference: the domain interval; g_f must land inside it for every raw output v.
    div = divergences.get(name)
    v = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    t = div.activation(v)
    low, high = div.domain
    assert (t >= low).all() and (t <= high).all()
    assert torch.isfinite(div.conjugate(t[(v > -10) & (v < 10)])).all()


@pytest.mark.parametrize("name", NAMES)
def test_fused_conjugate_of_activation_equals_the_composition(name):
    # Reference: f*(g_f(v)) composed from the two closed forms, where both are finite; 1e-10.
    div = divergences.get(name)
    v = torch.linspace(-8, 8, 801, dtype=torch.float64)
    assert_close(div.conjugate_at(v), div.conjugate(div.activation(v)), atol=1e-10, rtol=1e-10)


def direct_sums(p, q):
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    return {
        "kl": np.sum(p * np.log(p / q)),
        "reverse_kl": np.sum(q * np.log(q / p)),
        "js": js,
        "total_variation": 0.5 * np.sum(np.abs(p - q)),
        "pearson": np.sum((p - q) ** 2 / q),
        "neyman": np.sum((p - q) ** 2 / p),
        "hellinger": np.sum((np.sqrt(p) - np.sqrt(q)) ** 2),
        "gan": 2 * js,
    }


def test_discrete_divergences_equal_direct_sums():
    # Reference: the textbook formulas summed directly (not through f); float64 rounding, 1e-12.
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    expected = direct_sums(p, q)
    for name in NAMES:
        assert abs(divergences.discrete(name, p, q) - expected[name]) < 1e-12, name


def test_kl_gaussians_matches_torch_closed_form():
    # Reference: torch.distributions.kl_divergence (an independent implementation), 1e-10.
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(3, 3, generator=g, dtype=torch.float64),
        torch.randn(3, 3, generator=g, dtype=torch.float64),
    )
    cov_p, cov_q = a @ a.T + torch.eye(3), b @ b.T + 0.5 * torch.eye(3)
    loc_p, loc_q = (
        torch.randn(3, generator=g, dtype=torch.float64),
        torch.randn(3, generator=g, dtype=torch.float64),
    )
    MVN = torch.distributions.MultivariateNormal
    expected = torch.distributions.kl_divergence(MVN(loc_p, cov_p), MVN(loc_q, cov_q))
    assert_close(divergences.kl_gaussians(loc_p, cov_p, loc_q, cov_q), expected, atol=1e-10)


def test_monte_carlo_agrees_with_closed_form_kl():
    # Reference: the closed form; the estimator is a mean of 100,000 iid terms, so 4 standard errors.
    N = torch.distributions.Normal
    p, q = N(torch.tensor(0.0, dtype=torch.float64), 1.0), N(torch.tensor(1.0, dtype=torch.float64), 1.5)
    torch.manual_seed(0)
    est, se = divergences.monte_carlo("kl", p, q, n=100_000)
    exact = float(divergences.kl_gaussians([0.0], [[1.0]], [1.0], [[2.25]]))
    assert abs(est - exact) < 4 * se


def quadrature(name, p, q):
    # Direct numerical integral of q f(p/q) on a fine grid (trapezoid, error << 1e-6 here).
    x = torch.linspace(-15, 15, 60_001, dtype=torch.float64)
    u = torch.exp(p.log_prob(x) - q.log_prob(x))
    return float(torch.trapezoid(q.log_prob(x).exp() * divergences.get(name).f(u), x))


class Quadratic(torch.nn.Module):
    """V(x) = a x² + b x + c — the log ratio of two Gaussians is exactly of this form."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1).double()
        torch.nn.init.zeros_(self.lin.weight)  # start at V = 0: exp(V) terms stay tame early on
        torch.nn.init.zeros_(self.lin.bias)

    def forward(self, x):
        return self.lin(torch.cat([x, x**2], -1))


@pytest.mark.parametrize("name", ["kl", "js", "hellinger"])
def test_variational_bound_reaches_true_divergence(name):
    # Reference: the true D_f by quadrature. The optimal critic g_f(V) = f'(p/q) is a function of
    # a quadratic V for these three, so a quadratic critic can reach the bound: within 10% (the
    # issue's goal), and never above the truth by more than 3 Monte Carlo standard errors.
    N = torch.distributions.Normal
    p, q = N(torch.tensor(0.0, dtype=torch.float64), 1.0), N(torch.tensor(1.0, dtype=torch.float64), 1.5)
    truth = quadrature(name, p, q)
    est, se, _ = divergences.variational_estimate(
        name,
        lambda n: p.sample((n, 1)),
        lambda n: q.sample((n, 1)),
        critic=Quadratic(),
        steps=600,
        batch_size=1024,
        lr=0.05,
        n_eval=50_000,
        seed=0,
        progress=False,
    )
    assert abs(est - truth) < 0.1 * truth, (est, truth)
    assert est < truth + 3 * se


def test_bound_from_any_critic_stays_below_the_divergence():
    # Reference: quadrature; a random (untrained) critic gives a valid lower bound (mean of 2·10^4
    # draws; 0.05 is over 3 standard errors).
    N = torch.distributions.Normal
    p, q = N(torch.tensor(0.0, dtype=torch.float64), 1.0), N(torch.tensor(1.0, dtype=torch.float64), 1.5)
    torch.manual_seed(3)
    critic = Quadratic()
    torch.nn.init.normal_(critic.lin.weight, std=0.3)
    for name in NAMES:
        xp, xq = p.sample((20_000, 1)), q.sample((20_000, 1))
        with torch.no_grad():
            bound = float(divergences.variational_bound(name, critic, xp, xq))
        assert bound < quadrature(name, p, q) + 0.05, name


def test_bad_inputs_give_clear_errors():
    with pytest.raises(OptionError, match="kl"):
        divergences.get("wasserstein")
    with pytest.raises(DataError, match="sum to 1"):
        divergences.discrete("kl", [0.5, 0.6], [0.5, 0.5])
    with pytest.raises(DataError, match="q > 0"):
        divergences.discrete("kl", [0.5, 0.5], [1.0, 0.0])
    with pytest.raises(DataError, match="same length"):
        divergences.discrete("kl", [1.0], [0.5, 0.5])
    with pytest.raises(OptionError, match="log_prob"):
        divergences.monte_carlo("kl", object(), torch.distributions.Normal(0.0, 1.0))
