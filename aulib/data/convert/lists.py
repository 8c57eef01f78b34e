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

Frame keys. A list line names an image; aulib names a frame (subject, sequence, frame). BP4D lines
``F001/T1/2440.jpg`` map to (F001, T1, 2440). ME-GraphAU's DISFA lines ``SN001/0.png`` are the 0-based video
frame of the left camera: they map to (SN001, LeftVideo, 1), aulib's DISFA frame numbers being the label files'
1-based ones (:func:`list_key` / :func:`parse_key`, both ways; ``frame_offset=`` and ``sequence=`` override).
Label files are optional when reading (:func:`read_lists` then returns paths only, and :func:`import_lists`
takes the labels from an already converted dataset, ``labels_from=``); landmarks are optional too (lists
without ``*_land.txt`` point at aligned crops, so the template's mean shape stands in unless ``landmarks=``).

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


DISFA_SEQUENCE = "LeftVideo"  # what aulib's DISFA converter names the (left-camera) sequence


def image_path(subject: str, sequence: str, frame: int) -> str:
    return f"{subject}/{sequence}/{int(frame)}.jpg"


def list_key(subject: str, sequence: str, frame: int, prefix: str = "BP4D") -> str:
    """The list line of an aulib frame: ``SN001/0.png`` (0-based) for DISFA's left video, else
    ``<subject>/<sequence>/<frame>.jpg``."""
    if prefix.upper() == "DISFA" and sequence == DISFA_SEQUENCE:
        return f"{subject}/{int(frame) - 1}.png"
    return image_path(subject, sequence, frame)


def parse_key(path: str, prefix: str = "BP4D", frame_offset: int | None = None,
              sequence: str | None = None) -> tuple[str, str, int] | None:
    """(subject, sequence, frame) of a list line, the inverse of :func:`list_key`; None if it has no frame
    number. Two-part lines (``SN001/0.png``) are 0-based frames of one video per subject: for DISFA they get
    aulib's sequence ``LeftVideo`` and frame + 1 (``frame_offset`` / ``sequence`` override both)."""
    parts = path.replace("\\", "/").strip("/").split("/")
    m = re.search(r"(\d+)$", Path(parts[-1]).stem)
    if m is None or len(parts) < 2:
        return None
    n = int(m.group(1))
    if len(parts) == 2:
        disfa = prefix.upper() == "DISFA"
        off = frame_offset if frame_offset is not None else (1 if disfa else 0)
        return parts[0], sequence if sequence is not None else (DISFA_SEQUENCE if disfa else ""), n + off
    return parts[-3], sequence if sequence is not None else parts[-2], n + (frame_offset or 0)


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
    :func:`list_key`: ``<subject>/<sequence>/<frame>.jpg``, DISFA's left video ``SN001/0.png``)."""
    if style not in STYLES:
        raise ValueError(f"unknown list style {style!r}; styles: {', '.join(STYLES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = ds.frames
    paths = np.array([list_key(s, q, fr, prefix) for s, q, fr in zip(f.subject, f.sequence, f.frame)])
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
               aus: tuple[int, ...] | None = None, lenient: bool = False, frame_offset: int | None = None,
               sequence: str | None = None) -> pd.DataFrame:
    """The test lists of the three parts as one table: path, part, subject, sequence, frame (aulib's keys,
    :func:`parse_key`), AU<k> when the label files are there, and, for JAA-Net with its ``*_land.txt``,
    ``landmarks`` (68, 2) 0-based. ``attrs["has_labels"]`` says whether labels were read."""
    if style not in STYLES:
        raise ValueError(f"unknown list style {style!r}; styles: {', '.join(STYLES)}")
    d = Path(list_dir)
    aus = tuple(aus or DEFAULT_AUS.get(prefix.upper(), ()))
    issues = Issues(lenient)
    frames = []
    has_labels = True
    for p in (1, 2, 3):
        if style == "megraphau":
            k = megraphau_fold(p)
            pf, lf, mf = (d / f"{prefix}_test_img_path_fold{k}.txt", d / f"{prefix}_test_label_fold{k}.txt", None)
        else:
            pf, lf, mf = (d / f"{prefix}_part{p}_path.txt", d / f"{prefix}_part{p}_AUoccur.txt",
                          d / f"{prefix}_part{p}_land.txt")
        paths = _read_lines(pf)
        labels = None
        if lf.is_file():
            if not aus:
                raise DatasetError(lf, f"pass aus= for list prefix {prefix!r} (known: {', '.join(DEFAULT_AUS)})")
            labels = _read_matrix(lf, len(paths), len(aus), issues, "label")
        has_labels = has_labels and labels is not None
        lms = _read_matrix(mf, len(paths), 98, issues, "landmark") if mf is not None and mf.is_file() else None
        for i, path in enumerate(paths):
            if (labels is not None and labels[i] is None) or (lms is not None and lms[i] is None):
                continue
            if labels is not None:
                bad = [int(v) for v in labels[i] if v not in (0, 1, UNKNOWN)]
                if bad:
                    issues.bad(lf, f"label {bad[0]} is not 0, 1 or {UNKNOWN}", i + 1)
                    continue
            key = parse_key(path, prefix, frame_offset, sequence)
            if key is None:
                issues.bad(pf, f"cannot read subject / frame from path {path!r} (expected <subject>/<seq>/<frame>.jpg "
                           "or <subject>/<frame>.png)", i + 1)
                continue
            row = {"path": path, "part": p, "subject": key[0], "sequence": key[1], "frame": key[2],
                   "source": f"{pf.name}:{i + 1}"}
            if labels is not None:
                row.update({au_column(a): int(v) for a, v in zip(aus, labels[i])})
            if lms is not None:
                row["landmarks"] = from_49(lms[i].reshape(49, 2) - 1)
            frames.append(row)
    df = pd.DataFrame(frames)
    if not has_labels:
        df = df[[c for c in df.columns if not c.startswith("AU")]]
    df.attrs["skipped"] = issues.frame()
    df.attrs["aus"] = list(aus)
    df.attrs["has_labels"] = has_labels
    return df


def import_lists(list_dir: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike,
                 prefix: str = "BP4D", style: str = "megraphau", aus: tuple[int, ...] | None = None,
                 lenient: bool = False, workers: int = 1, align: str | None = None, image_size: int | None = None,
                 channels: int | None = None, landmarks: str | None = None, progress: bool = True,
                 labels_from: CanonicalDataset | str | os.PathLike | None = None, frame_offset: int | None = None,
                 sequence: str | None = None, overwrite: bool = False) -> CanonicalDataset:
    """Build a canonical dataset from list files plus the image folder they point into (``images``).

    Path-only lists (no label files) take their labels from ``labels_from``, a converted dataset of the same
    release (matched by frame key). Lists without landmark files need none: the mean shape of the template
    stands in (their images are aligned crops) unless ``landmarks=`` says otherwise."""
    from ..schema import open_dataset

    table = read_lists(list_dir, prefix, style, aus, lenient, frame_offset, sequence)
    images = Path(images)
    issues = Issues(lenient)
    issues.rows.extend(table.attrs["skipped"].to_dict("records"))
    aus = table.attrs["aus"]
    lookup = None
    if not table.attrs["has_labels"]:
        if labels_from is None:
            raise DatasetError(Path(list_dir), "the lists have no label files; pass labels_from= a converted dataset "
                               "of the same release (its labels are matched by frame key)")
        ref = labels_from if isinstance(labels_from, CanonicalDataset) else open_dataset(labels_from)
        aus = list(ref.aus)
        f = ref.frames
        lookup = dict(zip(zip(f.subject, f.sequence, f.frame.astype(int)), f[ref.au_columns].to_numpy(np.int64)))
    if "landmarks" not in table.columns and landmarks is None:
        landmarks = "template"
    units: dict[tuple[str, str], Unit] = {}
    for r in table.to_dict("records"):
        img = images / r["path"]
        if not img.is_file():
            issues.bad(img, f"image listed in {r['source']} does not exist")
            continue
        if lookup is not None:
            lab = lookup.get((r["subject"], r["sequence"], int(r["frame"])))
            if lab is None:
                issues.bad(r["source"].rsplit(":", 1)[0], f"frame {r['path']} (key {r['subject']}, {r['sequence']}, "
                           f"{r['frame']}) is not in labels_from", int(r["source"].rsplit(":", 1)[1]))
                continue
            labels = {au_column(a): int(v) for a, v in zip(aus, lab)}
        else:
            labels = {au_column(a): r[au_column(a)] for a in aus}
        u = units.setdefault((r["subject"], r["sequence"]), Unit(r["subject"], r["sequence"], []))
        lm = r.get("landmarks")
        u.frames.append(FrameRec(r["frame"], labels, r["source"], image=str(img),
                                 landmarks=lm if isinstance(lm, np.ndarray) else None))
    scan = Scan(prefix.lower(), list(aus), ["occurrence"], list(units.values()),
                {"source_layout": f"{style} lists", "list_dir": str(list_dir)})
    opts = Options(align=align, image_size=image_size, channels=channels, landmarks=landmarks, lenient=lenient,
                   workers=workers, progress=progress)
    return run(scan, images, Path(out), opts, issues, overwrite=overwrite)


def compare_folds(ds: CanonicalDataset, list_dir: str | os.PathLike, prefix: str = "BP4D",
                  style: str = "megraphau", frame_offset: int | None = None,
                  sequence: str | None = None) -> pd.DataFrame:
    """aulib's folds beside the lists', fold by fold: the subjects each tests and the frames in common (keys
    mapped by :func:`parse_key`, so ME-GraphAU's 0-based ``SN001/0.png`` meets aulib's DISFA frame 1)."""
    table = read_lists(list_dir, prefix, style, lenient=True, frame_offset=frame_offset, sequence=sequence)
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
