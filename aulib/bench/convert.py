"""Benchmark: conversion speed (frames per second) for BP4D-layout JPEG trees and DISFA-layout video.

    from aulib.bench.convert import run
    df = run({"subjects": 2, "frames": 60, "source_size": 256, "workers": [1, 2], "align": [None, "aunet"]})

A synthetic dataset is generated and exported in the real layout first (not timed); then
:func:`aulib.data.convert.convert` is timed end to end: label parsing, JPEG / MPEG-4 decoding, alignment
(if any), shard writing and the final atomic assembly. Rows (tidy): layout, workers, align, source_size,
frames, seconds, frames_per_s. Real BP4D frames (1040 x 1392) and DISFA video (1024 x 768) are larger than
the default 256-pixel source, so expect lower rates on the real data; ``source_size`` up to 512 is allowed.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from aulib.bench import option

DEFAULTS: dict[str, Any] = {"subjects": 2, "sequences": 2, "frames": 60, "source_size": 256, "workers": [1, 2],
                            "align": [None, "aunet"], "layouts": ["bp4d", "disfa"], "seed": 0}


def _arg(args, name):
    return option(args, name, DEFAULTS, None)


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def run(args: Any = None) -> pd.DataFrame:
    """Time conversions of synthetic exports; one row per layout x workers x align."""
    from aulib.data.convert import ConversionWarning, convert
    from aulib.data.convert.export import export
    from aulib.data.synthetic import SynthConfig, generate

    args = args if args is not None else {}
    size = int(_arg(args, "source_size"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="aulib-bench-convert-") as d:
        for layout in _as_list(_arg(args, "layouts")):
            ds = generate(SynthConfig(preset=layout, n_subjects=int(_arg(args, "subjects")),
                                      sequences_per_subject=int(_arg(args, "sequences")),
                                      frames_per_sequence=int(_arg(args, "frames")), image_size=size, channels=3,
                                      seed=int(_arg(args, "seed"))))
            raw = Path(d) / f"{layout}-raw"
            export(ds, raw, layout)
            for align in _as_list(_arg(args, "align")):
                for workers in _as_list(_arg(args, "workers")):
                    out = Path(d) / f"{layout}-out"
                    shutil.rmtree(out, ignore_errors=True)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConversionWarning)
                        t0 = time.perf_counter()
                        got = convert(layout, raw, out, workers=int(workers), align=align, progress=False)
                        secs = time.perf_counter() - t0
                    rows.append({"layout": layout, "workers": int(workers), "align": align or "none",
                                 "source_size": size, "frames": len(got), "seconds": secs,
                                 "frames_per_s": len(got) / secs})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # the same as `python -m aulib.bench convert [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["convert", *sys.argv[1:]]))
