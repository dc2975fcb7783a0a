"""The EM backend: monotone, reproducible, keeps the best restart, fails loudly and early."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppgen
from ppgen.core import GenerativeModel, PyroParam
from ppgen.errors import ConvergenceWarning, DataError, MethodError, OptionError
from ppgen.inference.em import EMDecreaseError
from ppgen.models import BernoulliMixture, FactorAnalysis, Gaussian, GaussianMixture
from tests.common import assert_close


def mixture_data(n, dim, k, seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3, size=(k, dim))
    return torch.tensor(centers[rng.integers(0, k, n)] + rng.normal(size=(n, dim)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 4),
    dim=st.integers(1, 3),
    covariance=st.sampled_from(["full", "diag", "spherical", "tied"]),
    init=st.sampled_from(["kmeans++", "random"]),
)
def test_em_log_likelihood_never_decreases(seed, k, dim, covariance, init):
    # Property (Dempster, Laird & Rubin 1977): every EM iteration keeps or raises log p(x).
    # The backend itself raises EMDecreaseError on a decrease beyond 1e-9 relative; here we
    # also check the recorded history directly, allowing 1e-9 relative round-off.
    x = mixture_data(120, dim, k, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = ppgen.fit(
            GaussianMixture(k, covariance=covariance),
            x,
            method="em",
            init=init,
            seed=seed,
            max_iter=25,
            tol=0.0,
            progress=False,
        )
    h = np.array(fit.history)
    assert np.all(np.diff(h) >= -1e-9 * (1 + np.abs(h[:-1])))
    assert all(torch.isfinite(v).all() for v in fit.params.values())


def test_bernoulli_and_fa_histories_are_monotone():
    # Same property for the other families (EM over a box for Bernoulli, exact for FA).
    g = torch.Generator().manual_seed(0)
    protos = (torch.rand(3, 20, generator=g) > 0.5).double()
    x = protos[torch.randint(0, 3, (300,), generator=g)]
    x = torch.where(torch.rand(x.shape, generator=g) < 0.1, 1 - x, x)
    fits = [
        ppgen.fit(BernoulliMixture(3), x, method="em", seed=0, progress=False),
        ppgen.fit(FactorAnalysis(2), mixture_data(200, 5, 3, 1), method="em", init="random", progress=False),
    ]
    for fit in fits:
        h = np.array(fit.history)
        assert len(h) > 2 and np.all(np.diff(h) >= -1e-9 * (1 + np.abs(h[:-1])))


def test_seed_reproducible_and_n_init_keeps_best():
    # Reference: the single runs themselves; the best of n_init restarts equals the best single run
    # with the same seeds (restart r uses seed + r), and the same seed gives identical results.
    x = mixture_data(200, 2, 4, 3)
    opts = {"method": "em", "init": "random", "tol": 1e-4, "max_iter": 500, "progress": False}
    singles = [ppgen.fit(GaussianMixture(4), x, seed=s, **opts).history[-1] for s in range(3)]
    best = ppgen.fit(GaussianMixture(4), x, seed=0, n_init=3, **opts)
    assert best.history[-1] == pytest.approx(max(singles), abs=1e-12)
    assert best.extras["best_restart"] == int(np.argmax(singles))
    again = ppgen.fit(GaussianMixture(4), x, seed=0, n_init=3, **opts)
    assert_close(again.params["mu"], best.params["mu"], atol=0.0)


def test_given_init_starts_from_current_parameters():
    # Reference: one EM iteration by hand with the model's own e_step/m_step.
    x = mixture_data(100, 2, 2, 0)
    model = GaussianMixture(2, 2).double().initialize(x, init="random", seed=5)
    manual = GaussianMixture(2, 2).double().initialize(x, init="random", seed=5)
    resp, _ = manual.e_step(x)
    manual.m_step(x, resp)
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        fit = ppgen.fit(model, x, method="em", init="given", max_iter=1, progress=False)
    assert_close(fit.params["mu"], manual.mu.detach(), atol=1e-14)


def test_float32_option_and_device():
    # float32 data fits in float32 (dtype=), on the requested device, close to the float64 fit
    # (mean log-lik within 1e-4: float32 round-off on 400 rows).
    x = mixture_data(400, 2, 2, 0)
    f64 = ppgen.fit(GaussianMixture(2), x, method="em", seed=0, tol=1e-7, max_iter=1000, progress=False)
    f32 = ppgen.fit(
        GaussianMixture(2),
        x,
        method="em",
        seed=0,
        tol=1e-6,
        max_iter=1000,
        dtype=torch.float32,
        device="cpu",
        progress=False,
    )
    assert f32.params["mu"].dtype == torch.float32 and f64.params["mu"].dtype == torch.float64
    assert f32.history[-1] == pytest.approx(f64.history[-1], abs=1e-4)


def test_train_log_lik_and_score():
    # Reference: the fitted model's own log_prob on the training data.
    x = mixture_data(150, 2, 2, 1)
    fit = ppgen.fit(GaussianMixture(2), x, method="em", seed=0, progress=False)
    assert fit.score(x) == pytest.approx(fit.history[-1], abs=1e-12)
    with torch.no_grad():
        assert fit.train_log_lik == pytest.approx(float(fit.model.log_prob(x).sum()), rel=1e-12)
    assert fit.converged


class _BrokenMixture(GenerativeModel):
    """A model whose M-step makes things worse: the monotonicity check must catch it."""

    has_local_latents = True
    init_methods = ("given",)

    def __init__(self):
        super().__init__()
        self.loc = PyroParam(torch.zeros(1, dtype=torch.float64))

    def log_prob(self, x):
        return -0.5 * ((x[:, 0] - self.loc) ** 2)

    def e_step(self, x):
        return None, self.log_prob(x)

    def m_step(self, x, stats):
        self.set_params(loc=self.loc.detach() + 1.0)


def test_decrease_raises():
    with pytest.raises(EMDecreaseError, match="never to decrease"):
        ppgen.fit(_BrokenMixture(), torch.zeros(10, 1, dtype=torch.float64), method="em", progress=False)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"max_iter": 0}, OptionError, "max_iter"),
        ({"tol": -1.0}, OptionError, "tol"),
        ({"n_init": 2, "init": "given"}, OptionError, "n_init=1"),
        ({"init": "banana"}, OptionError, "init"),
        ({"learning_rate": 1.0}, OptionError, "unknown"),
    ],
)
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        ppgen.fit(GaussianMixture(2), mixture_data(20, 2, 2, 0), method="em", progress=False, **options)


def test_models_without_em_fail_before_work():
    with pytest.raises(MethodError, match="e_step"):
        ppgen.fit(Gaussian(2), torch.randn(10, 2), method="em")


def test_too_few_points_and_collapse_are_clear():
    # n < n_components: a DataError naming the fix. Duplicated points: reg_covar keeps every
    # covariance positive definite (no NaN); with reg_covar=0 the M-step says what to do.
    with pytest.raises(DataError, match="n_samples >= n_components"):
        ppgen.fit(GaussianMixture(4), torch.randn(3, 2).double(), method="em", progress=False)
    x = torch.tensor([[0.0, 0.0]] * 10 + [[5.0, 5.0]] * 10, dtype=torch.float64)
    fit = ppgen.fit(GaussianMixture(2), x, method="em", seed=0, progress=False)
    assert all(torch.isfinite(v).all() for v in fit.params.values())
    with pytest.raises(DataError, match="reg_covar"):
        ppgen.fit(GaussianMixture(2, reg_covar=0.0), x, method="em", seed=0, progress=False)


def test_non_convergence_warns_with_remedy():
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        fit = ppgen.fit(GaussianMixture(3), mixture_data(200, 2, 3, 0), method="em", max_iter=2, tol=0.0)
    assert not fit.converged and len(fit.history) == 3
