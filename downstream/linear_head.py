"""The ``ade-linear`` protocol's head: DINOv2's linear segmentation head for mmseg.

Oquab et al. 2023 (DINOv2), §7.4, "linear": a linear layer on the frozen backbone's last
features predicts the class logits of each position, upsampled to the image. DINOv2's
``BNHead`` (facebookresearch/dinov2, ``dinov2/eval/segmentation/models/decode_heads/linear_head.py``)
is a BatchNorm over the input channels followed by mmseg's 1x1 ``conv_seg``, with
``channels == in_channels`` and, in its ADE20K linear configs, ``dropout_ratio=0``. This is
the same head for one input (``in_index``: the last stage of the dilated ResNet, at the FCN's
output stride 8), its BatchNorm built from the config's ``norm_cfg`` (DINOv2 hard-codes
``SyncBatchNorm``; the runner turns SyncBN into BN for one process). mmseg has no such head.
"""
from __future__ import annotations

from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


@MODELS.register_module(name="TrickBenchBNHead")
class BNHead(BaseDecodeHead):
    """BatchNorm, then the 1x1 ``conv_seg``; no convolution, activation or dropout between them."""

    def __init__(self, dropout_ratio: float = 0.0, **kwargs):
        super().__init__(dropout_ratio=dropout_ratio, **kwargs)
        if self.channels != self.in_channels:
            raise ValueError(f"TrickBenchBNHead: channels={self.channels} must equal in_channels="
                             f"{self.in_channels} (the classifier reads the normalised input directly)")
        self.bn = build_norm_layer(self.norm_cfg or dict(type="BN", requires_grad=True), self.in_channels)[1]

    def forward(self, inputs):
        return self.cls_seg(self.bn(self._transform_inputs(inputs)))
