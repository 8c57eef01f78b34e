"""The field's preprocessed list files: JAA-Net and ME-GraphAU formats, read and written.

Both repositories split BP4D / DISFA into the same three subject parts (``aulib.data.folds``) but number their
folds differently. **aulib names a fold by the part it tests**:

=========================  ==========================  =====================================================
aulib fold k (tests part)  ME-GraphAU                  JAA-Net
=========================  ==========================  =====================================================
fold 1 (part 1)            fold 3 (train parts 2 + 3)  test ``part1``, train ``combine_2_3``
fold 2 (part 2)            fold 2 (train parts 1 + 3)  test ``part2``, train ``combine_1_3``
fold 3 (part 3)            fold 1 (train parts 1 + 2)  test ``part3``, train ``combine_1_2``
=========================  ==========================  =====================================================

(ME-GraphAU fold k tests part 4 - k; AU-Net's subset k tests part k, like aulib.)

File formats (looked up with the ``search`` tool in public copies of both repositories' ``data/list`` scripts):

ME-GraphAU (``<P>`` = BP4D or DISFA)::

    <P>_{train,test}_img_path_fold<k>.txt   one image path per line, e.g. F001/T1/2440.jpg
    <P>_{train,test}_label_fold<k>.txt      one line per image: space-separated 0/1 per AU (list order)
    <P>_train_weight_fold<k>.txt            one line, tab-separated: w_i = (1/r_i) / sum_j (1/r_j) * K

JAA-Net::

    <P>_part<p>_path.txt, <P>_part<p>_AUoccur.txt, <P>_part<p>_land.txt          the test lists of part p
    <P>_combine_<a>_<b>_{path,AUoccur,land,weight}.txt                          training on parts a and b
    *_land.txt: one line per image, 49 points "x1 y1 x2 y2 ..." 1-based (JAA-Net subtracts 1 on reading);
    the 49 are the iBUG 68 without the jaw and the inner mouth corners (see .landmarks)

Unknown labels (aulib's 9) are written as 9, as BP4D codes them; both repositories' loaders treat a label > 1
as "ignore" only if told to, so check before training with unknowns.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..folds import fold_subjects
from ..schema import UNKNOWN, CanonicalDataset, DatasetError, au_column
from ._engine import FrameRec, Issues, Options, Scan, Unit, run
from .landmarks import from_49, to_49

STYLES = ("megraphau", "jaanet")
DEFAULT_AUS = {"BP4D": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24), "DISFA": (1, 2, 4, 6, 9, 12, 25, 26)}


def megraphau_fold(part: int) -> int:
    """ME-GraphAU's fold number of the fold that tests ``part`` (aulib's fold ``part``)."""
    return 4 - part


def fold_mapping() -> pd.DataFrame:
    return pd.DataFrame([{"aulib_fold": p, "tests_part": p, "megraphau_fold": megraphau_fold(p),
                          "jaanet_test": f"part{p}", "jaanet_train": "combine_" + "_".join(str(q) for q in (1, 2, 3)
                                                                                          if q != p),
                          "aunet_subset": p} for p in (1, 2, 3)])


def image_path(subject: str, sequence: str, frame: int) -> str:
    return f"{subject}/{sequence}/{int(frame)}.jpg"


def weights(labels: np.ndarray) -> np.ndarray:
    """ME-GraphAU / JAA-Net per-AU loss weights: inverse positive rate, normalised to sum to K. Unknowns (9)
    are excluded from the rate; the repositories' scripts count ``label > 0`` over all rows, which differs only
    when a list holds 9s."""
    y = np.asarray(labels, dtype=np.float64)
    known = y != UNKNOWN
    rate = ((y == 1) & known).sum(0) / np.maximum(known.sum(0), 1)
    inv = 1.0 / np.maximum(rate, 1e-12)
    return inv / inv.sum() * y.shape[1]


def _parts(ds: CanonicalDataset) -> list[list[str]]:
    return fold_subjects(ds.frames.subject.unique(), k=3)


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def export_lists(ds: CanonicalDataset, out: str | os.PathLike, prefix: str = "BP4D",
                 style: str = "megraphau") -> Path:
    """Write ``ds``'s 3 folds as ``style`` list files under ``out`` (images are not copied; paths are
    ``<subject>/<sequence>/<frame>.jpg``)."""
    if style not in STYLES:
        raise ValueError(f"unknown list style {style!r}; styles: {', '.join(STYLES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = ds.frames
    paths = np.array([image_path(s, q, fr) for s, q, fr in zip(f.subject, f.sequence, f.frame)])
    labels = f[ds.au_columns].to_numpy(np.int64)
    lab_lines = np.array([" ".join(str(v) for v in row) for row in labels])
    parts = _parts(ds)
    in_part = [f.subject.isin(p).to_numpy() for p in parts]
    if style == "megraphau":
        for p in (1, 2, 3):
            k = megraphau_fold(p)
            test, train = in_part[p - 1], ~in_part[p - 1]
            for split, m in (("train", train), ("test", test)):
                _write(out / f"{prefix}_{split}_img_path_fold{k}.txt", list(paths[m]))
                _write(out / f"{prefix}_{split}_label_fold{k}.txt", list(lab_lines[m]))
            _write(out / f"{prefix}_train_weight_fold{k}.txt",
                   ["\t".join(f"{w:f}" for w in weights(labels[train]))])
    else:
        land = np.array([" ".join(f"{v + 1:.4f}" for v in to_49(lm).ravel()) for lm in np.asarray(ds.landmarks)])
        for p in (1, 2, 3):
            m = in_part[p - 1]
            _write(out / f"{prefix}_part{p}_path.txt", list(paths[m]))
            _write(out / f"{prefix}_part{p}_AUoccur.txt", list(lab_lines[m]))
            _write(out / f"{prefix}_part{p}_land.txt", list(land[m]))
            a, b = (q for q in (1, 2, 3) if q != p)
            tr = ~m
            stem = f"{prefix}_combine_{a}_{b}"
            _write(out / f"{stem}_path.txt", list(paths[tr]))
            _write(out / f"{stem}_AUoccur.txt", list(lab_lines[tr]))
            _write(out / f"{stem}_land.txt", list(land[tr]))
            _write(out / f"{stem}_weight.txt", ["\t".join(f"{w:f}" for w in weights(labels[tr]))])
    return out


# -- reading --------------------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(path, "list file is missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read_matrix(path: Path, n: int, width: int | None, issues: Issues, what: str) -> list[np.ndarray | None]:
    lines = _read_lines(path)
    if len(lines) != n:
        raise DatasetError(path, f"has {len(lines)} lines but the path list has {n}")
    out: list[np.ndarray | None] = []
    for i, line in enumerate(lines, start=1):
        try:
            v = np.array([float(x) for x in line.split()])
        except ValueError:
            issues.bad(path, f"{what} line is not numbers: {line[:60]!r}", i)
            out.append(None)
            continue
        if width is not None and v.size != width:
            issues.bad(path, f"{what} line has {v.size} values, expected {width}", i)
            out.append(None)
            continue
        out.append(v)
    return out


def read_lists(list_dir: str | os.PathLike, prefix: str = "BP4D", style: str = "megraphau",
               aus: tuple[int, ...] | None = None, lenient: bool = False) -> pd.DataFrame:
    """The test lists of the three parts as one table: path, part, subject, sequence, frame, AU<k> and, for
    JAA-Net, ``landmarks`` (68, 2) 0-based."""
    if style not in STYLES:
        raise ValueError(f"unknown list style {style!r}; styles: {', '.join(STYLES)}")
    d = Path(list_dir)
    aus = tuple(aus or DEFAULT_AUS.get(prefix.upper(), ()))
    if not aus:
        raise ValueError(f"pass aus= for list prefix {prefix!r} (known: {', '.join(DEFAULT_AUS)})")
    issues = Issues(lenient)
    frames = []
    for p in (1, 2, 3):
        if style == "megraphau":
            k = megraphau_fold(p)
            pf, lf, mf = (d / f"{prefix}_test_img_path_fold{k}.txt", d / f"{prefix}_test_label_fold{k}.txt", None)
        else:
            pf, lf, mf = (d / f"{prefix}_part{p}_path.txt", d / f"{prefix}_part{p}_AUoccur.txt",
                          d / f"{prefix}_part{p}_land.txt")
        paths = _read_lines(pf)
        labels = _read_matrix(lf, len(paths), len(aus), issues, "label")
        lms = _read_matrix(mf, len(paths), 98, issues, "landmark") if mf is not None and mf.is_file() else None
        for i, path in enumerate(paths):
            if labels[i] is None or (lms is not None and lms[i] is None):
                continue
            bad = [int(v) for v in labels[i] if v not in (0, 1, UNKNOWN)]
            if bad:
                issues.bad(lf, f"label {bad[0]} is not 0, 1 or {UNKNOWN}", i + 1)
                continue
            parts = path.replace("\\", "/").split("/")
            m = re.search(r"(\d+)$", Path(parts[-1]).stem)
            if m is None or len(parts) < 2:
                issues.bad(pf, f"cannot read subject / frame from path {path!r} (expected <subject>/<seq>/<frame>.jpg)",
                           i + 1)
                continue
            row = {"path": path, "part": p, "subject": parts[-3] if len(parts) >= 3 else parts[-2],
                   "sequence": parts[-2] if len(parts) >= 3 else "", "frame": int(m.group(1)),
                   "source": f"{pf.name}:{i + 1}"}
            row.update({au_column(a): int(v) for a, v in zip(aus, labels[i])})
            if lms is not None:
                row["landmarks"] = from_49(lms[i].reshape(49, 2) - 1)
            frames.append(row)
    df = pd.DataFrame(frames)
    df.attrs["skipped"] = issues.frame()
    df.attrs["aus"] = list(aus)
    return df


def import_lists(list_dir: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike,
                 prefix: str = "BP4D", style: str = "megraphau", aus: tuple[int, ...] | None = None,
                 lenient: bool = False, workers: int = 1, align: str | None = None, image_size: int | None = None,
                 channels: int | None = None, landmarks: str | None = None, progress: bool = True) -> CanonicalDataset:
    """Build a canonical dataset from list files plus the image folder they point into (``images``)."""
    table = read_lists(list_dir, prefix, style, aus, lenient)
    images = Path(images)
    issues = Issues(lenient)
    issues.rows.extend(table.attrs["skipped"].to_dict("records"))
    aus = table.attrs["aus"]
    units: dict[tuple[str, str], Unit] = {}
    for r in table.to_dict("records"):
        img = images / r["path"]
        if not img.is_file():
            issues.bad(img, f"image listed in {r['source']} does not exist")
            continue
        u = units.setdefault((r["subject"], r["sequence"]), Unit(r["subject"], r["sequence"], []))
        u.frames.append(FrameRec(r["frame"], {au_column(a): r[au_column(a)] for a in aus}, r["source"],
                                 image=str(img), landmarks=r.get("landmarks")))
    scan = Scan(prefix.lower(), list(aus), ["occurrence"], list(units.values()),
                {"source_layout": f"{style} lists", "list_dir": str(list_dir)})
    opts = Options(align=align, image_size=image_size, channels=channels, landmarks=landmarks, lenient=lenient,
                   workers=workers, progress=progress)
    return run(scan, images, Path(out), opts, issues)


def compare_folds(ds: CanonicalDataset, list_dir: str | os.PathLike, prefix: str = "BP4D",
                  style: str = "megraphau") -> pd.DataFrame:
    """aulib's folds beside the lists', fold by fold: the subjects each tests and the frames in common."""
    table = read_lists(list_dir, prefix, style, lenient=True)
    parts = _parts(ds)
    rows = []
    f = ds.frames
    ours_keys = set(zip(f.subject, f.sequence, f.frame.astype(int)))
    for p in (1, 2, 3):
        theirs = table[table.part == p]
        their_subj = sorted(theirs.subject.unique())
        their_keys = set(zip(theirs.subject, theirs.sequence, theirs.frame.astype(int)))
        our_keys = {k for k in ours_keys if k[0] in parts[p - 1]}
        rows.append({"aulib_fold": p, "their_fold": megraphau_fold(p) if style == "megraphau" else f"part{p}",
                     "aulib_subjects": " ".join(sorted(parts[p - 1])), "their_subjects": " ".join(their_subj),
                     "same_subjects": sorted(parts[p - 1]) == their_subj, "aulib_frames": len(our_keys),
                     "their_frames": len(their_keys), "frames_in_both": len(our_keys & their_keys)})
    return pd.DataFrame(rows)
