"""Aff-Wild2 (ABAW AU track) -> canonical.

Layout (ABAW challenge release; checked with the ``search`` tool in public ABAW loaders whose ``read_AU``
skips the first line and splits the rest on commas, and whose configs point at ``cropped_aligned/`` and
``annotations/AU_Set``; the ABAW5 / ABAW6 folder names from public challenge code, e.g. paths
``Aff-Wild2/5th_ABAW_Annotations/AU_Detection_Challenge/...``, ``data/6th ABAW Annotations/
AU_Detection_Challenge/Validation_Set`` and ``ABAW5/Aff-Wild2/annotations/AU_Detection_Challenge/
Validation_Set/video61.txt``)::

    <src>/<annotations>/<split>/<video>.txt   <annotations> is one of (ABAW2-4) AU_Set, annotations/AU_Set,
                                              (ABAW5-6) AU_Detection_Challenge, annotations/AU_Detection_Challenge,
                                              5th_ABAW_Annotations/AU_Detection_Challenge,
                                              "6th ABAW Annotations/AU_Detection_Challenge", or any
                                              <folder>/AU_Detection_Challenge one level down; <split> Train_Set,
                                              Validation_Set
        line 1: AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26
        line 1 + i: the labels of video frame i (from 1), 0 / 1, -1 = not annotated (e.g. no face)
    <src>/cropped_aligned/<video>/00001.jpg   the organisers' 112 x 112 aligned crops, frame i -> %05d.jpg
                                              (also <folder>/cropped_aligned one level down)

-1 becomes aulib's UNKNOWN; a frame whose AUs are all -1 is dropped (listed in the skip list), as ABAW
evaluation does. A labelled frame without a crop (no face found by the organisers) is dropped and listed -
this is normal in the release, so it is not an error even in strict mode. Subject = video name (the
``_left`` / ``_right`` videos show different people); sequence = the split folder. The crops have no
landmarks: pass ``landmarks=`` a file, ``'dlib'`` or ``'template'`` (mean shape; they are already aligned).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..schema import UNKNOWN, DatasetError, au_column
from ._engine import FrameRec, Issues, Scan, Unit
from .bp4d import image_index, parse_au_header

NAME = "affwild2"
AFFWILD2_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
LABEL_DIRS = ("AU_Set", "annotations/AU_Set", "AU_Detection_Challenge", "annotations/AU_Detection_Challenge",
              "5th_ABAW_Annotations/AU_Detection_Challenge", "6th ABAW Annotations/AU_Detection_Challenge",
              "6th_ABAW_Annotations/AU_Detection_Challenge")
EXPECTS = """<src>/AU_Set/Train_Set/<video>.txt  (ABAW2-4), or <src>/<annotations>/AU_Detection_Challenge/Train_Set/
<video>.txt (ABAW5/6: annotations/, 5th_ABAW_Annotations/, '6th ABAW Annotations/'); Validation_Set likewise.
Each file: line 1 'AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26', then one line per video frame
(0 / 1, -1 = not annotated). Images: <src>/cropped_aligned/<video>/00001.jpg (frame i -> %05d.jpg)."""


def find_label_root(src: Path) -> Path | None:
    """The AU annotation folder of an Aff-Wild2 copy (any ABAW edition's name), or None."""
    for d in LABEL_DIRS:
        if (src / d).is_dir():
            return src / d
    for pattern in ("*/AU_Detection_Challenge", "*/AU_Set", "*/*/AU_Detection_Challenge"):
        found = sorted(p for p in src.glob(pattern) if p.is_dir())
        if found:
            return found[0]
    return None


def find_crops(src: Path) -> Path | None:
    for cand in (src / "cropped_aligned", *sorted(src.glob("*/cropped_aligned"))):
        if cand.is_dir():
            return cand
    return None


def read_au_file(path: Path, aus, issues: Issues) -> list[tuple[int, dict[str, int] | None, int]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read annotation file ({exc})") from exc
    if not rows:
        raise DatasetError(path, "annotation file is empty")
    header = [parse_au_header(h) for h in rows[0]]
    if any(h is None for h in header):
        raise DatasetError(path, f"header must list AUs (AU1,AU2,...), found {','.join(rows[0])!r}", row=1)
    missing = [a for a in aus if a not in header]
    if missing:
        raise DatasetError(path, f"AU column(s) {missing} missing from the header", row=1)
    out: list = []
    for i, row in enumerate(rows[1:], start=1):
        line = i + 1
        if len(row) != len(header):
            issues.bad(path, f"expected {len(header)} values, found {len(row)}", line)
            continue
        try:
            vals = {h: int(float(v)) for h, v in zip(header, row)}
        except ValueError:
            issues.bad(path, f"values must be 0, 1 or -1, found {','.join(row)!r}", line)
            continue
        bad = [h for h in aus if vals[h] not in (-1, 0, 1)]
        if bad:
            issues.bad(path, f"AU{bad[0]} value {vals[bad[0]]} is not 0, 1 or -1", line)
            continue
        if all(vals[a] == -1 for a in aus):
            out.append((i, None, line))
            continue
        out.append((i, {au_column(a): (UNKNOWN if vals[a] == -1 else vals[a]) for a in aus}, line))
    if out and all(labels is None for _, labels, _ in out):
        issues.bad(path, "every AU of every frame is -1 (not annotated): the file carries no labels")
        return []
    return out


def scan(src: Path, issues: Issues, aus: tuple[int, ...] = AFFWILD2_AUS,
         splits: tuple[str, ...] = ("Train_Set", "Validation_Set")) -> Scan:
    root = find_label_root(src)
    if root is None:
        raise DatasetError(src, f"no AU annotation folder; expected one of {', '.join(LABEL_DIRS)} (or "
                           "<folder>/AU_Detection_Challenge)")
    crops = find_crops(src)
    if crops is None:
        raise DatasetError(src / "cropped_aligned", "folder of cropped_aligned frames is missing")
    units = []
    for split in splits:
        if not (root / split).is_dir():
            continue
        for f in sorted((root / split).glob("*.txt")):
            images = image_index(crops / f.stem)
            recs = []
            for frame, labels, line in read_au_file(f, tuple(aus), issues):
                if labels is None:
                    issues.note(f, f"frame {frame}: every AU is -1 (not annotated), dropped", line)
                    continue
                img = images.get(frame)
                if img is None:
                    issues.note(f, f"frame {frame}: no crop in {crops / f.stem} (no face), dropped", line)
                    continue
                recs.append(FrameRec(frame, labels, f"{f.name}:{line}", image=str(img)))
            units.append(Unit(f.stem, split, recs))
    if not units:
        raise DatasetError(root, f"no annotation files in the split folder(s) {', '.join(splits)}")
    return Scan(NAME, list(aus), ["occurrence"], units,
                {"source_layout": f"ABAW {root.relative_to(src).as_posix()}/<split>/<video>.txt"})
