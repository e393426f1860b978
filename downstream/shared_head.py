"""The C4 Faster R-CNN's shared RoI head for every ResNet variant and width.

In the C4 detector (Ren et al. 2015 with ResNet, He et al. 2016, §A; GluonCV's
``faster_rcnn_resnet50_v1b_voc``, the detector of the paper's §6.1) the backbone
stops after ``layer3`` and ``layer4`` runs on each 14x14 RoIAlign crop. mmdet's own
``ResLayer`` head builds that stage with 64 base channels and without ResNet-D's
average-pool shortcut (``avg_down``), so a ResNet-D or a narrow demo backbone
would not fit it; this head is the same module with those two arguments. Its
forward pass and its frozen-BN ``train()`` are mmdet's.

``frozen=True`` (the ``frozen`` transfer protocol, :mod:`trickbench.protocols`) freezes the
stage as ``frozen_stages`` freezes the backbone's: no parameter takes a gradient and the
whole stage stays in eval mode in ``train()``, so its BatchNorm statistics do not move.
"""
from __future__ import annotations

from mmdet.models.backbones import ResNet
from mmdet.models.layers import ResLayer as _ResLayer
from mmdet.models.roi_heads.shared_heads import ResLayer as MMDetResLayerHead
from mmdet.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module(name="TrickBenchResLayer")
class ResLayerHead(MMDetResLayerHead):
    def __init__(self, depth: int, stage: int = 3, stride: int = 2, dilation: int = 1, style: str = "pytorch",
                 avg_down: bool = False, base_channels: int = 64, norm_cfg: dict | None = None,
                 norm_eval: bool = True, with_cp: bool = False, frozen: bool = False, init_cfg=None):
        if init_cfg is None:  # mmdet's default for a head without pretrained weights
            init_cfg = [dict(type="Kaiming", layer="Conv2d"),
                        dict(type="Constant", val=1, layer=["_BatchNorm", "GroupNorm"])]
        BaseModule.__init__(self, init_cfg)  # mmdet's __init__ would build a 64-channel stage
        self.norm_cfg = norm_cfg or dict(type="BN", requires_grad=True)
        self.norm_eval, self.stage, self.fp16_enabled, self.frozen = norm_eval, stage, False, frozen
        block, stage_blocks = ResNet.arch_settings[depth]
        layer = _ResLayer(block, inplanes=base_channels * 2 ** (stage - 1) * block.expansion,
                          planes=base_channels * 2 ** stage, num_blocks=stage_blocks[stage], stride=stride,
                          dilation=dilation, style=style, avg_down=avg_down, with_cp=with_cp,
                          norm_cfg=self.norm_cfg)
        self.add_module(f"layer{stage + 1}", layer)
        if frozen:
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            getattr(self, f"layer{self.stage + 1}").eval()
        return self
