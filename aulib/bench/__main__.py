"""``python -m aulib.bench [names...] [--device cpu|cuda|auto] [--quick] [--out DIR] [--key value ...]``;
``python -m aulib.bench --profile gpu --steps N [--batch B]``: every method's step at the profile's sizes."""

from __future__ import annotations

import argparse
import sys
import time
import traceback


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_args(argv=None) -> argparse.Namespace:
    from aulib.bench import list_benchmarks

    p = argparse.ArgumentParser(prog="python -m aulib.bench", description=__doc__,
                                epilog=f"benchmarks: {', '.join(list_benchmarks())}")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--quick", action="store_true", help="small sizes (CPU-friendly)")
    p.add_argument("--out", default=None, help="folder to save each table as <name>.csv")
    p.add_argument("--keep-going", action="store_true", help="report a failing benchmark and go on")
    p.add_argument("--profile", choices=("smoke", "cpu", "gpu"), default=None,
                   help="paper_scale: the profile whose sizes each method's step runs at (alone: runs paper_scale)")
    argv = list(sys.argv[1:] if argv is None else argv)
    k = next((i for i, t in enumerate(argv) if t.startswith("-")), len(argv))
    if any(t in ("-h", "--help") for t in argv):
        p.parse_args(["--help"])
    # names first, then options: a pass-through option's value (--steps 1) must never be taken for a name
    opts = argparse.ArgumentParser(add_help=False)
    for a in p._actions:
        if a.option_strings and a.dest != "help":
            opts._add_action(a)
    args, extra = opts.parse_known_args(argv[k:])
    args.names = argv[:k]
    i = 0
    while i < len(extra):  # pass-through options: --key value or --flag
        tok = extra[i]
        if not tok.startswith("--"):
            p.error(f"unexpected argument {tok!r} (extra options look like --key value)")
        key, _, val = tok[2:].partition("=")
        if not val:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                val, i = extra[i + 1], i + 1
            else:
                val = "true"
        setattr(args, key.replace("-", "_"), _value(val))
        i += 1
    return args


def main(argv=None) -> int:
    import pandas as pd
    import torch

    from aulib.bench import list_benchmarks, load_benchmark

    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda asked but CUDA is not available", file=sys.stderr)
        return 2
    # --profile without names: each method's training step at that profile's sizes (aulib/bench/paper_scale.py)
    names = args.names or (["paper_scale"] if getattr(args, "profile", None) else
                           [n for n in list_benchmarks() if n != "paper_scale"])
    failed = 0
    for name in names:
        mod = load_benchmark(name)
        print(f"== {name} (device={args.device}{', quick' if args.quick else ''})", flush=True)
        t0 = time.perf_counter()
        try:
            df = mod.run(args)
        except Exception:  # noqa: BLE001
            if not args.keep_going:
                raise
            traceback.print_exc()
            failed += 1
            continue
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            print(df.to_string(index=False))
        print(f"({time.perf_counter() - t0:.1f} s)\n", flush=True)
        if args.out:
            from aulib.viz import save_table

            print("saved", save_table(df, args.out, f"bench_{name}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
