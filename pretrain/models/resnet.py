"""The ResNet family of He et al. 2016 with the tweaks of He et al. 2019, §4 (Figure 2).

One model, explicit arguments, nothing switched on by a default:

* ``style``: ``'caffe'`` puts the stride of a downsampling bottleneck on its first
  1x1 conv (ResNet-A, the original); ``'pytorch'`` puts it on the 3x3 conv
  (ResNet-B, torchvision's "v1.5").
* ``deep_stem``: the 7x7 input conv becomes three 3x3 convs of
  ``stem_channels // 2, stem_channels // 2, stem_channels`` channels (ResNet-C; 32-32-64).
* ``avg_down``: the shortcut of a downsampling block becomes a 2x2 average pool
  followed by a stride-1 1x1 conv (ResNet-D, together with B and C).
* ``zero_gamma``: gamma of the last BN of every residual block starts at 0 (§3.1).

The module and parameter names are those of mmdet's and mmseg's ``ResNet`` with
the same ``style``, ``deep_stem``, ``avg_down``, ``base_channels`` and
``stem_channels``, so :meth:`ResNet.backbone_state_dict` loads there with no
remapping: ``conv1``/``bn1`` or ``stem.{0,1,3,4,6,7}``; ``layerN.i.{conv,bn}{1,2,3}``;
``downsample.{0,1}``, or ``downsample.{1,2}`` with ``avg_down`` (the pool is
index 0 in every stage, an identity pool in ``layer1``, as in mmdet).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Style = Literal["caffe", "pytorch"]

# depth -> (block, blocks per stage)
ARCH: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# The paper's variants as the three switches (He et al. 2019, §4).
VARIANTS: dict[str, dict] = {
    "A": dict(style="caffe", deep_stem=False, avg_down=False),
    "B": dict(style="pytorch", deep_stem=False, avg_down=False),
    "C": dict(style="pytorch", deep_stem=True, avg_down=False),
    "D": dict(style="pytorch", deep_stem=True, avg_down=True),
}


def variant_flags(variant: str) -> dict:
    """``'A'``..``'D'`` -> ``dict(style=..., deep_stem=..., avg_down=...)``."""
    try:
        return dict(VARIANTS[variant.upper()])
    except KeyError:
        raise ValueError(f"unknown ResNet variant {variant!r}; choose one of {sorted(VARIANTS)}") from None


def variant_name(style: str, deep_stem: bool, avg_down: bool) -> str:
    for name, flags in VARIANTS.items():
        if flags == dict(style=style, deep_stem=deep_stem, avg_down=avg_down):
            return name
    raise ValueError(f"no paper variant has style={style!r}, deep_stem={deep_stem}, avg_down={avg_down}")


def _conv_bn(cin: int, cout: int, k: int, stride: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, style: Style):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 3, stride)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, style: Style):
        super().__init__()
        # ResNet-A ('caffe') strides the first 1x1 conv, ResNet-B ('pytorch') the 3x3 conv.
        s1, s2 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 1, s1)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, s2)
        self.conv3, self.bn3 = _conv_bn(planes, planes * self.expansion, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(inplanes: int, outplanes: int, stride: int, avg_down: bool) -> nn.Sequential:
    """Path B of Figure 2: a strided 1x1 conv, or (ResNet-D) a 2x2 avg pool then a 1x1 conv."""
    if avg_down:
        pool = nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False)
        return nn.Sequential(pool, *_conv_bn(inplanes, outplanes, 1, 1))
    return nn.Sequential(*_conv_bn(inplanes, outplanes, 1, stride))


class ResNet(nn.Module):
    """A ResNet classifier whose backbone matches mmdet/mmseg ``ResNet`` key for key."""

    def __init__(
        self,
        depth: int,
        *,
        style: Style,
        deep_stem: bool,
        avg_down: bool,
        num_classes: int,
        base_channels: int = 64,
        zero_gamma: bool = False,
        init: Literal["kaiming", "xavier"] = "kaiming",
    ):
        super().__init__()
        if depth not in ARCH:
            raise ValueError(f"depth {depth} is not one of {sorted(ARCH)}")
        if style not in ("caffe", "pytorch"):
            raise ValueError(f"style must be 'caffe' (ResNet-A) or 'pytorch' (ResNet-B), not {style!r}")
        self.depth, self.style, self.deep_stem, self.avg_down = depth, style, deep_stem, avg_down
        self.base_channels = base_channels
        kind, layers = ARCH[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        stem = base_channels
        if deep_stem:  # ResNet-C: three 3x3 convs, the first with stride 2 (Figure 2c)
            half = stem // 2
            self.stem = nn.Sequential(
                *_conv_bn(3, half, 3, 2), nn.ReLU(inplace=True),
                *_conv_bn(half, half, 3, 1), nn.ReLU(inplace=True),
                *_conv_bn(half, stem, 3, 1), nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = nn.Conv2d(3, stem, 7, 2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        inplanes = stem
        for i, n in enumerate(layers):
            planes, stride = base_channels * 2**i, 1 if i == 0 else 2
            out = planes * block.expansion
            # mmdet adds a shortcut when the shape changes; with avg_down its pool is
            # kept even at stride 1 (layer1), so the key numbering is the same in every stage.
            downsample = _shortcut(inplanes, out, stride, avg_down) if stride != 1 or inplanes != out else None
            blocks = [block(inplanes, planes, stride, downsample, style)]
            blocks += [block(out, planes, 1, None, style) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = out
        self.out_channels = inplanes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        self.reset_parameters(init=init, zero_gamma=zero_gamma)

    # -- initialisation -------------------------------------------------------------
    def reset_parameters(self, *, init: str, zero_gamma: bool) -> None:
        """Kaiming (MSRA, GluonCV's script) or Xavier (the paper's text, §2.1) for conv and FC,
        biases 0, BN gamma 1 and beta 0; then zero-gamma (§3.1) if asked for."""
        if init not in ("kaiming", "xavier"):
            raise ValueError(f"init must be 'kaiming' or 'xavier', not {init!r}")
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init == "kaiming":
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_gamma:
            from ..tricks.zero_gamma import zero_last_bn_gamma

            zero_last_bn_gamma(self)

    def blocks(self):
        for i in range(1, 5):
            yield from getattr(self, f"layer{i}")

    # -- forward ----------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x) if self.deep_stem else self.relu(self.bn1(self.conv1(x)))
        x = self.maxpool(x)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))

    # -- the transfer contract ----------------------------------------------------------
    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor but the classifier, under mmdet/mmseg ``ResNet`` names."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if not k.startswith("fc.")}

    def arch(self) -> dict:
        """What a downstream library needs to build the same backbone."""
        return dict(depth=self.depth, style=self.style, deep_stem=self.deep_stem, avg_down=self.avg_down,
                    base_channels=self.base_channels, variant=variant_name(self.style, self.deep_stem, self.avg_down))


def resnet(depth: int, variant: str, *, num_classes: int, **kwargs) -> ResNet:
    """Named variant as a thin alias: ``resnet(50, 'D', num_classes=1000)`` is ResNet-50-D."""
    return ResNet(depth, **variant_flags(variant), num_classes=num_classes, **kwargs)
