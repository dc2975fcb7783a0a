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


#: Files whose tests run a whole script (a tutorial, a README block) for tens of seconds each.
WHOLE_SCRIPTS = ("tests/test_tutorials.py", "tests/test_readme.py")


def pytest_collection_modifyitems(config, items):
    """Deal the whole-script tests out over the two halves of the run, each half opening with them.

    pytest-xdist's ``worksteal`` gives each worker one half of the collection and lets an idle worker
    take the tail of the other's queue: long tests at the head of both halves, short ones behind them,
    so that the last minute is spent on short tests either worker can steal, not on one worker alone
    finishing a tutorial. The order is the same on every worker (xdist requires it)."""
    heavy = [item for item in items if item.nodeid.startswith(WHOLE_SCRIPTS)]
    light = [item for item in items if not item.nodeid.startswith(WHOLE_SCRIPTS)]
    half = len(light) // 2
    items[:] = heavy[0::2] + light[:half] + heavy[1::2] + light[half:]
