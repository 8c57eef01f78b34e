"""The conversion engine shared by every dataset module.

A dataset module only *scans*: it reads the label files (raising :class:`DatasetError` naming file and row,
or recording the row in the skip list in lenient mode) and returns :class:`Unit` s, one per video / task /
chunk of stills, each a list of :class:`FrameRec`. The engine then decodes, aligns and stores the frames:

* every unit becomes one *shard* in a work folder beside the output (``.<out>.convert-work/``), written
  atomically; a re-run with the same options skips the shards already there, so an interrupted conversion
  continues where it stopped;
* units run in parallel worker processes (``workers``) under a tqdm progress bar counting frames;
* at the end the shards are assembled into the canonical folder through :func:`atomic_dir` (the output is
  either the old folder or the complete new one, never half written) and the work folder is removed;
* the output is checked before any work (:func:`~aulib.data.schema.check_output`: never a folder holding
  anything aulib did not write, never the source or a folder inside or above it), and the temporary folders
  of a killed run are removed by the next one (:func:`~aulib.data.schema.clean_stale`);
* worker processes die with their parent (Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; elsewhere, and as a
  second line, a watchdog thread that polls ``os.getppid()``), so a ``kill -9`` leaves no orphan decoding on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..align import align_face, apply_transform, get_template, to_channels, warp
from ..schema import (
    FRAMES_FILE,
    IMAGES_FILE,
    LANDMARKS_FILE,
    META_FILE,
    UNKNOWN,
    CanonicalDataset,
    DatasetError,
    DatasetMeta,
    atomic_dir,
    check_output,
    clean_stale,
    open_dataset,
)

SKIPPED_FILE = "skipped.csv"
SUMMARY_FILE = "conversion_summary.csv"


# -- what a scanner produces ----------------------------------------------------------------------------------
@dataclass
class FrameRec:
    """One labelled frame. ``image`` is a file (absolute path) or None when the unit has a ``video``;
    ``video_index`` is then the 0-based frame of that video. ``landmarks`` (68, 2) source pixels or None;
    ``box`` (x, y, w, h) a face box used to crop when there is no alignment template."""

    frame: int
    labels: dict[str, int]
    source: str  # where the labels came from, "file:row" (kept in frames.source)
    image: str | None = None
    video_index: int | None = None
    landmarks: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    subject: str | None = None   # stills chunked across subjects set these; otherwise the unit's are used
    sequence: str | None = None


@dataclass
class Unit:
    subject: str
    sequence: str
    frames: list[FrameRec]
    video: str | None = None


@dataclass
class Scan:
    """What a dataset module's ``scan`` returns."""

    name: str
    aus: list[int]
    label_kinds: list[str]
    units: list[Unit]
    provenance: dict[str, Any] = field(default_factory=dict)


class Issues:
    """Strict mode: raise at the first bad row. Lenient mode: record it and go on."""

    def __init__(self, lenient: bool):
        self.lenient = lenient
        self.rows: list[dict[str, Any]] = []

    def bad(self, file: str | os.PathLike, problem: str, row: int | None = None) -> None:
        if not self.lenient:
            raise DatasetError(file, problem, row)
        self.rows.append({"file": str(file), "row": row, "problem": problem})

    def note(self, file: str | os.PathLike, problem: str, row: int | None = None) -> None:
        """Something dropped on purpose (e.g. an AffectNet 'contempt' image): listed even in strict mode."""
        self.rows.append({"file": str(file), "row": row, "problem": problem})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["file", "row", "problem"])


# -- options ---------------------------------------------------------------------------------------------------
@dataclass
class Options:
    align: str | None = None          # template name (aulib.data.align.TEMPLATES) or None: keep / crop + resize
    image_size: int | None = None     # output size when not aligning (None: the first frame's size)
    channels: int | None = None       # 1 or 3 (None: the template's, else 3 for colour sources, 1 for grey)
    landmarks: str | None = None      # None (dataset's own / aulib_landmarks.csv), a CSV path, "dlib", "template"
    lenient: bool = False
    workers: int = 1
    progress: bool = True
    tag: str = ""                     # anything else that changes the output (dataset options, landmark file)

    def fingerprint(self, src: Path, name: str) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in ("workers", "progress")}
        d.update(src=str(src.resolve()), name=name)
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- per-frame image work (runs in workers) ---------------------------------------------------------------------
def read_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W, C) with C = 1 for grey files, 3 otherwise; DatasetError naming the file if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # a truncated file fails here, not later
            mode = "L" if im.mode in ("L", "I;16", "1") else "RGB"
            arr = np.asarray(im.convert(mode))
    except (OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(path, f"cannot read image ({exc})") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def _resize_matrix(h: int, w: int, out: int) -> np.ndarray:
    """Scale an (h, w) image to (out, out), pixel centres kept (x' = s (x + .5) - .5)."""
    sx, sy = out / w, out / h
    return np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]])


def _box_matrix(box: Sequence[float], out: int) -> np.ndarray:
    """Square crop around ``box`` (x, y, w, h) scaled to (out, out)."""
    x, y, w, h = (float(v) for v in box)
    s = out / max(w, h, 1e-6)
    cx, cy = x + w / 2 - 0.5, y + h / 2 - 0.5  # box centre in pixel-centre coordinates
    c = (out - 1) / 2
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]])


_DLIB_CACHE: dict[str, Any] = {}


def _frame_to_output(img: np.ndarray, lm: np.ndarray, rec: FrameRec, opts: Options, size: int,
                     channels: int) -> tuple[np.ndarray, np.ndarray]:
    if opts.align:
        out, out_lm = align_face(img, lm, opts.align)
        if out.shape[0] != size:  # image_size given with a template: the aligned crop, rescaled
            m = _resize_matrix(out.shape[0], out.shape[1], size)
            out, out_lm = warp(out, m, size), apply_transform(m, out_lm).astype(np.float32)
        return to_channels(out, channels), out_lm
    h, w = img.shape[:2]
    if rec.box is not None:
        m = _box_matrix(rec.box, size)
    elif (h, w) == (size, size):
        return to_channels(img, channels), lm.astype(np.float32)
    else:
        m = _resize_matrix(h, w, size)
    return to_channels(warp(img, m, size), channels), apply_transform(m, lm).astype(np.float32)


def _landmarks_for(img: np.ndarray, rec: FrameRec, opts: Options, where: str) -> np.ndarray:
    if rec.landmarks is not None:
        return np.asarray(rec.landmarks, dtype=np.float64)
    if opts.landmarks == "dlib":
        from .landmarks import detect_landmarks

        lm = detect_landmarks(img, cache=_DLIB_CACHE)
        if lm is None:
            raise DatasetError(where, "dlib found no face in this image")
        return lm
    if opts.landmarks == "template":
        from .landmarks import template_landmarks

        return template_landmarks(img.shape[0], img.shape[1])
    raise DatasetError(where, "no landmarks for this frame: pass landmarks=<CSV file> (aulib_landmarks.csv layout), "
                       "landmarks='dlib' (pip install 'aulib[landmarks]') or landmarks='template' (already "
                       "aligned crops)")


def _decode_video(path: str, wanted: Sequence[int]) -> dict[int, np.ndarray]:
    """{index: RGB uint8 frame} for a few ``wanted`` 0-based frames (used to probe the output size)."""
    return dict(_iter_video(path, wanted))


def unit_key(unit: Unit) -> str:
    """Hash of everything a unit's shard is built from: a shard is reused on resume only if the labels, files
    and landmarks it came from are unchanged (a label fixed between runs is picked up)."""
    h = hashlib.sha1(f"{unit.subject}|{unit.sequence}|{unit.video}".encode())
    for r in unit.frames:
        h.update(f"{r.frame}|{sorted(r.labels.items())}|{r.source}|{r.image}|{r.video_index}|{r.box}|"
                 f"{r.subject}|{r.sequence}".encode())
        if r.landmarks is not None:
            h.update(np.round(np.asarray(r.landmarks, dtype=np.float64), 4).tobytes())
    return h.hexdigest()


def _iter_video(path: str, wanted: Sequence[int]):
    """Yield (index, RGB uint8 frame) for the ``wanted`` 0-based frames, streaming (one frame in memory)."""
    try:
        import av
    except ImportError as exc:
        raise DatasetError(path, "decoding videos needs PyAV: pip install 'aulib[video]' (or pip install av)") from exc
    want = set(int(i) for i in wanted)
    last = max(want) if want else -1
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in want:
                    yield i, frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise DatasetError(path, f"cannot decode video ({exc})") from exc


def _unit_images(unit: Unit):
    """Yield (rec, image or DatasetError) in the unit's order; video frames are decoded in one streaming pass."""
    if unit.video is None:
        for rec in unit.frames:
            try:
                yield rec, read_image(rec.image)
            except DatasetError as exc:
                yield rec, exc
        return
    by_index = {}
    for rec in unit.frames:
        by_index.setdefault(rec.video_index, []).append(rec)
    decoded = 0
    for i, img in _iter_video(unit.video, list(by_index)):
        decoded += 1
        for rec in by_index.pop(i):
            yield rec, img
    for i in sorted(by_index):  # the video ended first
        for rec in by_index[i]:
            yield rec, DatasetError(unit.video, f"the labels ({rec.source}) need video frame {i} (0-based) but the "
                                    f"video ends before it ({decoded} of the wanted frames could be decoded)")


def process_unit(unit: Unit, opts: Options, size: int, channels: int, shard: Path) -> int:
    """Decode, (align,) store one unit as shard files; returns the number of frames kept. Frames are written
    straight into a memory-mapped shard, so a 5,000-frame video never sits in memory at once."""
    tmp = shard.with_name(shard.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    n = len(unit.frames)
    images = np.lib.format.open_memmap(tmp / "images_all.npy", mode="w+", dtype=np.uint8,
                                       shape=(max(n, 1), size, size, channels))
    lms = np.zeros((n, 68, 2), np.float32)
    rows, skipped = [], []
    for rec, img in _unit_images(unit):
        where = rec.image if rec.image is not None else f"{unit.video}, frame {rec.video_index}"
        try:
            if isinstance(img, DatasetError):
                raise img
            lm = _landmarks_for(img, rec, opts, where)
            out, out_lm = _frame_to_output(img, lm, rec, opts, size, channels)
        except DatasetError as exc:
            if not opts.lenient:
                raise
            skipped.append({"file": exc.file, "row": exc.row, "problem": exc.problem})
            continue
        images[len(rows)] = out
        lms[len(rows)] = out_lm
        rows.append({"subject": rec.subject or unit.subject, "sequence": rec.sequence or unit.sequence,
                     "frame": rec.frame, "source": rec.source, **rec.labels})
    k = len(rows)
    if k == n and n > 0:
        images.flush()
        del images
        os.replace(tmp / "images_all.npy", tmp / "images.npy")
    else:  # some frames skipped (lenient): keep the first k
        np.save(tmp / "images.npy", np.asarray(images[:k]))
        del images
        (tmp / "images_all.npy").unlink()
    np.save(tmp / "landmarks.npy", lms[:k])
    pd.DataFrame(rows).to_parquet(tmp / "frames.parquet", index=False)
    pd.DataFrame(skipped, columns=["file", "row", "problem"]).to_csv(tmp / "skipped.csv", index=False)
    (tmp / "key.txt").write_text(unit_key(unit))
    if shard.exists():
        shutil.rmtree(shard)
    os.replace(tmp, shard)
    return k


def _process_in_worker(unit: Unit, opts: Options, size: int, channels: int, shard: Path):
    """process_unit for a worker process: a DatasetError travels back as its parts (its constructor takes
    (file, problem, row), which the default exception pickling does not reproduce)."""
    try:
        return process_unit(unit, opts, size, channels, shard)
    except DatasetError as exc:
        return ("error", exc.file, exc.problem, exc.row)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the converting process ``parent`` dies."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="aulib-parent-watchdog", daemon=True).start()


def _probe(units: list[Unit], opts: Options) -> tuple[int, int]:
    """(size, channels) of the output, from the template or the first readable frame."""
    if opts.align:
        tpl = get_template(opts.align)
        return int(opts.image_size or tpl.size), opts.channels or tpl.channels
    img, first, err = None, None, None
    for unit in units:  # the first readable frame (a broken one is the workers' to report or skip)
        for rec in unit.frames[:20]:
            try:
                if unit.video is not None:
                    img = _decode_video(unit.video, [rec.video_index]).get(rec.video_index)
                    if img is None:
                        raise DatasetError(unit.video, f"cannot decode frame {rec.video_index}")
                else:
                    img = read_image(rec.image)
                first = rec
                break
            except DatasetError as exc:
                err = err or exc
        if first is not None:
            break
    if first is None:
        raise err or DatasetError("(scan)", "no labelled frames were found")
    if opts.image_size:
        size = int(opts.image_size)
    elif first.box is not None:
        size = int(round(max(first.box[2], first.box[3])))
    else:
        size = int(max(img.shape[:2]))
    return size, opts.channels or img.shape[2]


# -- driver -----------------------------------------------------------------------------------------------------
def work_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.convert-work"


def check_labels(scan: Scan) -> None:
    """A scan whose every AU label is unknown (a label file that parsed to nothing usable) is an error."""
    if not scan.aus or scan.provenance.get("unlabelled_ok"):
        return
    by_file: dict[str, list[bool]] = {}
    for u in scan.units:
        for r in u.frames:
            f = r.source.rsplit(":", 1)[0]
            by_file.setdefault(f, []).append(all(v == UNKNOWN for k, v in r.labels.items()
                                                 if k.startswith("AU") and not k.endswith("_int")))
    if by_file and all(all(v) for v in by_file.values()):
        first = scan.provenance.get("label_file_hint") or next(iter(by_file))
        raise DatasetError(first, f"every AU label of every frame is unknown ({UNKNOWN} / -1 / 999) in "
                           f"{'this file' if len(by_file) == 1 else f'all {len(by_file)} label files'}; "
                           "the file is not in the layout the converter expects, or carries no labels")


def run(scan: Scan, src: Path, out: Path, opts: Options, issues: Issues,
        on_unit_done: Callable[[int], None] | None = None, overwrite: bool = False) -> CanonicalDataset:
    """Process ``scan``'s units into shards (resuming), then assemble ``out`` atomically."""
    out = Path(out)
    clean_stale(out)
    check_output(out, src, overwrite)
    units = [u for u in scan.units if u.frames]
    if not units:
        raise DatasetError(src, "no labelled frames were found (check the folder layout in the converter's docstring)")
    check_labels(scan)
    work = work_dir_for(out)
    fp = opts.fingerprint(src, scan.name)
    job = work / "job.json"
    if work.exists():
        if not job.is_file():
            raise DatasetError(work, "exists but is not an aulib work folder (no job.json); aulib will not delete "
                               "it: move it away")
        try:
            same = json.loads(job.read_text()).get("fingerprint") == fp
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:  # other options or source: start over (the folder is aulib's own, it has job.json)
            shutil.rmtree(work)
    (work / "shards").mkdir(parents=True, exist_ok=True)
    size, channels = _probe(units, opts)
    job.write_text(json.dumps({"fingerprint": fp, "name": scan.name, "units": len(units), "size": size,
                               "channels": channels}))
    shards = [work / "shards" / f"{i:06d}" for i in range(len(units))]
    todo = [i for i, s in enumerate(shards)
            if not ((s / "key.txt").is_file() and (s / "key.txt").read_text() == unit_key(units[i]))]
    total = sum(len(units[i].frames) for i in todo)
    bar = tqdm(total=total, unit="frame", desc=f"convert {scan.name}", disable=not opts.progress)
    if len(units) - len(todo):
        bar.write(f"resuming: {len(units) - len(todo)} of {len(units)} units already converted in {work}")
    try:
        if opts.workers <= 1 or len(todo) <= 1:
            for i in todo:
                process_unit(units[i], opts, size, channels, shards[i])
                bar.update(len(units[i].frames))
                if on_unit_done:
                    on_unit_done(i)
        else:
            with ProcessPoolExecutor(max_workers=opts.workers, initializer=_die_with_parent,
                                     initargs=(os.getpid(),)) as pool:
                futs = {pool.submit(_process_in_worker, units[i], opts, size, channels, shards[i]): i for i in todo}
                for f in as_completed(futs):
                    res = f.result()
                    if isinstance(res, tuple):  # a worker's DatasetError: stop the others, raise it here
                        for other in futs:
                            other.cancel()
                        raise DatasetError(res[1], res[2], res[3])
                    bar.update(len(units[futs[f]].frames))
                    if on_unit_done:
                        on_unit_done(futs[f])
    finally:
        bar.close()
    ds = _assemble(scan, shards, out, size, channels, issues, src=src, overwrite=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return ds


def _assemble(scan: Scan, shards: list[Path], out: Path, size: int, channels: int,
              issues: Issues, src: Path | None = None, overwrite: bool = False) -> CanonicalDataset:
    frames = [pd.read_parquet(s / "frames.parquet") for s in shards]
    counts = [len(f) for f in frames]
    n = sum(counts)
    if n == 0:
        raise DatasetError(out, "every frame was skipped; nothing to write (see the skip list)")
    skipped = pd.concat([issues.frame(), *(pd.read_csv(s / "skipped.csv") for s in shards)], ignore_index=True)
    table = pd.concat([f for f in frames if len(f)], ignore_index=True)
    table.insert(3, "image", np.arange(n, dtype=np.int64))
    for c in table.columns:
        if c.startswith("AU") or c == "emotion":
            table[c] = table[c].astype(np.int8)
    table["frame"] = table["frame"].astype(np.int64)
    meta = DatasetMeta(scan.name, list(scan.aus), (size, size), channels, list(scan.label_kinds),
                       provenance={"converter": scan.name, **scan.provenance, "skipped_rows": int(len(skipped))})
    with atomic_dir(out, overwrite=overwrite, src=src) as tmp:
        images = np.lib.format.open_memmap(tmp / IMAGES_FILE, mode="w+", dtype=np.uint8,
                                           shape=(n, size, size, channels))
        landmarks = np.empty((n, 68, 2), np.float32)
        at = 0
        for s, c in zip(shards, counts):
            if c:
                images[at:at + c] = np.load(s / "images.npy", mmap_mode="r")
                landmarks[at:at + c] = np.load(s / "landmarks.npy")
                at += c
        images.flush()
        mem = CanonicalDataset(meta, table, landmarks, images)  # validates before anything is renamed into place
        from .summary import summary_table

        summary_table(mem, scan.name).to_csv(tmp / SUMMARY_FILE, index=False)
        del images, mem
        table.to_parquet(tmp / FRAMES_FILE, index=False)
        np.save(tmp / LANDMARKS_FILE, landmarks)
        (tmp / META_FILE).write_text(json.dumps(meta.to_json(), indent=2))
        skipped.to_csv(tmp / SKIPPED_FILE, index=False)
    ds = open_dataset(out)
    ds.skipped = skipped  # type: ignore[attr-defined]
    return ds
