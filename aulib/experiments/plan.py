"""What each notebook's runs cost at a profile's sizes, and whether they fit a machine, before starting them.

    rows = plan("gpu")                       # one PlanRow per (notebook, run)
    print(table(rows))                       # steps, images, hours, peak host RAM, peak GPU memory, disk
    misfits = check(rows, machine("h200"))   # [] when every run fits

Sizes come from :mod:`aulib.profiles` only. Throughput (images/s on one GPU) is a measured figure where one
exists (:data:`MEASURED`), else ``estimated``: FLOPs of one image's forward (``FlopCounterMode`` on the meta
device) x 3 for forward + backward, at :data:`SUSTAINED_TFLOPS`. A run is also bounded by its CPU side
(``data``: faces drawn on the fly by :mod:`aulib.data.stream`, plus augmentation), whichever is slower.

Memory is counted as the code holds it: a generated set keeps its images uint8 in host memory; EmoCo's AU
sets are also held as float32 tensors and copied per fold unless the profile section says ``"compact": True``
(uint8, converted per batch); a pretraining set with ``"stream": True`` holds only the loader's batches in
flight. GPU memory: fp32 weights + grads + 2 Adam states, plus bf16 activations (the sum of every leaf
module's output, counted on the meta device) x batch x views.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from aulib import profiles

GiB = 2**30
#: bf16 TFLOP/s sustained by a convnet training step on an H100: EmoCo's measured 2,530 img/s x ~33 GFLOP per
#: image (ResNet-50 query fwd+bwd + key fwd at 224 px) = ~83; used for every run without a measurement
SUSTAINED_TFLOPS = 80.0
#: images/s measured on an H100 (issue 17, before later changes): method step, and the bare backbone limit
MEASURED = {"rrl": (619.0, 740.0), "tranet": (1053.0, 1663.0), "emoco": (2530.0, 2731.0)}
#: CPU seconds per sample of the pretraining augmentation, both views, at 224 px on one core: RRL ~74 ms (issue
#: 17; 56 ms measured here), EmoCo's MoCo v2 (with blur) 119 ms measured here, 2026-12-01, on a shared CPU
AUG_SECONDS = {"rrl": 0.074, "emoco": 0.119}
MIN_STEP_S = 0.005  # a training step never takes less (launches, optimiser, logging), whatever its FLOPs
PROCESS_GIB = 3.0  # python + torch + CUDA context, per process


@dataclass(frozen=True)
class Machine:
    name: str
    gpu_gib: float | None  # None: no GPU (runs on the CPU: their device memory counts as host RAM)
    cores: int
    ram_gib: float
    disk_gib: float


MACHINES = {"h200": Machine("h200", 139.0, 16, 128.0, 64.0)}


def machine(name: str | None = None) -> Machine:
    """A named machine (``h200``: the GPU machine this project borrows) or this one (psutil / os / torch.cuda)."""
    if name:
        if name not in MACHINES:
            raise ValueError(f"unknown machine {name!r}; known: {', '.join(MACHINES)} (or none: this machine)")
        return MACHINES[name]
    import torch

    from aulib.data.loader import available_cores

    try:
        import psutil

        ram = psutil.virtual_memory().total
    except ImportError:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gpu = torch.cuda.get_device_properties(0).total_memory / GiB if torch.cuda.is_available() else None
    root = os.path.dirname(os.path.abspath(__file__))
    return Machine("this machine", gpu, available_cores(), ram / GiB, shutil.disk_usage(root).free / GiB)


@dataclass
class PlanRow:
    notebook: str
    run: str
    steps: int
    images: int
    images_per_s: float
    throughput: str  # "measured (H100)" | "estimated" | "data-bound" | "cpu"
    hours: float
    host_gib: float
    gpu_gib: float
    disk_gib: float


# --------------------------------------------------------------------------------------------- model costs


@functools.cache
def model_cost(kind: str, name: str, in_chans: int, size: int, **kw: Any) -> tuple[float, float, float]:
    """(forward GFLOP per image, leaf-activation M-elements per image, M parameters), counted on meta."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        if kind == "fan":
            from aulib.methods.aunet import AUNetConfig, build_fan

            model = build_fan(AUNetConfig(fan_width=kw.get("width", 256), fan_depth=kw.get("depth", 4)))
        else:
            from aulib.models import create_backbone

            model = create_backbone(name, in_chans=in_chans, num_classes=12, img_size=size)
        x = torch.empty(1, in_chans, size, size)
    model.eval()  # batch 1: BatchNorm in eval mode (same FLOPs)
    acts = [0]

    def hook(mod, inp, out):
        for o in (out if isinstance(out, (tuple, list)) else [out]):
            if torch.is_tensor(o):
                acts[0] += o.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with FlopCounterMode(display=False) as fc:
        model(x)
    for h in handles:
        h.remove()
    return fc.get_total_flops() / 1e9, acts[0] / 1e6, sum(p.numel() for p in model.parameters()) / 1e6


def _gpu_gib(params_m: float, act_m: float, batch: int, views: float, extra_gib: float = 0.0) -> float:
    return (params_m * 1e6 * 16 + act_m * 1e6 * 2 * batch * views) / GiB + 1.0 + extra_gib


def _ckpt_gib(params_m: float, copies: int = 1) -> float:
    return params_m * 1e6 * 4 * 3 * copies / GiB  # weights + 2 optimiser states


def _frames(d: dict) -> int:
    return int(d["n_subjects"]) * int(d.get("sequences_per_subject", 1)) * int(d.get("frames_per_sequence", 1))


def _img_gib(n: int, size: int, chans: int, bytes_per: float = 1.0) -> float:
    return n * size * size * chans * bytes_per / GiB


class _Builder:
    def __init__(self, profile: str, m: Machine):
        self.profile, self.m, self.rows = profile, m, []

    def add(self, nb: str, run: str, steps: int, batch: int, fwd_gflop: float, fwd_bwd: float, host_gib: float,
            gpu_gib: float, disk_gib: float, measured: float | None = None, data_s: float = 0.0) -> None:
        """``fwd_gflop`` per image, ``fwd_bwd`` forward-equivalents per image per step (3 = fwd + bwd);
        ``data_s`` CPU seconds per image on the loader side."""
        images = int(steps * batch)
        flop = max(1.0, fwd_gflop * fwd_bwd * 1e9)  # per image per step
        if self.m.gpu_gib is None:  # CPU machine: a CPU sustains ~0.1 TFLOP/s per 16 cores (rough)
            ips, how = batch / max(MIN_STEP_S, batch * flop / (1e12 * 0.1 * self.m.cores / 16)), "cpu (estimated)"
            host_gib, gpu_gib = host_gib + gpu_gib, 0.0
        elif measured is not None:
            ips, how = measured, "measured (H100)"
        else:
            ips, how = batch / max(MIN_STEP_S, batch * flop / (SUSTAINED_TFLOPS * 1e12)), "estimated"
        if data_s > 0:
            cpu_ips = max(1, self.m.cores - 1) / data_s
            if cpu_ips < ips:
                ips, how = cpu_ips, f"data-bound ({self.m.cores} cores)"
        self.rows.append(PlanRow(nb, run, int(steps), images, round(ips, 1), how, images / ips / 3600,
                                 host_gib + PROCESS_GIB, gpu_gib, disk_gib))


def _stream_gib(P: dict, batch: int, size: int, chans: int, views: int, m: Machine) -> float:
    from aulib.data.stream import resident_bytes

    workers = max(1, m.cores - 1)
    return resident_bytes(batch, size * size * chans * 4 * views, workers, 4) / GiB


def _face_seconds(size: int, chans: int) -> float:
    from aulib.data.stream import SECONDS_PER_FACE_224

    return SECONDS_PER_FACE_224 * (size * size * chans) / (224 * 224 * 3)


# --------------------------------------------------------------------------------------------- notebooks


def _data(b: _Builder) -> None:
    d = profiles.get(b.profile, "data")
    n, S = _frames(d), d["image_size"]
    b.add("00_data", "generate + figures", max(1, n // 64), 64, 0.0, 0.0, _img_gib(n, S, 1) * 2, 0.0, 0.01,
          data_s=_face_seconds(S, 1))
    b.rows[-1].hours = n * _face_seconds(S, 1) / max(1, b.m.cores - 1) / 3600
    b.rows[-1].throughput = "cpu (render)"


def _cnn_study(b: _Builder) -> None:
    from aulib.experiments.cnn_study import TABLE_I

    P = profiles.get(b.profile, "cnn_study")
    S, n_data = P["image_size"], _frames(P["data"])
    batch = (P["pos_per_au"] + P["neg_per_au"]) * 12
    host = _img_gib(n_data, P["data"]["image_size"], 1) * 2
    per_run = P["epochs"] * P["steps_per_epoch"]
    units = P["n_seeds"] * len(P["folds"])
    for name in P["table1_models"]:
        t = TABLE_I[name]
        f, a, p = model_cost("backbone", t["backbone"], t["in_chans"], S)
        b.add("01_cnn_study", f"Table I {name}", per_run * units, batch, f, 3.0, host, _gpu_gib(p, a, batch, 1),
              _ckpt_gib(p))
    # Fig. 2 curves and the settings study train the Baseline CNN once per point / setting
    f, a, p = model_cost("backbone", "baseline_cnn", 1, S)
    points = len(P["frame_fractions"]) + len(P["subject_fractions"]) + 8  # + the settings rows
    b.add("01_cnn_study", "Fig. 2 + settings (Baseline)", per_run * units * points, batch, f, 3.0, host,
          _gpu_gib(p, a, batch, 1), _ckpt_gib(p))


def _tranet(b: _Builder) -> None:
    P = profiles.get(b.profile, "tranet")
    c, s = P["config"], P["synth"]
    n = _frames(s)
    f, a, p = model_cost("backbone", c["backbone"], c["in_chans"], c["image_size"])
    runs = 7 * len(P["folds"]) * len(P["seeds"])  # the seven Table 2 variants
    steps = runs * c["max_epochs"] * c["batches_per_epoch"]
    meas = MEASURED["tranet"][0] if c["backbone"] == "seresnet50" and c["image_size"] == 224 else None
    b.add("02_tranet", f"Table 2: 7 variants x {len(P['folds'])} folds x {len(P['seeds'])} seeds (max epochs)",
          steps, c["batch_size"], f, 3.0, _img_gib(n, s["image_size"], s["channels"]),
          _gpu_gib(p, a * 1.3, c["batch_size"], 1), _ckpt_gib(p, 2), measured=meas)


def _aunet(b: _Builder) -> None:
    P = profiles.get(b.profile, "aunet")
    m = P["method"]
    S = m["image_size"]
    f, a, p = model_cost("fan", "fan", 3, S, width=m["fan_width"], depth=m["fan_depth"])
    nf = _frames(P["fan_data"])
    host = _img_gib(nf, S, 1) + _img_gib(_frames(P["data"]), P["data"]["image_size"], 1)
    b.add("03_aunet", "FAN landmark training", m["fan_epochs"] * nf // m["fan_batch_size"], m["fan_batch_size"], f,
          3.0, host, _gpu_gib(p, a, m["fan_batch_size"], 1), _ckpt_gib(p))
    n = _frames(P["data"])
    folds = len(P["folds"]) * len(P["seeds"])
    # heads on the frozen FAN's features of the triplet t-T, t, t+T: 3 FAN forwards + a head fwd+bwd (~1 FAN)
    steps = folds * 4 * m["epochs"] * int(n * 2 / 3) // m["batch_size"]  # 4 Table variants
    b.add("03_aunet", f"AU heads: variants x {folds} folds", steps, m["batch_size"], f, 3.0 + 3.0, host,
          _gpu_gib(p, a, m["batch_size"], 3), _ckpt_gib(p, 2))


def _rrl(b: _Builder) -> None:
    from aulib.experiments.rrl import pretrain_runs

    P = profiles.get(b.profile, "rrl")
    m = P["method"]
    S, B = m["image_size"], m["batch_size"]
    n = _frames(P["pretrain_data"])
    f, a, p = model_cost("backbone", m["backbone"], 3, S)
    stream = bool(P.get("stream"))
    down = _img_gib(_frames(P["bp4d_data"]), S, 3) + _img_gib(_frames(P["disfa_data"]), S, 3)
    if P.get("align"):  # a set and its aligned copy while it is cut (drawn at draw_size)
        D = P.get("draw_size") or S
        down += _img_gib(max(_frames(P["bp4d_data"]), _frames(P["disfa_data"])), D, 3)
    host = down + (_stream_gib(P, B, S, 3, 2, b.m) if stream else _img_gib(n, S, 3))
    # per-sample views in the loader, or made on the batch on the GPU (batch_augment): then only the faces
    aug_s = 0.0 if P.get("batch_augment") else AUG_SECONDS["rrl"] * (S * S) / (224 * 224)
    data_s = aug_s + (_face_seconds(P.get("draw_size") or S, 3) if stream else 0.0)
    meas = MEASURED["rrl"][0] if m["backbone"] == "swin_t" and S == 224 else None
    runs = pretrain_runs(P)
    steps = runs * P["epochs"] * (n // B)
    # 2 online fwd+bwd + 2 target fwd per image (two views), projector/predictor 4096 wide: ~ 2 x 3 + 2
    b.add("04_rrl", f"pretraining: {runs} runs x {P['epochs']} epochs ({'streamed' if stream else 'in memory'})",
          steps, B, f, 8.0, host, _gpu_gib(p * 1.3, a, B, 4), _ckpt_gib(p * 2.2, 2), measured=meas, data_s=data_s)
    probe = len(P["folds"]) * runs * (_frames(P["bp4d_data"]) // 128 + 1)
    b.add("04_rrl", "features for the probes", probe, 128, f, 1.0, host, _gpu_gib(p, a, 128, 0.5), 0.05)
    sup = P["supervised"]
    sup_steps = len(P["folds"]) * len(P["seeds"]) * sup["epochs"] * (_frames(P["bp4d_data"]) * 2 // 3) // sup["batch_size"]
    b.add("04_rrl", "supervised reference", sup_steps, sup["batch_size"], f, 3.0, host,
          _gpu_gib(p, a, sup["batch_size"], 1), _ckpt_gib(p))


def _emoco(b: _Builder) -> None:
    from aulib.experiments.emoco import pretrain_runs, pretrain_seeds, table_iv_runs

    P = profiles.get(b.profile, "emoco")
    S, C, B = P["image_size"], P["channels"], P["batch_size"]
    n = int(P["pretrain_subjects"])  # affectnet preset: one face per subject
    f, a, p = model_cost("backbone", P["backbone"], C, S)
    au_frames = sum(_frames(d) for d in P["au_sets"].values())
    # AU sets: uint8 generated images, + float32 tensors (_as_tensors) + the fold's x[train_rows]/x[test_rows]
    # of the set being evaluated; "compact": the uint8 images only
    biggest = max(_frames(d) for d in P["au_sets"].values())
    au_gib = (_img_gib(au_frames, S, C) if P.get("compact") else  # one uint8 copy, float per batch
              _img_gib(au_frames, S, C, 1.0 + 4.0) + _img_gib(biggest, S, C, 4.0))  # + one set's fold copy
    stream = bool(P.get("stream"))
    pre_gib = _stream_gib(P, B, S, C, 2, b.m) if stream else _img_gib(n, S, C) * 2  # + from_canonical's copy
    if P.get("align"):  # a set and its aligned copy while it is cut (drawn at draw_size)
        au_gib += _img_gib(biggest, P.get("draw_size") or S, C)
    host = au_gib + pre_gib
    queue_gib = 7 * P["queue_size"] * P["proj_dim"] * 4 / GiB
    # every run once, Table IV's (+ extras) again per further pretraining seed (experiments.emoco.pretrain)
    runs = len(pretrain_runs(P, C)) + (len(pretrain_seeds(P)) - 1) * len(table_iv_runs(P))
    meas = MEASURED["emoco"][0] if P["backbone"] == "resnet50" and S == 224 else None
    b.add("05_emoco", f"pretraining: {runs} runs x {P['epochs']} epochs ({'streamed' if stream else 'in memory'})",
          runs * P["epochs"] * (n // B), B, f, 4.0, host, _gpu_gib(p * 1.2, a, B, 1.4, queue_gib),
          _ckpt_gib(p * 2.2, runs), measured=meas,
          data_s=(0.0 if P.get("batch_augment") else AUG_SECONDS["emoco"] * S * S * C / (224 * 224 * 3))
          + (_face_seconds(P.get("draw_size") or S, C) if stream else 0.0))
    fb = P["finetune_batch"]
    evals = runs + 2
    ft = len(P["finetune_folds"]) * len(P["finetune_sets"]) * evals * P["finetune_epochs"] * (au_frames // 3 * 2 // fb)
    b.add("05_emoco", "finetune + supervised", ft, fb, f, 3.0, host, _gpu_gib(p, a, fb, 1), 0.05)
    lin = len(P["linear_folds"]) * evals * (au_frames // fb + 1)
    b.add("05_emoco", "linear probe features", lin, fb, f, 1.0, host, _gpu_gib(p, a, fb, 0.5), 0.05)


def _real_data(b: _Builder) -> None:
    P = profiles.get(b.profile, "real_data")
    n = P["subjects"] * P["sequences"] * P["frames"] * len(P["layouts"])
    b.add("06_real_data", "convert fixtures", max(1, n // 64), 64, 0.0, 0.0, _img_gib(n, P["image_size"], 3) * 2,
          0.0, _img_gib(n, P["image_size"], 3) * 2 + 0.01, data_s=0.01)


def _predict(b: _Builder) -> None:
    P = profiles.get(b.profile, "predict")
    f, a, p = model_cost("backbone", "resnet_tiny", 1, 112)
    b.add("07_predict", "shipped model on a video", max(1, P["video_frames"] // 16), 16, f, 1.0,
          _img_gib(P["video_frames"], P["video_size"], 3) * 3, _gpu_gib(p, a, 16, 0.5), 0.01, data_s=0.05)


NOTEBOOK_PLANS = {"00_data": _data, "01_cnn_study": _cnn_study, "02_tranet": _tranet, "03_aunet": _aunet,
                  "04_rrl": _rrl, "05_emoco": _emoco, "06_real_data": _real_data, "07_predict": _predict}


def plan(profile: str = "gpu", notebooks: list[str] | None = None, on: Machine | None = None) -> list[PlanRow]:
    """One :class:`PlanRow` per run of each notebook (all by default; names as ``reproduce`` matches them)."""
    if profile not in profiles.PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(profiles.PROFILE_NAMES)}")
    m = on or machine()
    names = list(NOTEBOOK_PLANS)
    if notebooks:
        chosen = [n for n in names if any(n == q or n.startswith(q) or n.split("_", 1)[1] == q for q in notebooks)]
        if not chosen:
            raise ValueError(f"no notebook matches {notebooks}; notebooks: {', '.join(names)}")
        names = chosen
    b = _Builder(profile, m)
    for nb in names:
        NOTEBOOK_PLANS[nb](b)
    return b.rows


def check(rows: list[PlanRow], m: Machine) -> list[str]:
    """One line per run that does not fit ``m`` (host RAM, GPU memory, disk), naming the run and the resource."""
    out = []
    for r in rows:
        where = f"{r.notebook} / {r.run}"
        if r.host_gib > m.ram_gib:
            out.append(f"{where}: needs {r.host_gib:.1f} GiB host RAM, {m.name} has {m.ram_gib:.0f} GiB")
        elif m.gpu_gib is not None and r.gpu_gib > m.gpu_gib:
            out.append(f"{where}: needs {r.gpu_gib:.1f} GiB GPU memory, {m.name} has {m.gpu_gib:.0f} GiB")
        elif r.disk_gib > m.disk_gib:
            out.append(f"{where}: needs {r.disk_gib:.1f} GiB disk, {m.name} has {m.disk_gib:.0f} GiB free")
    return out


def table(rows: list[PlanRow]):
    """The plan as a DataFrame (hours rounded; GiB to 0.1)."""
    import pandas as pd

    df = pd.DataFrame([asdict(r) for r in rows])
    for c in ("host_gib", "gpu_gib", "disk_gib"):
        df[c] = df[c].round(2)
    df["hours"] = df["hours"].map(lambda h: float(f"{h:.3g}"))
    return df.rename(columns={"hours": "GPU-hours"})


__all__ = ["MACHINES", "MEASURED", "Machine", "PlanRow", "SUSTAINED_TFLOPS", "check", "machine", "model_cost",
           "plan", "table"]
