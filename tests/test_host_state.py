"""A library leaves its host as it found it: Pyro's settings and param store after ``import ppgen`` and
after ppgen fits of every kind, and the user's own Pyro code then behaving exactly as without ppgen
(PYRO_NOTES 11: ``module_local_params`` left on globally broke Pyro's EasyGuide and any PyroModule
with a global ``pyro.param``). Reference: the same user code run in a fresh interpreter that never
imports ppgen; its losses must be equal bit for bit."""

import json
import subprocess
import sys

USER_CODE = """
import json, pyro, torch, pyro.distributions as dist
from pyro.contrib.easyguide import easy_guide
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule
torch.set_default_dtype(torch.float64)


def losses(model, guide, *args, steps=30):
    pyro.clear_param_store(); pyro.set_rng_seed(0)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    return [svi.step(*args) for _ in range(steps)]


def coin(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("n", len(y)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)


@easy_guide(coin)
def easy(self, y):
    self.map_estimate("mu")


class Regression(PyroModule):  # a PyroModule holding a global pyro.param, as Pyro's tutorials write
    def __init__(self):
        super().__init__()
        self.linear = PyroModule[torch.nn.Linear](1, 1)

    def forward(self, x, y=None):
        sigma = pyro.param("sigma", torch.tensor(1.0), constraint=dist.constraints.positive)
        with pyro.plate("rows", len(x)):
            return pyro.sample("obs", dist.Normal(self.linear(x).squeeze(-1), sigma), obs=y)


y = torch.linspace(-1.0, 2.0, 20)
x = y[:, None] * 0.5
torch.manual_seed(0)
regression = Regression()
out = {
    "settings": {k: str(v) for k, v in pyro.settings.get().items()},
    "easy_guide": losses(coin, easy, y),
    "autonormal": losses(coin, AutoNormal(coin), y),
    "pyro_module_with_param": losses(regression, lambda x, y=None: None, x, y),
}
print(json.dumps(out))
"""

PPGEN_FIRST = """
import pyro, torch, pyro.distributions as dist
before = {k: str(v) for k, v in pyro.settings.get().items()}
import ppgen
from ppgen.models import Gaussian, GaussianMixture
assert {k: str(v) for k, v in pyro.settings.get().items()} == before, "import ppgen changed Pyro"
x = torch.randn(40, 1, dtype=torch.float64)
def program(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("n", len(y)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
fits = [
    ppgen.fit(Gaussian(dim=1), x, method="mle", num_steps=20, progress=False),
    ppgen.fit(GaussianMixture(2), x, method="em", progress=False, seed=0),
    ppgen.fit(program, {"y": x[:, 0]}, method="svi", num_steps=20, progress=False, seed=0),
    ppgen.fit(program, {"y": x[:, 0]}, method="mcmc", num_samples=20, warmup_steps=20, seed=0),
]
for fit in fits:
    fit.sample(5, seed=0); fit.summary()
ppgen.prior_predictive(program, {"y": x[:, 0]}, num_samples=5, seed=0)
Gaussian(dim=1).sample(3)  # a ppgen model used directly, outside any ppgen call
assert {k: str(v) for k, v in pyro.settings.get().items()} == before, "a ppgen call changed Pyro"
assert not list(pyro.get_param_store().keys()), "a ppgen call left parameters in Pyro's store"
"""


def _run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_users_pyro_code_runs_as_without_ppgen():
    alone = _run(USER_CODE)
    after_ppgen = _run(PPGEN_FIRST + USER_CODE)
    assert after_ppgen == alone
    assert alone["settings"]["module_local_params"] == "False"  # Pyro's own default, untouched
