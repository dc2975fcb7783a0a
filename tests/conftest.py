import os

import matplotlib
import pyro
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("PPGEN_FAST", "1")
# The suite's tensors are small: one intra-op thread avoids thread hand-offs that dominate
# (and, on a busy 2-core machine, slow small-tensor loops by an order of magnitude).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts from a clear param store, validation on, and a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def float64_default():
    """Build models and data in float64 (the autouse fixture above restores the dtype)."""
    torch.set_default_dtype(torch.float64)
