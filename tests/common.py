"""Shared test helpers: tolerances fit the estimator (exact ≈1e-10, Monte Carlo ≈ a few
standard errors, HMC a few MCSE)."""

import numpy as np
import torch


def assert_close(actual, expected, atol=1e-7, rtol=0.0, msg=""):
    actual, expected = _float64(actual), _float64(expected)
    assert actual.shape == expected.shape, f"{msg} shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    assert (diff <= bound).all(), (
        f"{msg} max |diff| {float(diff.max()):.3g} > tolerance (atol={atol}, rtol={rtol})"
    )


def gaussian_data(n=200, dim=1, seed=0, loc=3.0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * scale + loc


def _float64(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).cpu()
    return torch.from_numpy(np.array(value, dtype=np.float64))
