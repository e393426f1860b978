"""backbone.pth loads into mmdet's and mmseg's ResNet with no remapping, strictly."""
import pytest
import torch

from downstream.backbone import StrictPretrainedInit, backbone_fields, stage_channels
from pretrain.checkpoint import CheckpointError
from pretrain.models import VARIANTS, resnet


def mm_resnet(lib: str, arch: dict, **extra):
    if lib == "mmdet":
        from mmdet.models.backbones import ResNet
    else:
        from mmseg.models.backbones import ResNet
    fields = {k: v for k, v in backbone_fields(arch, "unused").items() if k not in ("type", "init_cfg", "pretrained")}
    return ResNet(**fields, **extra)


SEG_DILATED = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)


@pytest.mark.parametrize("lib", ["mmdet", "mmseg"])
@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keys_and_shapes_match_openmmlab_resnet(lib, depth, variant):
    ours = resnet(depth, variant, num_classes=10, base_channels=16)
    theirs = mm_resnet(lib, ours.arch(), **(SEG_DILATED if lib == "mmseg" else {}))
    a = {k: tuple(v.shape) for k, v in ours.backbone_state_dict().items()}
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert a == b


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_weights_give_the_same_features_in_mmdet(variant):
    ours = resnet(50, variant, num_classes=10, base_channels=8).eval()
    for m in ours.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    theirs = mm_resnet("mmdet", ours.arch())
    theirs.eval()  # mmdet's ResNet.train() returns None
    theirs.load_state_dict(ours.backbone_state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(theirs(x)[-1], ours.forward_features(x), atol=1e-5)


def test_stage_channels():
    assert stage_channels(dict(depth=50, base_channels=64)) == [256, 512, 1024, 2048]
    assert stage_channels(dict(depth=18, base_channels=16)) == [16, 32, 64, 128]


def test_strict_init_loads_every_tensor(tmp_path):
    ours = resnet(18, "D", num_classes=10, base_channels=8)
    path = tmp_path / "backbone.pth"
    torch.save(ours.backbone_state_dict(), path)
    theirs = mm_resnet("mmdet", ours.arch())
    StrictPretrainedInit(checkpoint=str(path))(theirs)
    assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.backbone_state_dict().items())


@pytest.mark.parametrize("other", [dict(variant="B"), dict(variant="C"), dict(depth=34)])
def test_checkpoint_of_another_variant_or_depth_is_refused(tmp_path, other):
    trained = resnet(other.get("depth", 18), other.get("variant", "D"), num_classes=10, base_channels=8)
    path = tmp_path / "backbone.pth"
    torch.save(trained.backbone_state_dict(), path)
    target = mm_resnet("mmdet", resnet(18, "D", num_classes=10, base_channels=8).arch())
    with pytest.raises(CheckpointError, match=str(path)) as e:
        StrictPretrainedInit(checkpoint=str(path))(target)
    assert "missing keys" in str(e.value) and "another depth, variant or width" in str(e.value)


def test_changed_file_is_refused_by_checksum(tmp_path):
    path = tmp_path / "backbone.pth"
    torch.save(resnet(18, "B", num_classes=10, base_channels=8).backbone_state_dict(), path)
    target = mm_resnet("mmdet", resnet(18, "B", num_classes=10, base_channels=8).arch())
    with pytest.raises(CheckpointError, match="SHA-256"):
        StrictPretrainedInit(checkpoint=str(path), sha256="0" * 64)(target)
