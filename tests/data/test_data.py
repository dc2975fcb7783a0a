"""Embedded datasets: shapes, splits, labels, and the true densities of the synthetic sets.

References: scikit-learn's own digits arrays, scipy.stats.norm / multivariate_normal for
the mixture densities, numerical integration on a grid, Monte Carlo moments with a
tolerance of 4 standard errors (a false alarm in about 1 of 16 000 runs).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits

from ppgen import data
from ppgen.errors import DataError, PpgenError
from tests.common import assert_close

ALL = sorted(data.datasets())
TABLES = sorted(k for k, d in data.datasets().items() if d.table is not None)
ARRAYS = [name for name in ALL if name not in TABLES]
EXPECTED = {"faithful", "digits", "digits-binary", "toy11", "ring8", "grid25", "moons", "pinwheel"}
EXPECTED |= {"checkerboard", "spirals", "bimodal1d"}


def test_registry_lists_every_issue_dataset_with_metadata():
    assert EXPECTED <= set(ALL)
    table = data.registry_table()
    assert set(table["name"]) == set(ALL)
    for entry in data.datasets().values():
        assert entry.kind in ("continuous", "binary", "discrete", "table")
        assert entry.source and entry.licence and entry.shape


def test_tables_load_as_the_files_say():
    # References: Efron & Morris (1975) Table 1 and the file itself; Nunn & Puga's 170 countries with a
    # GDP value (DESIGN data notes). The no-pooling total squared error 0.0857 is the published figure.
    baseball = data.load("baseball")
    assert list(baseball.columns[:4]) == ["FirstName", "LastName", "At-Bats", "Hits"]
    assert baseball.shape == (18, 10) and (baseball["At-Bats"] == 45).all()
    sse = float(((baseball["Hits"] / 45 - baseball["RemainingAverage"]) ** 2).sum())
    assert abs(sse - 0.0857) < 1e-4
    rugged = data.load("rugged")
    assert rugged.shape == (170, 51) and rugged["rgdppc_2000"].notna().all()
    assert {"rugged", "cont_africa", "rgdppc_2000", "country"} <= set(rugged.columns)
    train, test = data.load("baseball", "train", seed=1), data.load("baseball", "test", seed=1)
    assert sorted(train["LastName"].tolist() + test["LastName"].tolist()) == sorted(baseball["LastName"])


@pytest.mark.parametrize("name", ARRAYS)
def test_load_shape_split_and_reproducibility(name):
    x = data.load(name)
    assert tuple(x.shape) == data.datasets()[name].shape and x.dtype == torch.float64
    assert torch.isfinite(x).all()
    if data.datasets()[name].splits:  # fixed, unshuffled splits (digits-17): they tile the rows in order
        parts = [data.load(name, split, seed=3) for split in ("train", "val", "test")]
        assert torch.equal(torch.cat(parts), x)
        return
    train, test = data.load(name, "train", seed=3), data.load(name, "test", seed=3)
    assert train.shape[0] + test.shape[0] == x.shape[0]
    assert test.shape[0] == round(0.25 * x.shape[0])
    # Train and test together are a permutation of the rows (compare sorted row sums).
    both = torch.cat([train, test])
    assert_close(both.sum(1).sort().values, x.sum(1).sort().values, atol=1e-12)
    assert torch.equal(train, data.load(name, "train", seed=3))  # reproducible
    assert not torch.equal(train, data.load(name, "train", seed=4))  # the seed matters
    assert data.load(name, dtype=torch.float32).dtype == torch.float32


def test_digits_match_scikit_learn_and_labels_align_with_the_split():
    bunch = load_digits()
    x = data.load("digits")
    assert_close(x, bunch.data / 16.0, atol=0)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert_close(data.load("digits-binary"), (bunch.data / 16.0 > 0.5).astype(float), atol=0)
    xs, ys = data.load("digits", "test", seed=1, return_labels=True)
    assert torch.equal(ys, data.load_labels("digits", "test", seed=1))
    # Each test row must carry the label scikit-learn gives that very image.
    lookup = {tuple(row): label for row, label in zip(bunch.data / 16.0, bunch.target)}
    assert all(lookup[tuple(row)] == int(y) for row, y in zip(xs.numpy(), ys))


def test_toy11_is_the_source_text_sample():
    values = [-2.3, -1.8, -1.4, -0.6, -0.2, 0.05, 0.25, 0.9, 1.3, 1.8, 2.25]
    assert_close(data.load("toy11"), torch.tensor(values, dtype=torch.float64)[:, None], atol=0)


def _scipy_mixture(x, means, std, weights):
    comps = [w * stats.multivariate_normal(m, std**2 * np.eye(len(m))).pdf(x) for m, w in zip(means, weights)]
    return np.log(np.sum(comps, axis=0))


@pytest.mark.parametrize(
    "name,means,std",
    [
        ("ring8", [(2 * math.cos(k * math.pi / 4), 2 * math.sin(k * math.pi / 4)) for k in range(8)], 0.02),
        ("grid25", [(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], 0.05),
    ],
)
def test_gan_benchmark_true_log_prob_matches_scipy(name, means, std):
    x = data.load(name)[:300]
    k = len(means)
    expected = _scipy_mixture(x.numpy(), np.array(means, float), std, np.full(k, 1 / k))
    assert_close(data.datasets()[name].log_prob(x), expected, atol=1e-9)
    labels = data.load_labels(name)
    # Component frequencies: binomial, 4 standard errors.
    freq = torch.bincount(labels, minlength=k).double() / labels.numel()
    assert (freq - 1 / k).abs().max() < 4 * math.sqrt((1 / k) * (1 - 1 / k) / labels.numel())


def test_bimodal1d_density_matches_scipy_and_integrates_to_one():
    log_prob = data.datasets()["bimodal1d"].log_prob
    grid = torch.linspace(-8, 9, 20001, dtype=torch.float64)[:, None]
    expected = np.log(0.3 * stats.norm(-2, 0.5).pdf(grid[:, 0]) + 0.7 * stats.norm(1.5, 0.8).pdf(grid[:, 0]))
    assert_close(log_prob(grid), expected, atol=1e-10)
    assert abs(torch.trapezoid(log_prob(grid).exp(), grid[:, 0]) - 1) < 1e-8  # trapezoid error ~h²
    x = data.generate("bimodal1d", 20000, seed=1)
    mean = 0.3 * -2 + 0.7 * 1.5
    var = 0.3 * (0.25 + 4) + 0.7 * (0.64 + 1.5**2) - mean**2
    assert abs(float(x.mean()) - mean) < 4 * math.sqrt(var / 20000)


def test_checkerboard_density_is_uniform_on_its_squares():
    log_prob = data.datasets()["checkerboard"].log_prob
    x = data.load("checkerboard")
    assert_close(log_prob(x), torch.full((x.shape[0],), -math.log(32), dtype=torch.float64), atol=1e-12)
    # Midpoint rule on a 400x400 grid over [-5, 5]^2: the squares' edges fall between cells.
    h = 10 / 400
    ticks = torch.arange(400, dtype=torch.float64) * h - 5 + h / 2
    grid = torch.cartesian_prod(ticks, ticks)
    assert abs(float(log_prob(grid).exp().sum() * h * h) - 1) < 1e-12
    # Half the board is empty: the four squares around the origin alternate.
    assert torch.isinf(log_prob(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))).all()


def test_synthetic_sizes_and_fresh_draws():
    assert data.load("moons", n=50).shape == (50, 2)
    assert torch.equal(data.load("moons", n=50), data.load("moons", n=50))
    assert not torch.equal(data.generate("spirals", 10, seed=0), data.generate("spirals", 10, seed=1))
    x, y = data.load("pinwheel", return_labels=True)
    assert set(y.tolist()) == set(range(5)) and x.shape[0] == y.shape[0]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: data.load("mnist"), "dataset name in"),
        (lambda: data.load(3), "dataset name in"),
        (lambda: data.load("faithful", "valid"), "split in"),
        (lambda: data.load("faithful", "train", test_fraction=1.5), "test_fraction"),
        (lambda: data.load("faithful", n=10), "only for synthetic"),
        (lambda: data.load("ring8", n=0), "n >= 2"),
        (lambda: data.load("faithful", dtype=torch.int64), "floating dtype"),
        (lambda: data.load_labels("toy11"), "with labels"),
        (lambda: data.generate("digits", 5), "synthetic dataset"),
        (lambda: data.datasets()["ring8"].log_prob(torch.zeros(3, 3)), r"\(N, 2\)"),
        (lambda: data.as_tensor([[1.0, float("nan")]]), "finite"),
        (lambda: data.as_tensor(["a", "b"]), "hold numbers"),
    ],
)
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(PpgenError, match=match) as info:
        call()
    assert isinstance(info.value, DataError)
