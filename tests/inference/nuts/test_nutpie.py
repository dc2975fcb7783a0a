"""sampler="nutpie": nutpie's Rust NUTS driven by ppgen's compiled potential (nuts/nutpie_chain.py),
on a conjugate normal model whose posterior is known in closed form (skipped without nutpie)."""

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.errors import OptionError
from ppgen.inference.nuts import STAT_NAMES

pytest.importorskip("nutpie")


def model(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_nutpie_draws_the_conjugate_posterior_reproducibly():
    # Reference: mu | y ~ N(Σy / (n + 1), 1 / (n + 1)); mean and variance within 4 MCSE (ArviZ).
    y = torch.tensor([0.3, 1.2, -0.4, 0.9, 2.0, 0.1])
    kwargs = dict(method="mcmc", sampler="nutpie", num_chains=2, num_samples=400, warmup_steps=300)
    fit = ppgen.fit(model, {"y": y}, seed=3, progress=False, **kwargs)
    draws = fit.posterior.posterior["mu"].values  # (2, 400)
    n = len(y)
    mean, var = float(y.sum()) / (n + 1), 1.0 / (n + 1)
    mcse = float(az.mcse(az.convert_to_dataset({"mu": draws}), method="mean")["mu"])
    assert abs(draws.mean() - mean) < 4 * mcse
    squares = (draws - mean) ** 2
    mcse_var = float(az.mcse(az.convert_to_dataset({"s": squares}), method="mean")["s"])
    assert abs(squares.mean() - var) < 4 * mcse_var
    assert set(STAT_NAMES) <= set(fit.posterior.sample_stats.data_vars)
    again = ppgen.fit(model, {"y": y}, seed=3, progress=False, **kwargs)
    assert np.array_equal(again.posterior.posterior["mu"].values, draws)  # same seed, same draws


def test_nutpie_refuses_checkpoints_and_dense_mass(tmp_path):
    y = torch.tensor([0.3, 1.2])
    with pytest.raises(OptionError, match="checkpoint"):
        ppgen.fit(model, {"y": y}, method="mcmc", sampler="nutpie", checkpoint=tmp_path / "c", progress=False)
    with pytest.raises(OptionError, match="dense_mass"):
        ppgen.fit(model, {"y": y}, method="mcmc", sampler="nutpie", dense_mass=True, num_samples=10,
                  warmup_steps=10, progress=False)  # fmt: skip
