"""Likelihood helpers of ppgen.measures.metrics (IWAE bound, log-mean-exp, ESS) against brute force."""

import math

import numpy as np
import pytest
import torch

from ppgen.errors import DataError
from ppgen.measures.metrics import importance_ess, iwae_bound, log_mean_exp
from tests.common import assert_close


def test_iwae_bound_is_log_of_the_mean_weight():
    # Reference: numpy's log(mean(exp(.))) on moderate values (no overflow), exact to 1e-12;
    # and stability: shifting every log-weight by 1000 shifts the bound by exactly 1000.
    rng = np.random.default_rng(0)
    log_w = rng.normal(size=(7, 5)) * 3
    assert_close(iwae_bound(torch.tensor(log_w)), np.log(np.exp(log_w).mean(0)), atol=1e-12)
    assert_close(iwae_bound(torch.tensor(log_w) + 1000.0), np.log(np.exp(log_w).mean(0)) + 1000.0, atol=1e-9)
    assert_close(log_mean_exp(torch.tensor(log_w), 1), np.log(np.exp(log_w).mean(1)), atol=1e-12)


def test_iwae_with_k_equal_one_is_the_elbo_sample():
    log_w = torch.randn(1, 4, dtype=torch.float64)
    assert_close(iwae_bound(log_w), log_w[0], atol=1e-15)


def test_importance_ess_extremes():
    # Reference: equal weights give ESS = K exactly; one dominant weight gives ESS → 1.
    assert_close(importance_ess(torch.zeros(10, 3, dtype=torch.float64)), torch.full((3,), 10.0), atol=1e-12)
    dominant = torch.tensor([[0.0], [-1e3], [-1e3]], dtype=torch.float64)
    assert_close(importance_ess(dominant), torch.ones(1), atol=1e-12)
    w = torch.tensor([[math.log(1.0)], [math.log(3.0)]], dtype=torch.float64)
    assert_close(
        importance_ess(w), torch.tensor([16.0 / 10.0], dtype=torch.float64), atol=1e-12
    )  # (1+3)² / (1+9)


def test_iwae_bound_rejects_flat_input():
    with pytest.raises(DataError, match=r"\(K, N\)"):
        iwae_bound(torch.zeros(5))
