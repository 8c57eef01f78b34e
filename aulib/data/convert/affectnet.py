"""AffectNet -> canonical (emotion labels, 68 landmarks, face box).

Layout (AffectNet release; column names and the 0-10 expression codes checked with the ``search`` tool in
public AffectNet loaders: ``training.csv`` with ``subDirectory_filePath, face_x, face_y, face_width,
face_height, facial_landmarks, expression, valence, arousal``; landmarks as "x;y;x;y;..." (68 points); codes
0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, 8 None, 9 Uncertain,
10 No-Face)::

    <src>/Manually_Annotated_file_lists/training.csv, validation.csv   (or the CSVs directly in <src>)
    <src>/Manually_Annotated_Images/<subDirectory_filePath>            (or the paths directly under <src>)

Kept: the 7 classes EmoCo uses (0-6, the same order as aulib's EMOTIONS). Dropped and listed in the skip list:
7 Contempt (EmoCo uses 7 classes), 8 None, 9 Uncertain, 10 No-Face. A CSV without a header row (some copies of
validation.csv) is read with the standard column order. Without ``align`` the face box is cropped (square
around its centre) and resized. AffectNet has no subject ids: the image's folder stands in for the subject
(only used to keep folds image-disjoint; AffectNet's own train / validation split is in ``sequence``).

The second distribution (the "npy" one, 224 x 224 crops with 8 classes), read when ``train_set/annotations``
or ``val_set/annotations`` exists. Its layout is documented by public loaders, not checked against a copy of
the release (found with the ``search`` tool: dataset notes listing ``AffectNet/train_set/{images,annotations}``
and ``val_set/...``, an ``AffectNetNPYDataset(image_dir, annotations_dir)`` loader reading ``<id>_exp.npy``);
the converter says so when it runs::

    <src>/train_set/images/<id>.jpg
    <src>/train_set/annotations/<id>_exp.npy   the expression code (a 0-d array, number or string), same codes
    <src>/train_set/annotations/<id>_lnd.npy   68 landmarks as 136 numbers x0, y0, x1, y1, ... (crop pixels)
    <src>/train_set/annotations/<id>_val.npy, <id>_aro.npy   valence, arousal (not used)
    <src>/val_set/...                          the same for the validation split

Each image is its own subject there (the crops carry no folder); ``sequence`` is ``train_set`` / ``val_set``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..schema import DatasetError
from ._engine import FrameRec, Issues, Scan
from ._stills import chunk

NAME = "affectnet"
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
DROPPED = {7: "contempt (not one of EmoCo's 7 classes)", 8: "none", 9: "uncertain", 10: "no-face"}


def _image_root(src: Path) -> Path:
    for cand in ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images"):
        if (src / cand).is_dir():
            return src / cand
    return src


EXPECTS = """either the CSV release: <src>/Manually_Annotated_file_lists/training.csv, validation.csv (columns
subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression, ...) and
<src>/Manually_Annotated_Images/<subDirectory_filePath>;
or the npy release: <src>/train_set/images/<id>.jpg + <src>/train_set/annotations/<id>_exp.npy, <id>_lnd.npy
(and val_set/ likewise)."""
NPY_SPLITS = ("train_set", "val_set")


def _npy_value(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(path, f"cannot read .npy annotation ({exc})") from exc


def scan_npy(src: Path, issues: Issues) -> Scan:
    """The npy distribution (train_set/ val_set with images/ and annotations/)."""
    recs = []
    for split in NPY_SPLITS:
        ann, imgs = src / split / "annotations", src / split / "images"
        if not ann.is_dir():
            continue
        if not imgs.is_dir():
            raise DatasetError(imgs, "image folder is missing (expected <split>/images/<id>.jpg)")
        exp_files = sorted(ann.glob("*_exp.npy"), key=lambda p: (len(p.name), p.name))
        if not exp_files:
            raise DatasetError(ann, "no <id>_exp.npy expression files in this folder")
        for f in exp_files:
            ident = f.name[: -len("_exp.npy")]
            try:
                expr = int(float(str(_npy_value(f).reshape(-1)[0])))
            except (ValueError, IndexError):
                issues.bad(f, "expression is not a number")
                continue
            if expr in DROPPED:
                issues.note(f, f"expression {expr} ({DROPPED[expr]}) dropped")
                continue
            if not 0 <= expr <= 6:
                issues.bad(f, f"expression {expr} is not an AffectNet code 0-10")
                continue
            lf = ann / f"{ident}_lnd.npy"
            if not lf.is_file():
                issues.bad(lf, "landmark file is missing")
                continue
            try:
                pts = _npy_value(lf).astype(np.float64).reshape(-1)
            except ValueError:
                issues.bad(lf, "landmarks are not numbers")
                continue
            if pts.size != 136 or not np.isfinite(pts).all():
                issues.bad(lf, f"landmarks must hold 68 x, y pairs (136 numbers), found {pts.size}")
                continue
            img = next((imgs / f"{ident}{e}" for e in (".jpg", ".jpeg", ".png") if (imgs / f"{ident}{e}").is_file()),
                       None)
            if img is None:
                issues.bad(f, f"image {imgs / (ident + '.jpg')} does not exist")
                continue
            recs.append(FrameRec(0, {"emotion": expr}, f"{split}/annotations/{f.name}:1", image=str(img),
                                 landmarks=pts.reshape(68, 2), subject=f"{split}_{ident}", sequence=split))
    return Scan(NAME, [], ["emotion"], chunk(recs), {
        "source_layout": "AffectNet npy (train_set/val_set images + annotations)",
        "dropped_codes": {str(k): v for k, v in DROPPED.items()},
        "guessed": ["the npy layout (<split>/images/<id>.jpg, <split>/annotations/<id>_exp.npy, <id>_lnd.npy) "
                    "comes from public loaders, not from a copy of the release; check a few converted frames"]})


def scan(src: Path, issues: Issues, splits: tuple[str, ...] = ("training", "validation")) -> Scan:
    if any((src / s / "annotations").is_dir() for s in NPY_SPLITS):
        return scan_npy(src, issues)
    lists = src / "Manually_Annotated_file_lists"
    lists = lists if lists.is_dir() else src
    files = [lists / f"{s}.csv" for s in splits if (lists / f"{s}.csv").is_file()]
    if not files:
        raise DatasetError(lists, f"no {' / '.join(s + '.csv' for s in splits)} found (nor the npy release's "
                           "train_set/annotations/)")
    root = _image_root(src)
    recs, per_subject = [], {}
    for f in files:
        try:
            with open(f, newline="") as fh:
                rows = list(csv.reader(fh))
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f, f"cannot read the file list ({exc})") from exc
        if not rows:
            raise DatasetError(f, "file is empty")
        header = [h.strip() for h in rows[0]]
        start = 1
        if header[0] != COLUMNS[0]:
            header, start = list(COLUMNS), 0  # headerless copy
        missing = [c for c in COLUMNS[:7] if c not in header]
        if missing:
            raise DatasetError(f, f"missing column(s) {', '.join(missing)}", row=1)
        col = {c: header.index(c) for c in COLUMNS[:7]}
        for k, row in enumerate(rows[start:], start=start + 1):
            if not row:
                continue
            try:
                rel = row[col["subDirectory_filePath"]].strip()
                expr = int(float(row[col["expression"]]))
                box = tuple(float(row[col[c]]) for c in ("face_x", "face_y", "face_width", "face_height"))
                pts = np.array([float(v) for v in row[col["facial_landmarks"]].split(";") if v.strip()])
            except (ValueError, IndexError) as exc:
                issues.bad(f, f"unparsable value ({exc})", k)
                continue
            if expr in DROPPED:
                issues.note(f, f"expression {expr} ({DROPPED[expr]}) dropped", k)
                continue
            if not 0 <= expr <= 6:
                issues.bad(f, f"expression {expr} is not an AffectNet code 0-10", k)
                continue
            if pts.size != 136 or not np.isfinite(pts).all():
                issues.bad(f, f"facial_landmarks must hold 68 x;y pairs (136 numbers), found {pts.size}", k)
                continue
            if box[2] <= 0 or box[3] <= 0:
                issues.bad(f, f"face box width/height must be positive, found {box[2:]}", k)
                continue
            img = root / rel
            if not img.is_file():
                issues.bad(f, f"image {img} does not exist", k)
                continue
            subject = str(Path(rel).parent) if str(Path(rel).parent) != "." else Path(rel).stem
            frame = per_subject.get(subject, 0)
            per_subject[subject] = frame + 1
            recs.append(FrameRec(frame, {"emotion": expr}, f"{f.name}:{k}", image=str(img),
                                 landmarks=pts.reshape(68, 2), box=box, subject=subject, sequence=f.stem))
    return Scan(NAME, [], ["emotion"], chunk(recs), {"source_layout": "AffectNet Manually_Annotated_file_lists",
                                                     "dropped_codes": {str(k): v for k, v in DROPPED.items()}})
