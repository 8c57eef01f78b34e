"""Issue 14, section 3 A: regression tests for the training loop's best restore, RRL's probe, relation matrix
and drop path, TRA-Net's freezing and width probe. Each test fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aulib.methods.base import Method
from aulib.train import TrainConfig, fit, seed_everything

# ------------------------------------------------------------------------------- 1. fit restores the best epoch


class _Regress(Method):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    def training_step(self, batch, step):
        x, y = batch
        return {"loss": ((self.net(x).squeeze(-1) - y) ** 2).mean()}


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(x, x @ torch.tensor([1.0, -2.0, 0.5, 0.0])), batch_size=8, shuffle=False)


@pytest.mark.parametrize("with_dir", [False, True])
def test_fit_restores_best_epoch_without_checkpoint_folder(tmp_path, with_dir):
    seed_everything(0)
    m = _Regress()
    snaps = {}
    scores = {1: 0.9, 2: 0.5, 3: 0.4}  # best at epoch 1, worse later

    def evaluate(method, epoch):
        snaps[epoch] = {k: v.detach().clone() for k, v in method.state_dict().items()}
        return {"f1": scores[epoch]}

    cfg = TrainConfig(epochs=3, optimizer="sgd", lr=0.05, monitor="f1", progress=False)
    h = fit(m, _loader(), cfg, out_dir=tmp_path if with_dir else None, evaluate=evaluate)
    assert not torch.equal(snaps[1]["net.0.weight"], snaps[3]["net.0.weight"])  # training moved on
    for k, v in m.state_dict().items():  # weights and BatchNorm statistics of epoch 1
        torch.testing.assert_close(v, snaps[1][k])
    assert h.attrs["best_epoch"] == 1 and h.attrs["restored_epoch"] == 1


def test_fit_keeps_last_weights_when_restore_best_is_off():
    seed_everything(0)
    m = _Regress()
    last = {}

    def evaluate(method, epoch):
        last["w"] = method.net[0].weight.detach().clone()
        return {"f1": 1.0 / epoch}

    fit(m, _loader(), TrainConfig(epochs=2, optimizer="sgd", lr=0.05, monitor="f1", restore_best=False,
                                   progress=False), evaluate=evaluate)
    torch.testing.assert_close(m.net[0].weight, last["w"])


# ------------------------------------------------------------------ 5, 6. TRA-Net freezing and the width probe
DISFA = [1, 2, 4, 6, 9, 12, 25, 26]
TINY = dict(backbone="seresnet_tiny", in_chans=1, decoder_channels=(8, 8, 8), fc_hidden=8, reduction=4)


def _weights_file(tmp_path):
    """A seresnet_tiny state dict whose BatchNorm statistics are far from a zero image's."""
    from aulib.models.registry import create_backbone

    torch.manual_seed(1)
    net = create_backbone("seresnet_tiny", in_chans=1, num_classes=0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "seresnet_tiny.pt"
    torch.save(net.state_dict(), path)
    return path, net


def _tranet(**kw):
    from aulib.methods.tranet import group_aus
    from aulib.models.tranet import TRANet

    torch.manual_seed(0)
    return TRANet(DISFA, group_aus(DISFA), **{**TINY, **kw})


def test_tranet_construction_leaves_loaded_batchnorm_statistics_alone(tmp_path):
    from aulib.models.tranet import _STAGES

    path, ref = _weights_file(tmp_path)
    net = _tranet(weights=str(path), frozen_blocks=0)
    ref_blocks = nn.ModuleList(nn.Sequential(*[getattr(ref, m) for m in stage]) for stage in _STAGES)
    want = ref_blocks.state_dict()
    got = net.blocks.state_dict()
    assert set(got) == set(want)
    for k in want:  # running_mean / running_var / num_batches_tracked as loaded
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    assert all(m.training for m in net.modules())  # the probe ran in eval mode, train mode restored


def test_tranet_freezes_blocks_only_when_weights_are_loaded(tmp_path):
    path, _ = _weights_file(tmp_path)
    with_w = _tranet(weights=str(path), frozen_blocks=2).train()
    for i, block in enumerate(with_w.blocks):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in block.parameters())
        assert block.training != frozen
    with pytest.warns(UserWarning, match="frozen_blocks=2 ignored"):
        no_w = _tranet(frozen_blocks=2)
    no_w.train()
    assert no_w.frozen_blocks == 0
    assert all(p.requires_grad for p in no_w.parameters()) and all(b.training for b in no_w.blocks)


# ------------------------------------------------------------------------------------ 4. RRL: no stochastic depth
def test_rrl_swin_backbone_has_no_active_drop_path():
    from timm.layers import DropPath

    from aulib.methods.rrl import RRL, RRLConfig

    cfg = RRLConfig(backbone="swin_tiny_test", image_size=64, local_stride=8, hidden_dim=16, proj_dim=8,
                    use_corr=False)
    method = RRL(cfg)
    for net in (method.online, method.target):  # the target network too
        probs = [m.drop_prob for m in net.modules() if isinstance(m, DropPath)]
        assert all(p == 0.0 for p in probs), probs
    # the knob still works when asked for
    cfg2 = RRLConfig(backbone="swin_tiny_test", image_size=64, local_stride=8, backbone_kwargs={"drop_path_rate": 0.2})
    from aulib.methods.rrl import build_encoder

    assert max(m.drop_prob for m in build_encoder(cfg2).modules() if isinstance(m, DropPath)) > 0


# ------------------------------------------------------------------------------------------ 2. RRL's linear probe
def _toy_31(n, seed):
    """Linearly separable, 31% positives per AU, decision boundaries away from the feature mean."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)  # (N, D)
    s = torch.stack([x[:, 0], x[:, 1] - x[:, 2]], 1)  # (N, 2) the two AUs' scores
    return x, (s > torch.quantile(s, 0.69, dim=0)).float()


def test_rrl_probe_head_has_an_offset_and_plain_bce(monkeypatch):
    from aulib.eval import protocols
    from aulib.experiments import rrl as X
    from aulib.models.heads import linear_head

    head = linear_head(16, 3, "bn_linear")  # rrl.md Sec. 3: "a batch-norm layer followed by a linear ... no bias"
    bn, lin = head
    assert isinstance(bn, nn.BatchNorm1d) and bn.affine and bn.bias.requires_grad  # the offset W beta
    assert lin.bias is None
    for prof in ("smoke", "cpu", "gpu"):
        assert X.settings(prof)["probe"].get("pos_weight") is None, prof
    probe = X.FrozenProbe(lambda s: None, None, 64, X.settings("cpu")["probe"]).probe
    assert probe["head"] == "bn_linear" and probe.get("pos_weight") is None
    seen = []
    real = protocols.masked_bce

    def spy(logits, y, v, pos_weight=None, *a, **kw):
        seen.append(pos_weight)
        return real(logits, y, v, pos_weight, *a, **kw)

    monkeypatch.setattr(protocols, "masked_bce", spy)
    x, y = _toy_31(64, 0)
    protocols.train_head(x, y, None, protocols.ProbeConfig(**{**probe, "epochs": 1, "device": "cpu"}))
    assert seen and all(p is None for p in seen)  # plain BCE, no positive weight


def test_rrl_probe_predicts_the_positive_rate_on_a_toy_problem():
    from aulib.eval.protocols import ProbeConfig, predict_head, train_head
    from aulib.experiments import rrl as X

    probe = X.FrozenProbe(lambda s: None, None, 64, X.settings("cpu")["probe"]).probe
    x, y = _toy_31(4000, 0)
    xt, yt = _toy_31(4000, 1)
    head = train_head(x, y, None, ProbeConfig(**{**probe, "device": "cpu"}))
    rate = (predict_head(head, xt) > 0.5).mean(0)  # (K,)
    assert yt.mean(0).tolist() == pytest.approx([0.31, 0.31], abs=1e-3)
    assert rate == pytest.approx([0.31, 0.31], abs=0.04), rate  # the old probe: ~0.5


# ------------------------------------------------------------------------- 3. RRL's relation matrix per fold
def test_rrl_drivers_count_m_on_each_folds_training_rows(monkeypatch):
    import pandas as pd

    from aulib.data.folds import fold_split
    from aulib.data.synthetic import SynthConfig, generate
    from aulib.experiments import rrl as X
    from aulib.methods.rrl import RRLConfig

    ds = generate(SynthConfig(preset="bp4d", image_size=32, channels=3, n_subjects=9, sequences_per_subject=1,
                              frames_per_sequence=2, seed=0))
    base = RRLConfig(backbone="swin_tiny_test", image_size=64, local_stride=8, hidden_dim=16, proj_dim=8,
                     aus=tuple(ds.aus))
    calls = []

    class _Fake:
        def __init__(self, cfg):
            self.encoder = X.untrained_encoder(cfg, 0)

    def fake_pretrain(pre_ds, cfg, relation, epochs, **kw):
        calls.append((cfg.use_corr, None if relation is None else np.asarray(relation)))
        return _Fake(cfg), pd.DataFrame({"epoch": [1], "loss": [0.0]})

    monkeypatch.setattr(X, "pretrain", fake_pretrain)
    monkeypatch.setattr(X, "encoder_features", lambda enc, d, rows, size, device="auto": (
        torch.randn(len(d), 4), torch.as_tensor(d.au_matrix()[0]).float(), torch.as_tensor(d.au_matrix()[1])))
    probe = {"epochs": 1, "lr": 0.01, "pos_weight": None}
    for name, per_fold in (("global+local+corr", True), ("global", False)):
        calls.clear()
        cfg, augment = X.variant_config(base, name)
        make = X._Pretrained(None, cfg, augment, ds, 1, "cpu", name, X.BP4D, [], {}, 0)
        fp = X.FrozenProbe(make, ds, 64, probe, device="cpu")
        for fold in (1, 2):
            train_rows, test_rows = fold_split(ds, fold)
            fp(train_rows, test_rows, fold, 0)
        if per_fold:  # one pretraining per fold, each with the M of its own training rows
            assert len(calls) == 2
            want = [X.relation_matrix(ds, fold_split(ds, f)[0]) for f in (1, 2)]
            assert not np.allclose(want[0], want[1], equal_nan=True)
            for (_, m), w in zip(calls, want):
                np.testing.assert_allclose(m, w, equal_nan=True)
        else:  # no relation term: one pretraining per seed, reused by both folds
            assert calls == [(False, None)]
