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
import sys
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

# The union of the five papers' AUs (AU28, lip suck, from the CNN study's Table I); the synthetic generator
# animates all of them. New AUs go at the end so that older positions keep their meaning.
AU_UNION: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28)
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
def _read_meta(path: Path) -> DatasetMeta:
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(path, f"cannot read file ({exc})") from exc
    if not isinstance(d, dict):
        raise DatasetError(path, f"must hold a JSON object, found {type(d).__name__}")
    try:
        meta = DatasetMeta.from_json(d, path)
        meta.aus = [int(a) for a in meta.aus]
        h, w = (int(v) for v in meta.image_size)
        meta.image_size = (h, w)
        meta.channels = int(meta.channels)
        if not isinstance(meta.label_kinds, list) or not isinstance(meta.provenance, dict):
            raise TypeError("'label_kinds' must be a list and 'provenance' an object")
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(path, f"a value has the wrong type ({exc}); 'aus' is a list of AU numbers, "
                           "'image_size' [H, W], 'channels' 1 or 3") from exc
    return meta


def _read_frames(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError / ArrowIOError, each without the file name
        raise DatasetError(path, f"cannot read the parquet table ({type(exc).__name__}: {exc}); the file is "
                           "truncated or not a parquet file") from exc


def _read_npy(path: Path, mmap: bool) -> np.ndarray:
    """np.load, with a truncated or foreign file named and explained (numpy's 'mmap length is greater than file
    size' / 'cannot reshape array' name neither the file nor the cause)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise DatasetError(path, f"not a .npy array file ({exc})") from exc
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise DatasetError(path, f"truncated: its header says shape {tuple(shape)} ({need:,} bytes) but the file "
                           f"holds {have:,} bytes")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(path, f"cannot read the array ({exc})") from exc


def open_dataset(path: str | os.PathLike, mmap: bool = True) -> CanonicalDataset:
    """Open and validate a canonical dataset folder. Every problem (a missing, truncated or malformed file, a
    bad value) raises :class:`DatasetError` naming the file, the row where there is one, and what is wrong."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(root, "dataset folder does not exist")
    for f in (META_FILE, FRAMES_FILE, LANDMARKS_FILE):
        if not (root / f).is_file():
            raise DatasetError(root / f, "file is missing")
    meta = _read_meta(root / META_FILE)
    frames = _read_frames(root / FRAMES_FILE)
    landmarks = _read_npy(root / LANDMARKS_FILE, mmap)
    if landmarks.dtype.kind not in "fiu":
        raise DatasetError(root / LANDMARKS_FILE, f"landmarks must be numbers, found dtype {landmarks.dtype}")
    images = None
    if meta.storage == "packed":
        if not (root / IMAGES_FILE).is_file():
            raise DatasetError(root / IMAGES_FILE, "file is missing (storage is 'packed')")
        images = _read_npy(root / IMAGES_FILE, mmap)
        if images.dtype != np.uint8:
            raise DatasetError(root / IMAGES_FILE, f"images must be uint8, found dtype {images.dtype}")
    return CanonicalDataset(meta, frames, np.asarray(landmarks, dtype=np.float32), images, root)


# -- never destroy what aulib did not write ------------------------------------------------------------------
# The entries aulib itself puts in a canonical folder (the converters add the skip list and the summary).
OWN_ENTRIES = frozenset({META_FILE, FRAMES_FILE, LANDMARKS_FILE, IMAGES_FILE, "images", "skipped.csv",
                         "conversion_summary.csv"})
PARTIAL_MARKER = ".aulib-partial"  # written into every temporary folder aulib creates


class OutputError(DatasetError):
    """An output folder aulib refuses to write (it exists with other content, or overlaps the source)."""


def is_aulib_dataset(path: str | os.PathLike) -> bool:
    """True if ``path`` holds a meta.json that aulib wrote (its 'format' is aulib's)."""
    try:
        d = json.loads((Path(path) / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and d.get("format") == FORMAT_NAME


def check_output(out: str | os.PathLike, src: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Refuse an output folder whose writing could destroy data aulib did not create.

    Refused: ``out`` equal to, inside or above ``src``; ``out`` an existing file; ``out`` an existing non-empty
    folder, unless it is a canonical dataset aulib wrote (only aulib's own entries in it) *and* ``overwrite``
    is true. Raises :class:`OutputError` with one line saying why."""
    out = Path(out)
    ro = out.resolve()
    if src is not None:
        rs = Path(src).resolve()
        if ro == rs:
            raise OutputError(out, "the output folder is the source folder; choose an --out outside --src")
        if rs in ro.parents:
            raise OutputError(out, f"the output folder is inside the source folder {src}; choose an --out outside it")
        if ro in rs.parents:
            raise OutputError(out, f"the output folder contains the source folder {src}; writing it would replace "
                              "the source; choose an --out outside it")
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is a file, not a folder; aulib will not replace it")
    if out.is_dir() and any(out.iterdir()):
        if not is_aulib_dataset(out):
            raise OutputError(out, "exists and is not empty, and is not a dataset aulib wrote (no aulib meta.json); "
                              "aulib never deletes what it did not create: choose an empty or new --out")
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OWN_ENTRIES)
        if foreign:
            raise OutputError(out, f"holds an aulib dataset but also {', '.join(foreign[:3])}"
                              f"{' ...' if len(foreign) > 3 else ''}, which aulib did not write; move those first")
        if not overwrite:
            raise OutputError(out, "already holds an aulib dataset; pass --overwrite (overwrite=True) to replace it")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``out`` (``.<name>.tmp-<pid>-*``, ``.<name>.old-<pid>``) left by a run
    that was killed; only folders aulib marked as its own and whose process is gone. An ``.old`` folder whose
    replacement never arrived (killed between the two renames) is renamed back to ``out``. Returns what it did."""
    out = Path(out)
    done = []
    if not out.parent.is_dir():
        return done
    for p in sorted(out.parent.glob(f".{out.name}.tmp-*")) + sorted(out.parent.glob(f".{out.name}.old-*")):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if not (p.is_dir() and pid.isdigit() and (p / PARTIAL_MARKER).is_file()) or _pid_alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            (p / PARTIAL_MARKER).unlink()
            os.replace(p, out)
            print(f"aulib: restored {out} from {p.name} (a run was killed while replacing it)", file=sys.stderr)
        else:
            shutil.rmtree(p, ignore_errors=True)
            print(f"aulib: removed {p} (a temporary folder left by a killed run)", file=sys.stderr)
        done.append(p)
    return done


def atomic_dir(out: str | os.PathLike, overwrite: bool = False, src: str | os.PathLike | None = None):
    """Context manager yielding a temporary sibling folder that replaces ``out`` only if the block succeeds.
    ``out`` is checked first (:func:`check_output`) and stale temporary folders of killed runs are removed."""
    return _AtomicDir(Path(out), overwrite, src)


class _AtomicDir:
    def __init__(self, out: Path, overwrite: bool = False, src: str | os.PathLike | None = None):
        self.out, self.overwrite, self.src = out, overwrite, src

    def __enter__(self) -> Path:
        clean_stale(self.out)
        check_output(self.out, self.src, self.overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-{os.getpid()}-", dir=self.out.parent))
        (self.tmp / PARTIAL_MARKER).write_text(f"{os.getpid()}\n")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        check_output(self.out, self.src, self.overwrite)  # nothing foreign appeared in the meantime
        os.chmod(self.tmp, 0o755)  # mkdtemp makes it private; a dataset is meant to be shared
        old = None
        if self.out.exists():
            if any(self.out.iterdir()):
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                os.replace(self.out, old)
                (old / PARTIAL_MARKER).write_text(f"{os.getpid()}\n")
            else:
                self.out.rmdir()  # an empty folder (made by the user for the output)
        (self.tmp / PARTIAL_MARKER).unlink()
        os.replace(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_dataset(ds: CanonicalDataset, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``ds`` to folder ``out`` atomically (packed storage: images are compacted to the rows used).
    An existing non-empty ``out`` is refused unless it is an aulib dataset and ``overwrite`` is true."""
    validate(ds)
    out = Path(out)
    frames = ds.frames.copy()
    with atomic_dir(out, overwrite=overwrite) as tmp:
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
