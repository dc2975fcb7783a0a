"""Shared test helpers: tolerances fit the estimator (exact ≈1e-10, Monte Carlo ≈ a few
standard errors, HMC a few MCSE)."""

import torch


def assert_close(actual, expected, atol=1e-7, rtol=0.0, msg=""):
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert actual.shape == expected.shape, f"{msg} shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    assert (diff <= bound).all(), f"{msg} max |diff| {float(diff.max()):.3g} > tolerance (atol={atol}, rtol={rtol})"


def gaussian_data(n=200, dim=1, seed=0, loc=3.0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * scale + loc
