"""Early stopping on held-out rows (``validation=``, ppgen/inference/validation.py; issue 18, defect 4).

References: a plain torch Adam loop over the same loss (validation=None is the old loop, to 1e-12
in float64), the model's own ``log_prob`` on the held-out rows (the best recorded validation loss
is the returned parameters' loss, to 1e-9), and the seeded permutation that defines the split.
"""

import copy
import math

import pyro
import pytest
import torch

import ppgen
from ppgen import bayesian
from ppgen.errors import DataError, OptionError
from ppgen.models import MADE, VAE, ConditionalVAE, Gaussian, GaussianMixture
from tests.common import assert_close, gaussian_data


def _categorical(n, dim=6, levels=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(levels, (n, dim), generator=g).double()


def _made(dim=6, levels=4, **kwargs):
    kwargs.setdefault("hidden", (32,))
    return MADE(dim, likelihood="categorical", num_categories=levels, **kwargs).double()


def test_neural_models_hold_out_a_seeded_tenth_by_default():
    x, made = _categorical(200), _made()
    a = ppgen.fit(made, x, method="mle", num_steps=20, seed=3, progress=False)
    b = ppgen.fit(made, x, method="mle", num_steps=20, seed=3, progress=False)
    c = ppgen.fit(made, x, method="mle", num_steps=20, seed=4, progress=False)
    index = a.extras["validation_index"]
    assert a.extras["validation_rows"] == 20 and a.n_train == 180  # round(0.1 * 200) rows held out
    expected = torch.randperm(200, generator=torch.Generator().manual_seed(3))[:20].sort().values
    assert torch.equal(index, expected)  # the split is the seeded permutation's first tenth
    assert torch.equal(b.extras["validation_index"], index)  # same seed, same rows, same fit
    assert b.history == a.history and b.extras["validation_history"] == a.extras["validation_history"]
    assert not torch.equal(c.extras["validation_index"], index)  # another seed, other rows
    assert len(a.extras["validation_history"]) == len(a.extras["validation_steps"])
    assert a.extras["validation_steps"][0] == 0  # the starting point is scored too


def test_classic_models_and_tiny_data_keep_every_row_by_default():
    x = gaussian_data(200)
    fit = ppgen.fit(Gaussian(1), x, method="mle", num_steps=30, progress=False)
    assert fit.n_train == 200 and "validation_history" not in fit.extras
    fit = ppgen.fit(_made(), _categorical(12), method="mle", num_steps=5, progress=False)
    assert fit.n_train == 12 and "validation_history" not in fit.extras  # < 20 rows: nothing to hold out
    # a classic model can still ask for it
    fit = ppgen.fit(Gaussian(1), x, method="mle", num_steps=30, validation=0.25, seed=0, progress=False)
    assert fit.n_train == 150 and fit.extras["validation_rows"] == 50


def test_validation_none_is_the_plain_full_data_loop(float64_default):
    # Reference: Adam over the same parameters on -mean log p(x) of every row (the loop before
    # validation existed); equal to 1e-12 step by step.
    x = _categorical(120)
    made = _made(dropout=0.0)
    fit = ppgen.fit(made, x, method="mle", num_steps=40, lr=0.01, validation=None, seed=0, progress=False)
    reference = copy.deepcopy(made)
    optimiser = torch.optim.Adam(reference.parameters(), lr=0.01)
    history = []
    for _ in range(40):
        optimiser.zero_grad()
        loss = -reference.log_prob(x).sum() / x.shape[0]
        loss.backward()
        optimiser.step()
        history.append(float(loss.detach()))
    assert fit.n_train == 120 and "validation_history" not in fit.extras
    assert_close(torch.tensor(fit.history), torch.tensor(history), atol=1e-12)
    for got, want in zip(fit.model.parameters(), reference.parameters()):
        assert_close(got, want, atol=1e-12)


def test_best_parameters_are_restored():
    # Reference: -mean log p of the held-out rows under the returned model; it must equal the
    # best (smallest) validation loss the fit recorded, at its recorded step (1e-9, float64).
    x = _categorical(100)
    fit = ppgen.fit(
        _made(hidden=(64,)),
        x,
        method="mle",
        num_steps=400,
        lr=0.03,
        check_every=10,
        patience=4,
        seed=0,
        progress=False,
    )
    held = x[fit.extras["validation_index"]]
    with torch.no_grad():
        restored = -float(fit.model.log_prob(held).mean())
    curve = fit.extras["validation_history"]
    assert_close(restored, fit.extras["best_validation_loss"], atol=1e-9)
    assert_close(restored, min(curve), atol=1e-9)
    best = curve.index(min(curve))
    assert fit.extras["validation_steps"][best] == fit.extras["best_step"]
    assert curve[-1] > min(curve)  # the run went past its best (noise data overfits)


def test_short_fit_on_an_overfitting_setup_stops_early():
    # 60 rows of uniform noise and a wide MADE: held-out loss rises after a few dozen steps, so the
    # run ends long before num_steps and restores a point near the start.
    x = _categorical(60, dim=8)
    fit = ppgen.fit(
        _made(dim=8, hidden=(256,), dropout=0.0),
        x,
        method="mle",
        num_steps=5000,
        lr=0.01,
        check_every=10,
        patience=5,
        seed=0,
        progress=False,
    )
    assert fit.converged and len(fit.history) < 1000
    assert fit.extras["best_step"] < len(fit.history)
    assert fit.history[-1] < fit.history[fit.extras["best_step"]]  # training kept improving; val did not


def test_given_validation_data_is_used_as_is():
    x, x_val = _categorical(150), _categorical(40, seed=1)
    fit = ppgen.fit(
        _made(), x, method="mle", num_steps=60, validation=x_val, check_every=10, seed=0, progress=False
    )
    assert fit.n_train == 150 and fit.extras["validation_rows"] == 40  # no training row held out
    assert "validation_index" not in fit.extras
    with torch.no_grad():
        assert_close(-float(fit.model.log_prob(x_val).mean()), fit.extras["best_validation_loss"], atol=1e-9)


def test_conditional_vae_holds_out_labels_with_their_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((80, 6), 0.4), generator=g)
    y = torch.randint(3, (80,), generator=g)
    model = ConditionalVAE(6, num_classes=3, latent_dim=2, hidden=(16,))
    fit = ppgen.fit(model, {"x": x, "y": y}, method="svi", num_steps=30, seed=0, progress=False)
    assert fit.n_train == 72 and fit.extras["validation_rows"] == 8
    given = {"x": x[:10], "y": y[:10]}
    fit = ppgen.fit(model, {"x": x, "y": y}, method="svi", num_steps=30, validation=given, progress=False)
    assert fit.n_train == 80 and fit.extras["validation_rows"] == 10
    with pytest.raises(DataError, match="covariates"):
        ppgen.fit(model, {"x": x, "y": y}, method="svi", num_steps=5, validation=x[:10], progress=False)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, math.nan, True, "0.1"])
def test_fraction_outside_the_unit_interval_is_an_option_error(value):
    with pytest.raises(OptionError, match="validation"):
        ppgen.fit(_made(), _categorical(50), method="mle", num_steps=5, validation=value, progress=False)


def test_bad_validation_data_is_a_data_error():
    x = _categorical(50)
    with pytest.raises(DataError, match=r"rows of shape \(6,\)"):
        ppgen.fit(_made(), x, method="mle", num_steps=5, validation=_categorical(10, dim=5), progress=False)
    bad = _categorical(10)
    bad[3, 2] = math.nan
    with pytest.raises(DataError, match="NaN"):
        ppgen.fit(_made(), x, method="mle", num_steps=5, validation=bad, progress=False)
    with pytest.raises(DataError, match="at least 2 rows"):
        ppgen.fit(_made(), x[:1], method="mle", num_steps=5, validation=0.5, progress=False)


def test_where_held_out_rows_mean_nothing_validation_is_refused():
    x = gaussian_data(100)
    prior = pyro.distributions.Normal(torch.zeros(1, dtype=torch.float64), 10.0).to_event(1)
    model = bayesian(Gaussian(1), loc=prior)
    with pytest.raises(OptionError, match="priors"):
        ppgen.fit(model, x, method="svi", num_steps=5, validation=0.1, progress=False)
    fit = ppgen.fit(model, x, method="svi", num_steps=5, progress=False)  # and never by default
    assert fit.n_train == 100
    with pytest.raises(OptionError, match="validation"):  # not an option of EM
        ppgen.fit(GaussianMixture(2, 1), x, method="em", validation=0.1)

    def program(x):
        loc = pyro.param("loc", torch.zeros(1, dtype=torch.float64))
        with pyro.plate("rows", x.shape[0]):
            pyro.sample("obs", pyro.distributions.Normal(loc, 1.0).to_event(1), obs=x)

    with pytest.raises(OptionError, match="program"):
        ppgen.fit(program, {"x": x}, method="mle", num_steps=5, validation=0.1, progress=False)


def test_vae_default_fit_records_both_curves():
    x = torch.bernoulli(torch.full((100, 8), 0.3), generator=torch.Generator().manual_seed(0))
    model = VAE(latent_dim=2, hidden=(16,))
    fit = ppgen.fit(
        model, x, method="svi", num_steps=100, check_every=25, patience=50, seed=0, progress=False
    )
    assert len(fit.history) == 100  # the training loss per step, as before
    assert fit.extras["validation_steps"] == [0, 25, 50, 75, 100]
    assert fit.extras["best_step"] in fit.extras["validation_steps"]


def test_fitted_made_with_default_dropout_is_exact_with_gradients_on():
    # Reference: the same call twice; dropout (default 0.3) must be off in the fitted model.
    x = _categorical(100)
    fit = ppgen.fit(_made(), x, method="mle", num_steps=20, seed=0, progress=False)
    assert fit.model.dropout == 0.3 and not fit.model.training
    assert torch.equal(fit.model.log_prob(x), fit.model.log_prob(x))
    again = ppgen.fit(fit.model, x, method="mle", num_steps=20, seed=0, progress=False)
    assert not again.model.training  # a refit trains (with dropout) and ends in eval mode again
