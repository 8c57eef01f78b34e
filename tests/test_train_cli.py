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


def test_a_registered_method_train_cannot_build_is_one_line(tmp_path):
    """A user's own registered method: `train` cannot know its batches, and says so without writing anything."""
    from dataclasses import dataclass

    from aulib.methods import registry
    from aulib.methods.base import Method

    @dataclass
    class MineConfig:
        width: int = 4

    registry.register("mine_for_test", Method, MineConfig)
    try:
        with pytest.raises(RunError, match="mine_for_test is trained through its own module.*trainable here: "
                                           "supervised, cnn_study, tranet, rrl, emoco, aunet"):
            train("mine_for_test", "synth:bp4d", tmp_path / "run", profile="smoke", overrides=TINY, progress=False)
    finally:
        registry._REGISTERED.pop("mine_for_test")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variant", ["aunet", "au_fan"])
def test_aunet_trains_in_its_three_stages_and_predicts(tmp_path, variant):
    """AUNet through `train`: aulib's FAN on landmarks (cached in the run folder), the AU-VAE, the head;
    model.pt holds all three and the predictor reloads them with identical outputs; resuming reuses the FAN."""
    import numpy as np
    import torch

    from aulib.inference import load_model
    from aulib.methods.aunet import AUNetMethod

    out = tmp_path / variant
    card = train("aunet", "synth:bp4d", out, profile="smoke", overrides=[*TINY, f"variant={variant}"],
                 progress=False)
    assert card["method"] == "aunet" and len(card["aus"]) == 12 and card["preprocessing"]["channels"] == 3
    fans = sorted(out.glob("fan_*.pt"))
    assert len(fans) == 1 and any("FAN trained by aulib" in n for n in card["notes"])
    has_protocol = "test, paper protocol (frames t-T, t, t+T)" in card["metrics"]
    assert has_protocol == (variant == "aunet")  # the TDN's triplet input is scored beside predict's still frames
    ckpt = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    assert any(k.startswith("fan.") for k in ckpt["state_dict"])
    assert any(k.startswith("vae.") for k in ckpt["state_dict"]) == (variant == "aunet")
    model = load_model(out)
    assert isinstance(model.method, AUNetMethod)
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        logits = model.method(x)
    assert logits.shape == (3, 12) and np.isfinite(logits.numpy()).all()
    assert torch.equal(model.method.au_weights, torch.as_tensor(ckpt["config"]["au_weights"], dtype=torch.float32))
    fan_mtime = fans[0].stat().st_mtime_ns
    again = train("aunet", "synth:bp4d", out, profile="smoke", overrides=[*TINY, f"variant={variant}"],
                  progress=False)
    assert again["epochs_trained"] == card["epochs_trained"] and fans[0].stat().st_mtime_ns == fan_mtime


def test_aunet_tdn_needs_videos(tmp_path):
    with pytest.raises(RunError, match="variant=aunet \\(TDN\\) needs videos"):
        train("aunet", "synth:emotionet", tmp_path / "r", profile="smoke",
              overrides=["synth.n_subjects=12", "synth.image_size=64", "synth.progress=false"], progress=False)


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


@pytest.mark.parametrize("method,template,channels", [("tranet", "tranet", 1), ("cnn_study", "rrl", 1)])
def test_paper_image_models_train_and_predict(tmp_path, method, template, channels):
    """TRA-Net and a CNN-study network through `train` -> model.pt -> the predictor, with their own settings."""
    import numpy as np
    import torch

    from aulib.inference import load_model

    out = tmp_path / method
    card = train(method, "synth:bp4d", out, profile="smoke", overrides=TINY, progress=False)
    assert card["method"] == method and card["preprocessing"]["template"] == template
    assert card["preprocessing"]["channels"] == channels and len(card["aus"]) == 12
    cfg = json.loads((out / "config.json").read_text())["method_config"]
    if method == "tranet":
        assert cfg["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24] and 0.3 < cfg["centre_row"] < 0.7
        assert set(cfg["regions"]) == {"upper", "middle", "lower"}
    else:
        assert cfg["num_aus"] == 12 and cfg["image_size"] == 48
    model = load_model(out)
    x = torch.rand(2, channels, 48, 48)
    with torch.no_grad():
        logits = model.method(x)
    assert logits.shape == (2, 12) and np.isfinite(logits.numpy()).all()
    # the saved weights are the trained ones
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    k = next(iter(state))
    assert torch.equal(model.method.state_dict()[k].float(), state[k].float())


def test_cnn_study_refuses_colour(tmp_path):
    with pytest.raises(RunError, match="grey faces"):
        train("cnn_study", "synth:bp4d", tmp_path / "r", profile="smoke", overrides=[*TINY, "channels=3"],
              progress=False)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(RunError, match="not an aulib run folder"):
        train("supervised", "synth:bp4d", tmp_path, profile="smoke", overrides=TINY, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "x"


@pytest.mark.parametrize("method", ["rrl", "emoco"])
def test_self_supervised_methods_pretrain_probe_and_predict(tmp_path, method):
    """RRL / EmoCo through `train`: pretraining on their own default set, the linear probe on the fit frames,
    model.pt = frozen encoder + probe head, reloaded by the predictor with identical outputs."""
    import numpy as np
    import torch

    from aulib.inference import load_model

    out = tmp_path / method
    card = train(method, "synth:bp4d", out, profile="smoke", overrides=[*TINY, "epochs=1"], progress=False)
    assert card["method"] == method and len(card["aus"]) == 12
    ckpt = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    assert ckpt["head"]["kind"] == ("bn_linear" if method == "rrl" else "linear")
    assert ckpt["head"]["pretrain_data"] == ("synth:emotionet" if method == "rrl" else "synth:affectnet")
    if method == "rrl":
        assert np.asarray(ckpt["config"]["relation"]).shape == (12, 12)  # M of the fit frames
    assert (out / "history.csv").is_file() and {"f1", "auc"} <= set(card["metrics"]["test"])
    model = load_model(out)
    ch = card["preprocessing"]["channels"]
    size = card["preprocessing"]["size"]
    x = torch.rand(3, ch, size, size)
    with torch.no_grad():
        logits = model.method(x)
    assert logits.shape == (3, 12) and np.isfinite(logits.numpy()).all()
    # the same call again resumes the finished pretraining and gives the same model
    again = train(method, "synth:bp4d", out, profile="smoke", overrides=[*TINY, "epochs=1"], progress=False)
    assert again["epochs_trained"] == card["epochs_trained"]


def test_rrl_train_fits_its_probe_as_the_notebook_does(tmp_path, monkeypatch):
    """`aulib train rrl` reads the probe of the notebook's profile: L-BFGS to convergence with its L2 term."""
    from aulib import profiles
    from aulib.eval import protocols
    from aulib.runs import notebook_defaults

    for prof in ("smoke", "cpu", "gpu"):
        probe = profiles.get(prof, "rrl")["probe"]
        run = notebook_defaults("rrl", prof)[1]
        assert (run["probe_optimizer"], run["probe_weight_decay"], run["probe_epochs"]) == \
            (probe["optimizer"], probe["weight_decay"], probe["epochs"]), prof
    seen = []
    real = protocols.train_head
    monkeypatch.setattr(protocols, "train_head", lambda f, y, v, cfg: seen.append(cfg) or real(f, y, v, cfg))
    train("rrl", "synth:bp4d", tmp_path / "r", profile="smoke", overrides=[*TINY, "epochs=1"], progress=False)
    smoke = profiles.get("smoke", "rrl")["probe"]
    assert [(c.head, c.optimizer, c.weight_decay, c.epochs) for c in seen] == \
        [("bn_linear", "lbfgs", smoke["weight_decay"], smoke["epochs"])]


def test_emoco_needs_emotion_labels_to_pretrain(tmp_path):
    with pytest.raises(RunError, match="emotion"):
        train("emoco", "synth:bp4d", tmp_path / "r", profile="smoke",
              overrides=[*TINY, "epochs=1", "pretrain_data=synth:disfa", "pretrain_subjects=20"], progress=False)
    with pytest.raises(RunError, match="pretrain_data=synth:disfa: .*too many"):
        train("emoco", "synth:bp4d", tmp_path / "r2", profile="smoke",
              overrides=[*TINY, "epochs=1", "pretrain_data=synth:disfa", "pretrain_subjects=999"], progress=False)


def test_real_augmentation_compresses_about_half_the_faces_as_jpeg():
    import torch

    from aulib.data.transforms import to_sample
    from aulib.runs import augmentation

    aug = augmentation("real")
    torch.manual_seed(0)
    img, lm = torch.rand(1, 48, 48) * 0.6 + 0.2, torch.full((68, 2), 24.0)
    outs = [aug(to_sample(img, lm))["image"].as_subclass(torch.Tensor) for _ in range(80)]
    assert all(o.shape == img.shape and 0 <= float(o.min()) and float(o.max()) <= 1 for o in outs)
    # a JPEG-decoded face is uint8 / 255 exactly; gamma and noise leave the others off that grid
    jpeg = [bool(torch.allclose(o * 255, (o * 255).round(), atol=1e-4)) for o in outs]
    assert 0.3 < sum(jpeg) / len(jpeg) < 0.7
