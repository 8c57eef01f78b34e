"""EmoCo and RRL (tiny smoke configs) through aulib.train.fit under DDP: 2 gloo processes on CPU, faces streamed
and sharded by rank (aulib.data.stream). After the run both ranks hold the same weights (gradients averaged),
and EmoCo's class queues the same keys, gathered from both ranks (all_gather_concat): without the gather each
rank's queue would hold only its own keys."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.multiprocessing as mp

from aulib.train.distributed import free_port

B = 4  # per rank


def _emoco(rank: int):
    from aulib.data.stream import FaceStream
    from aulib.experiments import emoco as E
    from aulib.methods.emoco import EmoCo, mocov2_augmentation

    P = E.settings("smoke")
    cfg = E.pretrain_runs(P, P["channels"])["EmoCo"]
    torch.manual_seed(0)
    method = EmoCo(cfg)
    aug = mocov2_augmentation(P["image_size"], P["channels"], blur=False, crop_scale=P["crop_scale"])
    ds = FaceStream("affectnet", n=4 * B, image_size=P["image_size"], channels=P["channels"], seed=3, block=B,
                    item=E._TwoViewItem(aug))
    return method, torch.utils.data.DataLoader(ds, batch_size=B, drop_last=True)


def _rrl(rank: int):
    from aulib.data.stream import FaceStream
    from aulib.experiments import rrl as R
    from aulib.methods.rrl import RRL, TwoViewAugment

    P = R.settings("smoke")
    cfg = R.base_config(P)
    cfg = type(cfg).from_dict({**cfg.__dict__, "batch_size": B})
    K = len(cfg.aus)
    m = np.full((K, K), 0.3)
    np.fill_diagonal(m, 1.0)
    torch.manual_seed(0)
    method = RRL(cfg, m)
    ds = FaceStream("emotionet", n=4 * B, image_size=cfg.image_size, channels=3, seed=4, block=B,
                    item=R._StreamItem(TwoViewAugment(image_size=cfg.image_size)))
    return method, torch.utils.data.DataLoader(ds, batch_size=B, drop_last=True)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import warnings

    from aulib.train import TrainConfig, fit
    from aulib.train.distributed import cleanup, init_distributed

    assert init_distributed(backend="gloo")
    warnings.simplefilter("ignore")  # SyncBatchNorm is GPU-only: on CPU fit warns and keeps BatchNorm
    result = {}
    for name, build in (("emoco", _emoco), ("rrl", _rrl)):
        method, loader = build(rank)
        assert len(loader) == 2  # 4 blocks of B faces, 2 on each rank
        seen = []
        h = fit(method, loader, TrainConfig(epochs=1, optimizer="sgd", lr=0.05, progress=False, device="cpu",
                                            seed=0), out_dir=os.path.join(out, name),
                callbacks=[lambda info, seen=seen: seen.append(info["step"])])
        result[name] = {"state": {k: v.clone() for k, v in method.state_dict().items()},
                        "loss": float(h["loss"].iloc[-1]), "steps": seen}
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    cleanup()


def test_emoco_and_rrl_fit_under_two_gloo_processes(tmp_path):
    import aulib.experiments.emoco  # noqa: F401  (imported once here; forked children inherit it)
    import aulib.experiments.rrl  # noqa: F401

    fork_ok = "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized()
    mp.start_processes(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork" if fork_ok else "spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    for name in ("emoco", "rrl"):
        assert r0[name]["steps"] == [2] and np.isfinite(r0[name]["loss"])
        assert r0[name]["loss"] == r1[name]["loss"]  # the logged loss is the mean over ranks
        s0, s1 = r0[name]["state"], r1[name]["state"]
        assert s0.keys() == s1.keys()
        # BatchNorm running statistics are each rank's own on CPU (SyncBatchNorm is GPU-only; DDP broadcasts
        # rank 0's buffers before each forward, so after the last step they differ): every other tensor agrees
        compared = [k for k in s0 if not k.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))]
        assert len(compared) > len(s0) / 2
        for k in compared:
            torch.testing.assert_close(s0[k], s1[k], msg=f"{name}: {k} differs between ranks")
        assert (tmp_path / name / "last.pt").is_file()
    # the queue took 2 steps x B keys from each of the 2 ranks
    queues = [k for k in r0["emoco"]["state"] if "queue" in k and r0["emoco"]["state"][k].is_floating_point()]
    assert queues
    filled = sum(int((r0["emoco"]["state"][k].abs().sum(-1) > 0).sum()) for k in queues)
    assert filled >= 2 * 2 * B, filled
