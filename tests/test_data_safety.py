"""Data safety and the converters as a user meets them (issue 15): never delete what aulib did not write, the
output checks, a kill during assembly, orphan workers, corrupt canonical folders, all-unknown label files,
one-line CLI errors, every dataset's command on a tiny copy in its real layout, list keys both ways."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aulib.__main__ import main
from aulib.data.convert import ConversionWarning, convert, work_dir_for
from aulib.data.convert import lists as L
from aulib.data.convert.export import export
from aulib.data.schema import (
    DatasetError,
    OutputError,
    check_output,
    clean_stale,
    is_aulib_dataset,
    open_dataset,
    write_dataset,
)

synthetic = pytest.importorskip("aulib.data.synthetic")
warnings.simplefilter("ignore", ConversionWarning)


def _synth(preset, **kw):
    cfg = dict(preset=preset, n_subjects=2, sequences_per_subject=2, frames_per_sequence=2, image_size=64, seed=3,
               channels=3)
    cfg.update(kw)
    return synthetic.generate(synthetic.SynthConfig(**cfg))


def cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "aulib", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)


def run_main(capsys, *args) -> tuple[int, str]:
    """main() in this process (fast): (exit status, what it printed on stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code)
    return code, capsys.readouterr().err


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bp4d_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("bp4d") / "BP4D"
    export(_synth("bp4d"), root, "bp4d")
    return root


# -- never delete what aulib did not write ------------------------------------------------------------------------
def test_synth_refuses_a_non_empty_folder_and_keeps_the_users_file(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    r = cli("synth", "--out", out)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"aulib: error: {out}: exists and is not empty, and is not a dataset aulib wrote")
    r = cli("synth", "--out", out, "--overwrite")
    assert r.returncode == 2 and "not a dataset aulib wrote" in r.stderr  # --overwrite does not change that
    assert tree(out) == {"thesis.tex": b"months of work"}


def test_overwrite_replaces_only_an_aulib_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ("synth", "--out", out, "--subjects", 2, "--sequences", 1, "--frames", 2, "--size", 64)
    assert run_main(capsys, *args)[0] == 0
    assert is_aulib_dataset(out)
    code, err = run_main(capsys, *args, "--seed", 5)
    assert code == 2 and err == f"aulib: error: {out}: already holds an aulib dataset; pass --overwrite " \
        "(overwrite=True) to replace it\n"
    before = tree(out)
    assert run_main(capsys, *args, "--seed", 5, "--overwrite")[0] == 0
    assert tree(out) != before and len(open_dataset(out)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the old copy and the temporary folder are gone
    (out / "notes.txt").write_text("mine")  # a user's file inside an aulib dataset: still never deleted
    code, err = run_main(capsys, *args, "--overwrite")
    assert code == 2 and "notes.txt, which aulib did not write" in err
    assert (out / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_main(capsys, "synth", "--out", empty, "--subjects", 2, "--sequences", 1, "--frames", 2,
                    "--size", 64)[0] == 0


@pytest.mark.parametrize("where", ["same", "inside", "above"])
def test_out_equal_to_inside_or_above_src_is_refused(bp4d_raw, where, tmp_path):
    out = {"same": bp4d_raw, "inside": bp4d_raw / "converted", "above": bp4d_raw.parent}[where]
    before = tree(bp4d_raw)
    r = cli("convert", "bp4d", "--src", bp4d_raw, "--out", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert {"same": "is the source folder", "inside": "inside the source folder",
            "above": "contains the source folder"}[where] in r.stderr
    assert tree(bp4d_raw) == before
    with pytest.raises(OutputError):
        check_output(out, bp4d_raw, overwrite=True)


def test_convert_refuses_a_foreign_out_before_any_work(bp4d_raw, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.csv").write_text("x")
    r = cli("convert", "bp4d", "--src", bp4d_raw, "--out", out)
    assert r.returncode == 2 and "not a dataset aulib wrote" in r.stderr
    assert tree(out) == {"keep.csv": b"x"} and not work_dir_for(out).exists()


# -- a kill during the final assembly, orphan workers ------------------------------------------------------------
KILL_IN_ASSEMBLY = """
import os, signal, sys
import aulib.data.schema as S
S.DatasetMeta.to_json = lambda self: os.kill(os.getpid(), signal.SIGKILL)  # dies inside the atomic block
from aulib.data.convert import convert
convert("bp4d", sys.argv[1], sys.argv[2], progress=False)
"""


def test_kill_during_assembly_then_rerun_cleans_up(bp4d_raw, tmp_path, capsys):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", KILL_IN_ASSEMBLY, str(bp4d_raw), str(out)], capture_output=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
    assert len(stale) == 1 and (stale[0] / "images.npy").is_file() and not out.exists()
    ds = convert("bp4d", bp4d_raw, out, progress=False)
    assert len(ds) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder, no work folder
    assert "removed" in capsys.readouterr().err


def test_a_killed_swap_is_restored(tmp_path, tiny_dataset):
    out = write_dataset(tiny_dataset, tmp_path / "ds")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = tmp_path / f".ds.old-{int(dead.stdout)}"
    os.replace(out, old)  # what a kill between the two renames leaves
    (old / ".aulib-partial").write_text("")
    assert clean_stale(out) == [old]
    assert len(open_dataset(out)) == len(tiny_dataset) and not old.exists()
    foreign = tmp_path / ".ds.tmp-1-user"  # same pattern, but not marked by aulib: left alone
    foreign.mkdir()
    assert clean_stale(out) == [] and foreign.exists()


ORPHANS = """
import os, signal, sys, threading, time
from aulib.data.convert import _engine
if os.environ.get("AULIB_TEST_NO_GUARD"):
    _engine._die_with_parent = lambda parent: None
piddir = sys.argv[3]
def slow(unit, opts, size, channels, shard):
    open(os.path.join(piddir, str(os.getpid())), "w").close()
    time.sleep(60)
_engine.process_unit = slow
def killer():
    while len(os.listdir(piddir)) < 2:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=killer, daemon=True).start()
from aulib.data.convert import convert
convert("bp4d", sys.argv[1], sys.argv[2], workers=2, progress=False)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_parent_is_killed(bp4d_raw, tmp_path):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    r = subprocess.run([sys.executable, "-c", ORPHANS, str(bp4d_raw), str(tmp_path / "out"), str(piddir)],
                       capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    pids = [int(p.name) for p in piddir.iterdir()]
    assert len(pids) >= 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:  # clean up what this test started before failing
        os.kill(p, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their parent"


# -- corrupt canonical folders -------------------------------------------------------------------------------------
def _truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


CORRUPTIONS = {
    "truncated parquet": (lambda d: _truncate(d / "frames.parquet"), "frames.parquet: cannot read the parquet table"),
    "bad JSON": (lambda d: (d / "meta.json").write_text('{"format": "aulib-canonical", '), "meta.json: not valid JSON"),
    "JSON not an object": (lambda d: (d / "meta.json").write_text("[1, 2]"), "meta.json: must hold a JSON object"),
    "JSON wrong type": (lambda d: (d / "meta.json").write_text(json.dumps(
        {**json.loads((d / "meta.json").read_text()), "image_size": "big"})), "meta.json: a value has the wrong type"),
    "truncated images": (lambda d: _truncate(d / "images.npy", 0.7), "images.npy: truncated: its header says shape"),
    "short image array": (lambda d: np.save(d / "images.npy", np.load(d / "images.npy")[:5]),
                          "frames.parquet, row 5: image index outside images.npy"),
    "missing landmarks": (lambda d: (d / "landmarks.npy").unlink(), "landmarks.npy: file is missing"),
    "short landmarks": (lambda d: np.save(d / "landmarks.npy", np.load(d / "landmarks.npy")[:3]),
                        "landmarks.npy: landmarks must have shape"),
    "not npy": (lambda d: (d / "landmarks.npy").write_text("hello"), "landmarks.npy: not a .npy array file"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_canonical_files_are_named(tmp_path, tiny_dataset, case, capsys):
    out = write_dataset(tiny_dataset, tmp_path / "ds")
    breakage, message = CORRUPTIONS[case]
    breakage(out)
    with pytest.raises(DatasetError) as e:
        open_dataset(out)
    assert str(e.value).startswith(f"{out}/{message}") or str(e.value).startswith(str(out / message)), str(e.value)
    capsys.readouterr()
    main(["info", "--data", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "INVALID" in printed and message.split(":")[0] in printed


# -- all-unknown label files ---------------------------------------------------------------------------------------
def test_bp4d_label_file_of_only_nines_is_an_error(tmp_path, capsys):
    raw = tmp_path / "raw"
    export(_synth("bp4d", n_subjects=1, sequences_per_subject=1), raw, "bp4d")
    f = next((raw / "AUCoding" / "AU_OCC").glob("*.csv"))
    df = pd.read_csv(f)
    df[[c for c in df.columns if c != "0"]] = 9
    df.to_csv(f, index=False)
    code, err = run_main(capsys, "convert", "bp4d", "--src", raw, "--out", tmp_path / "out")
    assert code == 2 and err.startswith(f"aulib: error: {f}: every AU label in this file is unknown")
    assert not (tmp_path / "out").exists()


def test_affwild2_file_of_only_minus_ones_is_an_error(tmp_path):
    raw = tmp_path / "raw"
    export(_synth("affwild2", n_subjects=1, sequences_per_subject=1), raw, "affwild2")
    f = next((raw / "AU_Set" / "Train_Set").glob("*.txt"))
    header, *rows = f.read_text().splitlines()
    f.write_text("\n".join([header] + [",".join(["-1"] * 12)] * len(rows)) + "\n")
    with pytest.raises(DatasetError, match="every AU of every frame is -1"):
        convert("affwild2", raw, tmp_path / "out", progress=False)


def test_emotionet_file_of_only_999_is_an_error(tmp_path):
    raw = _emotionet_lists(tmp_path, all_unknown=True)
    with pytest.raises(DatasetError, match=r"dataFile_1001.txt: every AU value of all 4 rows is unknown \(999\)"):
        convert("emotionet", raw, tmp_path / "out", progress=False)


# -- one-line errors -----------------------------------------------------------------------------------------------
def test_bad_row_is_one_line_and_debug_shows_the_traceback(tmp_path):
    raw = tmp_path / "raw"
    export(_synth("bp4d", n_subjects=1, sequences_per_subject=1), raw, "bp4d")
    f = next((raw / "AUCoding" / "AU_OCC").glob("*.csv"))
    lines = f.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",7"
    f.write_text("\n".join(lines) + "\n")
    r = cli("convert", "bp4d", "--src", raw, "--out", tmp_path / "out")
    assert r.returncode == 2
    assert r.stderr == f"aulib: error: {f}:3: AU24 value 7 is not 0, 1 or 9 (unknown)\n"
    r = cli("convert", "bp4d", "--src", raw, "--out", tmp_path / "out", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr
    r = cli("convert", "bp4d", "--src", tmp_path / "nope", "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr == f"aulib: error: {tmp_path / 'nope'}: source folder does not exist\n"
    r = cli("convert", "bp4d", "--src", raw, "--out", tmp_path / "out", "--align", "nope")
    assert r.returncode == 2 and r.stderr.startswith("aulib: error:") and r.stderr.count("\n") == 1


def test_help_of_each_dataset_names_its_files(capsys):
    for name, needle in [("bp4d", "AU_OCC/<subject>_<task>.csv"), ("disfa", "SN001_au1.txt"), ("gft", "AU_OCC/<video>"),
                         ("affwild2", "AU_Detection_Challenge"), ("affectnet", "_exp.npy"),
                         ("emotionet", "dataFile_")]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main(["convert", name, "--help"])
        printed = capsys.readouterr().out
        assert e.value.code == 0 and needle in printed and "--no-align" in printed and "--landmarks" in printed


# -- every dataset from the command line, on a tiny copy in its real layout ---------------------------------------
def _emotionet_lists(tmp_path, all_unknown=False):
    """EmotioNet as the challenge distributes it: headerless tab-separated url, orig url, AU1..AU60."""
    ds = _synth("emotionet", n_subjects=2, sequences_per_subject=1, frames_per_sequence=2)
    raw = tmp_path / "EmotioNet"
    export(ds, raw, "emotionet")
    ann = pd.read_csv(raw / "EmotioNet_AU_annotations.csv")
    (raw / "EmotioNet_AU_annotations.csv").unlink()
    lines = []
    for r in ann.to_dict("records"):
        name = r["URL"].rsplit("/", 1)[1]
        vals = [999 if all_unknown else r.get(f"AU {k}", 999) for k in range(1, 61)]
        lines.append("\t".join([f"http://img.example.invalid/a/{name}", f"http://orig.invalid/{name}",
                                *map(str, vals)]))
    (raw / "dataFile_1001.txt").write_text("\n".join(lines) + "\n")
    return raw


def _affwild2_abaw6(tmp_path):
    raw = tmp_path / "Aff-Wild2"
    export(_synth("affwild2"), raw, "affwild2")
    dest = raw / "6th ABAW Annotations" / "AU_Detection_Challenge"
    dest.mkdir(parents=True)
    os.replace(raw / "AU_Set" / "Train_Set", dest / "Train_Set")
    (raw / "AU_Set").rmdir()
    return raw


def _affectnet_npy(tmp_path):
    """AffectNet's npy distribution: train_set/images/<id>.jpg + annotations/<id>_exp.npy, _lnd.npy."""
    from PIL import Image

    ds = _synth("affectnet", n_subjects=2, sequences_per_subject=1, frames_per_sequence=3)
    raw = tmp_path / "AffectNet"
    (raw / "train_set" / "images").mkdir(parents=True)
    (raw / "train_set" / "annotations").mkdir()
    emo = ds.emotions()
    for i in range(len(ds)):
        Image.fromarray(ds.image(i)).save(raw / "train_set" / "images" / f"{i}.jpg", quality=95)
        np.save(raw / "train_set" / "annotations" / f"{i}_exp.npy", np.array(str(emo[i] if emo[i] >= 0 else 8)))
        np.save(raw / "train_set" / "annotations" / f"{i}_lnd.npy", np.asarray(ds.landmarks[i], np.float64).ravel())
    return raw, int((emo >= 0).sum())


def _plain(name):
    def make(tmp_path):
        ds = _synth(name)
        raw = tmp_path / name
        export(ds, raw, name)
        return raw, len(ds)
    return make


LAYOUTS = {
    "bp4d": _plain("bp4d"),
    "disfa": _plain("disfa"),
    "gft": _plain("gft"),
    "affwild2": lambda t: (_affwild2_abaw6(t), 8),
    "affectnet": _affectnet_npy,
    "emotionet": lambda t: (_emotionet_lists(t), 4),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_dataset_converts_from_the_command_line(name, tmp_path, capsys):
    from aulib.data.align import get_template
    from aulib.data.convert import DEFAULT_ALIGN

    raw, n = LAYOUTS[name](tmp_path)
    main(["convert", name, "--src", str(raw), "--out", str(tmp_path / "out"), "--quiet"])
    ds = open_dataset(tmp_path / "out")
    tpl = get_template(DEFAULT_ALIGN[name])
    assert len(ds) == n and ds.meta.image_size == (tpl.size, tpl.size)  # aligned by default
    if name in ("gft", "affectnet", "emotionet"):
        assert "note:" in capsys.readouterr().err  # a layout read from public loaders says so
    main(["convert", name, "--src", str(raw), "--out", str(tmp_path / "small"), "--no-align", "--image-size", "48",
          "--channels", "1", "--quiet"])
    small = open_dataset(tmp_path / "small")
    assert len(small) == n and small.meta.image_size == (48, 48) and small.meta.channels == 1


# -- list interop --------------------------------------------------------------------------------------------------
def _disfa_like():
    """A converted-DISFA-shaped dataset: one LeftVideo per subject, 1-based frames."""
    from conftest import make_dataset

    ds = make_dataset(n_subjects=3, seqs=1, frames=4, aus=(1, 2, 4, 6, 9, 12, 25, 26))
    f = ds.frames
    f["subject"] = f.subject.map(lambda s: f"SN{int(s[1:]) + 1:03d}")
    f["sequence"] = "LeftVideo"
    f["frame"] = f["frame"] + 1
    return ds


def test_list_keys_map_both_ways():
    assert L.list_key("SN001", "LeftVideo", 1, "DISFA") == "SN001/0.png"
    assert L.parse_key("SN001/0.png", "DISFA") == ("SN001", "LeftVideo", 1)
    assert L.parse_key("F001/T1/2440.jpg", "BP4D") == ("F001", "T1", 2440)
    assert L.list_key("F001", "T1", 2440, "BP4D") == "F001/T1/2440.jpg"


def test_megraphau_disfa_lists_with_zero_based_keys_round_trip(tmp_path):
    ds = _disfa_like()
    L.export_lists(ds, tmp_path / "lists", "DISFA", "megraphau")
    first = (tmp_path / "lists" / "DISFA_test_img_path_fold1.txt").read_text().split()
    assert all(line.endswith(".png") and line.count("/") == 1 for line in first) and any(
        line.endswith("/0.png") for line in first)
    cmp = L.compare_folds(ds, tmp_path / "lists", "DISFA", "megraphau")
    assert (cmp.frames_in_both == cmp.aulib_frames).all() and cmp.frames_in_both.sum() == len(ds)
    # path-only lists (no label files, no landmarks): labels come from the converted dataset
    for f in (tmp_path / "lists").glob("*label*"):
        f.unlink()
    table = L.read_lists(tmp_path / "lists", "DISFA")
    assert not table.attrs["has_labels"] and len(table) == len(ds)
    images = tmp_path / "crops"
    from PIL import Image

    for r, key in enumerate(L.list_key(s, q, fr, "DISFA") for s, q, fr in zip(ds.frames.subject, ds.frames.sequence,
                                                                               ds.frames.frame)):
        (images / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.image(r)[..., 0]).save(images / key)
    with pytest.raises(DatasetError, match="no label files; pass labels_from"):
        L.import_lists(tmp_path / "lists", images, tmp_path / "imported", "DISFA", progress=False)
    back = L.import_lists(tmp_path / "lists", images, tmp_path / "imported", "DISFA", labels_from=ds, progress=False)
    assert len(back) == len(ds)
    key = ["subject", "sequence", "frame"]
    merged = back.frames.merge(ds.frames, on=key, suffixes=("", "_ref"))
    assert len(merged) == len(ds) and all((merged[c] == merged[f"{c}_ref"]).all() for c in ds.au_columns)
