"""Multi-process training under ``torchrun`` (DistributedDataParallel).

    torchrun --nproc_per_node=2 my_script.py      # my_script calls init_distributed() then fit(...)

``init_distributed()`` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and
starts a process group: ``"cpu:gloo,cuda:nccl"`` when CUDA is available (NCCL for GPU tensors, gloo for CPU
ones), plain gloo otherwise; ``backend=`` overrides. Without that environment it does nothing,
so the same script runs single-process. :func:`aulib.train.fit` notices an initialised group by itself: it
wraps the method in DDP (SyncBatchNorm when ``method.sync_batchnorm``), averages the logged losses, writes
files from rank 0 only and calls ``set_epoch`` on the sampler. Give it a loader whose sampler shards the data
(:func:`shard_loader` swaps a plain sampler for a ``DistributedSampler``; aulib's balanced samplers take
``rank``/``world_size``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from aulib.methods.base import all_gather_concat  # noqa: F401  (re-exported: moved down for EmoCo)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", get_rank()))


def init_distributed(backend: str | None = None) -> bool:
    """Start the process group from torchrun's env vars; returns True when running distributed."""
    if is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    # with CUDA: NCCL for GPU tensors and gloo for CPU ones (CPU-side collectives keep working)
    backend = backend or ("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    if "nccl" in backend and local_rank() < torch.cuda.device_count():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def free_port() -> int:
    """A free TCP port on localhost (for tests that start their own process group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrap_ddp(module: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``module`` (device_ids on CUDA)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    if device.type == "cuda":
        return DDP(module, device_ids=[device.index if device.index is not None else torch.cuda.current_device()],
                   find_unused_parameters=find_unused_parameters)
    return DDP(module, find_unused_parameters=find_unused_parameters)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over processes (a copy; identity when single-process)."""
    if not is_distributed():
        return tensor
    t = tensor.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / get_world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard_loader(loader: torch.utils.data.DataLoader, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True) -> torch.utils.data.DataLoader:
    """The same DataLoader with a ``DistributedSampler`` when running distributed (unchanged otherwise).

    A loader whose sampler already knows about ranks (has ``world_size``/``num_replicas``) or that uses a
    custom batch sampler is returned as it is.
    """
    if not is_distributed():
        return loader
    sampler = loader.sampler
    if hasattr(sampler, "num_replicas") or hasattr(sampler, "world_size"):
        return loader
    bs = loader.batch_sampler
    if loader.batch_size is None or (bs is not None and type(bs) is not torch.utils.data.BatchSampler):
        return loader
    from torch.utils.data import DataLoader, DistributedSampler

    ds_sampler = DistributedSampler(loader.dataset, num_replicas=get_world_size(), rank=get_rank(),
                                    shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=ds_sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, persistent_workers=loader.persistent_workers and loader.num_workers > 0)
