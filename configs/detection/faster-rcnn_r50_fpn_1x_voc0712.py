# Faster R-CNN + FPN on VOC07+12 trainval, tested on VOC07 test: mmdet's own reference
# config, unchanged but for what the experiment needs explicit. downstream/detect.py
# fills in the backbone (depth, variant, width) and its weights from the pretrain run,
# and the neck's input widths from the backbone.
_base_ = "mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py"

model = dict(
    backbone=dict(
        # mmdet's defaults, restated: they are part of the transfer protocol.
        frozen_stages=1,
        norm_eval=True,
        norm_cfg=dict(type="BN", requires_grad=True),
        # mmdet defaults zero_init_residual to True and init_cfg to torchvision's
        # ImageNet weights; detect.py replaces both (never downloaded, never implicit).
        zero_init_residual=False,
        init_cfg=None,
    )
)

# VOC07 mAP both ways: the 11-point protocol of VOC2007 (the paper's, Table 8) and
# the area under the curve (VOC2010+).
val_evaluator = [
    dict(type="VOCMetric", metric="mAP", eval_mode="11points"),
    dict(type="VOCMetric", metric="mAP", eval_mode="area", prefix="pascal_voc_area"),
]
test_evaluator = val_evaluator

# The reference lr 0.01 is for 16 images per iteration (8 GPUs x 2): scale it to the
# real batch on any number of GPUs.
auto_scale_lr = dict(enable=True, base_batch_size=16)
