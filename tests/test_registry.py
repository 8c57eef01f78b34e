"""Backbone registry: names, consistent keywords, local weights with key diagnostics."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from aulib.models import (
    UnknownBackboneError,
    WeightsError,
    create_backbone,
    list_backbones,
    load_weights,
    register_backbone,
)
from aulib.models import registry as reg


def test_unknown_name_lists_registered_names():
    with pytest.raises(UnknownBackboneError) as e:
        create_backbone("resnet5O")
    msg = str(e.value)
    assert "resnet5O" in msg and "resnet50" in msg and "swin_tiny_test" in msg and "xception" in msg


def test_timm_entries_exist_in_timm():
    for name in list_backbones("timm"):
        e = reg._REGISTRY[name]
        timm_name = e.builder.__name__.removeprefix("timm_")
        assert timm.is_model(timm_name), (name, timm_name)
    for name in ("resnet18", "resnet50", "vgg16", "vgg16_bn", "densenet121", "mobilenetv2_100", "inception_v3",
                 "xception", "seresnet50", "swin_tiny_patch4_window7_224"):
        assert name in list_backbones()


@pytest.mark.parametrize("name,size", [("resnet_tiny", 48), ("seresnet_tiny", 48), ("swin_tiny_test", 64)])
def test_tiny_models_features_and_logits(name, size):
    x = torch.randn(2, 1, size, size)
    feat = create_backbone(name, in_chans=1).eval()
    assert feat(x).shape == (2, feat.num_features)
    logits = create_backbone(name, in_chans=1, num_classes=5).eval()
    assert logits(x).shape == (2, 5)
    assert create_backbone(name, in_chans=1, num_classes=7, num_features_only=True)(x).shape[1] == feat.num_features


def test_pretrained_flag_never_downloads():
    m = create_backbone("resnet_tiny", pretrained=True)  # dropped: weights only come from a local path
    assert isinstance(m, nn.Module)


def test_img_size_reaches_the_models_that_need_it():
    m = create_backbone("swin_tiny_test", img_size=32)
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, m.num_features)
    # a size-agnostic timm CNN ignores img_size
    assert create_backbone("resnet_tiny", img_size=40)(torch.randn(1, 3, 40, 40)).ndim == 2


def test_register_backbone_decorator():
    calls = {}

    class Tiny(nn.Module):
        head_prefix = "head"

        def __init__(self, in_chans, num_classes, width):
            super().__init__()
            self.body = nn.Conv2d(in_chans, width, 3)
            self.num_features = width
            self.head = nn.Linear(width, num_classes) if num_classes else nn.Identity()

        def forward(self, x):
            return self.head(self.body(x).mean((2, 3)))

    @register_backbone("_test_tiny", aliases=("_test_tiny_alias",))
    def build(in_chans=3, num_classes=0, width=4, image_size=32):
        calls.update(in_chans=in_chans, num_classes=num_classes, width=width, image_size=image_size)
        return Tiny(in_chans, num_classes, width)

    try:
        m = create_backbone("_test_tiny_alias", in_chans=2, num_classes=3, width=6, img_size=48)
        assert calls == {"in_chans": 2, "num_classes": 3, "width": 6, "image_size": 48}
        assert m(torch.randn(1, 2, 8, 8)).shape == (1, 3) and m.backbone_name == "_test_tiny_alias"
        assert "_test_tiny" in list_backbones("aulib")

        @register_backbone("_test_bad")
        def bad(in_chans=3, num_classes=0):
            return nn.Linear(2, 2)  # no num_features

        with pytest.raises(TypeError, match="num_features"):
            create_backbone("_test_bad")
    finally:
        for k in ("_test_tiny", "_test_tiny_alias", "_test_bad"):
            reg._REGISTRY.pop(k, None)


def test_weights_from_local_file_skip_a_different_head(tmp_path):
    src = create_backbone("resnet_tiny", in_chans=1, num_classes=1000)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)  # DDP-style keys
    dst = create_backbone("resnet_tiny", in_chans=1, num_classes=12, weights=path)
    for k, v in src.state_dict().items():
        if not k.startswith("fc."):
            torch.testing.assert_close(dst.state_dict()[k], v, msg=k)
    assert dst.fc.weight.shape == (12, 64)
    # with a method checkpoint: keep the keys under a prefix
    torch.save({"model": {f"encoder.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, path)
    dst2 = create_backbone("resnet_tiny", in_chans=1, weights=path, weights_prefix="encoder.")
    torch.testing.assert_close(dst2.conv1.weight, src.conv1.weight)


def test_weights_errors_name_the_keys(tmp_path):
    with pytest.raises(WeightsError, match=r"does not exist.*never downloads"):
        create_backbone("resnet_tiny", weights=tmp_path / "missing.pt")

    src = create_backbone("resnet_tiny", in_chans=3).state_dict()
    sd = dict(src)
    del sd["layer1.0.bn1.running_mean"]
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError) as e:
        create_backbone("resnet_tiny", in_chans=1, weights=path)  # conv1 has 3 input channels in the file
    msg = str(e.value)
    assert "missing keys (1): layer1.0.bn1.running_mean" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "shape mismatch (1): conv1.weight: file (64, 3, 7, 7) vs model (64, 1, 7, 7)" in msg

    # strict=False loads what fits and reports the rest
    m = create_backbone("resnet_tiny", in_chans=1)
    report = load_weights(m, path, strict=False)
    assert report["missing"] == ["layer1.0.bn1.running_mean"] and report["unexpected"] == ["extra.weight"]
    torch.testing.assert_close(m.layer1[0].conv1.weight, src["layer1.0.conv1.weight"])

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not be read"):
        create_backbone("resnet_tiny", weights=path)
