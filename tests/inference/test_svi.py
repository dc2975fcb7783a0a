"""mle / svi / map against the exact conjugate posterior of the same story."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import pyro_method
from torch.distributions.transforms import AffineTransform

import ppgen
from ppgen.models import Gaussian, NormalKnownScale
from tests.common import assert_close, gaussian_data


def _known_scale_model():
    # float64 hyperparameters so the fit runs in float64 (a Bayesian story computes in its priors' dtype)
    return NormalKnownScale(
        dim=1,
        scale=torch.tensor(2.0, dtype=torch.float64),
        prior_loc=torch.tensor(0.0, dtype=torch.float64),
        prior_scale=torch.tensor(1.0, dtype=torch.float64),
    )


def test_map_equals_analytic_posterior_mode():
    # Reference: the Normal-Normal posterior mode (= its mean) in closed form; Adam to 1e-4.
    x = gaussian_data(n=30, dim=1, seed=1)
    model = _known_scale_model()
    exact = model.conjugate_posterior(x)
    fit = ppgen.fit(model, x, method="map", lr=0.05, num_steps=2000, tol=1e-9, seed=0)
    assert_close(fit.params["loc"], exact.mean()["loc"], atol=1e-4)
    assert fit.posterior is None and fit.draws["loc"].shape == (1, 1)


def test_svi_autonormal_recovers_gaussian_posterior():
    # The posterior is Gaussian, so AutoNormal's family contains it; with 1000 guide draws the
    # mean/sd estimates carry ~3% Monte Carlo error -> tolerance 10% of the posterior sd.
    x = gaussian_data(n=30, dim=1, seed=2)
    model = _known_scale_model()
    exact = model.conjugate_posterior(x)
    fit = ppgen.fit(
        model,
        x,
        method="svi",
        guide="normal",
        lr=0.05,
        lr_decay=0.02,
        num_steps=1500,
        seed=0,
        num_particles=2,
    )
    sd = exact.sd()["loc"]
    assert_close(fit.params["loc"], exact.mean()["loc"], atol=float(0.1 * sd))
    assert_close(fit.draws["loc"].std(0), sd, atol=float(0.1 * sd))
    assert "log_likelihood" in fit.posterior.groups()


def test_minibatch_objective_is_unbiased():
    # The data plate is scaled by N/B: averaged over many minibatches the loss equals the
    # full-data loss (here: 2000 batches, Monte Carlo error well below the 0.5% tolerance).
    from pyro.infer import Trace_ELBO

    from ppgen.inference.minibatches import Minibatches

    x = gaussian_data(n=100, dim=1, seed=3)
    model = Gaussian(dim=1).double()
    full = float(Trace_ELBO().differentiable_loss(model.model, model.guide, x).detach())
    batches = Minibatches(x, {}, batch_size=10, seed=0)
    total = 0.0
    for _ in range(2000):
        xb, _, scale = batches.next()
        with batches.scaled(scale):
            total += float(Trace_ELBO().differentiable_loss(model.model, model.guide, xb).detach())
    assert abs(total / 2000 - full) < 0.005 * abs(full)


def test_minibatch_mle_converges():
    x = gaussian_data(n=500, dim=1, seed=4)
    fit = ppgen.fit(Gaussian(dim=1), x, method="mle", batch_size=64, lr=0.1, num_steps=600, seed=0)
    assert abs(float(fit.params["loc"]) - float(x.mean())) < 0.05


def test_non_finite_loss_stops_with_last_finite_parameters():
    x = gaussian_data(n=50, dim=1, seed=5) * 1e200  # squares overflow to inf in the log-density
    with pytest.raises(ppgen.NonFiniteLossError, match="finite"):
        ppgen.fit(Gaussian(dim=1), x, method="mle", num_steps=10)


def _uniform_width(y):
    width = pyro.sample("width", dist.LogNormal(0.0, 1.0))  # prior median 1, below the data's 3
    with pyro.plate("rows", len(y)):
        pyro.sample("y", dist.Uniform(0.0, width), obs=y)


def test_a_start_where_the_data_are_impossible_names_init():
    # Pyro's sir_hmc.py continuous model from its prior median: the first loss is already -inf (here
    # Pyro's validation says so first, as a raw ValueError). With init= given (no redraws) the advice
    # is a start where the data have a density, not "lower lr".
    y = torch.tensor([0.5, 3.0, 1.2])
    with pytest.raises(ppgen.NonFiniteLossError, match=r"at step 0.*site 'y'.*init=\{site: value\}"):
        ppgen.fit(_uniform_width, {"y": y}, method="map", init={"width": 1.0}, progress=False)


def _shifted(y):
    shift = pyro.sample("shift", dist.Normal(0.0, 1.0))  # the median 0 is above some data: impossible
    with pyro.plate("rows", len(y)):
        pyro.sample(
            "y", dist.TransformedDistribution(dist.LogNormal(0.0, 1.0), AffineTransform(shift, 1.0)), obs=y
        )


def test_an_impossible_start_is_redrawn_as_stan_draws_inits():
    # The prior median (shift = 0) puts data below the support's edge; the start is redrawn uniformly
    # in (-2, 2), as Stan does, until the loss is finite, and the MAP follows. Reference: the MAP by a
    # grid of 2e5 points below min(y), where log N(s|0,1) + sum log LogNormal(y - s) is smooth (1e-3).
    g = torch.Generator().manual_seed(0)
    y = -1.5 + torch.exp(torch.randn(30, generator=g))  # min(y) near -1.4: shift must start below it
    fit = ppgen.fit(_shifted, {"y": y}, method="map", seed=0, progress=False)
    assert fit.extras["start_redraws"] >= 1
    grid = torch.linspace(-8.0, float(y.min()) - 1e-6, 200_000, dtype=torch.float64)
    log_joint = dist.Normal(0.0, 1.0).log_prob(grid) + dist.LogNormal(0.0, 1.0).log_prob(
        y.double()[None, :] - grid[:, None]
    ).sum(1)
    assert float(fit.params["shift"]) == pytest.approx(float(grid[log_joint.argmax()]), abs=1e-3)


class _NaNGradient(Gaussian):
    """Finite loss, NaN gradient: the unselected branch of ``where`` still backpropagates."""

    @pyro_method
    def log_prob(self, x):
        trap = torch.where(self.loc.sum() < 1e6, torch.zeros(()), 0.0 * torch.sqrt(-1.0 - self.loc.sum()))
        return super().log_prob(x) + trap


def test_non_finite_gradient_keeps_parameters_finite():
    x = gaussian_data(n=50, dim=1, seed=6)
    with pytest.raises(ppgen.NonFiniteLossError, match="gradients"):
        ppgen.fit(_NaNGradient(dim=1), x, method="mle", lr=0.01, num_steps=200)


@pytest.mark.parametrize("method", ["mle", "svi", "map"])
def test_seed_makes_fits_bit_reproducible(method):
    x = gaussian_data(n=60, dim=1, seed=7)
    model = _known_scale_model() if method != "mle" else Gaussian(dim=1)
    options = {"num_steps": 200, "lr": 0.05, "batch_size": 20}
    a = ppgen.fit(model, x, method=method, seed=3, **options)
    b = ppgen.fit(model, x, method=method, seed=3, **options)
    assert a.history == b.history
    for key in a.params:
        assert torch.equal(a.params[key], b.params[key])


def test_option_errors():
    x = gaussian_data(n=20, dim=1)
    with pytest.raises(ppgen.OptionError, match="num_step"):
        ppgen.fit(Gaussian(dim=1), x, method="mle", num_step=10)
    with pytest.raises(ppgen.OptionError, match="guide"):
        ppgen.fit(_known_scale_model(), x, method="svi", guide="banana")
    with pytest.raises(ppgen.OptionError, match="global latents"):
        ppgen.fit(_known_scale_model(), x, method="svi", guide="model")
    with pytest.raises(ppgen.OptionError, match="lr"):
        ppgen.fit(Gaussian(dim=1), x, method="mle", lr=-1.0)
    with pytest.raises(ppgen.MethodError, match="map"):
        ppgen.fit(_known_scale_model(), x, method="mle")
    with pytest.raises(ppgen.MethodError, match="priors"):
        ppgen.fit(Gaussian(dim=1), x, method="map")
    assert math.isfinite(ppgen.fit(Gaussian(dim=1), x, method="exact").score(x))


def test_bayesian_gaussian_by_svi_has_every_site():
    # PYRO_NOTES 1 and 6: every prior becomes one global site with the parameter's shape.
    model = ppgen.bayesian(
        Gaussian(dim=2, covariance="diag"),
        loc=dist.Normal(0.0, 10.0).expand([2]).to_event(1),
        scale=dist.LogNormal(0.0, 1.0).expand([2]).to_event(1),
    )
    fit = ppgen.fit(model, gaussian_data(n=100, dim=2, seed=8), method="svi", num_steps=300, lr=0.05)
    assert set(fit.draws) == {"loc", "scale"}
    assert fit.draws["loc"].shape == (1000, 2)


def _mixture_priors() -> dict:
    f64 = dict(dtype=torch.float64)
    return {
        "pi": dist.Dirichlet(torch.ones(2, **f64)),
        "mu": dist.Normal(torch.zeros(2, 2, **f64), 3.0).to_event(2),
        "scale": dist.LogNormal(torch.zeros(2, 2, **f64), 1.0).to_event(2),
    }


def _bayesian_mixture():
    from ppgen.models import GaussianMixture

    return ppgen.bayesian(GaussianMixture(2, 2, "diag").double(), **_mixture_priors())


def _log_posterior(fit, x) -> float:
    """log p(x | θ) + log p(θ) at the fit's point estimate (what MAP maximises)."""
    priors = _mixture_priors()
    return float(fit.log_prob(x).sum()) + sum(float(p.log_prob(fit.params[k])) for k, p in priors.items())


def test_init_starts_map_from_an_em_fit_and_map_climbs_from_there():
    # References: with lr ~ 0 the guide stays where init put it (EM's estimate, 1e-6); MAP then
    # maximises log-likelihood + log-prior, so it ends at least as high as EM's point (which
    # maximises the likelihood alone) — a bound checked up to optimiser noise (1e-6 relative).
    from ppgen.models import GaussianMixture

    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [torch.randn(150, 2, generator=g).double() - 3, torch.randn(100, 2, generator=g).double() + 2]
    )
    em = ppgen.fit(GaussianMixture(2, 2, "diag").double(), x, method="em", seed=0, progress=False)
    # polish=False: without L-BFGS after Adam's one step the guide stays where init put it
    frozen = ppgen.fit(
        _bayesian_mixture(), x, method="map", num_steps=1, lr=1e-12, init=em, polish=False, progress=False
    )
    for name in ("pi", "mu", "scale"):
        assert_close(frozen.params[name], em.params[name], atol=1e-6)
    partial = ppgen.fit(
        _bayesian_mixture(),
        x,
        method="map",
        num_steps=1,
        lr=1e-12,
        init={"mu": em.params["mu"]},
        polish=False,
        progress=False,
    )
    assert_close(partial.params["mu"], em.params["mu"], atol=1e-6)
    fit = ppgen.fit(
        _bayesian_mixture(), x, method="map", num_steps=800, lr=0.02, init=em, seed=0, progress=False
    )
    em_point = ppgen.fit(
        _bayesian_mixture(), x, method="map", num_steps=1, lr=1e-12, init=em, polish=False, progress=False
    )
    assert _log_posterior(fit, x) >= _log_posterior(em_point, x) * (1 + 1e-6)
    svi = ppgen.fit(
        _bayesian_mixture(), x, method="svi", num_steps=300, lr=0.02, init=em, seed=0, progress=False
    )
    assert torch.allclose(svi.params["mu"], em.params["mu"], atol=0.1)


def test_init_errors_name_the_problem():
    x = gaussian_data(n=40, dim=2, seed=0).double()
    bad = [
        ({"nope": torch.zeros(2)}, "global latents"),
        ({"mu": torch.zeros(3)}, "shape"),
        ({"scale": -torch.ones(2, 2)}, "support"),
        ({"mu": torch.full((2, 2), float("nan"))}, "support"),
        ([1, 2], "dict"),
    ]
    for init, match in bad:
        with pytest.raises(ppgen.errors.OptionError, match=match):
            ppgen.fit(_bayesian_mixture(), x, method="map", num_steps=2, init=init, progress=False)
    gaussian = ppgen.fit(Gaussian(dim=2).double(), x, method="mle", num_steps=2, progress=False)
    with pytest.raises(ppgen.errors.OptionError, match="point estimates"):
        ppgen.fit(_bayesian_mixture(), x, method="map", num_steps=2, init=gaussian, progress=False)
