"""RRL pretraining throughput next to the bare Swin-T limit, the OT relation loss's share of a step, and
POT's batched Sinkhorn against a per-sample loop.

    python -m aulib.bench.rrl --device cuda            # batch 256, 224 px, bf16, Swin-T, K = 12
    python -m aulib.bench.rrl --device cpu --quick     # tiny sizes, only to check it runs

Rows (one DataFrame, one row per measurement):

* ``rrl_step``          a full RRL step (global + local + relation, Eq.7): AU maps from landmarks, two online
                        fwd+bwd (f, local head, g, q), two target fwd, Sinkhorn, AdamW, weight decay and EMA (Eq.1);
* ``swin_limit``        the bare backbone doing the same backbone work: two online fwd+bwd and two no-grad
                        target fwd per image, AdamW step — the ceiling RRL can approach;
* ``ot_relation_loss``  Eq.4-6 alone at the real sizes (both directions: 2B problems of K x K, fwd+bwd);
* ``attention_maps``    the 2B sets of K AU maps built from landmarks;
* ``sinkhorn_batched``  ``ot.batch.solve_batch`` on ``n_problems`` (256) problems of K x K at once;
* ``sinkhorn_loop``     the same problems one by one with POT's ``ot.sinkhorn`` (same reg, same iterations).

``share_of_step`` = time / rrl_step time; ``speedup_vs_loop`` on the batched row. Timings are medians over
``steps`` iterations after ``warmup``, synchronised with the device. Printed and returned, never asserted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from aulib.bench import seconds_per_call, use_fast_cuda_kernels
from aulib.losses.ot_relation import ot_relation_loss, relation_cost, transport_plans
from aulib.methods.rrl import BP4D_AUS, RRL, RRLConfig


def _settings(args) -> dict:
    quick = bool(getattr(args, "quick", False))
    dev = getattr(args, "device", None) or ("cuda" if torch.cuda.is_available() else "cpu")
    s = dict(device=torch.device(dev), quick=quick, backbone="swin_tiny_test" if quick else "swin_t",
             batch_size=16 if quick else 256, image_size=64 if quick else 224,
             local_stride=8 if quick else 16, hidden_dim=256 if quick else 4096, proj_dim=64 if quick else 256,
             n_problems=256, steps=3 if quick else 20, warmup=1 if quick else 5, ot_iters=50)
    for k in ("backbone", "batch_size", "image_size", "local_stride", "hidden_dim", "proj_dim", "n_problems", "steps",
              "warmup", "ot_iters"):
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
    K = len(BP4D_AUS)
    rng = np.random.default_rng(0)
    m = rng.uniform(0.1, 0.9, (K, K))
    np.fill_diagonal(m, 1.0)
    cfg = RRLConfig(backbone=s["backbone"], image_size=S, local_stride=s["local_stride"],
                    hidden_dim=s["hidden_dim"], proj_dim=s["proj_dim"], batch_size=B, ot_iters=s["ot_iters"])
    model = RRL(cfg, m).to(device)
    opt = torch.optim.AdamW(model.parameter_groups(), lr=cfg.lr)
    gen = torch.Generator(device=device).manual_seed(0)
    # landmarks: the mean face of a 224 crop scaled to S, jittered; enough for realistic map positions
    lm = (torch.rand(B, 2, 68, 2, device=device, generator=gen) * 0.5 + 0.25) * S
    lm[..., 39, 0], lm[..., 42, 0] = 0.42 * S, 0.58 * S
    batch = {"image": torch.rand(B, 2, 3, S, S, device=device, generator=gen), "landmarks": lm}
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)

    def rrl_step():
        with autocast:
            out = model.training_step(batch, 0)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        model.on_after_optimizer_step(0, 10)

    enc, tenc = model.online.encoder, model.target.encoder
    bare_opt = torch.optim.AdamW(enc.parameters(), lr=cfg.lr)
    x1, x2 = batch["image"][:, 0].contiguous(), batch["image"][:, 1].contiguous()

    def swin_limit():
        with autocast:
            g1, _ = enc(x1)
            g2, _ = enc(x2)
            with torch.no_grad():
                tenc(x1)
                tenc(x2)
        bare_opt.zero_grad(set_to_none=True)
        (g1.float().mean() + g2.float().mean()).backward()
        bare_opt.step()

    D = cfg.proj_dim  # the OT works in the projection space: q(z) online, z target (RRL.relation_inputs)
    o = torch.randn(2 * B, K, D, device=device, requires_grad=True)
    og = torch.randn(2 * B, D, device=device, requires_grad=True)
    t, tg = torch.randn(2 * B, K, D, device=device), torch.randn(2 * B, D, device=device)
    cost = relation_cost(m).to(device)

    def ot_loss():  # as in the step: both directions, 2B problems, one solver call
        loss = ot_relation_loss(o, t, og, tg, cost, reg=cfg.ot_reg, max_iter=cfg.ot_iters)
        loss.backward()

    def maps():
        model.attention_maps(batch["landmarks"].flatten(0, 1), (S, S))

    P = s["n_problems"]
    a = torch.rand(P, K, device=device, generator=gen) + 0.05
    b = torch.rand(P, K, device=device, generator=gen) + 0.05
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)

    def batched():
        transport_plans(cost, a, b, reg=cfg.ot_reg, max_iter=cfg.ot_iters, tol=0.0)

    def loop():
        import ot

        for i in range(P):
            ot.sinkhorn(a[i], b[i], cost, cfg.ot_reg, numItermax=cfg.ot_iters, stopThr=0.0)

    rows = []
    t_step = seconds_per_call(rrl_step, s["steps"], s["warmup"], device)
    timed = {"rrl_step": t_step}
    for name, fn in (("swin_limit", swin_limit), ("ot_relation_loss", ot_loss), ("attention_maps", maps),
                     ("sinkhorn_batched", batched)):
        timed[name] = seconds_per_call(fn, s["steps"], s["warmup"], device)
    timed["sinkhorn_loop"] = seconds_per_call(loop, max(1, s["steps"] // 4), 1, device)
    for name, tm in timed.items():
        rows.append({"measure": name, "ms": 1000 * tm,
                     "images_per_s": B / tm if name in ("rrl_step", "swin_limit") else float("nan"),
                     "share_of_step": tm / t_step if not name.startswith("sinkhorn") else float("nan"),
                     "speedup_vs_loop": timed["sinkhorn_loop"] / tm if name == "sinkhorn_batched" else float("nan")})
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return pd.DataFrame(rows).assign(device=name, backbone=s["backbone"], batch_size=B, image_size=S, K=K,
                                     n_problems=P, ot_iters=cfg.ot_iters, dtype=str(dtype).replace("torch.", ""),
                                     peak_mem_gib=mem)


if __name__ == "__main__":  # the same as `python -m aulib.bench rrl [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["rrl", *sys.argv[1:]]))
