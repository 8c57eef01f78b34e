"""The plan: one row per run with positive costs; a machine too small is refused in one line; EmoCo's gpu
profile memory is counted as the code holds it (in memory: does not fit the H200 machine; streamed + compact: fits)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aulib import profiles
from aulib.experiments import plan as P

H200 = P.machine("h200")


@pytest.mark.parametrize("profile", ["smoke", "gpu"])
def test_one_row_per_run_with_positive_numbers(profile):
    rows = P.plan(profile, on=H200)
    assert {r.notebook for r in rows} == set(P.NOTEBOOK_PLANS)
    keys = [(r.notebook, r.run) for r in rows]
    assert len(keys) == len(set(keys))
    for r in rows:
        assert r.steps > 0 and r.images > 0 and r.images_per_s > 0 and r.hours > 0, r
        assert r.host_gib > 0 and r.disk_gib > 0 and r.gpu_gib >= 0, r
    df = P.table(rows)
    assert len(df) == len(rows) and "GPU-hours" in df


def test_gpu_profile_fits_the_h200_and_smoke_fits_everywhere():
    assert P.check(P.plan("gpu", on=H200), H200) == []
    tiny = P.Machine("tiny", None, 2, 8.0, 5.0)
    assert P.check(P.plan("smoke", on=tiny), tiny) == []


def test_too_small_machine_refused_in_one_line(capsys):
    from aulib.__main__ import main

    small = P.Machine("small", 16.0, 4, 16.0, 64.0)
    bad = P.check(P.plan("gpu", ["emoco"], on=small), small)
    assert bad and all("05_emoco / " in b and "\n" not in b for b in bad)
    assert "host RAM" in bad[0] and "small has 16 GiB" in bad[0]
    P.MACHINES["small"] = small
    try:
        with pytest.raises(SystemExit) as e:
            main(["plan", "--profile", "gpu", "--machine", "small", "emoco"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("aulib: error: does not fit: 05_emoco / ")
        main(["reproduce", "--plan", "--profile", "gpu", "--machine", "h200", "tranet"])  # fits: no exit
        assert "02_tranet" in capsys.readouterr().out
    finally:
        del P.MACHINES["small"]


def test_emoco_gpu_memory_is_counted_honestly(monkeypatch):
    g = profiles.get("gpu", "emoco")
    S, C = g["image_size"], g["channels"]
    au = sum(d["n_subjects"] * d["sequences_per_subject"] * d["frames_per_sequence"] for d in g["au_sets"].values())
    # the figures: ~226 GB of float32 AU tensors and ~84 GB of pretraining images (two uint8 copies)
    assert au * S * S * C * 4 / 1e9 == pytest.approx(226, rel=0.01)
    assert g["pretrain_subjects"] * S * S * C * 2 / 1e9 == pytest.approx(84, rel=0.01)
    streamed = [r for r in P.plan("gpu", ["emoco"], on=H200) if r.run.startswith("pretraining")][0]
    assert "streamed" in streamed.run and streamed.host_gib < H200.ram_gib
    assert streamed.host_gib > au * S * S * C / P.GiB  # the uint8 AU images are still counted
    # the same profile without the flags: everything in memory, >= the 310 GB, refused on the H200
    old = dict(profiles.PROFILES["gpu"]["emoco"], stream=False, compact=False)
    monkeypatch.setitem(profiles.PROFILES["gpu"], "emoco", old)
    rows = P.plan("gpu", ["emoco"], on=H200)
    assert min(r.host_gib for r in rows) * P.GiB / 1e9 > 226 + 84
    assert len(P.check(rows, H200)) == len(rows)
    # compact AU sets but the pretraining faces in memory: the 84 GB are counted on top of the uint8 AU images
    monkeypatch.setitem(profiles.PROFILES["gpu"], "emoco", dict(old, compact=True))
    pre = [r for r in P.plan("gpu", ["emoco"], on=H200) if r.run.startswith("pretraining")][0]
    assert "in memory" in pre.run
    assert pre.host_gib * P.GiB / 1e9 > au * S * S * C / 1e9 + 84


def test_measured_throughput_used_where_it_exists_else_flops():
    rows = {r.run: r for r in P.plan("gpu", ["tranet", "cnn_study"], on=H200)}
    tr = [r for k, r in rows.items() if k.startswith("Table 2")][0]
    assert tr.throughput == "measured (H100)" and tr.images_per_s == P.MEASURED["tranet"][0]
    vgg = rows["Table I VGG-16"]
    assert vgg.throughput == "estimated"
    f, _, _ = P.model_cost("backbone", "vgg16_gap", 3, 96)
    assert f == pytest.approx(2 * 15.4 * (96 / 224) ** 2, rel=0.1)  # VGG-16 convs: ~15.4 GMAC at 224 px
    assert vgg.images_per_s == pytest.approx(P.SUSTAINED_TFLOPS * 1e3 / (3 * f), rel=1e-3)
    assert dataclasses.asdict(vgg)["hours"] == pytest.approx(vgg.images / vgg.images_per_s / 3600, rel=1e-4)


def test_rrl_gpu_schedule_is_dino_style_with_warmup(monkeypatch):
    from aulib.experiments import rrl
    from aulib.train import TrainConfig, lr_factor

    g = profiles.get("gpu", "rrl")
    cfg = rrl.base_config(g)
    assert cfg.lr == pytest.approx(0.0005 * cfg.batch_size / 256) and g["warmup_epochs"] == 10
    c = profiles.get("cpu", "rrl")  # the cpu profile's own short schedule: lr 5e-4 after one warm-up epoch
    assert rrl.base_config(c).lr == pytest.approx(5e-4) and c["warmup_epochs"] == 1
    tc = TrainConfig(epochs=g["epochs"], schedule="cosine", warmup_epochs=g["warmup_epochs"])
    spe = 10
    f = [lr_factor(s, tc, spe) for s in range(g["epochs"] * spe)]
    assert f[0] == pytest.approx(1 / 100) and f[49] == pytest.approx(0.5) and f[99] == pytest.approx(1.0)
    assert f[100] == pytest.approx(1.0) and f[-1] < 1e-3  # then the cosine to 0
    seen = {}

    def fake_fit(method, loader, tc, **kw):
        seen["tc"] = tc
        import pandas as pd

        return pd.DataFrame()

    monkeypatch.setattr(rrl, "fit", fake_fit)
    def fake_rrl(cfg, m):
        net = torch.nn.Linear(1, 1)
        net.encoder = "f"
        return net

    monkeypatch.setattr(rrl, "RRL", fake_rrl)
    monkeypatch.setattr(rrl, "pretrain_loader", lambda *a, **k: seen.setdefault("workers", a[5]) and [])
    # what run_linear_protocol builds from the profile: the warm-up and the workers reach TrainConfig / the loader
    glob = rrl.variant_config(cfg, "global")[0]  # no relation term: no labelled set needed here
    run = rrl._Pretrained(None, glob, True, None, 1, "cpu", "global", "x", [], None, 0, g["warmup_epochs"],
                          g["num_workers"])
    assert run(0) == "f"
    assert seen["tc"].warmup_epochs == 10 and seen["tc"].lr == pytest.approx(cfg.lr) and seen["workers"] == "auto"
