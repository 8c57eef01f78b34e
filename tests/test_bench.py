"""The benchmark runner's discovery and argument pass-through (speed itself is never asserted)."""

from __future__ import annotations

import pytest

from aulib.bench import list_benchmarks, load_benchmark
from aulib.bench.__main__ import parse_args


def test_discovery_and_unknown_names():
    names = list_benchmarks()
    assert "train_step" in names and "__main__" not in names
    assert callable(load_benchmark("train_step").run)
    with pytest.raises(ValueError, match="available: .*train_step"):
        load_benchmark("no_such_bench")


def test_extra_options_pass_through():
    a = parse_args(["train_step", "--device", "cpu", "--quick", "--batch-size", "64", "--models=a,b", "--lr", "1e-4",
                    "--flag"])
    assert a.names == ["train_step"] and a.device == "cpu" and a.quick
    assert a.batch_size == 64 and a.models == "a,b" and a.lr == pytest.approx(1e-4) and a.flag is True


def test_paper_scale_times_the_loader_the_profile_uses(monkeypatch):
    """A profile that holds its faces in memory (smoke, cpu) has its data side timed on the in-memory loader,
    not on faces drawn on the fly; the views made on the batch are reported as their share of a step."""
    import aulib.data.stream as stream
    from aulib.bench import paper_scale

    class NoStream:
        def __init__(self, *a, **k):
            raise AssertionError("a profile without 'stream' must not be timed on drawn faces")

    monkeypatch.setattr(stream, "FaceStream", NoStream)
    args = parse_args(["paper_scale", "--profile", "smoke", "--device", "cpu", "--steps", "1", "--batch", "2",
                       "--methods", "rrl,emoco", "--data-samples", "2"])
    df = paper_scale.run(args).set_index("method")
    assert list(df.index) == ["rrl", "emoco"]
    assert (df.data_s_per_sample > 0).all() and (df.step_img_s > 0).all()
    assert df.loc["emoco", "augment_share_of_step"] > 0  # the smoke profile makes EmoCo's views on the batch


def test_paper_scale_runs_each_step_at_the_profiles_own_sizes(monkeypatch):
    """The step benchmarked is the profile's: RRL's head sizes and map stride, EmoCo's channels and head, the CNN
    study's own Table I backbone (the cpu profile's were once benchmarked at the paper's)."""
    import pandas as pd

    from aulib import profiles
    from aulib.bench import cnn_study, emoco, paper_scale, rrl

    seen = {}

    def fake(name, rows):
        def run(args):
            seen[name] = vars(args)
            return pd.DataFrame(rows)
        return run

    monkeypatch.setattr(rrl, "run", fake("rrl", {"measure": ["rrl_step", "swin_limit", "ot_relation_loss"],
                                                 "images_per_s": [1.0, 2.0, None], "share_of_step": [1, .5, .1]}))
    monkeypatch.setattr(emoco, "run", fake("emoco", {"measure": ["emoco_step", "resnet_limit"],
                                                     "images_per_s": [1.0, 2.0]}))
    monkeypatch.setattr(cnn_study, "run", fake("cnn_study", {
        "benchmark": ["study_train_step", "backbone_forward_backward", "cpu_loader_augD_oversampling"],
        "images_per_s": [1.0, 2.0, 3.0]}))
    args = parse_args(["paper_scale", "--profile", "cpu", "--device", "cpu", "--steps", "1",
                       "--methods", "rrl,emoco,cnn_study", "--data-samples", "1"])
    paper_scale.run(args)
    r, e = profiles.get("cpu", "rrl")["method"], profiles.get("cpu", "emoco")
    assert {k: seen["rrl"][k] for k in ("hidden_dim", "proj_dim", "local_stride", "image_size")} == \
        {k: r[k] for k in ("hidden_dim", "proj_dim", "local_stride", "image_size")}
    assert (seen["emoco"]["in_chans"], seen["emoco"]["proj_hidden"], seen["emoco"]["proj_dim"]) == \
        (e["channels"], e["proj_hidden"], e["proj_dim"])
    assert seen["cnn_study"]["models"] in profiles.get("cpu", "cnn_study")["table1_models"]


def test_ladder_bench_runs_one_thread_beside_several_on_the_same_fits(monkeypatch):
    """Both runs fit the same problem; the one-thread run is the reference of the ratio (speed is not asserted)."""
    from threadpoolctl import threadpool_info

    import aulib.experiments.learnability as L
    from aulib.bench import ladder

    seen, fit = [], L.LogisticRegression.fit

    def spy(self, *a, **k):
        seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return fit(self, *a, **k)

    monkeypatch.setattr(L.LogisticRegression, "fit", spy)
    df = ladder.run(parse_args(["ladder", "--quick", "--frames", "164", "--pixel_size", "8", "--threads", "2"]))
    assert list(df.blas_threads) == [1, 2] and df.ratio.iloc[0] == 1.0
    assert df.max_abs_diff.iloc[1] < 1e-4 and (df.aus == df.aus.iloc[0]).all()
    assert set(seen[: len(seen) // 2]) == {1} and set(seen[len(seen) // 2:]) == {2}
