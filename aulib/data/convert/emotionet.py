"""EmotioNet -> canonical (stills with automatic AU annotations; mostly used unlabelled, as RRL does).

EmotioNet (Benitez-Quiroz et al., CVPR 2016) distributes image URLs with AU annotations computed by its
algorithm; the images are fetched by the user. The annotation file's exact columns could not be checked here
(the ``search`` tool found the paper and third-party loaders that use their own re-saved lists), so the reader
is tolerant::

    <src>/<annotation file>.csv|.tsv|.txt   one row per image: a URL / file column (the first column whose
                                            name contains url, path, file or image; else the first column)
                                            and AU columns named "AU 1", "AU1", "AU01", "1", ...;
                                            values 1 / 0, and 999 (or -1, 9) = not annotated -> UNKNOWN
    <src>/images/**/<name>.jpg              the user's local copies (or anywhere under <src>), matched to the
                                            annotation rows by file name (the URL's last part)

Images without an annotation row are kept with every AU unknown (``unlabeled=True``, for self-supervised
pre-training); annotation rows whose image is not present locally are dropped and listed. EmotioNet has no
subject ids: each image is its own subject, unless file names are ``<subject>__<n>.jpg`` (aulib's exports).
Landmarks: ``landmarks='dlib'`` (what RRL used) or ``aulib_landmarks.csv``.
"""

from __future__ import annotations

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


def _annotation_file(src: Path, annotations: str | None) -> Path | None:
    if annotations:
        p = Path(annotations)
        p = p if p.is_absolute() else src / p
        if not p.is_file():
            raise DatasetError(p, "annotation file does not exist")
        return p
    cands = [p for p in sorted(src.iterdir()) if p.suffix.lower() in (".csv", ".tsv", ".txt")
             and p.name != LANDMARK_FILE and p.is_file()]
    return cands[0] if cands else None


def scan(src: Path, issues: Issues, aus: tuple[int, ...] | None = None, annotations: str | None = None,
         unlabeled: bool = True) -> Scan:
    root = src / "images" if (src / "images").is_dir() else src
    images = {p.name: p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_EXTS}
    if not images:
        raise DatasetError(root, "no images found (expected images/**/<name>.jpg)")
    ann = _annotation_file(src, annotations)
    labels_of: dict[str, tuple[dict[str, int], str]] = {}
    found_aus: list[int] = list(aus) if aus else []
    if ann is not None:
        sep = "\t" if ann.suffix.lower() == ".tsv" else None
        try:
            df = pd.read_csv(ann, sep=sep, engine="python", dtype=str)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DatasetError(ann, f"cannot parse annotation file ({exc})") from exc
        key = next((c for c in df.columns if any(w in c.lower() for w in ("url", "path", "file", "image"))),
                   df.columns[0])
        au_cols = {parse_au_header(c): c for c in df.columns if c != key and parse_au_header(c) is not None}
        if not au_cols:
            raise DatasetError(ann, "no AU columns in the header (expected 'AU 1', 'AU1', ...)", row=1)
        if not found_aus:
            found_aus = sorted(a for a in au_cols if a in EMOTIONET_AUS) or sorted(au_cols)
        missing = [a for a in found_aus if a not in au_cols]
        if missing:
            raise DatasetError(ann, f"AU column(s) {missing} missing from the header", row=1)
        for i, row in enumerate(df.itertuples(index=False), start=2):
            rec = dict(zip(df.columns, row))
            name = str(rec[key]).strip().replace("\\", "/").rsplit("/", 1)[-1]
            lab, ok = {}, True
            for a in found_aus:
                raw = str(rec[au_cols[a]]).strip()
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
            if name not in images:
                issues.note(ann, f"image {name} is not in {root} (not downloaded?), dropped", i)
                continue
            labels_of[name] = (lab, f"{ann.name}:{i}")
    elif not unlabeled:
        raise DatasetError(src, "no annotation file found and unlabeled=False")
    if not found_aus:
        found_aus = list(EMOTIONET_AUS)
    recs, per_subject = [], {}
    for name, path in images.items():
        if name in labels_of:
            lab, where = labels_of[name]
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
    return Scan(NAME, found_aus, ["occurrence"], chunk(recs),
                {"source_layout": "EmotioNet images + annotation file", "annotation_file": ann.name if ann else None})
