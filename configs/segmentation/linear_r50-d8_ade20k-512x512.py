# The ade-linear protocol on ADE20K (downstream/segment.py --protocol ade-linear): DINOv2's linear
# evaluation (Oquab et al. 2023, §7.4 "linear"; its published dinov2_vit*14_ade20k_linear_config.py
# and dinov2/eval/segmentation/models/decode_heads/linear_head.py) on the frozen dilated ResNet of
# the FCN reference (fcn_r50-d8_4xb4-80k_ade20k-512x512.py): BatchNorm + 1x1 conv on the last stage
# at output stride 8. The data, its 512x512 crops and augmentation, the 150 classes, the loss and
# the metric (IoUMetric) are the FCN's, which are also DINOv2's train pipeline.
_base_ = "./fcn_r50-d8_4xb4-80k_ade20k-512x512.py"
custom_imports = dict(imports=["downstream.linear_head"], allow_failed_imports=False)

model = dict(
    # the whole backbone frozen: stem and four stages, BatchNorm statistics and affine parameters
    # (the runner sets these again for --protocol ade-linear; they are here so the file says it)
    backbone=dict(frozen_stages=4, norm_eval=True),
    # DINOv2's BNHead: channels = in_channels (segment.py sets both from the backbone's width),
    # no dropout; num_classes, norm and loss as the FCN's decode head
    decode_head=dict(_delete_=True, type="TrickBenchBNHead", in_channels=2048, channels=2048, in_index=3,
                     dropout_ratio=0.0, num_classes=150, norm_cfg=dict(type="SyncBN", requires_grad=True),
                     align_corners=False,
                     loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None,
    # DINOv2 evaluates with 512x512 windows at stride 341 (the FCN reference: the whole image)
    test_cfg=dict(mode="slide", crop_size=(512, 512), stride=(341, 341)),
)

# DINOv2's linear schedule: AdamW lr 1e-3 (betas 0.9, 0.999), weight decay 1e-4, 40k iterations of
# 16 images (DINOv2: 8 GPUs x 2; here the FCN's 4 x 4), linear warmup over 1,500 iterations from
# 1e-6 x lr, then poly decay (power 1) to 0. The FCN's: SGD lr 0.01, momentum 0.9, weight decay
# 5e-4, 80k iterations, poly (power 0.9) to 1e-4. lr is for 16 images (auto_scale_lr, the base's).
iters = 40000
warmup = 1500
optim_wrapper = dict(_delete_=True, type="OptimWrapper",
                     optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup),
    dict(type="PolyLR", eta_min=0.0, power=1.0, by_epoch=False, begin=warmup, end=iters),
]
# evaluated once, at the end (DINOv2 every 10k); a checkpoint every 4k for --resume
train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
