"""GFT (Sayette Group Formation Task) -> canonical.

The release (Girard et al., FG 2017; meta-data and frame-level annotations on https://osf.io/7wcyz, video
from the University of Pittsburgh on request; found with the ``search`` tool) codes FACS occurrence per frame
for 96 participants in 32 three-person groups. Its exact column layout could not be checked here (the OSF
wiki describes it, the video tree comes with the licence), so this converter reads the Pitt occurrence-CSV
layout it shares with BP4D, with the same tolerant header parsing::

    <src>/AU_OCC/<video>.csv          column "0" (or "frame") = frame, AU columns, 0 / 1, 9 = unknown
    <src>/images/<video>/<frame>.jpg  extracted frames (zero-padded or not)
    <src>/split.csv                   optional: "video,split" (train / test), kept in frames.split

One video per participant: subject = video id. The 10 AUs EmoCo evaluates are kept (:data:`GFT_AUS`).
If your copy is laid out differently, rename into this layout or pass ``labels_dir=``/``images_dir=``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..schema import DatasetError
from ._engine import FrameRec, Issues, Scan, Unit
from .bp4d import image_index, read_occurrence_csv

NAME = "gft"
GFT_AUS: tuple[int, ...] = (1, 2, 4, 6, 10, 12, 14, 15, 23, 24)
EXPECTS = """<src>/AU_OCC/<video>.csv ('0' = frame, AU columns, 0 / 1, 9 = unknown), <src>/images/<video>/<frame>.jpg,
optional <src>/split.csv (video,split). A guessed layout (the release's columns could not be checked): the
converter says so when it runs. No landmarks ship: --landmarks auto uses aulib_landmarks.csv, else dlib."""


def scan(src: Path, issues: Issues, aus: tuple[int, ...] = GFT_AUS, labels_dir: str = "AU_OCC",
         images_dir: str = "images") -> Scan:
    ldir, idir = src / labels_dir, src / images_dir
    if not ldir.is_dir():
        raise DatasetError(ldir, "label folder is missing (expected AU_OCC/<video>.csv)")
    if not idir.is_dir():
        raise DatasetError(idir, "image folder is missing (expected images/<video>/<frame>.jpg)")
    files = sorted(ldir.glob("*.csv"))
    if not files:
        raise DatasetError(ldir, "no <video>.csv label files in this folder")
    units = []
    for f in files:
        video = f.stem
        rows = read_occurrence_csv(f, tuple(aus), issues)
        images = image_index(idir / video)
        recs = []
        for frame, labels, line in rows:
            img = images.get(frame)
            if img is None:
                issues.bad(f, f"no image for frame {frame} in {idir / video}", line)
                continue
            recs.append(FrameRec(frame, labels, f"{f.name}:{line}", image=str(img)))
        units.append(Unit(video, "GFT", recs))
    prov = {"source_layout": "GFT AU_OCC/<video>.csv + images/<video>/",
            "guessed": ["GFT's file layout could not be checked against the release (OSF wiki only); this reader "
                        "assumes the Pitt occurrence CSV layout BP4D uses (see aulib/data/convert/gft.py)"]}
    if (src / "split.csv").is_file():
        prov["split"] = pd.read_csv(src / "split.csv", dtype=str).set_index("video")["split"].to_dict()
    return Scan(NAME, list(aus), ["occurrence"], units, prov)
