"""`python -m aulib train`: key=value parsing, one-line errors, a tiny run folder with its model card, resume."""

import json
import subprocess
import sys

import pytest

from aulib.methods.supervised import SupervisedConfig
from aulib.runs import RunError, parse_overrides, train

TINY = ["synth.n_subjects=6", "synth.sequences_per_subject=1", "synth.frames_per_sequence=8", "synth.image_size=64",
        "synth.progress=false"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "aulib", *args], capture_output=True, text=True)


def test_overrides_are_typed_and_routed():
    m, r, s = parse_overrides(["backbone=resnet_tiny", "epochs=3", "lr=0.01", "tune_thresholds=false",
                               "steps_per_epoch=none", "synth.n_subjects=4", "backbone_kwargs={\"widths\": [8, 16]}"],
                              SupervisedConfig, "supervised", synth=True)
    assert m == {"backbone": "resnet_tiny", "backbone_kwargs": {"widths": [8, 16]}}
    assert r == {"epochs": 3, "lr": 0.01, "tune_thresholds": False, "steps_per_epoch": None}
    assert s == {"n_subjects": 4}
    with pytest.raises(RunError, match="expected an integer"):
        parse_overrides(["epochs=many"], SupervisedConfig, "supervised")


def test_unknown_key_is_one_line_listing_the_valid_keys(tmp_path):
    r = run_cli("train", "supervised", "--data", "synth:bp4d", "--out", str(tmp_path / "run"), "bakbone=resnet18")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'bakbone'" in lines[0] and "backbone" in lines[0] and "epochs" in lines[0]
    assert not (tmp_path / "run").exists()


def test_methods_without_an_image_model_say_where_they_train(tmp_path):
    r = run_cli("train", "rrl", "--data", "synth:bp4d", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "rrl is trained through aulib.experiments.rrl" in r.stderr


def test_tiny_run_folder_has_card_and_resumes(tmp_path):
    out = tmp_path / "run"
    card = train("supervised", "synth:bp4d", out, profile="smoke", overrides=TINY, progress=False)
    for name in ("config.json", "history.csv", "last.pt", "model.pt", "results.csv", "card.json", "card.md"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "card.json").read_text())
    assert saved["trained_on_synthetic_faces_only"] is True
    assert saved["preprocessing"] == {"template": "rrl", "size": 48, "channels": 1,
                                      "crop": "aulib.data.align.face_crop(image, dlib 68 landmarks, template, size, channels)"}
    assert set(saved["thresholds"]) == set(saved["aus"]) and len(saved["aus"]) == 12
    assert {"f1", "auc"} <= set(saved["metrics"]["test"]) and "f1" in saved["metrics"]["always present"]
    assert saved["aulib_version"] and "always present" in (out / "card.md").read_text()
    # the same call again resumes the finished run (no new epoch), a different setting is refused
    again = train("supervised", "synth:bp4d", out, profile="smoke", overrides=TINY, progress=False)
    assert again["epochs_trained"] == card["epochs_trained"]
    with pytest.raises(RunError, match="other settings"):
        train("supervised", "synth:bp4d", out, profile="smoke", overrides=[*TINY, "lr=0.5"], progress=False)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(RunError, match="not an aulib run folder"):
        train("supervised", "synth:bp4d", tmp_path, profile="smoke", overrides=TINY, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "x"
