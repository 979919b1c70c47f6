"""Distributed plumbing on torch.distributed: the torchrun environment, rank-0 printing, barriers, DDP wrapping.

    env = dist.init()                    # reads RANK / WORLD_SIZE / LOCAL_RANK set by torchrun; 1 process otherwise
    dist.print0("only rank 0 prints")
    model = dist.wrap(objective, env)    # DDP when world_size > 1, the module itself otherwise
    dist.barrier(env); dist.close(env)

Backends: nccl on CUDA, gloo on CPU. Launch with torchrun (see README, "Distributed pretraining"):

    torchrun --standalone --nproc_per_node 8 -m electra pretrain configs/base.toml
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import torch
import torch.distributed as td

from electra.errors import ElectraError


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ElectraError(f"environment variable {name}={value!r} is not an integer") from None


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The one device rule for every command: 'auto' -> cuda:LOCAL_RANK when CUDA is available, else cpu; 'cpu';
    'cuda' (cuda:LOCAL_RANK) or 'cuda:N'. Anything else, or CUDA asked for where there is none, is an ElectraError."""
    name = str(name).strip().lower()
    if name == "gpu":
        raise ElectraError("device 'gpu' is not a device name: use cuda (or auto, cpu, cuda:N)")
    if name not in ("auto", "cpu", "cuda") and not re.fullmatch(r"cuda:\d+", name):
        raise ElectraError(f"device '{name}' must be auto, cpu, cuda or cuda:N")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ElectraError(f"device '{name}' asked for, but CUDA is not available on this machine (use auto or cpu)")
    if name.startswith("cuda:"):
        index = int(name.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ElectraError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def init(device: str = "auto") -> DistEnv:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = pick_device(device, local_rank)
    if world_size > 1 and not td.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        td.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world_size, local_rank, dev)


def close(env: DistEnv) -> None:
    if env.distributed and td.is_initialized():
        td.destroy_process_group()


def print0(*args, file=None, **kwargs) -> None:
    """print() on rank 0 only (rank from the torchrun environment)."""
    if _env_int("RANK", 0) == 0:
        print(*args, file=file or sys.stdout, flush=True, **kwargs)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        td.barrier()


def all_reduce_mean(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Mean over ranks (in place); identity for one process."""
    if env.distributed:
        td.all_reduce(t, op=td.ReduceOp.SUM)
        t /= env.world_size
    return t


def all_reduce_max(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        td.all_reduce(t, op=td.ReduceOp.MAX)
    return t


def wrap(module: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel around `module` for several processes; the module itself for one.
    Every parameter gets a gradient every step (generator and discriminator), so no find_unused_parameters."""
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(module, device_ids=ids)
