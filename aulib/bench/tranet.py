"""Benchmark: TRA-Net's training step against SE-ResNet50 forward+backward alone (images per second).

    from aulib.bench.tranet import run
    df = run(argparse.Namespace(device="cuda", batch_size=64, image_size=224, steps=20, warmup=5))
    # or: python -m aulib.bench tranet --device cuda   (--quick: a CPU-sized run)

Rows (tidy): model, what ("train_step" = forward + summed branch BCE + backward + SGD step, "fwd_bwd" =
forward + BCE + backward without the optimiser), device, dtype, batch, image_size, images_per_s, ms_per_step,
trainable_M (trainable parameters, millions). On CUDA the step runs under bf16 autocast (the trainer's AMP);
on CPU in float32. The TRA-Net / backbone ratio shows what the decoder, the three branches and their CBAM
blocks cost on top of the backbone (blocks 1-2 are frozen in TRA-Net, so its backbone backward is shorter).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from aulib.bench import option, seconds_per_call
from aulib.methods.tranet import DISFA_AUS, TRANetConfig, TRANetMethod
from aulib.models import create_backbone

DEFAULTS: dict[str, Any] = {"device": "auto", "batch_size": 64, "image_size": 224, "steps": 20, "warmup": 5,
                            "backbone": "seresnet50", "in_chans": 3}
# ``--quick``: a CPU-sized run of the same code (tiny SE-ResNet, narrow decoder and branches)
QUICK: dict[str, Any] = {"batch_size": 8, "image_size": 64, "steps": 3, "warmup": 1, "backbone": "seresnet_tiny",
                         "in_chans": 1}


def _arg(args, name):
    return option(args, name, DEFAULTS, QUICK)


def run(args: Any = None) -> pd.DataFrame:
    """Measure images/s of the TRA-Net training step and of SE-ResNet50 forward+backward on ``args.device``."""
    args = args if args is not None else {}
    dev_name = str(_arg(args, "device"))
    device = torch.device("cuda" if dev_name == "auto" and torch.cuda.is_available() else
                          ("cpu" if dev_name == "auto" else dev_name))
    bs, size = int(_arg(args, "batch_size")), int(_arg(args, "image_size"))
    steps, warmup = int(_arg(args, "steps")), int(_arg(args, "warmup"))
    backbone, in_chans = str(_arg(args, "backbone")), int(_arg(args, "in_chans"))
    amp = device.type == "cuda"
    dtype = "bf16" if amp else "fp32"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    k = len(DISFA_AUS)
    x = torch.rand(bs, in_chans, size, size, device=device)
    batch = {"image": x, "labels": torch.randint(0, 2, (bs, k), device=device).float(),
             "valid": torch.ones(bs, k, dtype=torch.bool, device=device)}
    rows = []

    def record(model_name: str, what: str, seconds: float, module: torch.nn.Module) -> None:
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        rows.append({"model": model_name, "what": what, "device": str(device), "dtype": dtype, "batch": bs,
                     "image_size": size, "images_per_s": bs / seconds, "ms_per_step": 1000 * seconds,
                     "trainable_M": trainable / 1e6})

    # TRA-Net: the method's training step
    def tranet_times() -> None:
        narrow = {} if backbone == "seresnet50" else {"decoder_channels": (32, 32, 32), "fc_hidden": 32}
        cfg = TRANetConfig(backbone=backbone, in_chans=in_chans, image_size=size, **narrow)
        method = TRANetMethod(cfg).to(device).train()
        opt = torch.optim.SGD(method.parameter_groups(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)

        def tranet_step(update: bool = True) -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = method.training_step(batch, 0)["loss"]
            loss.backward()
            if update:
                opt.step()

        record("TRA-Net", "train_step", seconds_per_call(tranet_step, steps, warmup, device), method)
        record("TRA-Net", "fwd_bwd", seconds_per_call(lambda: tranet_step(False), steps, warmup, device), method)

    tranet_times()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # the backbone alone, all blocks trainable, a linear head to the same AUs
    net = create_backbone(backbone, in_chans=in_chans, num_classes=k).to(device).train()

    def backbone_step() -> None:
        net.zero_grad(set_to_none=True)
        with autocast():
            loss = F.binary_cross_entropy_with_logits(net(x).float(), batch["labels"])
        loss.backward()

    record(backbone, "fwd_bwd", seconds_per_call(backbone_step, steps, warmup, device), net)
    df = pd.DataFrame(rows)
    ref = df.loc[df.model == backbone, "images_per_s"].iloc[0]
    df["relative_to_backbone"] = df["images_per_s"] / ref
    return df


if __name__ == "__main__":  # the same as `python -m aulib.bench tranet [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["tranet", *sys.argv[1:]]))
