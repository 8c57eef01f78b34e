"""DDP: 2 CPU processes (gloo) through aulib.train.fit give the same update as one process on the full batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from aulib.methods.base import Method
from aulib.train import TrainConfig, fit
from aulib.train.distributed import all_gather_concat, free_port

CFG = dict(epochs=1, optimizer="sgd", lr=0.5, momentum=0.0, progress=False, device="cpu", seed=0)


class Regress(Method):
    """No BatchNorm: torch's SyncBatchNorm is GPU-only, so on CPU the halves' BN statistics would differ."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 1))

    def training_step(self, batch, step):
        x, y = batch
        return {"loss": ((self.net(x).squeeze(-1) - y) ** 2).mean()}


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=g) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + 1.0
    return x, x.sum(1) + torch.randn(8, generator=g)


def _worker(rank: int, world: int, port: int, out_dir: str, result: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from aulib.train.distributed import cleanup, get_world_size, init_distributed

    assert init_distributed(backend="gloo") and get_world_size() == world  # gloo: CPU test, also on GPU hosts
    x, y = _data()
    half = len(x) // world
    loader = [(x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])]  # this rank's shard
    m = Regress()
    h = fit(m, loader, TrainConfig(**CFG), out_dir=out_dir)
    gathered = all_gather_concat(torch.arange(3.0) + 10 * rank)
    if rank == 0:
        torch.save({"state": m.state_dict(), "gathered": gathered, "loss": float(h["loss"].iloc[0])}, result)
    cleanup()


def test_two_gloo_processes_match_one_process_full_batch(tmp_path):
    # the single-process reference first: it also imports what the optimiser needs (torch._dynamo, slow),
    # which forked children then inherit instead of importing again
    x, y = _data()
    single = Regress()
    h = fit(single, [(x, y)], TrainConfig(**CFG))

    result = str(tmp_path / "ddp.pt")
    # fork is much faster (no re-import) but impossible once this process has initialised CUDA
    fork_ok = "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized()
    method = "fork" if fork_ok else "spawn"
    mp.start_processes(_worker, args=(2, free_port(), str(tmp_path / "run"), result), nprocs=2, join=True,
                       start_method=method)
    got = torch.load(result, weights_only=False)

    assert not torch.equal(single.state_dict()["net.0.weight"], Regress().state_dict()["net.0.weight"])
    for k, v in single.state_dict().items():
        torch.testing.assert_close(got["state"][k], v, atol=1e-6, rtol=1e-5, msg=k)
    # equal halves: the mean of the two processes' losses is the full batch's loss
    assert got["loss"] == pytest.approx(float(h["loss"].iloc[0]), rel=1e-5)
    torch.testing.assert_close(got["gathered"], torch.tensor([0.0, 1.0, 2.0, 10.0, 11.0, 12.0]))
    # files written once, by rank 0
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "run.json").is_file()


def test_all_gather_concat_is_identity_single_process():
    t = torch.randn(3, 2)
    assert all_gather_concat(t) is t
