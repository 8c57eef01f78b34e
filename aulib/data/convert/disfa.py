"""DISFA -> canonical.

Layout (shared/reference/au_statistics.md for labels and video; the landmark file names were looked up with
the ``search`` tool in public DISFA loaders, e.g. OpenFace's ``extract_landmarks`` script for DISFA and several
PyTorch loaders, which read ``Landmark_Points/<SN>/tmp_frame_lm/<SN>_<NNNN>_lm.mat`` or ``l0<NNNN>_lm.mat``,
key ``pts`` (66, 2), NNNN = frame - 1)::

    <src>/ActionUnit_Labels/SN001/SN001_au1.txt       one line per frame: "frame,intensity" (frame from 1,
                                                      intensity 0-5); every AU file lists the same frames
    <src>/**/LeftVideoSN001_comp.avi                  left camera (the one the field uses); label frame f is
                                                      video frame f - 1
    <src>/Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat   optional, 66 AAM points per frame

Intensity is kept (``AU<k>_int``) and occurrence is intensity >= 2 (the field's rule). The 8 AUs of the
protocol are kept by default (``aus=`` chooses others among the 12 coded). A frame whose landmark file is
missing takes the previous frame's landmarks (listed in the skip list; the release lacks e.g. SN031's
``l03631_lm.mat``, which OpenFace's DISFA script also patches this way); without a ``Landmark_Points`` folder,
``aulib_landmarks.csv`` / ``landmarks='dlib'`` fill in. The 66 points become 68 with the
inner mouth corners estimated (:func:`.landmarks.from_66`). Video decoding uses PyAV (``video`` extra).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..schema import DatasetError, au_column, intensity_column
from ._engine import FrameRec, Issues, Scan, Unit
from .landmarks import from_66

NAME = "disfa"
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
DISFA_ALL_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
THRESHOLD = 2
EXPECTS = """<src>/ActionUnit_Labels/SN001/SN001_au1.txt ... (one 'frame,intensity' line per frame, frames from
1, intensity 0-5); the left-camera videos <src>/**/LeftVideoSN001_comp.avi; optional landmarks
<src>/Landmark_Points/SN001/tmp_frame_lm/SN001_0000_lm.mat (key 'pts', 66 points; 0000 = frame - 1)."""


def read_intensity_file(path: Path, issues: Issues) -> dict[int, tuple[int, int]]:
    """{frame: (intensity, line)} from one SN<k>_au<k>.txt file."""
    out: dict[int, tuple[int, int]] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read label file ({exc})") from exc
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in re.split(r"[,\s]+", line.strip()) if p.strip()]
        if line_no == 1 and "frame" in line.lower():
            continue  # a header line ("frame,intensity"), which some re-saved copies add
        if len(parts) != 2:
            issues.bad(path, f"expected 'frame,intensity', found {line.strip()!r}", line_no)
            continue
        try:
            frame, value = int(parts[0]), int(float(parts[1]))
        except ValueError:
            issues.bad(path, f"'frame,intensity' must be integers, found {line.strip()!r}", line_no)
            continue
        if frame < 1:
            issues.bad(path, f"frame {frame} must be >= 1", line_no)
            continue
        if not 0 <= value <= 5:
            issues.bad(path, f"intensity {value} is outside 0-5", line_no)
            continue
        if frame in out:
            issues.bad(path, f"frame {frame} appears twice", line_no)
            continue
        out[frame] = (value, line_no)
    return out


def _landmark_file(lm_dir: Path, subject: str, frame: int) -> Path | None:
    for name in (f"{subject}_{frame - 1:04d}_lm.mat", f"l0{frame - 1:04d}_lm.mat"):
        if (lm_dir / name).is_file():
            return lm_dir / name
    return None


def load_landmarks(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        pts = np.asarray(loadmat(path)["pts"], dtype=np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(path, f"cannot read DISFA landmarks (key 'pts', 66 x 2): {exc}") from exc
    if pts.shape == (68, 2):
        return pts
    if pts.shape != (66, 2):
        raise DatasetError(path, f"'pts' has shape {pts.shape}, expected (66, 2)")
    return from_66(pts)


def scan(src: Path, issues: Issues, aus: tuple[int, ...] | str = DISFA_AUS) -> Scan:
    aus = DISFA_ALL_AUS if aus == "all" else tuple(int(a) for a in aus)
    label_root = src / "ActionUnit_Labels"
    if not label_root.is_dir():
        raise DatasetError(label_root, "label folder is missing (expected ActionUnit_Labels/SN001/SN001_au1.txt)")
    videos = {p.name: p for p in src.rglob("LeftVideo*_comp.avi")}
    units = []
    for sdir in sorted(p for p in label_root.iterdir() if p.is_dir()):
        subject = sdir.name
        per_au = {}
        for a in aus:
            f = sdir / f"{subject}_au{a}.txt"
            if not f.is_file():
                issues.bad(f, f"label file for AU{a} is missing")
                per_au = None
                break
            per_au[a] = (f, read_intensity_file(f, issues))
        if per_au is None:
            continue
        ref_au = aus[0]
        frames = sorted(set.intersection(*(set(d) for _, d in per_au.values())))
        for f, d in per_au.values():  # frames listed in one AU file but not in every other one
            for fr in sorted(set(d) - set(frames)):
                others = [g.name for g, e in per_au.values() if fr not in e]
                issues.bad(f, f"frame {fr} has no label in {', '.join(others)} (AU files must list the same "
                           "frames)", d[fr][1])
        video = videos.get(f"LeftVideo{subject}_comp.avi")
        if video is None:
            issues.bad(src, f"video LeftVideo{subject}_comp.avi not found under {src}")
            continue
        lm_dir = src / "Landmark_Points" / subject / "tmp_frame_lm"
        recs, prev_lm = [], None
        for fr in frames:
            labels = {}
            for a in aus:
                v = per_au[a][1][fr][0]
                labels[au_column(a)] = int(v >= THRESHOLD)
                labels[intensity_column(a)] = v
            lm = None
            f0, d0 = per_au[ref_au]
            if lm_dir.is_dir():
                lf = _landmark_file(lm_dir, subject, fr)
                lm = load_landmarks(lf) if lf is not None else None
                if lm is None and prev_lm is not None:
                    # the release misses a few files (OpenFace's DISFA script copies SN031's l03630 to l03631)
                    lm = prev_lm
                    issues.note(lm_dir, f"no landmark file for frame {fr}; the previous frame's landmarks are used")
                prev_lm = lm
            recs.append(FrameRec(fr, labels, f"{f0.name}:{d0[fr][1]}", video_index=fr - 1, landmarks=lm))
        units.append(Unit(subject, "LeftVideo", recs, video=str(video)))
    return Scan(NAME, list(aus), ["occurrence", "intensity"], units,
                {"source_layout": "DISFA ActionUnit_Labels + LeftVideo*_comp.avi", "threshold": THRESHOLD})
