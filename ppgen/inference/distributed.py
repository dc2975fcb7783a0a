"""Devices and data-parallel training with PyTorch's own engine (``torch.distributed``).

**Devices.** ``ppgen.fit(..., device="cpu" | "cuda" | "auto")`` runs a gradient method
(``mle``, ``svi``, ``map``, ``adversarial``) on that device; the returned fit is moved back
to the CPU so it scores, saves and loads anywhere.

**Data parallel.** Launch the same script (or the CLI) once per process with ``torchrun``::

    torchrun --nproc_per_node 2 -m ppgen fit gaussian --data faithful --method mle --out fit.pt

    # two machines, 4 processes each (run on every node, --node_rank 0 on the master):
    torchrun --nnodes 2 --nproc_per_node 4 --node_rank 0 \\
        --rdzv_backend c10d --rdzv_endpoint MASTER_HOST:29500 -m ppgen fit flow --data ...

In a script, call :func:`init` once before :func:`ppgen.fit` and save on rank 0 only
(``if ppgen.distributed.is_main(): fit.save(path)``). Every rank passes the *full* data;
the shared loop (:mod:`ppgen.inference.loop`) keeps this rank's shard (equal contiguous
slices), scales its data terms by ``world_size * n_shard / batch`` and averages the
gradients and the loss over ranks after ``backward()``. With full-batch training the
average of the shard gradients *is* the full-batch gradient, so a run on ``W`` processes
follows the single-process run step for step (up to float summation order).
``batch_size`` is per process. Parameters are broadcast from rank 0 before the first step.
The process group uses ``gloo`` for CPU tensors and, where CUDA is available, ``nccl``
for GPU tensors (``"cpu:gloo,cuda:nccl"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist

from ppgen.errors import OptionError

__all__ = [
    "resolve_device",
    "init",
    "shutdown",
    "is_distributed",
    "rank",
    "world_size",
    "local_rank",
    "is_main",
    "shard_indices",
    "broadcast_parameters",
    "average_gradients",
    "average_value",
]

DEVICES = ("cpu", "cuda", "auto")


# ------------------------------------------------------------------------ devices
def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` into a ``torch.device``.

    ``"auto"`` picks CUDA when available (this process's ``LOCAL_RANK`` GPU under torchrun),
    else the CPU. Asking for CUDA where there is none raises :class:`OptionError`.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        text = str(device)
    elif isinstance(device, str):
        text = device.strip().lower()
    else:
        raise OptionError(f"Expected device in {DEVICES}, but got {device!r}.")
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cuda" and is_distributed():
        text = f"cuda:{local_rank()}"
    try:
        resolved = torch.device(text)
    except RuntimeError:
        raise OptionError(f"Expected device in {DEVICES} (or 'cuda:N'), but got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(
            f"Expected a CUDA device for device={device!r}, but torch sees none; use device='cpu' or 'auto'."
        )
    if resolved.type not in ("cpu", "cuda"):
        raise OptionError(f"Expected device in {DEVICES}, but got {device!r}.")
    return resolved


# -------------------------------------------------------------------- process group
def init(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns ``True`` when this process is one of several (``WORLD_SIZE > 1``), ``False``
    for a plain single-process run (nothing is initialised then).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise OptionError("Expected a torch build with torch.distributed, but it is not available.")
    # With CUDA, tensors pick their transport by device: gloo for CPU fits, nccl for GPU fits.
    backend = backend or ("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend)
    if "nccl" in backend:
        torch.cuda.set_device(local_rank())
    return dist.get_world_size() > 1


def shutdown() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Rank on this machine (``LOCAL_RANK`` set by torchrun), 0 otherwise."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0: the process that prints and writes files."""
    return rank() == 0


# --------------------------------------------------------------------- the maths
def shard_indices(n: int, rank: int, world_size: int) -> torch.Tensor:
    """Row indices of ``rank``'s shard: contiguous slices whose sizes differ by at most one."""
    if not 0 <= rank < world_size:
        raise OptionError(f"Expected 0 <= rank < world_size = {world_size}, but got {rank}.")
    if n < world_size:
        raise OptionError(f"Expected at least one row per process ({world_size}), but got {n} rows.")
    return torch.tensor_split(torch.arange(n), world_size)[rank]


def broadcast_parameters(params: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's parameter values to every rank (identical starting points)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """All-reduce and average ``p.grad`` over ranks, in one flat buffer.

    A parameter without a gradient on some ranks counts as zero there; one without a
    gradient on every rank keeps ``grad=None`` (so optimisers skip it as in one process).
    """
    if not is_distributed():
        return
    params = list(params)
    if not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float64, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    active = [p for p, flag in zip(params, has.tolist()) if flag > 0]
    if not active:
        return
    for dtype in dict.fromkeys(p.dtype for p in active):  # one flat buffer per dtype, same order on all ranks
        group = [p for p in active if p.dtype == dtype]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in group]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
        offset = 0
        for p in group:
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).clone()
            offset += size


def average_value(value: float) -> float:
    """The mean of a Python float over ranks (used for the loss so stopping rules agree)."""
    if not is_distributed():
        return value
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor) / dist.get_world_size()
