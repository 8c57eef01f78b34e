"""Command line: ``python -m aulib {synth,convert,train,predict,reproduce,plan,bench,info}`` (thin: parse, call, print)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def _synth(a: argparse.Namespace) -> None:
    from .data.schema import check_output, write_dataset
    from .data.synthetic import PRESETS, SynthConfig, generate

    if a.preset not in PRESETS:
        raise ValueError(f"unknown preset {a.preset!r}; presets: {', '.join(PRESETS)}")
    check_output(a.out, overwrite=a.overwrite)  # before generating: refuse early, never delete foreign files
    overrides = {k: v for k, v in dict(n_subjects=a.subjects, sequences_per_subject=a.sequences,
                                       frames_per_sequence=a.frames, image_size=a.size, channels=a.channels,
                                       seed=a.seed).items() if v is not None}
    ds = generate(SynthConfig(preset=a.preset, **overrides))
    out = write_dataset(ds, a.out, overwrite=a.overwrite)
    print(f"wrote {ds} -> {out}")


def _convert(a: argparse.Namespace) -> None:
    from .data.convert import convert

    options = dict(lenient=a.lenient, workers=a.workers, align=None if a.no_align else a.align,
                   image_size=a.image_size, channels=a.channels, landmarks=a.landmarks, overwrite=a.overwrite,
                   progress=not a.quiet)
    for key in ("aus", "splits", "annotations", "labels_dir", "images_dir"):
        value = getattr(a, key, None)
        if value is not None:
            options[key] = value
    if getattr(a, "labelled_only", False):
        options["unlabeled"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = convert(a.name, a.src, a.out, **options)
    for w in caught:  # one line each, not Python's warning format with a source line
        print(f"aulib: warning: {w.message}", file=sys.stderr)
    print(f"wrote {ds} -> {a.out}")


def _csv_tuple(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _aus(text: str) -> tuple[int, ...] | str:
    if text.strip().lower() == "all":
        return "all"
    try:
        return tuple(int(t.removeprefix("AU")) for t in _csv_tuple(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AU numbers like 1,2,4 or 'all', not {text!r}") from None


def _add_convert_parsers(sub) -> None:
    from .data.convert import CONVERTERS, DEFAULT_ALIGN, expected_files

    conv = sub.add_parser("convert", help="convert a licensed dataset to the canonical format",
                          description="Convert a dataset from its download folder: python -m aulib convert NAME "
                          "--src DIR --out DIR. `python -m aulib convert NAME --help` lists the files NAME's "
                          "converter reads.")
    names = conv.add_subparsers(dest="name", required=True, metavar="NAME", title="datasets")
    for name in CONVERTERS:
        d = names.add_parser(name, help=f"{name} (--help lists the files it reads)",
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             description=f"Convert {name} to aulib's canonical format.\n\nFiles read:\n"
                             + expected_files(name))
        d.add_argument("--src", required=True, help="the dataset's download folder (never written to)")
        d.add_argument("--out", required=True, help="new or empty output folder, outside --src")
        d.add_argument("--overwrite", action="store_true", help="replace --out if it holds a dataset aulib wrote")
        d.add_argument("--landmarks", default="auto", metavar="auto|FILE|dlib|template",
                       help="auto (default): the release's own landmark files, else aulib_landmarks.csv in --src, "
                       "else dlib's 68-point model (pip install 'aulib[landmarks]', offline); a CSV file in the "
                       "aulib_landmarks.csv layout; dlib; template (mean shape, for already aligned crops)")
        d.add_argument("--align", default=DEFAULT_ALIGN[name], metavar="TEMPLATE",
                       help=f"alignment template (aunet, emoco, tranet, rrl, cnn_study; default {DEFAULT_ALIGN[name]})")
        d.add_argument("--no-align", action="store_true", help="store the frames unaligned (cropped / resized)")
        d.add_argument("--image-size", type=int, help="output size in pixels (default: the template's, or the "
                       "source's without alignment)")
        d.add_argument("--channels", type=int, choices=(1, 3), help="1 grey or 3 RGB (default: the template's)")
        d.add_argument("--workers", type=int, default=1, help="worker processes")
        d.add_argument("--lenient", action="store_true", help="skip bad rows (listed in skipped.csv) instead of "
                       "stopping")
        d.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "disfa":
            d.add_argument("--aus", type=_aus, help="AUs to keep, e.g. 1,2,4 or all (default: the protocol's 8)")
        if name in ("affwild2", "affectnet"):
            d.add_argument("--splits", type=_csv_tuple, help="comma-separated splits (affwild2: Train_Set,"
                           "Validation_Set; affectnet: training,validation)")
        if name == "gft":
            d.add_argument("--labels-dir", help="label folder inside --src (default AU_OCC)")
            d.add_argument("--images-dir", help="image folder inside --src (default images)")
        if name == "emotionet":
            d.add_argument("--annotations", help="annotation file or folder (default: every annotation file in --src)")
            d.add_argument("--labelled-only", action="store_true", help="drop images without an annotation row")
        d.set_defaults(func=_convert)


def _plan(a: argparse.Namespace) -> None:
    from .reproduce import print_plan

    if not print_plan(a.notebooks, a.profile, a.machine):
        sys.exit(2)


def _reproduce(a: argparse.Namespace) -> None:
    from .reproduce import REPORT_DIR, parse_param, print_plan, reproduce

    if a.plan:
        if not print_plan(a.notebooks, a.profile, a.machine):
            sys.exit(2)
        return

    params = dict(parse_param(p) for p in a.param)
    timings = reproduce(a.notebooks, profile=a.profile, report_dir=Path(a.out) if a.out else REPORT_DIR,
                        parameters=params)
    for name, secs in timings:
        print(f"{name:24s} {secs / 60:6.1f} min")


def _train(a: argparse.Namespace) -> None:
    from .runs import command_line, train

    card = train(a.method, a.data, a.out, profile=a.profile, fold=a.fold, overrides=a.settings,
                 progress=not a.quiet, command=command_line())
    m, ap = card["metrics"]["test"], card["metrics"]["always present"]
    print(f"wrote {a.out}: test fold {a.fold}: F1 {m['f1']:.3f} (at thresholds {m['f1_at_thresholds']:.3f}), "
          f"AUC {m['auc']:.3f}; always present F1 {ap['f1']:.3f}")


def _predict(a: argparse.Namespace) -> None:
    from .inference import predict, write_table

    def report(path, problem):  # one line per bad input; the others go on
        print(f"aulib: error: {path}: {problem}", file=sys.stderr)

    df = predict(a.inputs, checkpoint=a.checkpoint, landmarks=a.landmarks, overlay=a.overlay, every=a.every,
                 max_frames=a.max_frames, on_error=report, progress=not a.quiet)
    write_table(df, a.out)
    ok = int(df["success"].sum()) if len(df) else 0
    print(f"wrote {a.out}: {len(df)} rows, {ok} faces, {df['input'].nunique() if len(df) else 0} inputs")
    if df.attrs.get("errors"):
        sys.exit(2)


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


def _one_line(exc: BaseException) -> str:
    from .data.schema import DatasetError

    if isinstance(exc, DatasetError):
        where = exc.file if exc.row is None else f"{exc.file}:{exc.row}"
        return f"{where}: {exc.problem}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Bad input (a broken file, a refused output folder, a bad option) ends with one line
    ``aulib: error: <file>:<row>: <what is wrong>`` and exit status 2; ``--debug`` shows the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [x for x in argv if x != "--debug"]
    p = argparse.ArgumentParser(prog="python -m aulib", description=__doc__,
                                epilog="--debug (anywhere on the line): show the full traceback of an error")
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
    s.add_argument("--overwrite", action="store_true", help="replace --out if it holds a dataset aulib wrote")
    s.set_defaults(func=_synth)

    _add_convert_parsers(sub)

    t = sub.add_parser("train", help="train a method on a canonical dataset into a run folder (with a model card)",
                       description="python -m aulib train METHOD --data DIR --out RUN [key=value ...]. key=value "
                       "sets a field of the method's config or of aulib.runs.RunConfig (epochs, image_size, align, "
                       "...); with --data synth:PRESET, synth.<field> sets the generator. The same command again "
                       "resumes the run.")
    t.add_argument("method", help="supervised, cnn_study, tranet, aunet, rrl or emoco (rrl / emoco: pretraining, "
                                  "then the linear probe; aunet: FAN, AU-VAE, then the head)")
    t.add_argument("--data", required=True, help="canonical dataset folder, or synth:PRESET (generated in memory)")
    t.add_argument("--out", required=True, help="run folder (new, empty, or this run's: resume)")
    t.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    t.add_argument("--fold", type=int, default=1, help="test fold (1..k, subject-exclusive; default 1)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("settings", nargs="*", metavar="key=value", help="config overrides, e.g. backbone=resnet18")
    t.set_defaults(func=_train)

    pr = sub.add_parser("predict", help="AUs of the faces in images, folders and videos (offline)",
                        description="python -m aulib predict INPUT... --out TABLE.csv|.parquet [--checkpoint RUN]. "
                        "Faces: dlib (HOG detector + 68-point model), aligned as the checkpoint's training data.")
    pr.add_argument("inputs", nargs="+", help="image files, folders of images, videos (mp4/avi/mov/mkv/webm)")
    pr.add_argument("--checkpoint", help="a run folder or model.pt (default: the model shipped with aulib)")
    pr.add_argument("--out", required=True, help="output table: .csv or .parquet")
    pr.add_argument("--landmarks", action="store_true", help="add the 68 landmarks x_0..x_67, y_0..y_67")
    pr.add_argument("--overlay", metavar="DIR", help="write each frame with box, landmarks and AU bars")
    pr.add_argument("--every", type=int, default=1, help="videos: every n-th frame (default 1)")
    pr.add_argument("--max-frames", type=int, help="videos: at most this many frames per video")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_predict)

    r = sub.add_parser("reproduce", help="run notebooks through papermill into reports/")
    r.add_argument("notebooks", nargs="*", help="notebook names or prefixes (default: all)")
    r.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    r.add_argument("--out", help="report folder (default: reports/ of the clone)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="extra notebook parameter")
    r.add_argument("--plan", action="store_true", help="print what each run costs and whether it fits (runs nothing)")
    r.add_argument("--machine", help="with --plan: plan for a named machine (h200) instead of this one")
    r.set_defaults(func=_reproduce)

    pl = sub.add_parser("plan", help="what each notebook's runs cost (steps, images, GPU-hours, RAM, GPU memory, "
                        "disk) and whether they fit; exit 2 when one does not",
                        description="python -m aulib plan [--profile gpu] [--machine h200] [NOTEBOOK...]")
    pl.add_argument("notebooks", nargs="*", help="notebook names or prefixes (default: all)")
    pl.add_argument("--profile", default="gpu", choices=("smoke", "cpu", "gpu"))
    pl.add_argument("--machine", help="plan for a named machine (h200: 139 GiB GPU, 16 cores, 128 GiB RAM, 64 GiB "
                    "disk) instead of this one")
    pl.set_defaults(func=_plan)

    b = sub.add_parser("bench", help="benchmarks (same as python -m aulib.bench)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=lambda a: __import__("aulib.bench.__main__", fromlist=["main"]).main(a.rest))

    i = sub.add_parser("info", help="versions, device and datasets found")
    i.add_argument("--data", nargs="*", default=["data"], help="folders to search for canonical datasets")
    i.set_defaults(func=_info)

    settings = []
    if argv[:1] == ["train"]:  # key=value settings may come anywhere after METHOD (argparse wants them last)
        rest = argv[1:]
        keep = [x for i, x in enumerate(rest) if not ("=" in x and not x.startswith("-")
                                                      and not (i and rest[i - 1] in ("--data", "--out")))]
        settings = [x for x in rest if x not in keep]
        argv = ["train", *keep]
    a = p.parse_args(argv)
    if settings:
        a.settings = [*settings, *a.settings]
    from .data.schema import DatasetError

    try:
        a.func(a)
    except (DatasetError, ValueError, KeyError, OSError) as exc:  # bad input: one line, no traceback
        if debug:
            raise
        print(f"aulib: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        print("aulib: interrupted (a conversion resumes where it stopped when run again)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
