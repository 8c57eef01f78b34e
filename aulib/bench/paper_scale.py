"""Each method's training step at a profile's sizes, against its bare backbone in the same run, with its data
pipeline's CPU cost and the projected hours of the paper's schedule.

    python -m aulib.bench --profile gpu --steps 20              # every method (= python -m aulib.bench paper_scale)
    python -m aulib.bench paper_scale --profile gpu --steps 1 --batch 2 --device cpu   # CPU check of the code
    python -m aulib.bench --profile gpu --steps 20 --methods rrl,emoco

One row per method: ``step_img_s`` (the method's full training step: its real backbone, batch, image size,
bf16 on CUDA; from its own benchmark module ``aulib.bench.<method>``), ``limit_img_s`` (the bare backbone's
forward+backward doing the same backbone work, measured in the same run), ``step_vs_limit`` (target >= 0.7),
``data_img_s`` (the real loader's CPU side: faces drawn on the fly by :mod:`aulib.data.stream` where the
profile streams, else read from faces held in memory, plus the method's per-sample augmentation, timed on
``data_samples`` samples in this process and scaled to the loader's workers), ``data_wait_share`` (the share
of a step the GPU would wait for data with perfect prefetching: 1 - data/step when the loader is slower;
target < 0.05), ``peak_gib`` (CUDA peak allocated, or the host's peak RSS on CPU), ``paper_hours`` (the
plan's images of the method's main run at the slower of step and data). ``--batch`` overrides every batch size
(the projection still uses the profile's).
"""

from __future__ import annotations

import resource
import time
from argparse import Namespace
from typing import Any

import numpy as np
import pandas as pd
import torch

from aulib import profiles

METHODS = ("cnn_study", "tranet", "aunet", "rrl", "emoco")


def _ns(args: Any, **kw: Any) -> Namespace:
    return Namespace(device=args.device, quick=False, **kw)


def _steps(args: Any) -> tuple[int, int]:
    steps = int(getattr(args, "steps", None) or 20)
    return steps, int(getattr(args, "warmup", None) if getattr(args, "warmup", None) is not None
                      else min(5, steps // 4))


def _pick(df: pd.DataFrame, col: str, step: str, limit: str) -> tuple[float, float]:
    t = df.set_index(col)["images_per_s"]
    return float(t[step]), float(t[limit])


def _per_sample_seconds(make_item, n: int) -> float:
    """CPU seconds per sample, on one thread as in a DataLoader worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_item(0)  # first call: imports, caches
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            make_item(i)
        return (time.perf_counter() - t0) / n
    finally:
        torch.set_num_threads(threads)


def _faces(preset: str, size: int, channels: int, n: int):
    """At least ``n`` + 1 generator faces of ``preset`` in memory (the in-memory loaders' source)."""
    from aulib.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(preset=preset, n_subjects=n + 1, sequences_per_subject=1, frames_per_sequence=1,
                                image_size=size, channels=channels, workers=1, progress=False))


def _workers(value: Any) -> int:
    from aulib.data.loader import auto_workers

    return auto_workers() if value == "auto" else max(1, int(value or 0))


def _rrl(args, P, batch, steps, warmup, n_data):
    from aulib.bench import rrl as bench
    from aulib.data.stream import FaceStream
    from aulib.experiments.rrl import _StreamItem
    from aulib.methods.rrl import TwoViewAugment

    m = P["method"]
    df = bench.run(_ns(args, backbone=m["backbone"], batch_size=batch, image_size=m["image_size"],
                       local_stride=m["local_stride"], hidden_dim=m["hidden_dim"], proj_dim=m["proj_dim"],
                       steps=steps, warmup=warmup, ot_iters=m["ot_iters"], n_problems=2 * batch))
    step, limit = _pick(df, "measure", "rrl_step", "swin_limit")
    ot = float(df.set_index("measure").loc["ot_relation_loss", "share_of_step"])
    batched = bool(P.get("batch_augment"))
    # per-sample views in the loader workers, or (batch_augment) plain faces there and the views made on the
    # batch on the training device, timed here as their share of a step
    per_sample = None if batched else TwoViewAugment(image_size=m["image_size"])
    if P.get("stream"):
        s = FaceStream(P["pretrain_data"]["preset"], n=10**6, image_size=m["image_size"], channels=3,
                       item=_StreamItem(per_sample))
        sec = _per_sample_seconds(lambda i: s.item(s.face(i)), n_data)
    else:  # faces drawn once and held in memory (experiments.rrl.pretrain_loader's FrameDataset)
        from aulib.data.dataset import FrameDataset

        fd = FrameDataset(_faces(P["pretrain_data"]["preset"], m["image_size"], 3, n_data), transform=per_sample,
                          size=m["image_size"], channels=3)
        sec = _per_sample_seconds(lambda i: fd[i % len(fd)], n_data)
    extra = {"ot_share_of_step": ot}
    if batched:
        aug = _batched_view_seconds(m["image_size"], batch, torch.device(args.device), steps)
        extra.update(batch_augment_s_per_image=aug, augment_share_of_step=aug / (aug + 1.0 / step))
    return step, limit, sec, P.get("num_workers", 0), extra


def _batched_view_seconds(size: int, batch: int, device: torch.device, steps: int) -> float:
    """Seconds per image of RRL's two views made on a whole batch on ``device`` (aulib.data.batch_augment)."""
    from aulib.data.batch_augment import BatchTwoViews
    from aulib.methods.rrl import VIEW1, VIEW2

    b = {"image": torch.rand(batch, 3, size, size), "landmarks": torch.rand(batch, 68, 2) * (size - 1)}
    return _device_seconds(BatchTwoViews(VIEW1, VIEW2, size), b, device, steps) / batch


def _device_seconds(fn: torch.nn.Module, batch: dict, device: torch.device, steps: int) -> float:
    """Seconds per call of ``fn(batch)`` on ``device`` (after one warm-up call; CUDA synchronised)."""
    fn = fn.to(device)
    b = {k: v.to(device) for k, v in batch.items()}
    fn(b)  # first call: kernels, caches
    n = max(1, min(steps, 5))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(b)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / n


def _emoco(args, P, batch, steps, warmup, n_data):
    from aulib.bench import emoco as bench
    from aulib.data.stream import FaceStream
    from aulib.experiments.emoco import _TwoViewItem
    from aulib.methods.emoco import mocov2_augmentation

    df = bench.run(_ns(args, backbone=P["backbone"], batch_size=batch, image_size=P["image_size"],
                       queue_size=P["queue_size"], proj_hidden=P["proj_hidden"], proj_dim=P["proj_dim"],
                       in_chans=P["channels"], steps=steps, warmup=warmup))
    step, limit = _pick(df, "measure", "emoco_step", "resnet_limit")
    batched = bool(P.get("batch_augment"))
    aug = None if batched else mocov2_augmentation(P["image_size"], P["channels"], blur=P["blur"],
                                                   crop_scale=P["crop_scale"])
    if P.get("stream"):
        s = FaceStream("affectnet", n=10**6, image_size=P["image_size"], channels=P["channels"],
                       item=_TwoViewItem(aug))
        sec = _per_sample_seconds(lambda i: s.item(s.face(i)), n_data)
    else:  # faces drawn once and held in memory (experiments.emoco.pretrain_loader's TwoViews.from_canonical)
        from aulib.methods.emoco import TwoViews

        faces = TwoViews.from_canonical(_faces("affectnet", P["image_size"], P["channels"], n_data), transform=aug)
        data = faces.base if batched else faces
        sec = _per_sample_seconds(lambda i: data[i % len(data)], n_data)
    extra = {}
    if batched:
        from aulib.data.batch_augment import BatchMoCoViews

        views = BatchMoCoViews(P["image_size"], P["channels"], blur=P["blur"], crop_scale=tuple(P["crop_scale"]))
        x = {"image": torch.rand(batch, P["channels"], P["image_size"], P["image_size"]),
             "emotion": torch.zeros(batch, dtype=torch.long)}
        a = _device_seconds(views, x, torch.device(args.device), steps) / batch
        extra.update(batch_augment_s_per_image=a, augment_share_of_step=a / (a + 1.0 / step))
    return step, limit, sec, P.get("num_workers", 0), extra


def _tranet(args, P, batch, steps, warmup, n_data):
    from aulib.bench import tranet as bench
    from aulib.data.synthetic import SynthConfig, generate
    from aulib.experiments.tranet import train_loader
    from aulib.methods.tranet import TRANetConfig

    c = P["config"]
    df = bench.run(_ns(args, backbone=c["backbone"], in_chans=c["in_chans"], batch_size=batch,
                       image_size=c["image_size"], steps=steps, warmup=warmup))
    step = float(df[(df.model == "TRA-Net") & (df.what == "train_step")].images_per_s.iloc[0])
    limit = float(df[(df.model != "TRA-Net") & (df.what == "fwd_bwd")].images_per_s.iloc[0])
    syn = {**P["synth"], "n_subjects": 3, "sequences_per_subject": 1, "frames_per_sequence": max(8, n_data)}
    ds = generate(SynthConfig(preset="disfa", **syn))
    cfg = TRANetConfig.from_dict({**c, "batch_size": 1, "num_workers": 0})
    data = train_loader(ds, np.arange(len(ds)), cfg).dataset
    sec = _per_sample_seconds(lambda i: data[i % len(data)], n_data)
    return step, limit, sec, c.get("num_workers", 0), {}


def _aunet(args, P, batch, steps, warmup, n_data):
    from aulib.bench import aunet as bench
    from aulib.data.dataset import FrameDataset
    from aulib.data.synthetic import SynthConfig, generate

    m = P["method"]
    df = bench.run(_ns(args, batch_size=batch, image_size=m["image_size"], fan_width=m["fan_width"],
                       head_width=m["head_width"], steps=steps, warmup=warmup))
    # AUNet's backbone is the frozen FAN: its limit is the FAN forward on the triplet
    step, limit = _pick(df, "benchmark", "aunet_train_step", "frozen_fan_forward")
    ds = generate(SynthConfig(preset="bp4d", n_subjects=1, sequences_per_subject=1,
                              frames_per_sequence=max(8, n_data), image_size=m["image_size"], channels=1))
    data = FrameDataset(ds, temporal_offset=m["temporal_offset"], size=m["image_size"], channels=3)
    sec = _per_sample_seconds(lambda i: data[i % len(data)], n_data)
    return step, limit, sec, 8, {}


def _cnn_study(args, P, batch, steps, warmup, n_data):
    from aulib.bench import cnn_study as bench

    n_aus = max(1, batch // (P["pos_per_au"] + P["neg_per_au"]))
    # the paper's largest Table I backbone where the profile runs it, else the profile's first (cpu: Baseline)
    model = "VGG-16" if "VGG-16" in P["table1_models"] else P["table1_models"][0]
    df = bench.run(_ns(args, models=model, image_size=P["image_size"], n_aus=n_aus, steps=steps, warmup=warmup,
                       loader_batches=1))
    t = df.set_index("benchmark")["images_per_s"]
    step, limit = float(t["study_train_step"]), float(t["backbone_forward_backward"])
    return step, limit, 1.0 / float(t["cpu_loader_augD_oversampling"]), P.get("num_workers", 0), {}


RUNNERS = {"cnn_study": (_cnn_study, "01_cnn_study", "Table I VGG-16",
                         lambda P: (P["pos_per_au"] + P["neg_per_au"]) * 12),
           "tranet": (_tranet, "02_tranet", "Table 2", lambda P: P["config"]["batch_size"]),
           "aunet": (_aunet, "03_aunet", "AU heads", lambda P: P["method"]["batch_size"]),
           "rrl": (_rrl, "04_rrl", "pretraining", lambda P: P["method"]["batch_size"]),
           "emoco": (_emoco, "05_emoco", "pretraining", lambda P: P["batch_size"])}


def run(args) -> pd.DataFrame:
    from aulib.experiments import plan as plan_mod

    profile = str(getattr(args, "profile", None) or "gpu")
    names = [n.strip() for n in str(getattr(args, "methods", None) or ",".join(METHODS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(RUNNERS)}")
    steps, warmup = _steps(args)
    n_data = int(getattr(args, "data_samples", None) or 8)
    on = plan_mod.machine(getattr(args, "machine", None))
    dev = torch.device(args.device)
    rows = []
    for name in names:
        fn, nb, main_run, batch_of = RUNNERS[name]
        P = profiles.get(profile, name)
        batch = int(getattr(args, "batch", None) or batch_of(P))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        step, limit, sec, workers, extra = fn(args, P, batch, steps, warmup, n_data)
        w = _workers(workers)
        data = w / sec
        peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
        rows_nb = plan_mod.plan(profile, [nb], on=on)
        # the paper's main run, or (a profile that does not run it, e.g. cpu's CNN study) the notebook's first
        main = ([r for r in rows_nb if r.run.startswith(main_run)] or rows_nb)[0]
        rate = min(step, data)
        rows.append({"method": name, "profile": profile, "device": torch.cuda.get_device_name(dev)
                     if dev.type == "cuda" else "cpu", "batch": batch, "steps": steps,
                     "step_img_s": step, "limit_img_s": limit, "step_vs_limit": step / limit,
                     "data_s_per_sample": sec, "workers": w, "data_img_s": data,
                     "data_wait_share": max(0.0, 1.0 - data / step), "peak_gib": peak,
                     "paper_run": f"{nb} / {main.run}", "paper_images": main.images,
                     "paper_hours": main.images / rate / 3600, "bench_s": time.perf_counter() - t0, **extra})
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


if __name__ == "__main__":
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["paper_scale", *sys.argv[1:]]))
