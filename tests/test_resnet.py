import pytest
import torch
from torch import nn

from pretrain.models import VARIANTS, resnet
from pretrain.tricks.zero_gamma import zero_last_bn_gamma


@pytest.mark.parametrize("depth, params", [(18, 11_689_512), (50, 25_557_032)])
def test_parameter_counts_match_torchvision(depth, params):
    # torchvision's resnet18 / resnet50 (ResNet-B) have exactly these counts.
    assert sum(p.numel() for p in resnet(depth, "B", num_classes=1000).parameters()) == params


def test_resnet50d_matches_timm_parameter_count():
    assert sum(p.numel() for p in resnet(50, "D", num_classes=1000).parameters()) == 25_576_264


def first_block(model):
    return model.layer2[0]


def test_variant_a_strides_first_1x1_and_b_the_3x3():
    a, b = resnet(50, "A", num_classes=10), resnet(50, "B", num_classes=10)
    assert first_block(a).conv1.stride == (2, 2) and first_block(a).conv2.stride == (1, 1)
    assert first_block(b).conv1.stride == (1, 1) and first_block(b).conv2.stride == (2, 2)


def test_variant_c_has_deep_stem_and_d_avg_pool_shortcut():
    c, d = resnet(50, "C", num_classes=10), resnet(50, "D", num_classes=10)
    convs = [m for m in c.stem if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (32, (3, 3), (2, 2)), (32, (3, 3), (1, 1)), (64, (3, 3), (1, 1))]
    assert not hasattr(c, "conv1")
    assert isinstance(first_block(c).downsample[0], nn.Conv2d) and first_block(c).downsample[0].stride == (2, 2)
    pool, conv = first_block(d).downsample[0], first_block(d).downsample[1]
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 2 and pool.stride == 2
    assert conv.stride == (1, 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("depth", [18, 50])
def test_output_shapes(variant, depth):
    m = resnet(depth, variant, num_classes=7, base_channels=16).eval()
    x = torch.randn(2, 3, 64, 64)
    assert m(x).shape == (2, 7)
    feats = m.forward_features(x)
    assert feats.shape == (2, m.out_channels, 2, 2)


def test_zero_gamma_on_zeroes_exactly_the_last_bn_of_each_block():
    on = resnet(50, "B", num_classes=10, zero_gamma=True)
    off = resnet(50, "B", num_classes=10, zero_gamma=False)
    for block in on.blocks():
        assert torch.all(block.bn3.weight == 0)
        assert torch.all(block.bn1.weight == 1) and torch.all(block.bn2.weight == 1)
    assert all(torch.all(b.bn3.weight == 1) for b in off.blocks())
    zeroed = sum(int(torch.all(m.weight == 0)) for m in on.modules() if isinstance(m, nn.BatchNorm2d))
    assert zeroed == 16 == zero_last_bn_gamma(resnet(50, "B", num_classes=10))


def test_zero_gamma_block_starts_as_identity_of_its_input_plus_shortcut():
    m = resnet(18, "B", num_classes=10, zero_gamma=True).eval()
    block = m.layer1[0]  # no downsample: the block is relu(x) for x >= 0
    x = torch.rand(1, 64, 8, 8)
    assert torch.allclose(block(x), x)


def test_init_kaiming_and_xavier_differ_and_bn_starts_at_one():
    torch.manual_seed(0)
    k = resnet(18, "B", num_classes=10, init="kaiming")
    torch.manual_seed(0)
    x = resnet(18, "B", num_classes=10, init="xavier")
    assert not torch.allclose(k.conv1.weight, x.conv1.weight)
    assert torch.all(k.bn1.weight == 1) and torch.all(k.bn1.bias == 0) and torch.all(k.fc.bias == 0)


def test_backbone_state_dict_excludes_the_classifier():
    sd = resnet(18, "D", num_classes=10).backbone_state_dict()
    assert not any(k.startswith("fc.") for k in sd)
    assert "stem.0.weight" in sd and "layer2.0.downsample.1.weight" in sd and "layer1.0.downsample.1.weight" not in sd


def test_unknown_variant_and_depth_are_refused():
    with pytest.raises(ValueError, match="variant"):
        resnet(50, "E", num_classes=10)
    with pytest.raises(ValueError, match="depth"):
        resnet(42, "B", num_classes=10)


def test_flops_match_the_paper_table_5():
    """Multiply-adds at 224x224, as the paper counts them: 3.8G, 4.1G, 4.3G, 4.3G
    (ours: 3.86G, 4.09G, 4.33G, 4.33G; pooling is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    paper = {"A": 3.8, "B": 4.1, "C": 4.3, "D": 4.3}
    for variant, gmacs in paper.items():
        m = resnet(50, variant, num_classes=1000).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            m(torch.randn(1, 3, 224, 224))
        assert abs(counter.get_total_flops() / 2e9 - gmacs) < 0.06, variant
