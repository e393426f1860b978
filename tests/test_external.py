"""Backbones the suite did not train: torchvision, timm and mmpretrain layouts, written
by the tests themselves, load with the right remaps and the right architecture."""
import pytest
import torch

from downstream.external import infer_arch, load_external
from pretrain.checkpoint import CheckpointError
from pretrain.models import resnet

TIMM_STEM = {"stem.0": "conv1.0", "stem.1": "conv1.1", "stem.3": "conv1.3", "stem.4": "conv1.4",
             "stem.6": "conv1.6", "stem.7": "bn1"}


def ours(depth, variant):
    torch.manual_seed(0)
    return resnet(depth, variant, num_classes=10, base_channels=16)


def torchvision_style(model):
    return model.state_dict()  # torchvision's ResNet (B) names, fc included


def timm_style(model):
    out = {}
    for k, v in model.state_dict().items():
        module, _, param = k.rpartition(".")
        out[f"{TIMM_STEM[module]}.{param}" if module in TIMM_STEM else k] = v
    return out


def mmpretrain_style(model):
    out = {}
    for k, v in model.backbone_state_dict().items():
        if k.startswith("layer1.0.downsample."):  # no pool in layer1: (conv, bn) at (0, 1)
            idx, rest = k[len("layer1.0.downsample."):].split(".", 1)
            k = f"layer1.0.downsample.{int(idx) - 1}.{rest}"
        out[f"backbone.{k}"] = v
    out["head.fc.weight"] = torch.zeros(10, model.out_channels)
    return {"meta": {"epoch": 100}, "state_dict": out}


def check(path, model, variant=None, expect_variant=None):
    state, arch, fmt = load_external(path, variant)
    expected = model.backbone_state_dict()
    assert set(state) == set(expected), set(state) ^ set(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert (arch["depth"], arch["variant"], arch["base_channels"]) == (model.depth, expect_variant, 16)
    return fmt


def test_torchvision_state_dict(tmp_path):
    model = ours(50, "B")
    torch.save(torchvision_style(model), tmp_path / "tv.pth")
    assert check(tmp_path / "tv.pth", model, expect_variant="B") == "torchvision/timm/mmdet"


def test_timm_resnet_d_with_model_wrapper(tmp_path):
    model = ours(50, "D")
    torch.save({"model": timm_style(model)}, tmp_path / "timm.pth")
    assert check(tmp_path / "timm.pth", model, expect_variant="D") == "timm-deep-stem"


def test_timm_resnet_c(tmp_path):
    model = ours(18, "C")
    torch.save(timm_style(model), tmp_path / "timm_c.pth")
    check(tmp_path / "timm_c.pth", model, expect_variant="C")


def test_mmpretrain_resnet_v1d_layer1_remap(tmp_path):
    model = ours(50, "D")
    torch.save(mmpretrain_style(model), tmp_path / "mmpretrain.pth")
    assert check(tmp_path / "mmpretrain.pth", model, expect_variant="D") == "mmpretrain"


def test_ddp_prefix_and_variant_a_given(tmp_path):
    model = ours(50, "A")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "a.pth")
    check(tmp_path / "a.pth", model, variant="A", expect_variant="A")


def test_variant_that_contradicts_the_keys_is_refused(tmp_path):
    torch.save(torchvision_style(ours(18, "B")), tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="--variant D does not fit"):
        load_external(tmp_path / "b.pth", "D")


class Foreign:
    """Stands for any pickled object a weights file should not carry."""


def test_non_tensor_pickle_is_refused_with_weights_only(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": Foreign()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_external(tmp_path / "evil.pth")


def test_unknown_layout_and_depth_are_refused(tmp_path):
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no ResNet keys"):
        load_external(tmp_path / "x.pth")
    sd = ours(18, "B").backbone_state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith("layer4.1.")}
    with pytest.raises(CheckpointError, match="match no ResNet depth"):
        infer_arch(sd)
