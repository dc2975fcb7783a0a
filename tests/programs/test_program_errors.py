"""Bad programs and bad arguments: a named ``PpgenError`` before any work, never a raw traceback.

"Before any work" is checked by replacing the training loop and Pyro's MCMC kernel with functions
that fail the test when called: every error below must come from the checks that run first.
"""

import math
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
import ppgen.inference.mcmc
import ppgen.inference.svi
from ppgen.errors import DataError, MethodError, OptionError, PpgenError
from tests import pyro_programs as programs
from tests.programs.test_program import _players

# torch's Wishart sampler warns on near-singular draws of the untransformable-latent case below
pytestmark = pytest.mark.filterwarnings("ignore:Singular sample detected")


@pytest.fixture
def no_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("training started before the program was checked")

    monkeypatch.setattr(ppgen.inference.svi, "train", fail)
    monkeypatch.setattr(ppgen.inference.mcmc, "NUTS", fail)


def observes_nothing(at_bats, hits):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("players", at_bats.shape[0]):
        pyro.sample("alpha", dist.Normal(loc, 1.0))


def three_wide(at_bats, hits):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    pyro.sample("obs", dist.Normal(loc, 1.0).expand([3]).to_event(1), obs=hits)


def wishart_scale(x):
    cov = pyro.sample("cov", dist.Wishart(torch.tensor(3.0), torch.eye(2)))
    pyro.sample("obs", dist.MultivariateNormal(torch.zeros(2), cov).expand([x.shape[0]]).to_event(1), obs=x)


def discrete_global(x):
    k = pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
    with pyro.plate("rows", x.shape[0]):
        pyro.sample("obs", dist.Normal(k.float(), 1.0), obs=x)


def raises_inside(x):
    raise ValueError("boom in user code")


def loc_only_guide(at_bats, hits):
    pyro.sample("loc", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))


def sized_by_an_int(at_bats, hits, players):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("players", players):
        pyro.sample("obs", dist.Binomial(at_bats, logits=loc), obs=hits)


DATA = _players(dtype=torch.float32)
CASES = {
    "observes nothing": (observes_nothing, DATA, {"method": "mcmc"}, DataError, "observes data.*'alpha'"),
    "observed value of the wrong shape": (three_wide, DATA, {"method": "svi"}, DataError, "'obs' of shape"),
    "untransformable latent, mcmc": (
        wishart_scale,
        torch.randn(20, 2),
        {"method": "mcmc"},
        MethodError,
        "'cov'",
    ),
    "untransformable latent, svi": (
        wishart_scale,
        torch.randn(20, 2),
        {"method": "svi"},
        MethodError,
        "'cov'",
    ),
    "discrete latent not enumerated": (
        discrete_global,
        torch.randn(20),
        {"method": "mcmc"},
        MethodError,
        "'k'.*enum",
    ),
    "user code raises": (raises_inside, torch.randn(20), {"method": "svi"}, DataError, "ValueError: boom"),
    "guide misses a latent": (
        programs.logit_pooling,
        DATA,
        {"method": "svi", "guide": loc_only_guide},
        MethodError,
        r"misses \['alpha', 'scale'\]",
    ),
    "missing argument": (
        programs.logit_pooling,
        {"at_bats": DATA["at_bats"]},
        {"method": "mcmc"},
        DataError,
        r"logit_pooling\(at_bats, hits\).*'hits'",
    ),
    "unknown argument": (
        programs.logit_pooling,
        {**DATA, "team": 1},
        {"method": "mcmc"},
        DataError,
        "'team'",
    ),
    "minibatch of an int-sized plate": (
        sized_by_an_int,
        {**DATA, "players": 18},
        {"method": "svi", "batch_size": 6},
        OptionError,
        "'players'.*batch_size=6",
    ),
    "adversarial without a reparameterised site": (
        programs.logit_pooling,
        DATA,
        {"method": "adversarial"},
        MethodError,
        "'obs'.*Binomial",
    ),
    "observed= names no site": (
        programs.schools,
        {"sigma": torch.ones(8)},
        {"method": "mcmc", "observed": {"scores": torch.ones(8)}},
        DataError,
        "'scores'",
    ),
    "NaN in an argument": (
        programs.logit_pooling,
        {**DATA, "hits": torch.cat([torch.tensor([float("nan")]), DATA["hits"][1:]])},
        {"method": "mcmc"},
        DataError,
        "finite 'hits'",
    ),
    "empty argument": (
        programs.logit_pooling,
        {"at_bats": torch.ones(0), "hits": torch.ones(0)},
        {"method": "svi"},
        DataError,
        "at least one row of 'at_bats'",
    ),
    "unknown method": (programs.logit_pooling, DATA, {"method": "nuts"}, OptionError, "'nuts'"),
    "empirical Bayes on minibatches": (
        programs.logit_pooling,
        DATA,
        {"method": "mle", "batch_size": 6},
        OptionError,
        r"full batches.*\['alpha'\]",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_programs_fail_before_any_work_naming_the_site_and_the_fix(case, no_work):
    program, data, options, error, message = CASES[case]
    with pytest.raises(error, match=message):
        ppgen.fit(program, data, seed=0, **options)


def test_a_program_without_plate_is_one_unit_and_refuses_loo_clearly():
    # Reference: one unit, so the pointwise log-likelihood has one column; az.loo on it would be a
    # silent nonsense (a single Pareto k), so ppgen.compare names why the column is missing.
    def pooled(hits, at_bats):
        p = pyro.sample("p", dist.Beta(1.0, 1.0))
        pyro.sample("obs", dist.Binomial(at_bats, p).to_event(1), obs=hits)

    fit = ppgen.fit(pooled, DATA, method="mcmc", num_samples=50, warmup_steps=50, seed=0, progress=False)
    assert fit.posterior.log_likelihood["obs"].shape[-1] == 1
    with pytest.raises(PpgenError, match="one unit"):
        fit.loo()
    assert math.isfinite(fit.score(DATA))


def _corrupt(value):
    """Bad versions of one argument: NaN, inf, empty, a wrong dimension, text, None."""
    if not isinstance(value, torch.Tensor):
        return {"text": "many", "none": None}
    return {
        "nan": value.clone().fill_(float("nan")),
        "inf": value.clone().fill_(float("inf")),
        "empty": value[:0],
        "3-d": value.reshape(-1, 1, 1).expand(-1, 2, 2),
        "short": value[:-1],
        "text": "many",
        "none": None,
    }


FUZZ_PROGRAMS = {
    "baseball": (programs.logit_pooling, _players(dtype=torch.float32), {}),
    "schools": (programs.schools, {"sigma": torch.rand(8) + 5}, {"observed": {"obs": torch.randn(8)}}),
    "story": (programs.gaussian_story, {"x": torch.randn(20)}, {}),
    "normal mean": (programs.normal_mean, {"x": torch.randn(20), "scale": 1.0}, {}),
}
TINY = {
    "mle": {"num_steps": 2, "progress": False},
    "svi": {"num_steps": 2, "progress": False},
    "map": {"num_steps": 2, "progress": False},
    "mcmc": {"num_samples": 3, "warmup_steps": 3, "progress": False},
}


def _fuzz_cases():
    for name, (program, good, extra) in FUZZ_PROGRAMS.items():
        for method in ppgen.applicable_methods(program, good, observed=extra.get("observed")):
            if method not in TINY:
                continue
            for argument, value in good.items():
                for label, bad in _corrupt(value).items():
                    yield (
                        f"{name}/{method}/{argument}={label}",
                        program,
                        {**good, argument: bad},
                        method,
                        extra,
                    )


def test_fuzz_programs_with_corrupted_arguments_end_in_a_ppgen_error_or_a_valid_fit():
    # Reference: the fuzz contract of tests/test_fuzz.py, for programs. Every corrupted argument ends in a
    # PpgenError or a fit whose parameters are finite and whose training-data score is not NaN.
    failures, outcomes = [], {"PpgenError": 0, "ok": 0}
    for label, program, data, method, extra in _fuzz_cases():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = ppgen.fit(program, data, method=method, seed=0, **extra, **TINY[method])
                score = fit.score(data, **({"observed": extra["observed"]} if "observed" in extra else {}))
        except PpgenError:
            outcomes["PpgenError"] += 1
            continue
        except Exception as err:  # noqa: BLE001 - classifying every other exception is the point
            failures.append(
                f"{label}: {type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else ''}"
            )
            continue
        params_finite = all(torch.isfinite(v).all() for v in fit.params.values() if torch.is_tensor(v))
        if not params_finite or math.isnan(score):
            failures.append(f"{label}: returned an invalid fit")
        else:
            outcomes["ok"] += 1
    print(f"\nfit-programs: {sum(outcomes.values()) + len(failures)} inputs -> {outcomes}")
    assert sum(outcomes.values()) > 60
    assert not failures, "\n".join(failures)
