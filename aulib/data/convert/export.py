"""Write a canonical dataset (usually a synthetic one) in a real dataset's download layout.

This is how the converters are tested without the licensed data: ``export(ds, dir, "bp4d")`` then
``convert("bp4d", dir, out)`` must give back the same subjects, labels and landmarks. The layouts follow each
converter's docstring. Where a release has no landmarks (BP4D, GFT, AffWild2, EmotioNet) the export adds
``aulib_landmarks.csv``, the file a user with their own landmarks would pass.

Mapping of canonical names onto each layout (what the round trip preserves):

* BP4D: sequences of a subject become tasks ``T1..Tn`` (sorted sequence order); frames keep their numbers.
* DISFA, GFT, AffWild2: one video per subject; a subject's sequences are concatenated (sorted, then by frame)
  and frames renumbered from 1 (DISFA, AffWild2) or 0 (GFT). DISFA stores the 66-point layout, so landmarks
  60 and 64 come back estimated.
* AffectNet, EmotioNet: stills; subject ``s``'s frames become ``s/<k>.jpg`` (AffectNet folders) or
  ``s__<k>.jpg`` (EmotioNet names).

``variant=`` writes the other layouts a release comes in (what notebook 06 and the tests feed the command
line): ``"abaw6"`` (AffWild2: ``6th ABAW Annotations/AU_Detection_Challenge/Train_Set``), ``"npy"``
(AffectNet: ``train_set/images`` + ``train_set/annotations/<id>_exp.npy, <id>_lnd.npy``), ``"lists"``
(EmotioNet: the challenge's headerless tab-separated ``dataFile_1001.txt``, url, orig url, AU1..AU60).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..schema import UNKNOWN, CanonicalDataset, DatasetError, au_column, intensity_column
from .landmarks import IDX_66, LANDMARK_FILE, write_landmark_table

LAYOUTS = ("bp4d", "disfa", "gft", "affwild2", "affectnet", "emotionet")


def _save_jpg(img: np.ndarray, path: Path, quality: int = 95) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img[..., 0] if img.shape[2] == 1 else img
    Image.fromarray(arr).save(path, quality=quality)


def _ordered(ds: CanonicalDataset) -> pd.DataFrame:
    f = ds.frames.copy()
    f["row"] = np.arange(len(f))
    return f.sort_values(["subject", "sequence", "frame"], kind="stable")


VARIANTS = {"affwild2": ("abaw6",), "affectnet": ("npy",), "emotionet": ("lists",)}
# The variant that looks most like what a user downloads today, per layout (None: the layout has one).
REAL_VARIANT = {"bp4d": None, "disfa": None, "gft": None, "affwild2": "abaw6", "affectnet": "npy",
                "emotionet": "lists"}


def export(ds: CanonicalDataset, out: str | os.PathLike, layout: str, quality: int = 95,
           zero_pad: int = 4, variant: str | None = None) -> Path:
    """Write ``ds`` under folder ``out`` in ``layout`` (one of :data:`LAYOUTS`, ``variant`` one of
    :data:`VARIANTS`); returns ``out``. ``out`` must be new or empty (nothing is overwritten)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; layouts: {', '.join(LAYOUTS)}")
    if variant is not None and variant not in VARIANTS.get(layout, ()):
        raise ValueError(f"unknown variant {variant!r} of {layout}; variants: {VARIANTS.get(layout, ())}")
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        raise DatasetError(out, "exists and is not empty; export writes into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    globals()[f"_export_{layout}"](ds, out, quality=quality, zero_pad=zero_pad)
    if variant is not None:
        globals()[f"_variant_{variant}"](ds, out, quality=quality)
    return out


def _variant_abaw6(ds, out, quality):
    dest = out / "6th ABAW Annotations" / "AU_Detection_Challenge"
    dest.mkdir(parents=True)
    os.replace(out / "AU_Set" / "Train_Set", dest / "Train_Set")
    (out / "AU_Set").rmdir()


def _variant_npy(ds, out, quality):
    import shutil

    shutil.rmtree(out / "Manually_Annotated_Images")
    shutil.rmtree(out / "Manually_Annotated_file_lists")
    images, ann = out / "train_set" / "images", out / "train_set" / "annotations"
    ann.mkdir(parents=True)
    emo = ds.emotions() if ds.has("emotion") else np.full(len(ds), -1)
    order = [int(r) for _, rs in _per_subject_runs(ds) for r in rs]
    for i, r in enumerate(order):
        _save_jpg(ds.image(r), images / f"{i}.jpg", quality)
        np.save(ann / f"{i}_exp.npy", np.array(str(int(emo[r]) if emo[r] >= 0 else 8)))
        np.save(ann / f"{i}_lnd.npy", np.asarray(ds.landmarks[r], np.float64).ravel())


def _variant_lists(ds, out, quality):
    table = pd.read_csv(out / "EmotioNet_AU_annotations.csv")
    (out / "EmotioNet_AU_annotations.csv").unlink()
    lines = []
    for r in table.to_dict("records"):
        name = r["URL"].rsplit("/", 1)[1]
        vals = [r.get(f"AU {k}", 999) for k in range(1, 61)]
        lines.append("\t".join([f"http://example.invalid/emotionet/{name}", f"http://example.invalid/orig/{name}",
                                *(str(int(v)) for v in vals)]))
    (out / "dataFile_1001.txt").write_text("\n".join(lines) + "\n")


def _occ_csv(path: Path, frames: np.ndarray, labels: pd.DataFrame, aus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"0": frames})
    for a in aus:
        df[str(a)] = labels[au_column(a)].to_numpy()
    df.to_csv(path, index=False)


def _export_bp4d(ds, out, quality, zero_pad):
    f = _ordered(ds)
    keys, lms = [], []
    for subject, g in f.groupby("subject", sort=True):
        tasks = {s: f"T{i + 1}" for i, s in enumerate(sorted(g.sequence.unique()))}
        for seq, gs in g.groupby("sequence", sort=True):
            task = tasks[seq]
            _occ_csv(out / "AUCoding" / "AU_OCC" / f"{subject}_{task}.csv", gs.frame.to_numpy(), gs, ds.aus)
            for r in gs.itertuples():
                _save_jpg(ds.image(r.row), out / subject / task / f"{int(r.frame):0{zero_pad}d}.jpg", quality)
                keys.append((subject, task, int(r.frame)))
                lms.append(ds.landmarks[r.row])
    write_landmark_table(out / LANDMARK_FILE, pd.DataFrame(keys, columns=["subject", "sequence", "frame"]),
                         np.stack(lms))


def _per_subject_runs(ds):
    """[(subject, rows in video order)] with sequences concatenated."""
    f = _ordered(ds)
    return [(s, g.row.to_numpy()) for s, g in f.groupby("subject", sort=True)]


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 20) -> None:
    try:
        import av
    except ImportError as exc:
        raise DatasetError(path, "writing a video needs PyAV: pip install 'aulib[video]'") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 8_000_000
        stream.codec_context.options = {"qscale": "1"}  # near-lossless, like a high-quality Xvid encode
        for img in frames:
            rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _export_disfa(ds, out, quality, zero_pad):
    from scipy.io import savemat

    has_int = ds.has("intensity")
    for subject, rows in _per_subject_runs(ds):
        label_dir = out / "ActionUnit_Labels" / subject
        label_dir.mkdir(parents=True, exist_ok=True)
        for a in ds.aus:
            if has_int:
                v = ds.frames[intensity_column(a)].to_numpy()[rows].astype(int)
                v = np.where(v < 0, 0, v)
            else:  # occurrence only: a positive is written as intensity 3 (>= 2 reads back as 1)
                occ = ds.frames[au_column(a)].to_numpy()[rows]
                v = np.where(occ == 1, 3, 0)
            lines = [f"{i + 1},{int(x)}" for i, x in enumerate(v)]
            (label_dir / f"{subject}_au{a}.txt").write_text("\n".join(lines) + "\n")
        _write_video(out / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi", [ds.image(int(r)) for r in rows])
        lm_dir = out / "Landmark_Points" / subject / "tmp_frame_lm"
        lm_dir.mkdir(parents=True, exist_ok=True)
        for i, r in enumerate(rows):  # 0-based file number = label frame - 1
            savemat(lm_dir / f"{subject}_{i:04d}_lm.mat", {"pts": np.asarray(ds.landmarks[r], np.float64)[IDX_66]})


def _export_gft(ds, out, quality, zero_pad):
    keys, lms = [], []
    for subject, rows in _per_subject_runs(ds):
        frames = np.arange(len(rows))
        _occ_csv(out / "AU_OCC" / f"{subject}.csv", frames, ds.frames.iloc[rows], ds.aus)
        for i, r in enumerate(rows):
            _save_jpg(ds.image(int(r)), out / "images" / subject / f"{i:0{zero_pad}d}.jpg", quality)
            keys.append((subject, "GFT", i))
            lms.append(ds.landmarks[r])
    write_landmark_table(out / LANDMARK_FILE, pd.DataFrame(keys, columns=["subject", "sequence", "frame"]),
                         np.stack(lms))


def _export_affwild2(ds, out, quality, zero_pad):
    keys, lms = [], []
    for subject, rows in _per_subject_runs(ds):
        lab = pd.DataFrame({f"AU{a}": ds.frames[au_column(a)].to_numpy()[rows].astype(int) for a in ds.aus})
        lab = lab.where(lab != UNKNOWN, -1)
        path = out / "AU_Set" / "Train_Set" / f"{subject}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lab.to_csv(path, index=False)
        for i, r in enumerate(rows):
            _save_jpg(ds.image(int(r)), out / "cropped_aligned" / subject / f"{i + 1:05d}.jpg", quality)
            keys.append((subject, "Train_Set", i + 1))
            lms.append(ds.landmarks[r])
    write_landmark_table(out / LANDMARK_FILE, pd.DataFrame(keys, columns=["subject", "sequence", "frame"]),
                         np.stack(lms))


def _export_affectnet(ds, out, quality, zero_pad):
    emo = ds.emotions() if ds.has("emotion") else np.full(len(ds), -1)
    rows = []
    for subject, rs in _per_subject_runs(ds):
        for k, r in enumerate(rs):
            rel = f"{subject}/{k}.jpg"
            img = ds.image(int(r))
            _save_jpg(img, out / "Manually_Annotated_Images" / rel, quality)
            lm = np.asarray(ds.landmarks[r], np.float64)
            e = int(emo[r])
            rows.append({"subDirectory_filePath": rel, "face_x": 0, "face_y": 0, "face_width": img.shape[1],
                         "face_height": img.shape[0], "facial_landmarks": ";".join(f"{v:.4f}" for v in lm.ravel()),
                         "expression": e if e >= 0 else 8, "valence": 0.0, "arousal": 0.0})
    path = out / "Manually_Annotated_file_lists" / "training.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def _export_emotionet(ds, out, quality, zero_pad):
    rows, keys, lms = [], [], []
    for subject, rs in _per_subject_runs(ds):
        for k, r in enumerate(rs):
            name = f"{subject}__{k}.jpg"
            _save_jpg(ds.image(int(r)), out / "images" / name, quality)
            row = {"URL": f"http://example.invalid/emotionet/{name}"}
            for a in ds.aus:
                v = int(ds.frames[au_column(a)].iloc[r])
                row[f"AU {a}"] = 999 if v == UNKNOWN else v
            rows.append(row)
            keys.append(f"images/{name}")
            lms.append(ds.landmarks[r])
    pd.DataFrame(rows).to_csv(out / "EmotioNet_AU_annotations.csv", index=False)
    write_landmark_table(out / LANDMARK_FILE, pd.DataFrame({"path": keys}), np.stack(lms))
