"""EmotioNet -> canonical (stills with automatic AU annotations; mostly used unlabelled, as RRL does).

EmotioNet (Benitez-Quiroz et al., CVPR 2016) distributes image URLs with AU annotations; the images are
fetched by the user. The release itself could not be opened here; its two annotation layouts were read from
public loaders found with the ``search`` tool (EMOCA's ``emotionet`` download script, which reads the
``*.txt`` lists with columns ``url, orig_url, AU1..AU60`` and writes ``EmotioNet_FACS_aws_2020_24600.csv``;
a loader of ``emotioNet_challenge_files_server_challenge_1.2_aws/dataFile_1001.txt`` that splits lines on tabs
and takes AU k from column k + 1; loaders of ``EmotioNet_FACS_aws_2020_24600.xlsx`` / ``.csv`` whose columns
are ``URL, URL orig, 'AU 1', 'AU 2', ...`` with quote characters around names and URLs, 999 = not annotated).
The converter prints a note saying so when it runs::

    <src>/dataFile_1001.txt ...        (challenge 1.2 lists) no header, tab-separated: url, orig url, then the
                                       values of AU1 ... AU60 in order; 1 / 0, 999 = not annotated
    <src>/EmotioNet_FACS_aws_2020_24600.csv|.xlsx   (2020 release) header URL, URL orig, 'AU 1', 'AU 2', ...
                                       (quotes and spaces in names and URLs are stripped); also .tsv
    <src>/images/**/<name>.jpg         the user's downloaded copies (or anywhere under <src>), matched to the
                                       annotation rows by the URL's last two parts (folder/name), else its name

Every annotation file in ``<src>`` (or ``<src>/annotations``) is read. Images without an annotation row are
kept with every AU unknown (``unlabeled=True``, for self-supervised pre-training); annotation rows whose image
is not present locally are dropped and listed. An annotation file from which no image gets a known label
(every value 999, or no row matches a downloaded image) is an error. EmotioNet has no subject ids: each image
is its own subject, unless file names are ``<subject>__<n>.jpg`` (aulib's exports). Landmarks: dlib (what RRL
used; the command line's default) or ``aulib_landmarks.csv``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..schema import UNKNOWN, DatasetError, au_column
from ._engine import FrameRec, Issues, Scan
from ._stills import chunk
from .bp4d import IMAGE_EXTS, parse_au_header
from .landmarks import LANDMARK_FILE

NAME = "emotionet"
EMOTIONET_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26)
UNKNOWN_CODES = (999, -1, UNKNOWN)
ANNOTATION_EXTS = (".csv", ".tsv", ".txt", ".xlsx")
EXPECTS = """annotation files in <src> (or <src>/annotations): the challenge lists dataFile_*.txt (no header,
tab-separated: url, orig url, AU1 ... AU60; 999 = not annotated) or EmotioNet_FACS_aws_2020_24600.csv / .xlsx
(header URL, URL orig, 'AU 1', 'AU 2', ...); images: <src>/images/**/<name>.jpg, the downloaded copies, matched
to the rows by the URL's last parts."""
GUESSED = ("the annotation layout (url, orig url, AU1..AU60 tab-separated lists, or the 2020 table with 'AU k' "
           "columns; 999 = not annotated) is read from public loaders, not from a copy of the release")


def _clean(v: object) -> str:
    return str(v).strip().strip("'\"").strip()


def annotation_files(src: Path, annotations: str | os.PathLike | None = None) -> list[Path]:
    if annotations:
        p = Path(annotations)
        p = p if p.is_absolute() else src / p
        if not p.exists():
            raise DatasetError(p, "annotation file does not exist")
        return sorted(q for q in p.iterdir() if q.suffix.lower() in ANNOTATION_EXTS) if p.is_dir() else [p]
    folders = [src] + ([src / "annotations"] if (src / "annotations").is_dir() else [])
    return [p for d in folders for p in sorted(d.iterdir()) if p.is_file() and p.suffix.lower() in ANNOTATION_EXTS
            and p.name != LANDMARK_FILE and not p.name.lower().startswith(("readme", "license", "skipped"))]


def read_annotation_table(path: Path) -> tuple[pd.DataFrame, str, dict[int, str]]:
    """(table of strings, URL / file column, {AU: column}) of one annotation file in either layout."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".xlsx":
            try:
                df = pd.read_excel(path, dtype=str)
            except ImportError as exc:
                raise DatasetError(path, "reading .xlsx needs openpyxl (pip install openpyxl), or save the sheet "
                                   "as CSV") from exc
        else:
            with open(path, encoding="utf-8", errors="replace") as fh:
                first = fh.readline()
            sep = "\t" if ("\t" in first or suffix == ".tsv") else ","
            cells = [_clean(c) for c in first.rstrip("\r\n").split(sep)]
            headerless = bool(cells) and (cells[0].lower().startswith(("http", "www")) or "/" in cells[0])
            if headerless:  # the challenge lists: url, orig url, AU1 .. AU60
                n = len(cells)
                names = ["url", "orig_url"] + [f"AU{i}" for i in range(1, n - 1)]
                df = pd.read_csv(path, sep=sep, header=None, names=names, dtype=str, engine="python")
            else:
                df = pd.read_csv(path, sep=sep, dtype=str, engine="python")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(path, f"cannot parse annotation file ({exc})") from exc
    df.columns = [_clean(c) for c in df.columns]
    key = next((c for c in df.columns if any(w in c.lower() for w in ("url", "path", "file", "image"))), df.columns[0])
    au_cols = {}
    for c in df.columns:
        if c == key or "orig" in c.lower():
            continue
        a = parse_au_header(c)
        if a is not None:
            au_cols.setdefault(a, c)
    if not au_cols:
        raise DatasetError(path, "no AU columns (expected a header 'AU 1', 'AU1', ... or the headerless challenge "
                           "list: url, orig url, AU1 ... AU60)", row=1)
    return df, key, au_cols


def scan(src: Path, issues: Issues, aus: tuple[int, ...] | None = None, annotations: str | None = None,
         unlabeled: bool = True) -> Scan:
    root = src / "images" if (src / "images").is_dir() else src
    images = [p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTS]
    if not images:
        raise DatasetError(root, "no images found (expected images/**/<name>.jpg)")
    by_name: dict[str, Path] = {}
    by_tail: dict[str, Path] = {}
    for p in images:
        by_name.setdefault(p.name, p)
        by_tail.setdefault(f"{p.parent.name}/{p.name}", p)
    files = annotation_files(src, annotations)
    labels_of: dict[Path, tuple[dict[str, int], str]] = {}
    found_aus: list[int] = list(aus) if aus else []
    for ann in files:
        df, key, au_cols = read_annotation_table(ann)
        if not found_aus:
            found_aus = sorted(a for a in au_cols if a in EMOTIONET_AUS) or sorted(au_cols)
        missing = [a for a in found_aus if a not in au_cols]
        if missing:
            raise DatasetError(ann, f"AU column(s) {missing} missing (found {sorted(au_cols)})", row=1)
        header_rows = 0 if list(df.columns[:2]) == ["url", "orig_url"] else 1
        parsed = known = matched = 0
        for i, row in enumerate(df.itertuples(index=False), start=1 + header_rows):
            rec = dict(zip(df.columns, row))
            url = _clean(rec[key]).replace("\\", "/")
            parts = url.rsplit("/", 2)
            lab, ok = {}, True
            for a in found_aus:
                raw = _clean(rec[au_cols[a]])
                try:
                    v = int(float(raw))
                except ValueError:
                    issues.bad(ann, f"AU{a} value {raw!r} is not a number", i)
                    ok = False
                    break
                if v in UNKNOWN_CODES:
                    v = UNKNOWN
                elif v not in (0, 1):
                    issues.bad(ann, f"AU{a} value {v} is not 0, 1 or 999 (not annotated)", i)
                    ok = False
                    break
                lab[au_column(a)] = v
            if not ok:
                continue
            parsed += 1
            known += any(v != UNKNOWN for v in lab.values())
            img = by_tail.get("/".join(parts[-2:])) or by_name.get(parts[-1])
            if img is None:
                issues.note(ann, f"image {parts[-1]} is not under {root} (not downloaded?), dropped", i)
                continue
            labels_of[img] = (lab, f"{ann.name}:{i}")
            matched += 1
        if parsed and not known:
            issues.bad(ann, f"every AU value of all {parsed} rows is unknown (999): the file carries no labels, or "
                       "its columns are not in the layout this converter reads")
        elif parsed and not matched:
            issues.note(ann, f"none of its {parsed} images is under {root} (not downloaded?)")
    if not files and not unlabeled:
        raise DatasetError(src, "no annotation file found and unlabeled=False")
    if not found_aus:
        found_aus = list(EMOTIONET_AUS)
    recs, per_subject = [], {}
    for path in images:
        if path in labels_of:
            lab, where = labels_of[path]
        elif unlabeled:
            lab, where = {au_column(a): UNKNOWN for a in found_aus}, f"{path.name}:unlabelled"
        else:
            continue
        stem = path.stem
        subject = stem.split("__")[0] if "__" in stem else stem
        frame = per_subject.get(subject, 0)
        if "__" in stem and stem.rsplit("__", 1)[1].isdigit():
            frame = int(stem.rsplit("__", 1)[1])
        per_subject[subject] = frame + 1
        recs.append(FrameRec(frame, lab, where, image=str(path), subject=subject, sequence="still"))
    recs.sort(key=lambda r: (r.subject, r.frame))
    prov = {"source_layout": "EmotioNet images + annotation files", "annotation_files": [f.name for f in files]}
    if files:
        prov["guessed"] = [GUESSED]
        prov["label_file_hint"] = str(files[0])
    else:
        prov["unlabelled_ok"] = True  # no annotation file: images for self-supervised pre-training only
    return Scan(NAME, found_aus, ["occurrence"], chunk(recs), prov)
