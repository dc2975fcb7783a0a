"""Fuzzing the public API and the CLI with malformed inputs.

Every input must end in a :class:`PpgenError` or a correct result (finite parameters, no NaN
log-density on the training data) — never another exception type, a hang or a silently wrong
answer. CLI inputs must end in a clean error: non-zero exit, one line on stderr, no
"Traceback" and no "unexpected" (the CLI's wrapper for a non-ppgen exception).

Each test counts its inputs and outcomes in ``SUMMARY`` (printed with ``pytest -s``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen import cli, registry
from ppgen.data import as_tensor
from ppgen.errors import ConvergenceWarning, PpgenError

SUMMARY: dict[str, Counter] = {}

#: Real bugs found by fuzzing, reported to the owners; (case label prefix) -> reason.
KNOWN_BUGS: dict[str, str] = {}  # all three bugs fuzzing found are fixed; new ones go here

G = torch.Generator().manual_seed(0)
GOOD2 = torch.randn(30, 2, generator=G, dtype=torch.float64)


def _nan(x):
    x = x.clone()
    x[3, 0] = math.nan
    return x


def _inf(x):
    x = x.clone()
    x[5, 1] = math.inf
    return x


BAD_DATA = {
    "rank3": torch.randn(4, 3, 2, dtype=torch.float64),
    "rank0": torch.tensor(1.0, dtype=torch.float64),
    "empty": torch.zeros(0, 2, dtype=torch.float64),
    "one-row": GOOD2[:1],
    "nan": _nan(GOOD2),
    "inf": _inf(GOOD2),
    "huge-1e300": GOOD2 * 1e300,
    "tiny-1e-300": GOOD2 * 1e-300,
    "constant": torch.ones(30, 2, dtype=torch.float64),
    "string": "not-a-dataset",
    "list-of-strings": [["a", "b"], ["c", "d"]],
    "ragged": [[1.0, 2.0], [3.0]],
    "complex": torch.randn(10, 2, dtype=torch.complex64),
    "bool": torch.ones(10, 2, dtype=torch.bool),
    "object": object(),
    "none": None,
    "dict-without-x": {"y": GOOD2},
    "numpy-object": np.array([[1, "a"], [2, "b"]], dtype=object),
    "dataframe-strings": pd.DataFrame({"a": ["x", "y", "z"], "b": [1.0, 2.0, 3.0]}),
    "wrong-dim-3": torch.randn(30, 3, dtype=torch.float64),
    "wrong-dim-1": torch.randn(30, 1, dtype=torch.float64),
    "non-binary": torch.rand(30, 2, generator=G, dtype=torch.float64) * 2,
    "non-integer": torch.rand(30, 1, generator=G, dtype=torch.float64) * 2.5,
    "negative": -torch.rand(30, 1, generator=G, dtype=torch.float64),
    "codes-column": torch.randint(0, 3, (30, 1), generator=G).double(),
}

TINY = {
    "exact": {},
    "em": {"max_iter": 3, "progress": False},
    "mle": {"num_steps": 2, "progress": False},
    "svi": {"num_steps": 2, "progress": False},
    "map": {"num_steps": 2, "progress": False},
    "adversarial": {"steps": 1, "batch_size": 8, "progress": False},
}

#: (registry name, data the model is sized with) — every cheap model; deep ones are slow.
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


def _record(test: str, outcome: str) -> None:
    SUMMARY.setdefault(test, Counter())[outcome] += 1


def _valid(fit) -> bool:
    """A fit that did not raise must be a usable answer: finite parameters, no NaN density."""
    for value in fit.params.values():
        if (
            isinstance(value, torch.Tensor)
            and torch.is_floating_point(value)
            and not torch.isfinite(value).all()
        ):
            return False
    model = fit.model
    if fit.data is not None and ("log_prob" in model.capabilities or fit.is_bayesian) and fit.data.numel():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lp = fit.log_prob(fit.data)
        if torch.isnan(lp).any():
            return False
    return True


def _run(test, label, call, check=None):
    """Run one fuzz case; return None when it ended well, else a description of the failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # Pyro warns before the loop's guard raises NonFiniteLossError: not a failure
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            result = call()
    except PpgenError:
        _record(test, "PpgenError")
        return None
    except Exception as err:  # noqa: BLE001 - classifying every other exception is the point
        if any(label.startswith(key) for key in KNOWN_BUGS):
            _record(test, "known bug")
            return None
        _record(test, "CRASH")
        return f"{label}: {type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else ''}"
    if check is not None and not check(result):
        _record(test, "WRONG")
        return f"{label}: returned an invalid result"
    _record(test, "ok")
    return None


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
            _run(
                test,
                label,
                lambda m=model, d=data, k=method: ppgen.fit(m, d, method=k, seed=0, **TINY[k]),
                _valid,
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
    from ppgen.models import MADE, VAE, BernoulliMixture, FactorAnalysis, Flow, Gaussian, GaussianMixture

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
                    _run(
                        test,
                        f"{name}/{method}/{label}",
                        lambda m=model, d=data, k=method: ppgen.fit(m, d, method=k, seed=0, **TINY[k]),
                        _valid,
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
    from ppgen.models import Gaussian, NormalKnownScale
    from ppgen.models.mixture import GaussianMixture

    for label, kwargs in cases.items():
        kwargs = dict(kwargs)
        method = kwargs.get("method")
        model = {"em": GaussianMixture(n_components=2, dim=2), "mcmc": NormalKnownScale()}.get(
            method, Gaussian(dim=2)
        )
        data = GOOD2[:, :1] if method == "mcmc" else GOOD2
        failures.append(_run(test, label, lambda m=model, d=data, k=kwargs: ppgen.fit(m, d, **k), _valid))
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


@pytest.fixture(scope="module")
def gaussian_fit():
    from ppgen.models import Gaussian

    return ppgen.fit(Gaussian(dim=2), GOOD2, method="exact")


@pytest.fixture(scope="module")
def bayes_fit():
    from ppgen.models import NormalInverseWishart

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
                failures.append(_run(test, f"{fit_name}/{query}/{label}", call, chk))
        for n in (0, -3, 1.5, "4", None, True, math.nan, [3]):
            failures.append(
                _run(test, f"{fit_name}/sample/{n!r}", lambda f=fit, n=n: f.sample(n), lambda s: False)
            )
        for seed in ("x", 1.5):
            failures.append(
                _run(
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

        failures.append(_run(test, f"as_tensor/{label}", lambda d=data: as_tensor(d), ok))
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
            _run(
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
            _run(
                test, f"generate/{name}/{n!r}", lambda a=name, b=n: ppgen.data.generate(a, b), lambda t: False
            )
        )
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def _corrupt_files(tmp_path, gaussian_fit):
    good = gaussian_fit.save(tmp_path / "good.pt")
    raw = good.read_bytes()
    files = {
        "missing": tmp_path / "missing.pt",
        "directory": tmp_path,
    }
    contents = {
        "empty": b"",
        "text": b"hello, not a fit\n",
        "random-bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "truncated-half": raw[: len(raw) // 2],
        "truncated-10": raw[:10],
        "flipped-bytes": raw[:200] + bytes(b ^ 0xFF for b in raw[200:400]) + raw[400:],
        "csv": b"a,b\n1,2\n",
    }
    for label, blob in contents.items():
        path = tmp_path / f"{label}.pt"
        path.write_bytes(blob)
        files[label] = path
    for label, payload in {
        "foreign-dict": {"weights": torch.zeros(3)},
        "foreign-tensor": torch.zeros(3),
        "future-version": {"format": "ppgen-fit", "version": 99, "fit": None},
        "not-a-fit": {"format": "ppgen-fit", "version": 1, "fit": "hello"},
    }.items():
        path = tmp_path / f"{label}.pt"
        torch.save(payload, path)
        files[label] = path
    return files


def test_fuzz_load_corrupt_files(tmp_path, gaussian_fit):
    test, failures = "ppgen.load", []
    for label, path in _corrupt_files(tmp_path, gaussian_fit).items():
        failures.append(_run(test, label, lambda p=path: ppgen.load(p), lambda f: False))
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)
    assert SUMMARY[test]["PpgenError"] == sum(SUMMARY[test].values())


def test_fuzz_bayesian_bad_priors():
    from ppgen.models import Gaussian, NormalKnownScale

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
        failures.append(_run(test, label, call, lambda m: False))
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
    failures.append(_run(test, "extreme-prior-map", wrong_support, _valid))
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


# --------------------------------------------------------------------------------- CLI
def _cli_cases(tmp_path, gaussian_fit):
    files = _corrupt_files(tmp_path, gaussian_fit)

    def csv(name, text):
        (tmp_path / name).write_text(text)
        return str(tmp_path / name)

    npy = tmp_path / "rank3.npy"
    np.save(npy, np.zeros((3, 2, 2)))
    good = str(files["missing"].with_name("good.pt"))
    data = {
        "missing-csv": "/nonexistent/data.csv",
        "strings-csv": csv("s.csv", "a,b\nx,y\nz,w\n"),
        "nan-csv": csv("n.csv", "a,b\n1,nan\n2,3\n"),
        "inf-csv": csv("i.csv", "a,b\n1,inf\n2,3\n"),
        "empty-csv": csv("e.csv", ""),
        "header-only-csv": csv("h.csv", "a,b\n"),
        "ragged-csv": csv("r.csv", "1,2\n3\n4,5,6\n"),
        "huge-csv": csv("u.csv", "a,b\n1e300,1e300\n-1e300,1e300\n3e300,-2e300\n"),
        "rank3-npy": str(npy),
        "unknown-dataset": "nope",
        "txt-file": csv("t.txt", "1 2\n3 4\n"),
    }
    cases = [
        ["fit", "gaussian", "--data", path, "--method", "exact", "--out", str(tmp_path / "o.pt")]
        for path in data.values()
    ]
    nonbinary = csv("nb.csv", "a,b\n0.5,2\n3,0.5\n2,1.5\n0.5,4\n")  # every row invalid: any split
    cases += [
        ["fit", "bmm", "--data", nonbinary, "--method", "em", "--out", str(tmp_path / "o.pt")],
        ["fit", "beta_bernoulli", "--data", nonbinary, "--out", str(tmp_path / "o.pt")],
        [
            "fit",
            "dirichlet_categorical",
            "--data",
            csv("c.csv", "x\n0.5\n1.5\n2.5\n0.1\n"),
            "--out",
            str(tmp_path / "o.pt"),
        ],
        [
            "fit",
            "gamma_poisson",
            "--data",
            csv("p.csv", "x\n-1\n-2\n-3\n-4\n"),
            "--out",
            str(tmp_path / "o.pt"),
        ],
        ["fit", "nomodel", "--data", "faithful"],
        ["fit", "gaussian", "--data", "faithful", "--method", "bogus"],
        ["fit", "gaussian", "--data", "faithful", "--method", "mcmc"],
        ["fit", "kde", "--data", "faithful", "--method", "mle"],
        ["fit", "gaussian", "--data", "faithful", "--option", "lr"],
        ["fit", "gaussian", "--data", "faithful", "--option", "=3"],
        ["fit", "gaussian", "--data", "faithful", "--option", "bogus=1", "--method", "exact"],
        ["fit", "gaussian", "--data", "faithful", "--option", "num_steps=-1", "--method", "mle"],
        ["fit", "gaussian", "--data", "faithful", "--option", "covariance=banana", "--method", "exact"],
        ["fit", "gmm", "--data", "faithful", "--option", "n_components=0", "--method", "em"],
        ["fit", "gmm", "--data", "faithful", "--option", "n_components=abc", "--method", "em"],
        ["fit", "gaussian", "--data", "faithful", "--out", "/nonexistent/dir/fit.pt", "--method", "exact"],
        ["fit", "gaussian", "--data", "faithful", "--seed", "x"],
        ["fit", "gaussian"],
        ["sample", good, "-n", "-5", "--out", str(tmp_path / "s.npy")],
        ["sample", good, "-n", "0", "--out", str(tmp_path / "s.npy")],
        ["sample", good, "-n", "3", "--out", str(tmp_path / "s.bogus")],
        ["sample", good, "-n", "3", "--out", "/nonexistent/dir/s.npy"],
        ["evaluate", good, "--data", data["strings-csv"]],
        ["evaluate", good, "--data", csv("w.csv", "a,b,c\n1,2,3\n4,5,6\n")],
        ["evaluate", good, "--data", "nope"],
        ["compare", good, str(files["missing"]), "--data", "faithful"],
        ["bogus-command"],
        ["tutorial", "999"],
    ]
    for path in files.values():
        cases.append(["sample", str(path), "-n", "3", "--out", str(tmp_path / "s.npy")])
        cases.append(["evaluate", str(path), "--data", "faithful"])
    return cases


def test_fuzz_cli_in_process(tmp_path, gaussian_fit, capsys):
    test, failures = "cli", []
    for argv in _cli_cases(tmp_path, gaussian_fit):
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                code = cli.main(argv)
            except BaseException as err:  # noqa: BLE001
                code, _ = None, err
        err = capsys.readouterr().err.strip()
        lines = [line for line in err.splitlines() if line.strip()]
        usage = code == 2 and err.startswith("usage:")  # argparse's own message (usage + error line)
        clean = code not in (0, None) and "Traceback" not in err and "unexpected" not in err
        clean = clean and (len(lines) == 1 or usage)
        _record(test, "clean error" if clean else "UNCLEAN")
        if not clean:
            failures.append(f"{argv}: exit {code}, stderr {err[:200]!r}")
    print(f"\n{test}: {sum(SUMMARY[test].values())} inputs -> {dict(SUMMARY[test])}")
    assert not failures, "\n".join(failures)


def test_fuzz_cli_subprocess(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01 not a fit")
    for argv in (
        ["fit", "gaussian", "--data", str(tmp_path / "missing.csv")],
        ["sample", str(junk), "-n", "3"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "ppgen", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        err = run.stderr.strip()
        assert run.returncode != 0 and "Traceback" not in err and "unexpected" not in err, err
        assert len(err.splitlines()) == 1, err
        _record("cli-subprocess", "clean error")
    print(f"\ncli-subprocess: {dict(SUMMARY['cli-subprocess'])}")
