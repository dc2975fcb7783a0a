"""Fuzzing the public API with malformed inputs: ``ppgen.fit`` of every cheap (and, slow, every deep)
model by every method, models sized by the data, unknown options and seeds, queries of a fit,
``as_tensor``/``ppgen.data``, corrupt fit files and bad priors.

Every input must end in a :class:`PpgenError` or a correct result (finite parameters, no NaN
log-density on the training data) — the contract and the runner are in ``tests/fuzzing.py``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.app import registry
from ppgen.data import as_tensor
from ppgen.models import (
    MADE,
    VAE,
    BernoulliMixture,
    FactorAnalysis,
    Flow,
    Gaussian,
    GaussianMixture,
    NormalInverseWishart,
    NormalKnownScale,
)
from tests.fuzzing import BAD_DATA, GOOD2, SUMMARY, G, corrupt_files, fit_gaussian, is_valid, run_case

TINY = {
    "exact": {},
    "em": {"max_iter": 3, "progress": False},
    "mle": {"num_steps": 2, "progress": False},
    "svi": {"num_steps": 2, "progress": False},
    "map": {"num_steps": 2, "progress": False},
    "importance": {"num_samples": 4, "progress": False},
    "adversarial": {"steps": 1, "batch_size": 8, "progress": False},
}

#: (registry name, data the model is sized with) — every cheap model; deep ones are slow.
#: The integer data continue the seeded stream ``G`` that GOOD2 and BAD_DATA were drawn from.
CHEAP = {
    "gaussian": GOOD2,
    "kde": GOOD2,
    "empirical": GOOD2,
    "gmm": GOOD2,
    "bmm": (GOOD2 > 0).double(),
    "fa": GOOD2,
    "ppca": GOOD2,
    "normal_known_scale": GOOD2[:, :1],
    "normal_inverse_gamma": GOOD2[:, :1],
    "normal_inverse_wishart": GOOD2,
    "beta_bernoulli": (GOOD2 > 0).double(),
    "dirichlet_categorical": torch.randint(0, 3, (30,), generator=G).double(),
    "gamma_poisson": torch.poisson(torch.full((30, 1), 2.0), generator=G).double(),
}
DEEP = {"made": (GOOD2 > 0).double(), "flow": GOOD2, "vae": (GOOD2 > 0).double()}


def _fit_cases(models):
    for name, good in models.items():
        model, _ = registry.build(name, good, {})
        usable = [m for m in ppgen.applicable_methods(model) if m in TINY]
        for method in usable:
            for label, data in BAD_DATA.items():
                yield f"{name}/{method}/{label}", model, method, data


def _fuzz_fit(models, test):
    failures = []
    for label, model, method, data in _fit_cases(models):
        failures.append(
            run_case(
                test,
                label,
                lambda m=model, d=data, k=method: ppgen.fit(m, d, method=k, seed=0, **TINY[k]),
                is_valid,
            )
        )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    return [f for f in failures if f]


def test_fuzz_fit_every_cheap_model_and_method():
    failures = _fuzz_fit(CHEAP, "fit")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_fuzz_fit_deep_models():
    failures = _fuzz_fit(DEEP, "fit-deep")
    assert not failures, "\n".join(failures)


def _lazy_models():
    """Models built without the size the data determines (issue 18): fit sizes them from the data."""
    return {
        "lazy-gaussian": Gaussian(),
        "lazy-gmm": GaussianMixture(2),
        "lazy-bmm": BernoulliMixture(2),
        "lazy-fa": FactorAnalysis(1),
        "lazy-made": MADE(hidden=(4,)),
        "lazy-flow": Flow(num_layers=1, hidden=(4,)),
        "lazy-vae": VAE(latent_dim=1, hidden=(4,)),
    }


def test_fuzz_fit_models_sized_by_the_data():
    test, failures = "fit-lazy", []
    for name, model in _lazy_models().items():
        for method in [m for m in ppgen.applicable_methods(model) if m in TINY]:
            for label, data in BAD_DATA.items():
                failures.append(
                    run_case(
                        test,
                        f"{name}/{method}/{label}",
                        lambda m=model, d=data, k=method: ppgen.fit(m, d, method=k, seed=0, **TINY[k]),
                        is_valid,
                    )
                )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    failures = [f for f in failures if f]
    assert not failures, "\n".join(failures)


def test_fuzz_unknown_methods_options_and_seeds():
    test, failures = "fit-options", []
    cases = {
        "method-unknown": dict(method="bogus"),
        "method-none": dict(method=None),
        "method-int": dict(method=3),
        "option-unknown": dict(method="mle", bogus=1),
        "num_steps-0": dict(method="mle", num_steps=0),
        "num_steps-str": dict(method="mle", num_steps="10"),
        "num_steps-float": dict(method="mle", num_steps=2.5),
        "lr-negative": dict(method="mle", lr=-1.0, num_steps=2),
        "lr-nan": dict(method="mle", lr=math.nan, num_steps=2),
        "lr-huge": dict(method="mle", lr=1e300, num_steps=3, progress=False),
        "batch-0": dict(method="mle", batch_size=0),
        "batch-str": dict(method="mle", batch_size="x"),
        "optimizer-unknown": dict(method="mle", optimizer="rmsprop"),
        "guide-unknown": dict(method="svi", guide="lapalce"),
        "guide-laplace-without-latents": dict(method="svi", guide="laplace"),
        "loss-unknown": dict(method="svi", loss="tv"),
        "seed-str": dict(method="exact", seed="0"),
        "seed-float": dict(method="exact", seed=1.5),
        "seed-bool": dict(method="exact", seed=True),
        "device-bogus": dict(method="mle", device="tpu"),
        "device-exact-cuda": dict(method="exact", device="cuda"),
        "dtype-int": dict(method="exact", dtype=torch.int64),
        "em-max_iter-0": dict(method="em", max_iter=0),
        "em-tol-negative": dict(method="em", tol=-1.0),
        "mcmc-num_chains-0": dict(method="mcmc", num_chains=0),
        "mcmc-kernel": dict(method="mcmc", kernel="gibbs"),
        "adversarial-loss": dict(method="adversarial", loss="bogus"),
        "adversarial-steps-0": dict(method="adversarial", steps=0),
        "checkpoint-every-0": dict(method="mle", checkpoint="x.ckpt", checkpoint_every=0),
        "resume-missing": dict(method="mle", resume="/nonexistent/x.ckpt"),
        "mcmc-checkpoint-int": dict(method="mcmc", checkpoint=3),
        "mcmc-checkpoint_every-0": dict(method="mcmc", checkpoint="x.ckpt", checkpoint_every=0),
        "mcmc-resume-missing": dict(
            method="mcmc", resume="/nonexistent/x.ckpt", num_samples=5, warmup_steps=5
        ),
        "adversarial-checkpoint-int": dict(method="adversarial", checkpoint=3.5),
        "adversarial-checkpoint_every-str": dict(
            method="adversarial", checkpoint="x.ckpt", checkpoint_every="9"
        ),
        "adversarial-resume-missing": dict(method="adversarial", resume="/nonexistent/x.ckpt", steps=2),
        "svi-init-without-autoguide": dict(method="svi", init={"loc": torch.zeros(2)}, num_steps=2),
        "mcmc-init": dict(method="mcmc", init={"loc": 0.0}),
        "mcmc-num_samples-0": dict(method="mcmc", num_samples=0),
        "mcmc-num_samples-str": dict(method="mcmc", num_samples="10"),
        "mcmc-num_samples-float": dict(method="mcmc", num_samples=2.5),
        "mcmc-warmup-negative": dict(method="mcmc", warmup_steps=-1),
        "mcmc-target_accept-1": dict(method="mcmc", target_accept_prob=1.0),
        "mcmc-step_size-0": dict(method="mcmc", kernel="hmc", step_size=0.0),
    }
    for label, kwargs in cases.items():
        kwargs = dict(kwargs)
        method = kwargs.get("method")
        model = {"em": GaussianMixture(n_components=2, dim=2), "mcmc": NormalKnownScale()}.get(
            method, Gaussian(dim=2)
        )
        data = GOOD2[:, :1] if method == "mcmc" else GOOD2
        failures.append(
            run_case(test, label, lambda m=model, d=data, k=kwargs: ppgen.fit(m, d, **k), is_valid)
        )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


@pytest.fixture(scope="module")
def gaussian_fit():
    return fit_gaussian()


@pytest.fixture(scope="module")
def bayes_fit():
    return ppgen.fit(NormalInverseWishart(dim=2), GOOD2, method="exact", seed=0)


def test_fuzz_fit_queries(gaussian_fit, bayes_fit):
    test, failures = "fit-queries", []
    for fit_name, fit in (("point", gaussian_fit), ("bayes", bayes_fit)):
        for label, data in BAD_DATA.items():
            finite_ok = label in (
                "huge-1e300",
                "tiny-1e-300",
                "constant",
                "one-row",
                "non-binary",
                "non-integer",
            )
            finite_ok = finite_ok or label in ("negative", "bool")  # well-defined densities of valid rows

            def check(lp, data=data, finite_ok=finite_ok, label=label):
                if label == "empty":  # the density of no rows is an empty vector (score must refuse)
                    return isinstance(lp, torch.Tensor) and lp.shape == (0,)
                return (
                    isinstance(lp, torch.Tensor) and lp.ndim == 1 and not torch.isnan(lp).any() and finite_ok
                )

            for query in ("log_prob", "score"):
                call = (
                    (lambda f=fit, d=data: f.log_prob(d))
                    if query == "log_prob"
                    else (lambda f=fit, d=data: f.score(d))
                )
                chk = (
                    check
                    if query == "log_prob"
                    else (lambda s, f=finite_ok: isinstance(s, float) and not math.isnan(s) and f)
                )
                failures.append(run_case(test, f"{fit_name}/{query}/{label}", call, chk))
        for n in (0, -3, 1.5, "4", None, True, math.nan, [3]):
            failures.append(
                run_case(test, f"{fit_name}/sample/{n!r}", lambda f=fit, n=n: f.sample(n), lambda s: False)
            )
        for seed in ("x", 1.5):
            failures.append(
                run_case(
                    test,
                    f"{fit_name}/sample-seed/{seed!r}",
                    lambda f=fit, s=seed: f.sample(3, seed=s),
                    lambda s: False,
                )
            )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_fuzz_as_tensor_and_load():
    test, failures = "data", []
    for label, data in BAD_DATA.items():

        def ok(t, label=label):
            return (
                isinstance(t, torch.Tensor)
                and t.ndim in (1, 2)
                and bool(torch.isfinite(t).all())
                and t.numel() > 0
            )

        failures.append(run_case(test, f"as_tensor/{label}", lambda d=data: as_tensor(d), ok))
    for name, split, kwargs in [
        ("nope", "all", {}),
        ("", "all", {}),
        (None, "all", {}),
        (3, "all", {}),
        ("faithful", "validation", {}),
        ("faithful", None, {}),
        ("faithful", "train", {"test_fraction": 0.0}),
        ("faithful", "train", {"test_fraction": 1.0}),
        ("faithful", "train", {"test_fraction": -0.5}),
        ("faithful", "train", {"test_fraction": "half"}),
        ("faithful", "train", {"seed": "x"}),
        ("faithful", "train", {"dtype": torch.int64}),
        ("../../etc/passwd", "all", {}),
    ]:
        failures.append(
            run_case(
                test,
                f"load/{name!r}/{split!r}/{kwargs}",
                lambda a=name, b=split, k=kwargs: ppgen.data.load(a, b, **k),
                lambda t: False,
            )
        )
    for name, n in [
        ("moons", 0),
        ("moons", -5),
        ("moons", 2.5),
        ("moons", "10"),
        ("faithful", 10),
        ("nope", 10),
    ]:
        failures.append(
            run_case(
                test, f"generate/{name}/{n!r}", lambda a=name, b=n: ppgen.data.generate(a, b), lambda t: False
            )
        )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_fuzz_load_corrupt_files(tmp_path, gaussian_fit):
    test, failures = "ppgen.load", []
    for label, path in corrupt_files(tmp_path, gaussian_fit).items():
        failures.append(run_case(test, label, lambda p=path: ppgen.load(p), lambda f: False))
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)
    assert SUMMARY[test]["PpgenError"] == sum(SUMMARY[test].values())


def test_fuzz_bayesian_bad_priors():
    test, failures = "bayesian", []
    f64 = dict(dtype=torch.float64)
    cases = {
        "not-a-distribution": lambda: ppgen.bayesian(Gaussian(dim=2), loc=3.0),
        "string-prior": lambda: ppgen.bayesian(Gaussian(dim=2), loc="normal"),
        "none-prior": lambda: ppgen.bayesian(Gaussian(dim=2), loc=None),
        "unknown-name": lambda: ppgen.bayesian(Gaussian(dim=2), foo=dist.Normal(0.0, 1.0)),
        "no-priors": lambda: ppgen.bayesian(Gaussian(dim=2)),
        "wrong-shape": lambda: ppgen.bayesian(
            Gaussian(dim=2), loc=dist.Normal(torch.zeros(5, **f64), 1.0).to_event(1)
        ),
        "scalar-for-vector": lambda: ppgen.bayesian(Gaussian(dim=2), loc=dist.Normal(0.0, 1.0)),
        "not-a-model": lambda: ppgen.bayesian("gaussian", loc=dist.Normal(0.0, 1.0)),
        "model-class": lambda: ppgen.bayesian(Gaussian, loc=dist.Normal(0.0, 1.0)),
        "conjugate-negative-scale": lambda: NormalKnownScale(scale=-1.0),
        "conjugate-nan-prior": lambda: NormalKnownScale(prior_scale=math.nan),
    }
    for label, call in cases.items():
        failures.append(run_case(test, label, call, lambda m: False))
    # a prior with the wrong support for a positive parameter: must be refused or fit cleanly
    wrong_support = lambda: ppgen.fit(  # noqa: E731
        ppgen.bayesian(
            Gaussian(dim=2, covariance="diag").double(),
            loc=dist.Cauchy(torch.zeros(2, **f64), 1e30).to_event(1),
        ),
        GOOD2,
        method="map",
        num_steps=3,
        progress=False,
    )
    failures.append(run_case(test, "extreme-prior-map", wrong_support, is_valid))
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)
