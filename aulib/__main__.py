"""Command line: ``python -m aulib {synth,convert,reproduce,bench,info}`` (thin: parse, call, print)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _synth(a: argparse.Namespace) -> None:
    from .data.schema import write_dataset
    from .data.synthetic import PRESETS, SynthConfig, generate

    if a.preset not in PRESETS:
        sys.exit(f"unknown preset {a.preset!r}; presets: {', '.join(PRESETS)}")
    overrides = {k: v for k, v in dict(n_subjects=a.subjects, sequences_per_subject=a.sequences,
                                       frames_per_sequence=a.frames, image_size=a.size, channels=a.channels,
                                       seed=a.seed).items() if v is not None}
    ds = generate(SynthConfig(preset=a.preset, **overrides))
    out = write_dataset(ds, a.out)
    print(f"wrote {ds} -> {out}")


def _convert(a: argparse.Namespace) -> None:
    from .data.convert import convert

    options = {k: v for k, v in dict(lenient=a.lenient, workers=a.workers, align=a.align).items() if v is not None}
    ds = convert(a.name, a.src, a.out, **options)
    print(f"wrote {ds} -> {a.out}")


def _reproduce(a: argparse.Namespace) -> None:
    from .reproduce import REPORT_DIR, reproduce

    params = dict(p.split("=", 1) for p in a.param)
    timings = reproduce(a.notebooks, profile=a.profile, report_dir=Path(a.out) if a.out else REPORT_DIR,
                        parameters=params)
    for name, secs in timings:
        print(f"{name:24s} {secs / 60:6.1f} min")


def _info(a: argparse.Namespace) -> None:
    import importlib.metadata as md
    import platform

    import torch

    from . import __version__
    from .data.schema import find_datasets, open_dataset

    print(f"aulib {__version__}  python {platform.python_version()}  {platform.platform()}")
    for pkg in ("torch", "torchvision", "timm", "pot", "numpy", "pandas", "scikit-learn", "papermill", "umap-learn"):
        try:
            print(f"  {pkg:14s} {md.version(pkg)}")
        except md.PackageNotFoundError:
            print(f"  {pkg:14s} (not installed)")
    dev = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    print(f"device: {dev}, {torch.get_num_threads()} torch threads")
    for root in a.data:
        found = find_datasets(root)
        print(f"datasets under {root}: {'none' if not found else ''}")
        for p in found:
            try:
                print(f"  {open_dataset(p)}")
            except Exception as exc:  # report every broken dataset, keep going
                print(f"  {p}: INVALID: {exc}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m aulib", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic dataset in the canonical format")
    s.add_argument("--preset", default="bp4d", help="bp4d, disfa, gft, affwild2, affectnet, emotionet")
    s.add_argument("--out", required=True)
    s.add_argument("--subjects", type=int)
    s.add_argument("--sequences", type=int, help="sequences per subject")
    s.add_argument("--frames", type=int, help="frames per sequence")
    s.add_argument("--size", type=int, help="image size in pixels (64-256)")
    s.add_argument("--channels", type=int, choices=(1, 3))
    s.add_argument("--seed", type=int)
    s.set_defaults(func=_synth)

    c = sub.add_parser("convert", help="convert a licensed dataset to the canonical format")
    c.add_argument("name", help="bp4d, disfa, gft, affwild2, affectnet, emotionet")
    c.add_argument("--src", required=True, help="the dataset's download folder")
    c.add_argument("--out", required=True)
    c.add_argument("--lenient", action="store_true", default=None, help="skip bad rows (listed) instead of stopping")
    c.add_argument("--workers", type=int)
    c.add_argument("--align", help="alignment template (emoco, aunet, tranet, rrl, cnn_study)")
    c.set_defaults(func=_convert)

    r = sub.add_parser("reproduce", help="run notebooks through papermill into reports/")
    r.add_argument("notebooks", nargs="*", help="notebook names or prefixes (default: all)")
    r.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    r.add_argument("--out", help="report folder (default: reports/ of the clone)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="extra notebook parameter")
    r.set_defaults(func=_reproduce)

    b = sub.add_parser("bench", help="benchmarks (same as python -m aulib.bench)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=lambda a: __import__("aulib.bench.__main__", fromlist=["main"]).main(a.rest))

    i = sub.add_parser("info", help="versions, device and datasets found")
    i.add_argument("--data", nargs="*", default=["data"], help="folders to search for canonical datasets")
    i.set_defaults(func=_info)

    a = p.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
