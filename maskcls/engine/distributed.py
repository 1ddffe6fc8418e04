"""DistributedDataParallel through torchrun: who am I, gather what every rank computed, relaunch.

`torchrun --nproc_per_node N -m maskcls train-joint ...` (or `maskcls train-joint ... --gpus N`,
which relaunches itself that way) starts N processes; each calls `setup()`, which joins the
process group: NCCL on CUDA (one GPU per process, `LOCAL_RANK`), gloo on CPU. Without torchrun's
environment everything here is a no-op for one process, so the engine has one code path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from maskcls.errors import MaskclsError
from maskcls.runtime import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes checkpoints, logs, plots and wandb; the others only compute."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched() -> bool:
    """True inside a torchrun launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str = "auto") -> Context:
    """Join the process group once (idempotent); a single process gets Context()."""
    if not launched():
        return Context()
    ctx = Context(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
        if cuda:
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=30))
    return ctx


def wrap(model: torch.nn.Module, sync_bn: bool, ctx: Context,
         device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:  # fmt: skip
    """(model, what training calls): under torchrun the DDP wrapper, with SyncBatchNorm when asked."""
    if not ctx.active:
        return model, model
    if sync_bn and device.type != "cuda":
        raise MaskclsError("--sync-bn needs CUDA (SyncBatchNorm has no CPU kernel); drop it on CPU")
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.local_rank] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def device(ctx: Context, name: str = "auto") -> torch.device:
    """The device a process computes on: --device resolved, and under torchrun its own GPU."""
    dev = resolve_device(name)
    return torch.device("cuda", ctx.local_rank) if ctx.active and dev.type == "cuda" else dev


def describe(ctx: Context, batch_size: int) -> str:
    return (f"DistributedDataParallel: {ctx.world} processes ({dist.get_backend()}), global batch {batch_size} = "
            f"{ctx.world} x {batch_size // ctx.world}")  # fmt: skip


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast(obj):
    """Rank 0's obj on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(n: int, ctx: Context) -> np.ndarray:
    """Indices of n items this rank handles (every world-th, so shards differ by at most one)."""
    return np.arange(ctx.rank, n, ctx.world)


def gather(indices: np.ndarray, arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every rank's rows put back at their indices: the full (n, ...) arrays, on every rank."""
    if not dist.is_initialized():
        return arrays
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (indices, arrays))
    out = {k: np.zeros((n, *v.shape[1:]), dtype=v.dtype) for k, v in arrays.items()}
    for idx, part in parts:
        for k, v in part.items():
            out[k][idx] = v
    return out


def mean(value: float, count: int) -> float:
    """Count-weighted mean of value over all ranks."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value * count, float(count)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0] / max(t[1], 1.0))


def relaunch(argv: list[str], gpus: int) -> int:
    """Run `maskcls ARGV` again as gpus processes under torchrun; returns its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "maskcls", *argv]  # fmt: skip
    return subprocess.call(cmd)


def pop_gpus(argv: list[str]) -> tuple[list[str], int]:
    """argv without `--gpus N` (or `--gpus=N`), and N (1 when absent)."""
    out, gpus, i = [], 1, 0
    while i < len(argv):
        a = argv[i]
        if a == "--gpus" and i + 1 < len(argv):
            gpus, i = argv[i + 1], i + 2
            continue
        if a.startswith("--gpus="):
            gpus, i = a.split("=", 1)[1], i + 1
            continue
        out.append(a)
        i += 1
    return out, gpus if isinstance(gpus, int) else _positive(gpus)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise MaskclsError(f"--gpus must be a number of processes >= 1 (got {text!r})")
    return int(text)
