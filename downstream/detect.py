#!/usr/bin/env python
"""Fine-tune a pretrained backbone in mmdet's Faster R-CNN + FPN on Pascal VOC.

    python downstream/detect.py --backbone runs/r50d [--config configs/detection/...] [--work-dir DIR]
    torchrun --nproc_per_node 8 downstream/detect.py --backbone runs/r50d

Evaluates with mmdet's VOCMetric on VOC2007 test; ``result.json`` holds ``map``
(11-point, the VOC07 protocol, percent) and ``map_area`` when the config asks for it.
"""
from __future__ import annotations

import sys


from mmdet.datasets import VOCDataset

from downstream import runner
from downstream.backbone import backbone_fields, stage_channels
from downstream.datacheck import check_voc, run_datasets

DEFAULT_CONFIG = str(runner.REPO / "configs/detection/faster-rcnn_r50_fpn_1x_voc0712.py")
VOC_CLASSES = VOCDataset.METAINFO["classes"]  # what mmdet reads, in its order


def apply_backbone(cfg, bb: runner.Backbone) -> None:
    """The pretrained architecture and weights; the neck follows the backbone's widths."""
    cfg.model.backbone.update(backbone_fields(bb.arch, bb.checkpoint, bb.sha256))
    cfg.model.neck.in_channels = stage_channels(bb.arch)


def check_data(cfg) -> None:
    for ds in run_datasets(cfg):
        check_voc(ds, VOC_CLASSES)


def read_metrics(metrics: dict) -> dict:
    """VOCMetric reports mAP in [0, 1]; the suite reports percent."""
    out = {"map": 100.0 * metrics["pascal_voc/mAP"]}
    if "pascal_voc_area/mAP" in metrics:
        out["map_area"] = 100.0 * metrics["pascal_voc_area/mAP"]
    return out


def main(argv=None) -> int:
    return runner.main("detection", DEFAULT_CONFIG, apply_backbone, check_data, read_metrics, argv)


if __name__ == "__main__":
    sys.exit(main())
