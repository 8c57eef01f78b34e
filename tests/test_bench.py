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
