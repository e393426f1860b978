# The reference FCN, sized for a CPU and the generated ADE20K set
# (python -m trickbench.datasets shapes): 128-pixel crops, 300 iterations of 4 images, narrower
# heads. The data layout, dataset, metric and the dilated backbone are the reference's.
_base_ = "./fcn_r50-d8_4xb4-80k_ade20k-512x512.py"

data_root = "data/synthetic/ADEChallengeData2016"
crop_size = (128, 128)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(256, 128), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=4, num_workers=2, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=2, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor,
             decode_head=dict(channels=64), auxiliary_head=dict(channels=32))

iters = 300
train_cfg = dict(max_iters=iters, val_interval=iters)
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=iters, by_epoch=False)]
optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(enable=False)  # lr 0.01 is set for this batch of 4 directly
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=iters))
