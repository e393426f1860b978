# The paper's detector (He et al. 2019, §6.1, Table 8), as far as mmdet can build it:
# GluonCV's faster_rcnn_resnet50_v1b_voc and its train_faster_rcnn.py recipe (the one
# of GluonCV's published 4-GPU ResNet-50 log: 77.66 mAP), on mmdet's C4 Faster R-CNN and VOC07+12.
# The backbone stops after layer3 (stride 16); layer4 runs on every 14x14 RoIAlign crop
# in the RoI head (downstream/shared_head.py), then global average pooling and the class-
# specific box head. downstream/detect.py fills in the backbone, the shared head and the
# widths from the pretrain run. What still differs from GluonCV: README, "The paper's set-up".
_base_ = [
    "mmdet::_base_/models/faster-rcnn_r50-caffe-c4.py",
    "mmdet::_base_/datasets/voc0712.py",
    "mmdet::_base_/default_runtime.py",
]
custom_imports = dict(imports=["downstream.shared_head"], allow_failed_imports=False)

# GluonCV: only the convs of layer2-4 and the heads train (train_patterns); BN is frozen
# (use_global_stats) everywhere.
frozen_bn = dict(type="BN", requires_grad=False)
model = dict(
    # GluonCV normalises RGB with the ImageNet mean and std, as the pretraining does.
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(style="pytorch", frozen_stages=1, norm_cfg=frozen_bn, norm_eval=True,
                  zero_init_residual=False, init_cfg=None),
    # anchors 16 x (2, 4, 8, 16, 32), ratios (0.5, 1, 2) at stride 16, as the base; rpn_channel 1024;
    # GluonCV's RPN box loss is a Huber loss with rho 1/9 (smooth L1, beta 1/9).
    rpn_head=dict(loss_bbox=dict(_delete_=True, type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        shared_head=dict(type="TrickBenchResLayer", style="pytorch", norm_cfg=frozen_bn, norm_eval=True,
                         init_cfg=None),
        bbox_head=dict(num_classes=20,
                       loss_bbox=dict(_delete_=True, type="SmoothL1Loss", beta=1.0, loss_weight=1.0))),
    train_cfg=dict(
        # rpn_train_pre_nms 12000, rpn_train_post_nms 2000, rpn_min_size 16
        rpn_proposal=dict(nms_pre=12000, max_per_img=2000, min_bbox_size=16),
        # num_sample 128 RoIs per image, pos_ratio 0.25, pos_iou_thresh 0.5
        rcnn=dict(sampler=dict(num=128, pos_fraction=0.25))),
    test_cfg=dict(
        # rpn_test_pre_nms 6000, rpn_test_post_nms 300; final nms_thresh 0.3, post_nms 100
        rpn=dict(nms_pre=6000, max_per_img=300, min_bbox_size=16),
        rcnn=dict(nms=dict(type="nms", iou_threshold=0.3), max_per_img=100)),
)

# VOC07+12 trainval once per epoch (no RepeatDataset), one image per GPU on 4 GPUs
# (train_faster_rcnn.py --gpus 0,1,2,3: batch 4), shorter side 600, longer at most 1000.
train_dataloader = dict(batch_size=1, dataset=dict(times=1))
val_evaluator = [
    dict(type="VOCMetric", metric="mAP", eval_mode="11points"),  # VOC07MApMetric, the paper's
    dict(type="VOCMetric", metric="mAP", eval_mode="area", prefix="pascal_voc_area"),
]
test_evaluator = val_evaluator

# SGD lr 0.001 for 4 images, momentum 0.9, weight decay 5e-4, gradients clipped
# element-wise at 5 (MXNet's clip_gradient); 20 epochs, lr x0.1 after epoch 14, no warmup.
max_epochs = 20
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
param_scheduler = [dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[14], gamma=0.1)]
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.001, momentum=0.9, weight_decay=5e-4),
                     clip_grad=dict(type="value", clip_value=5.0))
auto_scale_lr = dict(enable=True, base_batch_size=4)
# A checkpoint every epoch, as GluonCV saves them, for --resume; the last three are kept.
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3))
