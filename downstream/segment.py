#!/usr/bin/env python
"""Fine-tune a pretrained backbone in mmseg's FCN (dilated ResNet, output stride 8) on ADE20K.

    python downstream/segment.py --backbone runs/r50d [--config configs/segmentation/...] [--work-dir DIR]
    torchrun --nproc_per_node 4 downstream/segment.py --backbone runs/r50d
    python downstream/segment.py --backbone runs/r50d --protocol frozen       # FCN heads on the frozen backbone
    python downstream/segment.py --backbone runs/r50d --protocol ade-linear \
        --config configs/segmentation/linear_r50-d8_ade20k-512x512.py          # DINOv2's linear head

Evaluates with mmseg's IoUMetric on the validation split; ``result.json`` holds
``miou``, ``aacc`` and ``macc`` (percent).
"""
from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    gc.disable()   # until the imports are done: trickbench.runtime.imports_done

from downstream import linear_head as _linear_head  # noqa: F401  (registers TrickBenchBNHead)
from downstream import runner
from downstream import transforms as _transforms  # noqa: F401  (registers RandomGaussianBlur)
from downstream.backbone import backbone_fields, stage_channels
from downstream.datacheck import check_ade, distinct_datasets
from trickbench.runtime import imports_done

DEFAULT_CONFIG = str(runner.REPO / "configs/segmentation/fcn_r50-d8_4xb4-80k_ade20k-512x512.py")


def apply_backbone(cfg, bb: runner.Backbone) -> None:
    """The pretrained architecture and weights in the reference's dilated form (strides
    (1, 2, 1, 1), dilations (1, 1, 2, 4) stay as the config has them); the heads follow
    the backbone's widths (the linear head, which classifies its normalised input directly, has
    ``channels`` = ``in_channels``). ``model.pretrained`` (the reference's open-mmlab:// URL) goes."""
    cfg.model.pretrained = None
    cfg.model.backbone.update(backbone_fields(bb.arch, bb.checkpoint, bb.sha256))
    channels = stage_channels(bb.arch)
    cfg.model.decode_head.in_channels = channels[cfg.model.decode_head.get("in_index", 3)]
    if cfg.model.decode_head.type == runner.LINEAR_HEAD:
        cfg.model.decode_head.channels = cfg.model.decode_head.in_channels
    if cfg.model.get("auxiliary_head"):
        cfg.model.auxiliary_head.in_channels = channels[cfg.model.auxiliary_head.get("in_index", 2)]


def check_data(cfg) -> None:
    for ds in distinct_datasets(cfg):
        check_ade(ds, cfg.model.decode_head.num_classes)


def read_metrics(metrics: dict) -> dict:
    """IoUMetric already reports percent."""
    return {"miou": metrics["mIoU"], "aacc": metrics["aAcc"], "macc": metrics["mAcc"]}


def main(argv=None) -> int:
    return runner.main("segmentation", DEFAULT_CONFIG, apply_backbone, check_data, read_metrics, argv)


if __name__ == "__main__":
    imports_done()
    sys.exit(main())
