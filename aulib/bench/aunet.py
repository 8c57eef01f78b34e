"""AUNet throughput: a full training step (frozen FAN on the t-T, t, t+T triplet + TDN head forward/backward +
VAE consistency + AdamW step) against its two parts alone (frozen FAN forward; head forward/backward on
ready-made features). Images/s count training frames t (one triplet = one image). Printed, never asserted.

    python -m aulib.bench aunet --device cuda      # batch 64, 256 px, full FAN and head, bf16
    python -m aulib.bench aunet --device cpu --quick   # tiny sizes, only to check it runs
"""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from aulib.bench import option, seconds_per_call
from aulib.methods.aunet import AUNetConfig, AUNetMethod, build_fan
from aulib.models.aunet import AUVAE

DEFAULTS = {"device": "auto", "batch_size": 64, "image_size": 256, "steps": 20, "warmup": 5, "fan_width": 256,
            "head_width": 256, "variant": "aunet"}
QUICK = {"batch_size": 2, "image_size": 64, "steps": 2, "warmup": 1, "fan_width": 32, "head_width": 32}


def _arg(args, name):
    return option(args, name, DEFAULTS, QUICK)


def run(args=None) -> pd.DataFrame:
    """Seconds per step and images/s of (a) AUNet training, (b) frozen FAN forward on the triplets, (c) head
    forward+backward on features; on ``args.device`` (cuda with bf16 autocast when available)."""
    args = args if args is not None else SimpleNamespace()
    dev = _arg(args, "device")
    device = torch.device("cuda" if dev == "auto" and torch.cuda.is_available() else ("cpu" if dev == "auto" else dev))
    b, size, steps, warmup = (int(_arg(args, k)) for k in ("batch_size", "image_size", "steps", "warmup"))
    cfg = AUNetConfig(variant=_arg(args, "variant"), image_size=size, fan_width=int(_arg(args, "fan_width")),
                      head_width=int(_arg(args, "head_width")), batch_size=b)
    tdn = cfg.variant in ("au_tdn", "aunet")
    torch.manual_seed(0)
    method = AUNetMethod(cfg, np.full(cfg.n_aus, 1 / cfg.n_aus), fan=build_fan(cfg), vae=AUVAE(cfg.n_aus, cfg.latent))
    method.to(device).train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    images = torch.rand(b, 3, 3, size, size, device=device)
    batch = {"images": images, "image": images[:, 1], "labels": torch.randint(0, 2, (b, cfg.n_aus), device=device).float(),
             "valid": torch.ones(b, cfg.n_aus, dtype=torch.bool, device=device)}

    def train_step():
        with amp:
            loss = method.training_step(batch, 0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    n_frames = 3 if tdn else 1

    def fan_forward():
        with amp, torch.no_grad():
            method.fan_features(images[:, :n_frames].flatten(0, 1))

    with amp, torch.no_grad():
        feats = method.fan_features(images[:, :n_frames].flatten(0, 1)).unflatten(0, (b, n_frames)).float()

    def head_step():
        with amp:
            z = method.head(feats[:, 1], feats[:, 0], feats[:, 2]) if tdn else method.head(feats[:, 0])
            loss = z.float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rows = []
    for name, fn in (("aunet_train_step", train_step), ("frozen_fan_forward", fan_forward),
                     ("head_forward_backward", head_step)):
        s = seconds_per_call(fn, steps, warmup, device)
        rows.append({"benchmark": name, "variant": cfg.variant, "device": str(device),
                     "dtype": "bf16" if device.type == "cuda" else "fp32", "batch_size": b, "image_size": size,
                     "frames_per_image": n_frames, "sec_per_step": s, "images_per_s": b / s})
    df = pd.DataFrame(rows)
    parts = df.set_index("benchmark").sec_per_step
    df["share_of_train_step"] = df.sec_per_step / parts["aunet_train_step"]
    if device.type == "cuda":
        df["peak_mem_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    return df


if __name__ == "__main__":  # the same as `python -m aulib.bench aunet [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["aunet", *sys.argv[1:]]))
