"""Devices and data-parallel training: 2 CPU processes (gloo) must follow the single-process
run on the same data and seed step for step (full-batch gradient = mean of shard gradients)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyro.distributions as dist
import pytest
import torch
import torch.multiprocessing as tmp

import ppgen
from ppgen.errors import OptionError
from ppgen.inference import distributed
from ppgen.inference.minibatches import Minibatches
from ppgen.models import Gaussian
from tests.common import assert_close, gaussian_data

ROOT = Path(__file__).resolve().parents[2]
STEPS = 60


def _problems():
    # 101 rows: shards of 51 and 50, so unequal shard sizes are covered too.
    x = gaussian_data(n=101, dim=2, seed=3)
    mle = dict(model=Gaussian(dim=2), method="mle")
    prior = dist.Normal(torch.zeros(2, dtype=torch.float64), 10.0).to_event(1)
    # MAP runs the svi machinery (ELBO with AutoDelta): the prior term must count once, not per rank.
    map_ = dict(model=ppgen.bayesian(Gaussian(dim=2, covariance="diag").double(), loc=prior), method="map")
    return x, {"mle": mle, "map": map_}


def _run(name):
    x, problems = _problems()
    spec = problems[name]
    fit = ppgen.fit(
        spec["model"],
        x,
        method=spec["method"],
        seed=0,
        num_steps=STEPS,
        lr=0.05,
        progress=False,
        patience=1000,
        # ranks run Adam only (L-BFGS after it is single-process), so the reference does too
        **({"polish": False} if spec["method"] == "map" else {}),
    )
    params = {k: v.detach().clone() for k, v in fit.params.items()}
    return params, torch.tensor(fit.history, dtype=torch.float64)


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        results = {name: _run(name) for name in ("mle", "map")}
        x, _ = _problems()
        full, mini = Minibatches(x, {}, None, 0).next(), Minibatches(x, {}, 10, 0).next()
        results["batches"] = (full[0].clone(), full[2], mini[0].shape[0], mini[2])
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        distributed.shutdown()


def test_two_process_training_equals_single_process(tmp_path):
    tmp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name in ("mle", "map"):
        params, history = _run(name)
        assert len(history) == STEPS
        for rank in ranks:
            got_params, got_history = rank[name]
            assert_close(got_history, history, atol=1e-9, rtol=1e-9, msg=f"{name} loss history")
            for key, value in params.items():
                assert_close(got_params[key], value, atol=1e-9, rtol=1e-9, msg=f"{name} {key}")
    # each rank kept its contiguous shard; scale = world * n_shard / batch
    x, _ = _problems()
    for rank, (rows, sizes) in enumerate([(x[:51], 51), (x[51:], 50)]):
        shard, scale_full, batch, scale_mini = ranks[rank]["batches"]
        assert torch.equal(shard, rows) and scale_full == 2.0
        assert batch == 10 and scale_mini == pytest.approx(2 * sizes / 10)
    # and the run really moved: the MLE approaches the closed form
    assert float((ranks[0]["mle"][0]["loc"] - x.mean(0)).abs().max()) < float((x.mean(0)).abs().max())


def test_shards_cover_rows_once():
    for n, world in [(10, 2), (11, 3), (5, 5)]:
        parts = [distributed.shard_indices(n, r, world) for r in range(world)]
        assert torch.equal(torch.cat(parts), torch.arange(n))
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    with pytest.raises(OptionError, match="at least one row"):
        distributed.shard_indices(1, 0, 2)


def test_single_process_helpers_are_identity():
    assert not distributed.is_distributed() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main() and distributed.average_value(1.5) == 1.5
    batches = Minibatches(torch.arange(6.0).reshape(3, 2), {}, None, 0)
    xb, _, scale = batches.next()
    assert xb.shape == (3, 2) and scale == 1.0
    assert distributed.init() is False  # no WORLD_SIZE: plain run, nothing initialised


def test_device_option_cpu_and_auto_match_default():
    x = gaussian_data(n=50, dim=1)
    base = ppgen.fit(Gaussian(dim=1), x, method="mle", seed=0, num_steps=30, progress=False)
    for device in ("cpu", "auto") if not torch.cuda.is_available() else ("cpu",):
        other = ppgen.fit(
            Gaussian(dim=1), x, method="mle", seed=0, num_steps=30, progress=False, device=device
        )
        assert torch.equal(other.params["loc"], base.params["loc"])
    assert ppgen.fit(Gaussian(dim=1), x, method="exact", device="auto").params["loc"].device.type == "cpu"


def test_device_errors():
    x = gaussian_data(n=20, dim=1)
    with pytest.raises(OptionError, match="device"):
        ppgen.fit(Gaussian(dim=1), x, method="mle", device="tpu", num_steps=2, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(OptionError, match="CUDA"):
            ppgen.fit(Gaussian(dim=1), x, method="mle", device="cuda", num_steps=2, progress=False)
    with pytest.raises(OptionError, match="gradient methods"):
        ppgen.fit(Gaussian(dim=1), x, method="exact", device="cuda:0")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_matches_cpu():
    x = gaussian_data(n=200, dim=2)
    kw = dict(method="mle", seed=0, num_steps=200, lr=0.05, progress=False)
    cpu = ppgen.fit(Gaussian(dim=2), x, **kw)
    gpu = ppgen.fit(Gaussian(dim=2), x, device="cuda", **kw)
    assert gpu.options["device"].startswith("cuda") and gpu.params["loc"].device.type == "cpu"
    for key in cpu.params:
        assert_close(gpu.params[key], cpu.params[key], atol=1e-6, msg=key)
    assert_close(gpu.log_prob(x), cpu.log_prob(x), atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun"
)
def test_torchrun_cli_writes_one_fit(tmp_path):
    out = tmp_path / "fit.pt"
    cmd = [
        str(Path(sys.executable).parent / "torchrun"),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ppgen.app.cli",
        "fit",
        "gaussian",
        "--data",
        "faithful",
        "--method",
        "mle",
        "--seed",
        "0",
        "--option",
        "num_steps=50",
        "--option",
        "progress=false",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    fit = ppgen.load(out)
    single = ppgen.fit(
        Gaussian(dim=2),
        ppgen.data.load("faithful", split="train"),
        method="mle",
        seed=0,
        num_steps=50,
        progress=False,
    )
    for key in single.params:
        assert_close(fit.params[key], single.params[key], atol=1e-8, rtol=1e-8, msg=key)


def _adversarial_worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
    )
    try:
        x = gaussian_data(n=128, dim=1, seed=4).float()
        fit = ppgen.fit(
            Gaussian(dim=1), x, method="adversarial", steps=40, batch_size=32, seed=0, progress=False
        )
        critic = [p.detach().clone() for p in fit.critic.parameters()]
        torch.save(
            {"params": fit.params, "critic": critic, "history": fit.history}, f"{out_dir}/adv{rank}.pt"
        )
    finally:
        distributed.shutdown()


def test_adversarial_training_keeps_ranks_in_sync(tmp_path):
    # Both players start from rank 0's weights and step on rank-averaged gradients, so after 40
    # steps of different data shards and different noise the ranks still hold identical weights
    # (to float round-off of the all-reduce) and the same averaged loss history.
    tmp.spawn(_adversarial_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"adv{r}.pt") for r in range(2))
    for key in a["params"]:
        assert_close(a["params"][key], b["params"][key], atol=1e-6, msg=key)
    for p, q in zip(a["critic"], b["critic"]):
        assert_close(p, q, atol=1e-6, msg="critic")
    assert_close(torch.tensor(a["history"]), torch.tensor(b["history"]), atol=1e-6)
    assert a["params"]["loc"].abs().max() > 0  # it trained
