"""AUNet against the official code (github jingyang2017/AU-Net): FAN max pooling, F_h1 after bl0, strict FAN
checkpoint loading, the FAN cache keyed by settings + data, the official consistency term (mean sigma) and
Table X's dependency F1 = the action-conditional F1 of [65] (Tirupattur et al., CVPR 2021)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset
from sklearn.metrics import precision_recall_fscore_support

from aulib.eval.metrics import action_conditional_f1, action_conditional_scores
from aulib.experiments import aunet as X
from aulib.losses.latent_consistency import latent_consistency
from aulib.methods.aunet import AUNetConfig
from aulib.models.fan import FAN, CheckpointMismatchError, ConvBlock, HourGlass, load_fan_weights


def _zero_convs(block: ConvBlock):
    for conv in (block.conv1, block.conv2, block.conv3):
        torch.nn.init.zeros_(conv.weight)


# ----------------------------------------------------------------------------------------------- 1. pooling
def test_hourglass_pools_by_max_as_the_official_fan():
    hg = HourGlass(depth=1, features=4).eval()
    for m in hg.modules():
        if isinstance(m, ConvBlock):
            _zero_convs(m)  # every block is the identity: out = x + up(pool(x))
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(1, 4, 2, 2)
    assert torch.equal(hg(x)[0, 0], torch.tensor([[5.0, 6.0], [7.0, 8.0]]))  # x + max 4 (avg would add 2.5)
    avg = HourGlass(depth=1, features=4, pool="avg").eval()
    avg.load_state_dict(hg.state_dict())
    assert torch.equal(avg(x)[0, 0], torch.tensor([[3.5, 4.5], [5.5, 6.5]]))


def _official_fan_features(fan: FAN, x: torch.Tensor):
    """The official AU-Net FAN.forward + FAN_.forward (models/FAN.py), re-written from its modules."""
    m = fan._modules
    x = F.relu(fan.bn1(fan.conv1(x)))
    x = F.max_pool2d(fan.conv2(x), 2, stride=2)
    x = fan.conv4(fan.conv3(x))
    previous, hg_features = x, []
    for i in range(fan.n_stacks):
        ll = F.relu(m[f"bn_end{i}"](m[f"conv_last{i}"](m[f"top_m_{i}"](m[f"m{i}"](previous)))))
        tmp_out = m[f"l{i}"](ll)
        if i < fan.n_stacks - 1:
            ll = m[f"bl{i}"](ll)
            previous = previous + ll + m[f"al{i}"](tmp_out)
        hg_features.append(ll)
    mask = tmp_out.sum(1, keepdim=True)
    return x, torch.cat((x, torch.cat(hg_features, 1) * mask), 1)


@torch.no_grad()
def test_stem_and_au_features_match_the_official_code():
    torch.manual_seed(0)
    fan = FAN(n_stacks=2, width=32, depth=3).eval()
    for bn in (m for m in fan.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 3, 64, 64)
    stem, feats = _official_fan_features(fan, x)
    out = fan.forward_all(x)
    torch.testing.assert_close(out.stem, stem)            # max pool after conv2
    torch.testing.assert_close(fan.au_features(x), feats)  # F_h1 after bl0, F_h2 as is, times the mask


# ----------------------------------------------------------------------------------------------- 3. strict loading
def test_checkpoint_with_an_extra_and_a_missing_key(tmp_path):
    sd = FAN(width=32, depth=3).state_dict()
    sd["m9.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra.pt")
    sd.pop("l1.weight")
    torch.save(sd, tmp_path / "both.pt")
    for strict in (True, False):  # a key the model needs is absent: never a silent partial load
        with pytest.raises(CheckpointMismatchError, match="l1.weight"):
            load_fan_weights(FAN(width=32, depth=3), tmp_path / "both.pt", strict=strict)
    with pytest.raises(CheckpointMismatchError, match="m9.extra.weight"):
        load_fan_weights(FAN(width=32, depth=3), tmp_path / "extra.pt")
    with pytest.warns(UserWarning) as w:
        report = load_fan_weights(FAN(width=32, depth=3), tmp_path / "extra.pt", strict=False)
    assert len(w) == 1 and "\n" not in str(w[0].message) and "m9.extra.weight" in str(w[0].message)
    assert report.unexpected == ["m9.extra.weight"] and not report.missing


def test_load_or_train_fan_loads_a_given_checkpoint_strictly(tmp_path):
    cfg = AUNetConfig(fan_width=32, fan_depth=3, image_size=64)
    sd = X.build_fan(cfg).state_dict()
    sd["m2.b1_3.conv1.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "fan4.pt")
    with pytest.raises(CheckpointMismatchError):
        X.load_or_train_fan(AUNetConfig(**{**vars(cfg), "fan_weights": str(tmp_path / "fan4.pt")}), {}, None)
    with pytest.warns(UserWarning, match="m2.b1_3"):
        X.load_or_train_fan(AUNetConfig(**{**vars(cfg), "fan_weights": str(tmp_path / "fan4.pt"),
                                           "fan_strict": False}), {}, None)


# ----------------------------------------------------------------------------------------------- 4. the FAN cache
def test_fan_cache_is_keyed_by_settings_and_data(tmp_path, monkeypatch):
    calls = []

    def fake_fit(method, loader, tc):  # records a training run instead of doing it
        calls.append(method.sigma)
        return pd.DataFrame({"loss": [1.0]})

    monkeypatch.setattr(X, "fit", fake_fit)
    ds = make_dataset(n_subjects=2, seqs=1, frames=2, size=32)
    rows = np.arange(len(ds))
    cfg = AUNetConfig(fan_width=16, fan_depth=2, image_size=32, fan_augment=False)
    (tmp_path / "fan.pt").write_bytes(b"the user's file")
    X.pretrain_fan(ds, rows, cfg, out_dir=tmp_path, device="cpu", progress=False)
    X.pretrain_fan(ds, rows, cfg, out_dir=tmp_path, device="cpu", progress=False)
    assert len(calls) == 1                               # same settings + data: reused
    X.pretrain_fan(ds, rows, AUNetConfig(**{**vars(cfg), "fan_sigma": 2.0}), out_dir=tmp_path, device="cpu")
    assert calls == [1.0, 2.0]                           # other settings: retrained
    other = make_dataset(n_subjects=2, seqs=1, frames=2, size=32, seed=1)
    X.pretrain_fan(other, rows, cfg, out_dir=tmp_path, device="cpu", progress=False)
    assert calls == [1.0, 2.0, 1.0]                      # other data: retrained
    X.pretrain_fan(ds, rows[:2], cfg, out_dir=tmp_path, device="cpu", progress=False)
    assert len(calls) == 4                               # other rows: retrained
    assert len(list(tmp_path.glob("fan_*.pt"))) == 4 and (tmp_path / "fan.pt").read_bytes() == b"the user's file"


# ----------------------------------------------------------------------------------------------- 5. consistency
def test_official_consistency_adds_mean_sigma_not_variance():
    mu_p, mu_g = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    lv_p, lv_g = torch.tensor([[0.0, math.log(4.0)]]), torch.tensor([[0.0, 0.0]])  # sigma_p = (1, 2)
    # MSE(mu) = mean(1, 0) = 0.5; mean(sigma_p) = 1.5 (mean variance would be 2.5)
    assert math.isclose(float(latent_consistency(mu_p, lv_p, mu_g, lv_g, "official")), 2.0, rel_tol=1e-6)


# ----------------------------------------------------------------------------------------------- 6. dependency F1
Y = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 1]])
P = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1]])


def test_action_conditional_f1_hand_case():
    # (i|j): P, R on the frames with AU j on.  j=0 {0,1,2}: (1|0) 2/3, 1; (2|0) 1, 1/2.  j=1 {0,2,3}: (0|1) 1, 1/2;
    # (2|1) 1, 1.  j=2 {1,2,4}: (0|2) 1/2, 1/2; (1|2) 1/2, 1.  P_AC = 7/9, R_AC = 3/4, F1 = 2PR/(P+R) = 42/55
    s = action_conditional_scores(Y, P)
    assert s["pairs"] == 6 and math.isclose(s["precision"], 7 / 9) and math.isclose(s["recall"], 0.75)
    assert math.isclose(action_conditional_f1(Y, P), 42 / 55)
    assert math.isclose(X.dependency_f1(P, Y), 42 / 55)  # Table X's metric, (pred, labels) order
    assert X.dependency_f1(Y, Y) == 1.0


def _mlad_reference(y, p):
    """The authors' cooccur_metric.conditional_t (t = 0) through sklearn: per conditioning class j, per-class
    precision / recall on the frames with j, pairs i != j with support; F1 of the mean P and mean R."""
    prec, rec = [], []
    for j in range(y.shape[1]):
        sub = y[:, j] == 1
        pr, re, _, n = precision_recall_fscore_support(y[sub], p[sub], average=None, zero_division=0,
                                                       labels=list(range(y.shape[1])))
        for i in range(y.shape[1]):
            if i != j and n[i] > 0:
                prec.append(pr[i]), rec.append(re[i])
    pm, rm = np.mean(prec), np.mean(rec)
    return 2 * pm * rm / (pm + rm)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_action_conditional_f1_matches_the_authors_algorithm(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((300, 5)) < [0.5, 0.3, 0.1, 0.4, 0.05]).astype(int)
    p = np.where(rng.random(y.shape) < 0.8, y, 1 - y)
    assert math.isclose(action_conditional_f1(y, p), _mlad_reference(y, p), rel_tol=1e-12)


def test_action_conditional_f1_skips_unknown_labels():
    valid = np.ones_like(Y, dtype=bool)
    valid[0, 0] = False  # frame 0 leaves j=0's set and AU0's counts under j=1
    y = Y.copy()
    y[0, 0] = 9
    # equals dropping frame 0 from the (i|0) and (0|j) pairs: recompute by hand from the definition
    s = action_conditional_scores(y, P, valid)
    # j=0 {1,2}: (1|0) y=[0,1] p=[1,1] P 1/2 R 1; (2|0) y=[1,1] p=[0,1] P 1 R 1/2.  j=1 {0,2,3}: (0|1) frames {2,3}
    # y=[1,0] p=[0,0] P 0 R 0; (2|1) 1, 1.  j=2 unchanged: 1/2, 1/2; 1/2, 1.
    assert s["pairs"] == 6 and math.isclose(s["precision"], (0.5 + 1 + 0 + 1 + 0.5 + 0.5) / 6)
    assert math.isclose(s["recall"], (1 + 0.5 + 0 + 1 + 0.5 + 1) / 6)
