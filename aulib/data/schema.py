"""The canonical dataset: the one contract between data sources (converters, the synthetic generator) and
everything above ``aulib.data``.

On disk a dataset is a folder::

    meta.json        name, AU list, image size, channels, label kinds, version, provenance, storage
    frames.parquet   one row per frame (columns below)
    landmarks.npy    float32 (N, 68, 2): iBUG 68-point landmarks, (x, y) pixels of the stored image,
                     row i belongs to row i of frames.parquet
    images.npy       uint8 (M, H, W, C), only when storage == "packed"; frames.image indexes into it
    images/...       image files, only when storage == "files"; frames.path is relative to the folder

frames.parquet columns:

    subject     str    subject id (subject-exclusive folds are built from it)
    sequence    str    video / task id, unique within a subject
    frame       int    frame index inside the sequence (temporal order)
    image       int    row of images.npy            (storage "packed")
    path        str    image file, relative path     (storage "files")
    AU<k>       int8   occurrence: 1, 0, or UNKNOWN (9, as BP4D codes it)
    AU<k>_int   int8   intensity 0-5, or -1 unknown  (when "intensity" is a label kind)
    emotion     int8   0-6 in EMOTIONS order, or -1   (when "emotion" is a label kind)

Opening a dataset validates it and raises :class:`DatasetError` naming the file, the row and the problem.
Writing is atomic: everything goes to a temporary sibling folder that is renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT_NAME = "aulib-canonical"
FORMAT_VERSION = 1
UNKNOWN = 9  # occurrence code for "not coded" (BP4D's convention)
N_LANDMARKS = 68

# The union of the five papers' AUs; the synthetic generator animates all of them.
AU_UNION: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
# Every FACS action unit code a converter may meet (main codes 1-28 plus head/eye codes 43-46, 51-58, 61-64).
FACS_CODES: frozenset[int] = frozenset([*range(1, 29), 38, 39, 41, 42, 43, 44, 45, 46, *range(51, 59), *range(61, 65)])
# AffectNet-style emotion classes used by EmoCo (AffectNet's own codes 0-6 in this order).
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger")
LABEL_KINDS = ("occurrence", "intensity", "emotion")
META_FILE, FRAMES_FILE, LANDMARKS_FILE, IMAGES_FILE = "meta.json", "frames.parquet", "landmarks.npy", "images.npy"


class DatasetError(ValueError):
    """A dataset on disk (or in memory) breaks the canonical format. The message names file, row and problem."""

    def __init__(self, file: str | os.PathLike, problem: str, row: int | None = None):
        where = f"{file}" if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {problem}")
        self.file, self.row, self.problem = str(file), row, problem


def au_column(au: int) -> str:
    return f"AU{au}"


def intensity_column(au: int) -> str:
    return f"AU{au}_int"


@dataclass
class DatasetMeta:
    name: str
    aus: list[int]
    image_size: tuple[int, int]  # (H, W)
    channels: int  # 1 (grey) or 3 (RGB)
    label_kinds: list[str] = field(default_factory=lambda: ["occurrence"])
    version: str = "1"
    provenance: dict[str, Any] = field(default_factory=dict)
    storage: str = "packed"  # "packed" (images.npy) or "files" (frames.path)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any], file: str | os.PathLike = META_FILE) -> DatasetMeta:
        if d.get("format") != FORMAT_NAME:
            raise DatasetError(file, f"'format' is {d.get('format')!r}, expected {FORMAT_NAME!r}")
        missing = [k for k in ("name", "aus", "image_size", "channels") if k not in d]
        if missing:
            raise DatasetError(file, f"missing key(s) {', '.join(missing)}")
        kw = {k: d[k] for k in ("name", "aus", "channels", "label_kinds", "version", "provenance", "storage") if k in d}
        return cls(image_size=tuple(d["image_size"]), **kw)


class CanonicalDataset:
    """A dataset in the canonical format, in memory (images may be memory-mapped or files on disk).

    ``frames`` is the frames table, ``landmarks`` (N, 68, 2) float32 and, for packed storage, ``images``
    (M, H, W, C) uint8. Use :meth:`au_matrix` for labels as arrays and :meth:`subset` for folds.
    """

    def __init__(self, meta: DatasetMeta, frames: pd.DataFrame, landmarks: np.ndarray,
                 images: np.ndarray | None = None, root: Path | None = None):
        self.meta, self.landmarks, self.images, self.root = meta, landmarks, images, root
        self.frames = frames.reset_index(drop=True)
        validate(self)

    # -- basic views -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return (f"CanonicalDataset({self.meta.name!r}, frames={len(self)}, subjects={self.frames.subject.nunique()}, "
                f"aus={self.meta.aus}, image={self.meta.image_size}x{self.meta.channels})")

    @property
    def aus(self) -> list[int]:
        return list(self.meta.aus)

    @property
    def au_columns(self) -> list[str]:
        return [au_column(a) for a in self.meta.aus]

    @property
    def subjects(self) -> list[str]:
        return sorted(self.frames.subject.unique())

    def has(self, kind: str) -> bool:
        return kind in self.meta.label_kinds

    def au_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, valid): float32 (N, K) with 0/1 and bool (N, K), False where the label is unknown."""
        raw = self.frames[self.au_columns].to_numpy(np.int16)
        valid = raw != UNKNOWN
        return np.where(valid, raw, 0).astype(np.float32), valid

    def intensity_matrix(self) -> np.ndarray:
        """int8 (N, K) AU intensities 0-5, -1 unknown. Raises if the dataset has no intensities."""
        if not self.has("intensity"):
            raise DatasetError(self.meta.name, "this dataset has no AU intensity labels")
        return self.frames[[intensity_column(a) for a in self.meta.aus]].to_numpy(np.int8)

    def emotions(self) -> np.ndarray:
        if not self.has("emotion"):
            raise DatasetError(self.meta.name, "this dataset has no emotion labels")
        return self.frames["emotion"].to_numpy(np.int64)

    def image(self, row: int) -> np.ndarray:
        """uint8 (H, W, C) image of frame ``row``."""
        if self.meta.storage == "packed":
            return np.asarray(self.images[int(self.frames.at[row, "image"])])
        return _read_image_file(self.root / self.frames.at[row, "path"], self.meta.channels)

    def image_batch(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, C)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.meta.storage == "packed":
            return np.asarray(self.images[self.frames["image"].to_numpy()[rows]])
        return np.stack([self.image(int(r)) for r in rows])

    def subset(self, rows: Sequence[int] | np.ndarray, name: str | None = None) -> CanonicalDataset:
        """A view with only ``rows`` (frame order kept; packed images are shared, not copied)."""
        rows = np.asarray(rows, dtype=np.int64)
        meta = DatasetMeta(**{**asdict(self.meta), "name": name or self.meta.name})
        meta.image_size = tuple(meta.image_size)
        return CanonicalDataset(meta, self.frames.iloc[rows], self.landmarks[rows], self.images, self.root)

    def rows_of_subjects(self, subjects: Sequence[str]) -> np.ndarray:
        return np.flatnonzero(self.frames.subject.isin(list(subjects)).to_numpy())


def _read_image_file(path: Path, channels: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im)
    except (OSError, SyntaxError) as exc:
        raise DatasetError(path, f"cannot read image ({exc})") from exc
    return arr[..., None] if arr.ndim == 2 else arr


# -- validation ---------------------------------------------------------------------------------------------
def validate(ds: CanonicalDataset, check_files: bool = True) -> None:
    """Raise :class:`DatasetError` (file, row, problem) on the first thing that breaks the format."""
    meta, frames = ds.meta, ds.frames
    ff = (ds.root / FRAMES_FILE) if ds.root else FRAMES_FILE
    mf = (ds.root / META_FILE) if ds.root else META_FILE
    bad_aus = [a for a in meta.aus if a not in FACS_CODES]
    if bad_aus:
        raise DatasetError(mf, f"unknown AU code(s) {bad_aus} in 'aus'")
    bad_kinds = [k for k in meta.label_kinds if k not in LABEL_KINDS]
    if bad_kinds:
        raise DatasetError(mf, f"unknown label kind(s) {bad_kinds}; allowed: {', '.join(LABEL_KINDS)}")
    if meta.storage not in ("packed", "files"):
        raise DatasetError(mf, f"storage must be 'packed' or 'files', not {meta.storage!r}")
    if meta.channels not in (1, 3):
        raise DatasetError(mf, f"channels must be 1 or 3, not {meta.channels}")

    required = ["subject", "sequence", "frame", "image" if meta.storage == "packed" else "path",
                *(au_column(a) for a in meta.aus)]
    if "intensity" in meta.label_kinds:
        required += [intensity_column(a) for a in meta.aus]
    if "emotion" in meta.label_kinds:
        required.append("emotion")
    missing = [c for c in required if c not in frames.columns]
    if missing:
        raise DatasetError(ff, f"missing column(s) {', '.join(missing)}")
    stray = [c for c in frames.columns if c.startswith("AU") and c.removeprefix("AU").split("_")[0].isdigit()
             and int(c.removeprefix("AU").split("_")[0]) not in meta.aus]
    if stray:
        raise DatasetError(ff, f"AU column(s) {', '.join(stray)} are not in meta 'aus' {meta.aus}")

    def first_bad(mask: np.ndarray, what: str) -> None:
        if mask.any():
            r = int(np.flatnonzero(mask)[0])
            raise DatasetError(ff, what, row=r)

    for a in meta.aus:
        v = frames[au_column(a)].to_numpy()
        first_bad(~np.isin(v, (0, 1, UNKNOWN)), f"{au_column(a)} must be 0, 1 or {UNKNOWN} (unknown)")
        if "intensity" in meta.label_kinds:
            v = frames[intensity_column(a)].to_numpy()
            first_bad(~np.isin(v, (-1, 0, 1, 2, 3, 4, 5)), f"{intensity_column(a)} must be 0-5 or -1 (unknown)")
    if "emotion" in meta.label_kinds:
        v = frames["emotion"].to_numpy()
        first_bad(~np.isin(v, (-1, *range(len(EMOTIONS)))), f"emotion must be -1 or 0-{len(EMOTIONS) - 1}")
    first_bad(frames["frame"].to_numpy() < 0, "frame index is negative")

    lm = ds.landmarks
    lf = (ds.root / LANDMARKS_FILE) if ds.root else LANDMARKS_FILE
    if lm.ndim != 3 or lm.shape[1:] != (N_LANDMARKS, 2) or lm.shape[0] != len(frames):
        raise DatasetError(lf, f"landmarks must have shape ({len(frames)}, {N_LANDMARKS}, 2), got {tuple(lm.shape)}")
    first_bad(~np.isfinite(lm).all(axis=(1, 2)), "landmarks contain NaN or inf")

    if meta.storage == "packed":
        imf = (ds.root / IMAGES_FILE) if ds.root else IMAGES_FILE
        h, w = meta.image_size
        if ds.images is None or ds.images.ndim != 4 or ds.images.shape[1:] != (h, w, meta.channels):
            shape = None if ds.images is None else tuple(ds.images.shape)
            raise DatasetError(imf, f"images must have shape (M, {h}, {w}, {meta.channels}), got {shape}")
        idx = frames["image"].to_numpy()
        first_bad((idx < 0) | (idx >= len(ds.images)), f"image index outside images.npy (0..{len(ds.images) - 1})")
    elif check_files and ds.root is not None:
        exists = np.array([(ds.root / p).is_file() for p in frames["path"]], dtype=bool)
        if not exists.all():
            r = int(np.flatnonzero(~exists)[0])
            raise DatasetError(ff, f"image file {ds.root / frames['path'].iloc[r]} does not exist", row=r)


# -- reading and writing ------------------------------------------------------------------------------------
def open_dataset(path: str | os.PathLike, mmap: bool = True) -> CanonicalDataset:
    """Open and validate a canonical dataset folder."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(root, "dataset folder does not exist")
    for f in (META_FILE, FRAMES_FILE, LANDMARKS_FILE):
        if not (root / f).is_file():
            raise DatasetError(root / f, "file is missing")
    try:
        meta = DatasetMeta.from_json(json.loads((root / META_FILE).read_text()), root / META_FILE)
    except json.JSONDecodeError as exc:
        raise DatasetError(root / META_FILE, f"not valid JSON ({exc})") from exc
    frames = pd.read_parquet(root / FRAMES_FILE)
    landmarks = np.load(root / LANDMARKS_FILE, mmap_mode="r" if mmap else None)
    images = None
    if meta.storage == "packed":
        if not (root / IMAGES_FILE).is_file():
            raise DatasetError(root / IMAGES_FILE, "file is missing (storage is 'packed')")
        images = np.load(root / IMAGES_FILE, mmap_mode="r" if mmap else None)
    return CanonicalDataset(meta, frames, np.asarray(landmarks, dtype=np.float32), images, root)


def atomic_dir(out: str | os.PathLike):
    """Context manager yielding a temporary sibling folder that replaces ``out`` only if the block succeeds."""
    return _AtomicDir(Path(out))


class _AtomicDir:
    def __init__(self, out: Path):
        self.out = out

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_dataset(ds: CanonicalDataset, out: str | os.PathLike) -> Path:
    """Write ``ds`` to folder ``out`` atomically (packed storage: images are compacted to the rows used)."""
    validate(ds)
    out = Path(out)
    frames = ds.frames.copy()
    with atomic_dir(out) as tmp:
        meta = ds.meta
        if meta.storage == "packed":
            used = frames["image"].to_numpy()
            np.save(tmp / IMAGES_FILE, np.ascontiguousarray(ds.images[used]))
            frames["image"] = np.arange(len(frames), dtype=np.int64)
        else:
            for rel in frames["path"]:
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ds.root / rel, dst)
        frames.to_parquet(tmp / FRAMES_FILE, index=False)
        np.save(tmp / LANDMARKS_FILE, np.ascontiguousarray(ds.landmarks, dtype=np.float32))
        (tmp / META_FILE).write_text(json.dumps(meta.to_json(), indent=2))
    return out


def find_datasets(root: str | os.PathLike) -> list[Path]:
    """Canonical dataset folders at or directly under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    cands = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    return [p for p in cands if (p / META_FILE).is_file()]
