import subprocess
import sys

from aulib.data.schema import open_dataset


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "aulib", *args], capture_output=True, text=True, **kw)


def test_synth_writes_a_valid_canonical_dataset(tmp_path):
    r = run("synth", "--preset", "disfa", "--out", str(tmp_path / "d"), "--subjects", "3", "--sequences", "1",
            "--frames", "4", "--size", "64")
    assert r.returncode == 0, r.stderr
    ds = open_dataset(tmp_path / "d")
    assert len(ds) == 12 and ds.aus == [1, 2, 4, 6, 9, 12, 25, 26] and ds.has("intensity")
    info = run("info", "--data", str(tmp_path))
    assert info.returncode == 0 and "frames=12" in info.stdout, info.stdout + info.stderr


def test_unknown_preset_and_profile_are_explained(tmp_path):
    r = run("synth", "--preset", "nope", "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "presets: bp4d" in r.stderr
    r = run("reproduce", "--profile", "huge")
    assert r.returncode != 0 and "invalid choice" in r.stderr
