# The paper's FCN set-up (fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py), sized for a CPU and
# the generated ADE20K set like fcn-d8_ade20k_tiny.py: 128-pixel crops from images whose
# longer side is drawn around 144, sliding-window evaluation with 128-pixel windows,
# 300 iterations of 4 images, narrower heads. Heads, augmentation and schedule shape are
# the paper set-up's.
_base_ = "./fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py"

data_root = "data/synthetic/ADEChallengeData2016"
crop_size = (128, 128)
base_size = 144
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(base_size, base_size), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomGaussianBlur", prob=0.5, max_sigma=1.0),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(base_size, base_size), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=4, num_workers=2, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=2, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(data_preprocessor=dict(size=crop_size),
             decode_head=dict(channels=64), auxiliary_head=dict(channels=32),
             test_cfg=dict(mode="slide", crop_size=crop_size, stride=(96, 96)))

iters = 300
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=iters, by_epoch=False)]
optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(enable=False)  # lr 0.01 is set for this batch of 4 directly
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=iters))
