"""Programs of Pyro's tutorial notebooks (tests/programs/wild_tutorials.py), one cheap check per style or
bug found while fitting them all (the full comparison of every method with Pyro is
benchmarks/pyro_tutorials.py; the catalogue of every notebook is docs/wild/tutorials.md)."""

import pytest
import torch

import ppgen
from ppgen.errors import DataError, MethodError
from tests.programs import wild_tutorials as W

# The coin of mle_map / svi_part_i / svi_part_iii: 6 heads in 10 flips under Beta(10, 10).
MAP, MLE = 15 / 28, 0.6


def test_a_plate_without_a_size_takes_it_from_the_observations():
    # svi_part_iii writes pyro.plate("data_plate") with no size (PyTorch's -1, "any"): Pyro reads the
    # size from the observed values; ppgen's units must be the 10 flips, not -1 (was a raw RuntimeError
    # "negative dimension" from applicable_methods). Reference: the closed-form MAP (2e-3, L-BFGS polish).
    example = W.BernoulliBetaExample()
    data = {"use_decaying_avg_baseline": True}
    assert ppgen.applicable_methods(example.model, data) == ["mle", "svi", "map", "mcmc", "importance"]
    fit = ppgen.fit(example.model, data, method="map", num_steps=100, seed=0, progress=False)
    assert fit.model.structure["n_units"] == 10
    assert fit.params["latent_fairness"].item() == pytest.approx(MAP, abs=2e-3)
    expected = torch.distributions.Bernoulli(fit.params["latent_fairness"]).log_prob(example.data)
    assert torch.allclose(fit.log_prob(data).float(), expected.float(), atol=1e-5)  # scored per flip


def test_map_with_a_full_user_guide_is_the_map():
    # intro_long's custom_guide draws every latent; given with method='map' it raised Pyro's "Multiple
    # sample sites named 'latent_fairness'" (the AutoDelta and the guide both drew it). The MAP ignores
    # the guide's draws of the globals. Reference: the closed-form Beta MAP (2e-3).
    data = {"data": list(W.coin_data())}  # svi_part_i: a Python list of scalars, one obs_i site each
    fit = ppgen.fit(
        W.coin_loop_model, data, method="map", guide=W.coin_beta_guide, num_steps=100, seed=0, progress=False
    )
    assert fit.params["latent_fairness"].item() == pytest.approx(MAP, abs=2e-3)


def test_adversarial_refuses_a_program_whose_only_parameters_are_its_guides():
    # The rugged regression with custom_guide: the guide's pyro.params made the program look like a
    # generator with parameters, and the adversarial game died in autograd ("element 0 of tensors does
    # not require grad"). It is refused before any work, naming the methods that do work.
    with pytest.raises(MethodError, match="only its guide has parameters"):
        ppgen.fit(
            W.rugged_model,
            W.rugged_data(),
            method="adversarial",
            guide=W.rugged_custom_guide,
            steps=5,
            seed=0,
            progress=False,
        )


def test_pyro_param_only_programs_and_masked_priors_give_the_mle():
    # mle_map: model_mle (the fairness a constrained pyro.param, guide `pass`) offers mle and svi only;
    # masked_model (.mask(False) on the prior) and the Uniform prior have their MAP at the MLE 6/10.
    data = {"data": W.coin_data()}
    assert ppgen.applicable_methods(W.coin_model_mle, data) == ["mle", "svi"]
    fit = ppgen.fit(W.coin_model_mle, data, method="mle", num_steps=100, seed=0, progress=False)
    assert fit.params["latent_fairness"].item() == pytest.approx(MLE, abs=2e-3)
    with pytest.raises(MethodError, match="priors"):
        ppgen.fit(W.coin_model_mle, data, method="map")
    fit = ppgen.fit(W.coin_masked_model, data, method="map", num_steps=100, seed=0, progress=False)
    assert fit.params["latent_fairness"].item() == pytest.approx(MLE, abs=2e-3)


def test_a_program_conditioned_by_pyro_condition_fits_as_the_normal_normal_model():
    # intro_part_ii: pyro.condition(scale, data={"measurement": 9.5}) with a float guess. Closed forms:
    # MAP = posterior mean (0.75² · 8.5 + 9.5) / (1 + 0.75²) = 9.14, MLE = 9.5 (2e-3, L-BFGS polish).
    fit = ppgen.fit(W.conditioned_scale, {"guess": 8.5}, method="map", num_steps=100, seed=0, progress=False)
    assert fit.params["weight"].item() == pytest.approx((0.75**2 * 8.5 + 9.5) / (1 + 0.75**2), abs=2e-3)
    fit = ppgen.fit(W.conditioned_scale, {"guess": 8.5}, method="mle", num_steps=100, seed=0, progress=False)
    assert fit.params["weight"].item() == pytest.approx(9.5, abs=2e-3)


def test_data_of_shape_n_by_1_under_a_plate_of_n_is_refused_naming_the_site():
    # boosting_bbvi draws its data as Normal(tensor([4.]), ...).sample((100,)): shape (100, 1) under
    # plate("data", 100) with a shape-(1,) location. Pyro broadcasts the log-density to (100, 100), each
    # point counted 100 times; ppgen refuses before any work, naming site 'x' and the shape it expects.
    data = {"data": W.boosting_data(n=6)}
    with pytest.raises(DataError, match=r"site 'x' of shape \(6,\)"):
        ppgen.applicable_methods(W.boosting_model, data)


def test_the_rugged_regression_predicts_at_new_nations():
    # intro_long's Predictive(model, guide=auto_guide)(is_cont_africa, ruggedness, log_gdp=None), at two
    # new nations from the MAP: the plug-in predictive is Normal(mean(x_new), sigma), so 4000 draws have
    # their mean within 4 sigma/sqrt(4000) of it.
    data = W.rugged_data()
    fit = ppgen.fit(W.rugged_model, data, method="map", num_steps=200, seed=0, progress=False)
    new = {"is_cont_africa": torch.tensor([0.0, 1.0]), "ruggedness": torch.tensor([1.0, 5.0])}
    draws = fit.predict(new, num_samples=4000)["obs"]
    assert draws.shape == (4000, 2)
    p, africa, rugged = fit.params, new["is_cont_africa"], new["ruggedness"]
    expected = p["a"] + p["bA"] * africa + p["bR"] * rugged + p["bAR"] * africa * rugged
    assert torch.allclose(draws.mean(0).float(), expected.float(), atol=4 * float(p["sigma"]) / 4000**0.5)


def test_an_observed_site_without_a_sampler_is_refused_by_adversarial_not_crashed():
    # ekf's EKFDistribution raises NotImplementedError when drawn: applicable_methods raised it raw (the
    # adversarial check draws the observed site). Now adversarial is refused with the reason, and the
    # density methods stay listed.
    ncv, x0, zs = W.ekf_setup()
    model = W.make_ekf_model(ncv, x0, len(zs))
    assert ppgen.applicable_methods(model, {"data": zs}) == ["mle", "svi", "map", "mcmc", "importance"]
    with pytest.raises(MethodError, match="NotImplementedError"):
        ppgen.fit(model, {"data": zs}, method="adversarial", steps=5)


def test_a_program_that_caches_a_tensor_built_from_parameters_fits_by_gradients():
    # ekf's NcvContinuous caches its process noise, built from its parameter at the first run; every
    # later step's backward reached the graph autograd had freed (Pyro's notebook passes
    # Trace_ELBO(retain_graph=True); map/svi/mle were refused at step 2). The graph is retained now.
    # Reference: scipy's Nelder-Mead on Pyro's own log joint over the log scales (the constrained-space
    # mode, which AutoDelta and ppgen's map both find; Pyro's AutoDelta with retain_graph, 3000 steps,
    # agrees to 5 digits). Tolerance 5e-3 relative: the float32 log joint (-17.86715) cannot tell apart
    # points 1.5e-3 apart in measurement_cov (measured: both ppgen's 300-step point and the reference
    # give the same float32 value), while a fit that failed would be off by orders of magnitude.
    scipy_optimize = pytest.importorskip("scipy.optimize")
    from pyro import poutine

    ncv, x0, zs = W.ekf_setup()
    model = W.make_ekf_model(ncv, x0, len(zs))

    def negative_log_joint(log_scales):
        pv_cov, measurement_cov = torch.tensor(log_scales, dtype=torch.float32).exp()
        trace = poutine.trace(
            poutine.condition(model, {"pv_cov": pv_cov, "measurement_cov": measurement_cov})
        )
        return -float(trace.get_trace(zs).log_prob_sum().detach())  # detached: the cached noise has a graph

    reference = scipy_optimize.minimize(
        negative_log_joint, [-14.0, -15.0], method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-9}
    ).x
    fit = ppgen.fit(model, {"data": zs}, method="map", num_steps=300, seed=0, progress=False)
    for site, log_value in zip(["pv_cov", "measurement_cov"], reference):
        assert float(fit.params[site]) == pytest.approx(float(torch.tensor(log_value).exp()), rel=5e-3)


def test_a_scalar_tensor_argument_is_a_number_not_rows():
    # csis's model(prior_mean, observations={"x1": ..., "x2": ...}) with prior_mean=torch.tensor(1.):
    # a 0-d argument was refused ("one row per example ... wrap it as [value]"). Closed forms of the
    # normal-normal posterior: MAP = mean = 7.25, MLE = (8 + 9) / 2 (2e-3, L-BFGS polish).
    observations = {"x1": torch.tensor(8.0), "x2": torch.tensor(9.0)}
    data = {"prior_mean": torch.tensor(1.0), "observations": observations}
    assert ppgen.applicable_methods(W.csis_model, data) == ["mle", "svi", "map", "mcmc", "importance"]
    fit = ppgen.fit(W.csis_model, data, method="map", num_steps=100, seed=0, progress=False)
    assert fit.params["z"].item() == pytest.approx(7.25, abs=2e-3)
    with pytest.raises(DataError, match="'prior_mean' to be finite"):
        ppgen.fit(W.csis_model, {**data, "prior_mean": torch.tensor(float("nan"))}, method="map")
