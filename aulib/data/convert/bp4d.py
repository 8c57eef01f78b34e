"""BP4D-Spontaneous -> canonical.

Layout (shared/reference/au_statistics.md; image paths as in the field's list files, e.g. ME-GraphAU's
``BP4D_train_img_path_fold1.txt`` lines ``F001/T1/2440.jpg`` and JAA-Net's ``BP4D_combine_1_2_path.txt``,
seen through the ``search`` tool in public copies of those repositories)::

    <src>/AUCoding/AU_OCC/F001_T1.csv     header row; column "0" = frame number, other columns = AU numbers;
                                          values 0 / 1, 9 = unknown (kept as aulib's UNKNOWN)
    <src>/<root>/F001/T1/2440.jpg         <root> = src itself or one folder below it (e.g. Sequences/);
                                          frame numbers zero-padded or not (both are matched)

Header variants accepted: "0" or "frame" for the frame column, "1" / "AU1" / "AU01" / " 1 " for AU columns.
The 12 AUs of the field's protocol are kept (:data:`BP4D_AUS`); the other coded AUs are dropped. A frame with
labels but no image is an error (lenient: skipped and listed); images without labels are ignored, as in the
release (only part of each task is coded).

Errors name the CSV and its line (1-based, the header is line 1).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..schema import UNKNOWN, DatasetError, au_column
from ._engine import FrameRec, Issues, Scan, Unit

NAME = "bp4d"
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
EXPECTS = """<src>/AUCoding/AU_OCC/<subject>_<task>.csv (e.g. F001_T1.csv; header: '0' = frame, then AU numbers;
values 0 / 1, 9 = unknown) and the frames <src>/[<one folder>/]<subject>/<task>/<frame>.jpg (zero-padded or not).
BP4D ships no 68-point landmarks: --landmarks auto uses <src>/aulib_landmarks.csv if there, else dlib."""


def parse_au_header(name: str) -> int | None:
    """'1', 'AU1', 'AU01', ' au 12 ' -> AU number; anything else -> None."""
    m = re.fullmatch(r"\s*(?:au)?\s*0*(\d+)\s*", str(name), flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def read_occurrence_csv(path: Path, aus: tuple[int, ...], issues: Issues) -> list[tuple[int, dict[str, int], int]]:
    """[(frame, {AU<k>: 0/1/9}, line)] from a Pitt-style occurrence CSV (BP4D AU_OCC, GFT)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read label file ({exc})") from exc
    if not rows:
        raise DatasetError(path, "label file is empty")
    header = rows[0]
    first = header[0].strip().lower() if header else ""
    if first not in ("0", "frame", "frames", "frame_number"):
        raise DatasetError(path, f"first header column must be the frame column '0' (or 'frame'), found {header[0]!r}",
                           row=1)
    cols: dict[int, int] = {}
    for j, h in enumerate(header[1:], start=1):
        au = parse_au_header(h)
        if au is None:
            if h.strip():
                raise DatasetError(path, f"header column {j + 1} {h!r} is not an AU number", row=1)
            continue
        cols[au] = j
    missing = [a for a in aus if a not in cols]
    if missing:
        raise DatasetError(path, f"AU column(s) {missing} missing from the header (found {sorted(cols)})", row=1)
    out, seen = [], set()
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            frame = int(float(row[0]))
            if frame < 0:
                raise ValueError
        except (ValueError, IndexError):
            issues.bad(path, f"frame number {row[0] if row else ''!r} is not a non-negative integer", line)
            continue
        if frame in seen:
            issues.bad(path, f"frame {frame} appears twice", line)
            continue
        labels, ok = {}, True
        for a in aus:
            j = cols[a]
            raw = row[j].strip() if j < len(row) else ""
            try:
                v = int(float(raw))
            except ValueError:
                issues.bad(path, f"AU{a} value {raw!r} is not a number (expected 0, 1 or {UNKNOWN})", line)
                ok = False
                break
            if v not in (0, 1, UNKNOWN):
                issues.bad(path, f"AU{a} value {v} is not 0, 1 or {UNKNOWN} (unknown)", line)
                ok = False
                break
            labels[au_column(a)] = v
        if ok:
            seen.add(frame)
            out.append((frame, labels, line))
    if out and all(v == UNKNOWN for _, labels, _ in out for v in labels.values()):
        issues.bad(path, f"every AU label in this file is unknown ({UNKNOWN}): it carries no labels (wrong file, "
                   "or AU columns filled with 9)")
        return []
    return out


def image_index(folder: Path) -> dict[int, Path]:
    """{frame number: image file} of a folder, matching zero-padded and plain names."""
    idx: dict[int, Path] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.suffix.lower() in IMAGE_EXTS:
                m = re.search(r"(\d+)$", p.stem)
                if m:
                    idx.setdefault(int(m.group(1)), p)
    return idx


def find_label_dir(src: Path, names: tuple[str, ...]) -> Path:
    for cand in names:
        if (src / cand).is_dir():
            return src / cand
    raise DatasetError(src, f"no label folder found; expected one of {', '.join(names)}")


def find_sequence_folder(src: Path, *parts: str) -> Path | None:
    """``src/<parts>`` or ``src/<one folder>/<parts>``."""
    if (src.joinpath(*parts)).is_dir():
        return src.joinpath(*parts)
    for child in sorted(p for p in src.iterdir() if p.is_dir()):
        if child.joinpath(*parts).is_dir():
            return child.joinpath(*parts)
    return None


def scan(src: Path, issues: Issues, aus: tuple[int, ...] = BP4D_AUS) -> Scan:
    label_dir = find_label_dir(src, ("AUCoding/AU_OCC", "AU_OCC", "AUCoding"))
    files = sorted(label_dir.glob("*.csv"))
    if not files:
        raise DatasetError(label_dir, "no <subject>_<task>.csv label files in this folder")
    units = []
    for f in files:
        m = re.fullmatch(r"([A-Za-z]+\d+)_([A-Za-z]*\d+)", f.stem)
        if not m:
            issues.bad(f, "file name is not <subject>_<task>.csv (e.g. F001_T1.csv)")
            continue
        subject, task = m.group(1), m.group(2)
        rows = read_occurrence_csv(f, tuple(aus), issues)
        folder = find_sequence_folder(src, subject, task)
        if folder is None:
            issues.bad(f, f"no image folder {subject}/{task} under {src} (or one level below it)")
            continue
        images = image_index(folder)
        recs = []
        for frame, labels, line in rows:
            img = images.get(frame)
            if img is None:
                issues.bad(f, f"no image for frame {frame} in {folder}", line)
                continue
            recs.append(FrameRec(frame, labels, f"{f.name}:{line}", image=str(img)))
        units.append(Unit(subject, task, recs))
    return Scan(NAME, list(aus), ["occurrence"], units, {"source_layout": "BP4D AUCoding/AU_OCC"})
