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


@pytest.mark.parametrize("task", ["detection", "segmentation"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_weights_arrive_in_the_detector_and_segmenter(tmp_path, task, variant):
    """Strict loading through the real config and initializer, and one changed tensor
    in backbone.pth changes the model's features."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from downstream import detect, segment
    from downstream.runner import Backbone
    from tests.conftest import REPO

    module, config, scope = {
        "detection": (detect, "configs/detection/faster-rcnn_fpn_voc0712_tiny.py", "mmdet"),
        "segmentation": (segment, "configs/segmentation/fcn-d8_ade20k_tiny.py", "mmseg"),
    }[task]
    if scope == "mmdet":
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    init_default_scope(scope)
    torch.manual_seed(0)
    trained = resnet(18, variant, num_classes=10, base_channels=8)
    path = tmp_path / "backbone.pth"

    def features(state):
        torch.save(state, path)
        cfg = Config.fromfile(str(REPO / config))
        module.apply_backbone(cfg, Backbone("b", trained.arch(), path, None, None, None, "test"))
        cfg.model.backbone.norm_cfg = dict(type="BN", requires_grad=True)  # one process
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.eval()
        got = model.backbone.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state)
        return model.extract_feat(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))

    state = trained.backbone_state_dict()
    before = features(state)
    state["layer4.1.conv2.weight"] = state["layer4.1.conv2.weight"] * 2
    after = features(state)
    assert not torch.allclose(before[-1], after[-1])
