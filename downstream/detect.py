#!/usr/bin/env python
"""Fine-tune a pretrained backbone in mmdet's Faster R-CNN (FPN, or the paper's C4) on Pascal VOC.

    python downstream/detect.py --backbone runs/r50d [--config configs/detection/...] [--work-dir DIR]
    torchrun --nproc_per_node 8 downstream/detect.py --backbone runs/r50d
    python downstream/detect.py --backbone runs/r50d --protocol frozen   # neck and heads on the frozen backbone

Evaluates with mmdet's VOCMetric on VOC2007 test; ``result.json`` holds ``map``
(11-point, the VOC07 protocol, percent) and ``map_area`` when the config asks for it.
"""
from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    gc.disable()   # until the imports are done: trickbench.runtime.imports_done

from mmdet.datasets import VOCDataset

from downstream import runner
from downstream import shared_head as _shared_head  # noqa: F401  (registers TrickBenchResLayer)
from downstream.backbone import LAST_STAGE, backbone_fields, shared_head_fields, stage_channels
from downstream.datacheck import check_voc, distinct_datasets
from trickbench.runtime import imports_done

DEFAULT_CONFIG = str(runner.REPO / "configs/detection/faster-rcnn_r50_fpn_1x_voc0712.py")
VOC_CLASSES = VOCDataset.METAINFO["classes"]  # what mmdet reads, in its order


def apply_backbone(cfg, bb: runner.Backbone) -> None:
    """The pretrained architecture and weights; the neck or heads follow the backbone's widths.

    FPN (the reference): the whole backbone feeds the neck. C4 (the paper's set-up): the
    backbone ends at layer3 and layer4 is the RoI head's shared head; the two load
    disjoint parts of ``backbone.pth`` that together cover every tensor."""
    channels = stage_channels(bb.arch)
    roi_head = cfg.model.roi_head
    c4 = bool(roi_head.get("shared_head"))
    cfg.model.backbone.update(backbone_fields(bb.arch, bb.checkpoint, bb.sha256, skip=(LAST_STAGE,) if c4 else ()))
    if c4:
        roi_head.shared_head.update(shared_head_fields(bb.arch, bb.checkpoint, bb.sha256))
        cfg.model.rpn_head.in_channels = roi_head.bbox_roi_extractor.out_channels = channels[2]
        roi_head.bbox_head.in_channels = channels[3]
    else:
        cfg.model.neck.in_channels = channels


def check_data(cfg) -> None:
    """Each dataset against its own classes: VOC's, or those its ``metainfo`` sets."""
    for ds in distinct_datasets(cfg):
        check_voc(ds, tuple((ds.get("metainfo") or {}).get("classes") or VOC_CLASSES))


def read_metrics(metrics: dict) -> dict:
    """VOCMetric reports mAP in [0, 1]; the suite reports percent."""
    out = {"map": 100.0 * metrics["pascal_voc/mAP"]}
    if "pascal_voc_area/mAP" in metrics:
        out["map_area"] = 100.0 * metrics["pascal_voc_area/mAP"]
    return out


def main(argv=None) -> int:
    return runner.main("detection", DEFAULT_CONFIG, apply_backbone, check_data, read_metrics, argv)


if __name__ == "__main__":
    imports_done()
    sys.exit(main())
