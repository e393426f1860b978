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


def build_downstream(config: str, state: dict, arch: dict, path):
    """The model of a downstream config with ``state`` saved as its backbone.pth, set up as
    the entry scripts do it (``apply_backbone``; BN for one process) and initialised."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from downstream import detect, segment
    from downstream.runner import Backbone, use_plain_bn
    from tests.conftest import REPO

    if config.startswith("configs/detection/"):
        from mmdet.registry import MODELS
        task, scope = detect, "mmdet"
    else:
        from mmseg.registry import MODELS
        task, scope = segment, "mmseg"
    init_default_scope(scope)
    torch.save(state, path)
    cfg = Config.fromfile(str(REPO / config))
    task.apply_backbone(cfg, Backbone("b", arch, path, None, None, None, "test"))
    use_plain_bn(cfg._cfg_dict)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize("config", ["configs/detection/faster-rcnn_fpn_voc0712_tiny.py",
                                    "configs/segmentation/fcn-d8_ade20k_tiny.py"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_weights_arrive_in_the_detector_and_segmenter(tmp_path, config, variant):
    """Strict loading through the real config and initializer, and one changed tensor
    in backbone.pth changes the model's features."""
    torch.manual_seed(0)
    trained = resnet(18, variant, num_classes=10, base_channels=8)

    def features(state):
        model = build_downstream(config, state, trained.arch(), tmp_path / "backbone.pth")
        got = model.backbone.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state)
        return model.extract_feat(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))

    state = trained.backbone_state_dict()
    before = features(state)
    state["layer4.1.conv2.weight"] = state["layer4.1.conv2.weight"] * 2
    after = features(state)
    assert not torch.allclose(before[-1], after[-1])


C4_PAPER = "configs/detection/faster-rcnn_r50-c4_4xb1-20e_voc0712_paper.py"
FCN_PAPER = "configs/segmentation/fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_weights_arrive_in_the_c4_detector(tmp_path, variant):
    """C4: the backbone (stem, layer1-3) and the RoI head's shared head (layer4) load
    disjoint parts of backbone.pth that together are all of it; a changed layer4 tensor
    changes the RoI features."""
    torch.manual_seed(0)
    trained = resnet(18, variant, num_classes=10, base_channels=8)
    state = trained.backbone_state_dict()
    model = build_downstream(C4_PAPER, state, trained.arch(), tmp_path / "backbone.pth")
    trunk, head = model.backbone.state_dict(), model.roi_head.shared_head.state_dict()
    assert not any(k.startswith("layer4.") for k in trunk) and all(k.startswith("layer4.") for k in head)
    assert set(trunk) | set(head) == set(state) and not set(trunk) & set(head)
    assert all(torch.equal({**trunk, **head}[k], v) for k, v in state.items())

    rois = torch.randn(2, 32, 14, 14, generator=torch.Generator().manual_seed(1))  # layer3 width 4 x 8
    before = model.roi_head.shared_head(rois)
    state["layer4.1.conv2.weight"] = state["layer4.1.conv2.weight"] * 2
    after = build_downstream(C4_PAPER, state, trained.arch(), tmp_path / "backbone.pth").roi_head.shared_head(rois)
    assert before.shape == (2, 64, 7, 7) and not torch.allclose(before, after)


def test_c4_shared_head_matches_mmdet_for_a_plain_resnet():
    """For ResNet-50-B at full width, our shared head is mmdet's own ResLayer head, key for key."""
    from mmdet.models.roi_heads.shared_heads import ResLayer

    from downstream.shared_head import ResLayerHead

    ours, theirs = ResLayerHead(depth=50, style="pytorch"), ResLayer(depth=50, style="pytorch")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict())
    ours.eval(), theirs.eval()
    x = torch.randn(1, 1024, 14, 14)
    assert torch.allclose(ours(x), theirs(x))


def test_c4_refuses_a_checkpoint_without_layer4(tmp_path):
    trained = resnet(18, "D", num_classes=10, base_channels=8)
    state = {k: v for k, v in trained.backbone_state_dict().items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointError, match="missing keys: layer4") as e:
        build_downstream(C4_PAPER, state, trained.arch(), tmp_path / "backbone.pth")
    assert str(tmp_path / "backbone.pth") in str(e.value)


@pytest.mark.parametrize("variant", ["A", "D"])
def test_weights_arrive_in_the_paper_segmenter(tmp_path, variant):
    trained = resnet(18, variant, num_classes=10, base_channels=8)
    state = trained.backbone_state_dict()
    model = build_downstream(FCN_PAPER, state, trained.arch(), tmp_path / "backbone.pth")
    got = model.backbone.state_dict()
    assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state)
    assert model.decode_head.in_channels == 64 and model.auxiliary_head.in_channels == 32
