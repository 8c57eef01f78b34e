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
