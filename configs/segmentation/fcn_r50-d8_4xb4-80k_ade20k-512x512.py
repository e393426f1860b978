# FCN (dilated ResNet, output stride 8) on ADE20K, 512x512 crops, 80k iterations of
# 16 images: mmseg's own reference config. downstream/segment.py fills in the backbone
# (depth, variant, width) and its weights from the pretrain run, and the heads' input
# widths; the reference's ResNetV1c and its open-mmlab:// weights are never used.
_base_ = "mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py"

# The reference's metric, restated: IoUMetric(iou_metrics=['mIoU']) reports aAcc, mIoU and mAcc.
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
test_evaluator = val_evaluator

# The reference lr 0.01 is for 16 images per iteration (4 GPUs x 4).
auto_scale_lr = dict(enable=True, base_batch_size=16)
