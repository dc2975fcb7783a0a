import os

import matplotlib
import pyro
import pytest
import torch
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")
os.environ.setdefault("PPGEN_FAST", "1")
# The suite's tensors are small: one intra-op thread avoids thread hand-offs that dominate
# (and, on a busy 2-core machine, slow small-tensor loops by an order of magnitude).
torch.set_num_threads(1)

# Property tests draw the same cases on every machine and every run (a suite that fails by chance
# blocks good work from landing); `pytest --hypothesis-profile=explore` draws fresh, many more,
# to hunt for new failures — add what it finds as an @example.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "explore", max_examples=200, derandomize=False, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
