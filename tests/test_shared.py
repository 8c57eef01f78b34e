"""What the layers share: the strict config reader, the method registry, masked BCE, EMA, progress bars, the
validation split, whole-dataset alignment and --param parsing."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset
from torch import nn

from aulib import methods
from aulib.config import ConfigError, from_dict
from aulib.data.align import align_dataset, align_face, resized_template
from aulib.data.folds import split_validation
from aulib.losses.masked_bce import balanced_pos_weight, cost_weights, masked_bce
from aulib.models.ema import cosine_ramp, ema_update
from aulib.reproduce import parse_param


@dataclasses.dataclass
class Cfg:
    size: int = 8
    dims: tuple = (1, 2)
    name: str = "x"


def test_from_dict_is_strict_and_names_the_valid_fields():
    assert from_dict(Cfg, {"size": 4, "dims": [3, 4]}) == Cfg(4, (3, 4), "x")  # JSON lists become tuples
    assert from_dict(Cfg, {"size": 4}, size=5).size == 5
    with pytest.raises(ConfigError, match="unknown Cfg field.*'sizes'.*valid fields: dims, name, size"):
        from_dict(Cfg, {"sizes": 4})
    assert from_dict(Cfg, {"sizes": 4}, strict=False) == Cfg()


def test_registry_lists_and_creates_methods_by_name():
    assert {"supervised", "rrl", "emoco", "aunet", "tranet", "cnn_study"} <= set(methods.available())
    m = methods.create("supervised", backbone="resnet_tiny", num_aus=3, in_chans=1)
    x = torch.randn(2, 1, 32, 32)
    assert m(x).shape == (2, 3)
    with pytest.raises(ConfigError, match="backbone_name"):
        methods.create("supervised", backbone_name="resnet_tiny")
    with pytest.raises(methods.UnknownMethodError, match="available"):
        methods.create("byol_v9")


def test_masked_bce_equals_the_mean_over_known_labels():
    torch.manual_seed(0)
    logits, labels = torch.randn(5, 3), torch.randint(0, 2, (5, 3))
    valid = torch.rand(5, 3) > 0.3
    labels_with_unknown = torch.where(valid, labels, torch.full_like(labels, 9))
    ref = F.binary_cross_entropy_with_logits(logits[valid], labels[valid].float())
    assert masked_bce(logits, labels_with_unknown, valid).item() == pytest.approx(ref.item(), rel=1e-6)
    # per-AU: the mean BCE of each AU's known labels, then the mean over the AUs that have one
    per = [F.binary_cross_entropy_with_logits(logits[valid[:, k], k], labels[valid[:, k], k].float())
           for k in range(3) if valid[:, k].any()]
    assert masked_bce(logits, labels_with_unknown, valid, reduction="per_au").item() == pytest.approx(
        torch.stack(per).mean().item(), rel=1e-6)
    none = masked_bce(logits.requires_grad_(), labels, torch.zeros(5, 3, dtype=torch.bool), reduction="per_au")
    assert none.item() == 0 and none.requires_grad


def test_cost_weights_hand_worked():
    y = torch.tensor([[1, 0], [0, 0], [0, 1], [0, 9]])
    v = y != 9
    w = cost_weights(y, v)  # AU0: 1 pos / 3 neg -> pos weight 3; AU1: 1 pos / 2 neg -> 2, unknown 0
    assert w.tolist() == [[3, 1], [1, 1], [1, 2], [1, 0]]


def test_balanced_pos_weight_hand_worked():
    y = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 9, 0]])
    v = y != 9
    # AU0: 1 pos / 3 neg -> 3; AU1: 1 pos / 2 known neg -> 2; AU2: no positive -> 1
    assert balanced_pos_weight(y, v).tolist() == [3.0, 2.0, 1.0]


def test_ema_update_and_cosine_ramp_hand_worked():
    t, o = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        t.weight.fill_(1.0), t.bias.fill_(0.0), o.weight.fill_(3.0), o.bias.fill_(2.0)
    ema_update(t, o, 0.75)
    assert t.weight.tolist() == [[1.5, 1.5]] and t.bias.item() == pytest.approx(0.5)
    a, b = [torch.zeros(2)], [torch.ones(2)]
    ema_update(a, b, 0.9)
    assert a[0].tolist() == pytest.approx([0.1, 0.1])
    assert cosine_ramp(0, 10, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_ramp(5, 10, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_ramp(10, 10, 0.996, 1.0) == pytest.approx(1.0)


def test_progress_bars_are_quiet_when_the_environment_says_so(monkeypatch):
    from aulib import progress

    monkeypatch.setenv("AULIB_PROGRESS", "0")
    assert progress.tqdm(range(3)).disable
    monkeypatch.setenv("AULIB_PROGRESS", "1")
    assert not progress.tqdm(range(3)).disable


def test_split_validation_holds_out_whole_subjects():
    ds = make_dataset(n_subjects=5, seqs=1, frames=4)
    rows = np.arange(len(ds))
    fit, val = split_validation(ds, rows, 0.4, seed=1)
    subj = ds.frames.subject.to_numpy()
    assert len(set(subj[val])) == 2 and not set(subj[fit]) & set(subj[val])
    assert sorted(np.concatenate([fit, val])) == rows.tolist()
    assert len(split_validation(ds, rows, 0.4, seed=1, max_frames=3)[1]) == 3
    assert len(split_validation(ds, rows, 0.0)[1]) == 0
    assert len(split_validation(ds, rows, 0.99)[0]) > 0  # never every subject


def test_align_dataset_matches_align_face_per_frame():
    ds = make_dataset(n_subjects=2, seqs=1, frames=2, size=32)
    out = align_dataset(ds, "cnn_study", size=24)
    tpl = resized_template("cnn_study", 24)
    img, lm = align_face(ds.image(3), ds.landmarks[3], tpl)
    assert out.meta.image_size == (24, 24) and out.meta.channels == 1
    np.testing.assert_array_equal(out.image(3), img)
    np.testing.assert_allclose(out.landmarks[3], lm)
    assert ds.meta.image_size == (32, 32)  # the original is untouched
    # resizing keeps pixel centres: the 96 px template's points scale by 24 / 96 about -0.5
    np.testing.assert_allclose(tpl.points, (resized_template("cnn_study").points + 0.5) / 4 - 0.5)


@pytest.mark.parametrize("text,expected", [("seed=1", ("seed", 1)), ("lr=0.5", ("lr", 0.5)),
                                           ("umap=False", ("umap", False)), ("data_root=None", ("data_root", None)),
                                           ("name=a=b", ("name", "a=b"))])
def test_param_values_are_typed_as_papermill_does(text, expected):
    assert parse_param(text) == expected
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_param("seed")
