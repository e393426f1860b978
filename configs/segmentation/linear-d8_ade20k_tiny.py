# The ade-linear protocol (downstream/segment.py --protocol ade-linear) on the generated ADE20K set:
# the tiny FCN config (fcn-d8_ade20k_tiny.py: its data, crops, 150 classes, loss and metric) with
# DINOv2's linear head on the frozen last stage, as linear_r50-d8_ade20k-512x512.py does it on ADE20K.
_base_ = "./fcn-d8_ade20k_tiny.py"
custom_imports = dict(imports=["downstream.linear_head"], allow_failed_imports=False)

model = dict(
    backbone=dict(frozen_stages=4, norm_eval=True),
    # DINOv2's BNHead (channels = in_channels, set by segment.py; no dropout), the FCN's classes and loss
    decode_head=dict(_delete_=True, type="TrickBenchBNHead", in_channels=2048, channels=2048, in_index=3,
                     dropout_ratio=0.0, num_classes=150, norm_cfg=dict(type="SyncBN", requires_grad=True),
                     align_corners=False,
                     loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None,
)

# DINOv2's linear schedule shape (AdamW, weight decay 1e-4, linear warmup, poly power 1 to 0) at
# half the FCN's length, as DINOv2's 40k is half the FCN reference's 80k: 150 iterations of 4 images
# (the tiny FCN: 300, SGD lr 0.01, poly 0.9), warmup 6 (1,500/40,000 of them). lr 3e-2, set directly:
# the value measured best on the Fashion-MNIST canvases (linear-d8_fashion.py), not tuned on these shapes.
iters = 150
warmup = 6
optim_wrapper = dict(_delete_=True, type="OptimWrapper",
                     optimizer=dict(type="AdamW", lr=3e-2, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup),
    dict(type="PolyLR", eta_min=0.0, power=1.0, by_epoch=False, begin=warmup, end=iters),
]
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(checkpoint=dict(interval=iters))
