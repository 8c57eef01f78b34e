"""Images/s of aulib's training step versus the bare backbone forward + backward.

    python -m aulib.bench train_step --device cuda [--models baseline_cnn,vgg16_gap] [--batch-size 96]
           [--image-size 96] [--in-chans 1] [--steps 30] [--warmup 10] [--amp bf16|none]

For each registered backbone (``aulib.models.create_backbone(name, in_chans, num_classes=12)``):

* ``bare_fwd_bwd``: ``BCE(model(x), y).backward()`` on device-resident tensors, no optimiser (the ceiling);
* ``bare_step``: the same plus ``optimizer.step()`` (Adam), what a hand-written loop does;
* ``aulib_fit``: a whole :func:`aulib.train.fit` epoch of ``steps`` steps through
  :class:`aulib.methods.supervised.Supervised` (batch moved by the trainer, finiteness check, logging,
  ``on_after_optimizer_step``; no checkpoint files), timed from the trainer's history after a warm-up epoch.

On CUDA the three use bf16 autocast (``--amp none`` for fp32). ``overhead_vs_bare_step`` = 1 -
aulib_fit / bare_step images/s. ``--quick`` makes a CPU-sized run (tiny models, small batch).
"""

from __future__ import annotations

from contextlib import nullcontext

import pandas as pd
import torch
import torch.nn.functional as F

from aulib.bench import option, seconds_per_call

DEFAULTS = {"models": "baseline_cnn,vgg16_gap", "batch_size": 96, "image_size": 96, "in_chans": 1, "steps": 30,
            "warmup": 10, "amp": "bf16", "n_aus": 12}
QUICK = {"models": "baseline_cnn,resnet_tiny", "batch_size": 16, "image_size": 64, "steps": 3, "warmup": 1}


def _arg(args, name):
    return option(args, name, DEFAULTS, QUICK)


def run(args=None) -> pd.DataFrame:
    device = str(getattr(args, "device", None) or "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    names = [n.strip() for n in str(_arg(args, "models")).split(",") if n.strip()]
    bs, size, chans = int(_arg(args, "batch_size")), int(_arg(args, "image_size")), int(_arg(args, "in_chans"))
    steps, warmup, k = int(_arg(args, "steps")), int(_arg(args, "warmup")), int(_arg(args, "n_aus"))
    use_amp = dev.type == "cuda" and str(_arg(args, "amp")) != "none"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True

    rows = []
    for name in names:
        rows += _measure(name, dev, bs, size, chans, k, steps, warmup, use_amp)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    base = df[df.variant == "bare_step"].set_index("model")["images_per_s"]
    df["overhead_vs_bare_step"] = [1 - r.images_per_s / base[r.model] for r in df.itertuples()]
    return df


def _measure(name: str, dev: torch.device, bs: int, size: int, chans: int, k: int, steps: int, warmup: int,
             use_amp: bool) -> list[dict]:
    from aulib.methods.supervised import Supervised
    from aulib.models import create_backbone
    from aulib.train import TrainConfig, fit

    torch.manual_seed(0)
    x = torch.rand(bs, chans, size, size, device=dev)
    y = (torch.rand(bs, k, device=dev) < 0.5).float()
    v = torch.ones_like(y, dtype=torch.bool)
    model = create_backbone(name, in_chans=chans, num_classes=k, img_size=size).to(dev).train()
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def fwd_bwd():
        with amp():
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def bare_step():
        opt.zero_grad(set_to_none=True)
        with amp():
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        loss.backward()
        opt.step()

    t_fb = seconds_per_call(fwd_bwd, steps, warmup, dev)
    t_step = seconds_per_call(bare_step, steps, warmup, dev)

    method = Supervised(model=model)
    batch = {"image": x, "labels": y, "valid": v}
    cfg = TrainConfig(epochs=2, optimizer="adam", lr=1e-4, steps_per_epoch=steps, device=str(dev), amp=use_amp,
                      progress=False)
    # epoch 1 warms up (cudnn autotune, optimiser state); epoch 2 is timed by the trainer itself
    hist = fit(method, [batch], cfg)
    t_fit = float(hist["time"].iloc[-1]) / steps

    n_params = sum(p.numel() for p in model.parameters())
    return [{"model": name, "variant": variant, "device": str(dev), "amp": "bf16" if use_amp else "fp32",
             "batch_size": bs, "input": f"{chans}x{size}x{size}", "params_M": n_params / 1e6,
             "ms_per_step": 1e3 * t, "images_per_s": bs / t}
            for variant, t in (("bare_fwd_bwd", t_fb), ("bare_step", t_step), ("aulib_fit", t_fit))]
