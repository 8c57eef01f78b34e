"""EmoCo pretraining throughput next to the bare ResNet-50 limit, and the share of the multi-queue operations.

    python -m aulib.bench.emoco --device cuda            # batch 256, 224 px, bf16, K = 65536 per class
    python -m aulib.bench.emoco --device cpu --quick     # tiny sizes, only to check it runs

Rows (one DataFrame, one row per measurement):

* ``emoco_step``      a full EmoCo training step: q fwd+bwd, k fwd (momentum encoder), L_emo, N + Eq.5 over the
                      class queue, enqueue, SGD step, momentum update (Eq.3);
* ``resnet_limit``    the bare backbone doing the same backbone work: one fwd+bwd for the query view, one
                      no-grad fwd for the key view, SGD step — the ceiling EmoCo can approach;
* ``queue_ops``       the dictionary alone at the real sizes: N of q, k+ and the (C, K, D) queue, the (B, C, K)
                      negative logits, Eq.5 forward+backward, enqueue;
* ``momentum_update`` Eq.3 over encoder + projector.

``share_of_step`` = time / emoco_step time. Timings are medians over ``steps`` iterations after ``warmup``,
synchronised with the device. Printed and returned, never asserted.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from aulib.bench import seconds_per_call, use_fast_cuda_kernels
from aulib.methods.emoco import EmoCo, EmoCoConfig


def _settings(args) -> dict:
    quick = bool(getattr(args, "quick", False))
    dev = getattr(args, "device", None) or "auto"
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    s = dict(device=torch.device(dev), quick=quick,
             backbone="resnet_tiny" if quick else "resnet50",
             batch_size=16 if quick else 256, image_size=64 if quick else 224,
             queue_size=512 if quick else 65536, proj_hidden=256 if quick else 2048, proj_dim=128, in_chans=3,
             steps=3 if quick else 20, warmup=1 if quick else 5)
    for k in ("backbone", "batch_size", "image_size", "queue_size", "proj_hidden", "proj_dim", "in_chans", "steps",
              "warmup"):
        if getattr(args, k, None) is not None:
            s[k] = getattr(args, k)
    s["dtype"] = torch.bfloat16 if s["device"].type == "cuda" else torch.float32
    return s


def run(args) -> pd.DataFrame:
    """Benchmark on ``args.device`` (``args.quick`` for CPU-sized runs); returns the tidy table."""
    s = _settings(args)
    device, B, S, dtype = s["device"], s["batch_size"], s["image_size"], s["dtype"]
    use_fast_cuda_kernels(device)
    torch.manual_seed(0)
    C = s["in_chans"]
    cfg = EmoCoConfig(backbone=s["backbone"], in_chans=C, queue_size=s["queue_size"], proj_hidden=s["proj_hidden"],
                      proj_dim=s["proj_dim"])
    model = EmoCo(cfg).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameter_groups(), lr=0.03 * B / 256, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    batch = {"q": torch.rand(B, C, S, S, device=device, generator=gen).contiguous(memory_format=torch.channels_last),
             "k": torch.rand(B, C, S, S, device=device, generator=gen).contiguous(memory_format=torch.channels_last),
             "emotion": torch.randint(0, cfg.num_classes, (B,), device=device, generator=gen)}
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def emoco_step():
        with autocast:
            out = model.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.on_after_optimizer_step(0, 1)

    # the bare backbone: same query/key encoder work, nothing EmoCo-specific
    bare = model.encoder
    bare_opt = torch.optim.SGD(bare.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)

    def resnet_limit():
        with autocast:
            f = bare(batch["q"])
            with torch.no_grad():
                model.key_encoder(batch["k"])
        bare_opt.zero_grad(set_to_none=True)
        f.float().mean().backward()
        bare_opt.step()

    q = F.normalize(torch.randn(B, cfg.proj_dim, device=device), dim=1).requires_grad_(True)
    k = F.normalize(torch.randn(B, cfg.proj_dim, device=device), dim=1)

    def queue_ops():
        with autocast:
            loss = model.contrastive_loss(q, k, batch["emotion"])
        loss.backward()
        model.dictionary.enqueue(k, batch["emotion"])

    rows = []
    t_step = seconds_per_call(emoco_step, s["steps"], s["warmup"], device)
    for name, fn in (("emoco_step", None), ("resnet_limit", resnet_limit), ("queue_ops", queue_ops),
                     ("momentum_update", model.momentum_update)):
        t = t_step if fn is None else seconds_per_call(fn, s["steps"], s["warmup"], device)
        rows.append({"measure": name, "ms": 1000 * t, "images_per_s": B / t if name in ("emoco_step", "resnet_limit")
                     else float("nan"), "share_of_step": t / t_step})
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    df = pd.DataFrame(rows).assign(device=name, backbone=s["backbone"], batch_size=B, image_size=S,
                                   queue_size=s["queue_size"], dtype=str(dtype).replace("torch.", ""),
                                   peak_mem_gib=mem)
    return df


if __name__ == "__main__":  # the same as `python -m aulib.bench emoco [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["emoco", *sys.argv[1:]]))
