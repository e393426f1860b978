# The paper's segmenter (He et al. 2019, §6.2, Table 9), as far as mmseg can build it:
# GluonCV's FCN recipe for ADE20K (scripts/segmentation/train.py --dataset ade20k --model fcn
# --aux --lr 0.01 --syncbn --ngpus 4, the run behind fcn_resnet50_ade), on top of mmseg's
# reference FCN. Dilated ResNet (output stride 8), SyncBN, 480x480 crops, batch 16 on
# 4 GPUs, 50 epochs of ADE20K's 20,210 training images. downstream/segment.py fills in
# the backbone and the heads' input widths. What still differs: README, "The paper's set-up".
_base_ = "./fcn_r50-d8_4xb4-80k_ade20k-512x512.py"
custom_imports = dict(imports=["downstream.transforms"], allow_failed_imports=False)

crop_size = (480, 480)
base_size = 520
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    # the longer side drawn from [0.5, 2.0] x 520, aspect kept
    dict(type="RandomResize", scale=(base_size, base_size), ratio_range=(0.5, 2.0), keep_ratio=True),
    # a random 480x480 crop; smaller images are padded (label padding is ignored)
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomGaussianBlur", prob=0.5, max_sigma=1.0),
    dict(type="PackSegInputs"),
]
# Single-scale evaluation as GluonCV's MultiEvalModel does it at scale 1.0, without its
# flipped pass: the longer side resized to 520, 480x480 windows with stride 320 (2/3 of
# the crop), scored against the full-resolution label maps.
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(base_size, base_size), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(size=crop_size),
    # GluonCV's _FCNHead: one 3x3 conv to in_channels / 4, BN, ReLU, dropout 0.1, 1x1 classifier
    decode_head=dict(num_convs=1, concat_input=False, channels=512),
    # the auxiliary FCN head on layer3, weight 0.5 (--aux, --aux-weight 0.5)
    auxiliary_head=dict(channels=256, loss_decode=dict(loss_weight=0.5)),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(320, 320)),
)

# SGD lr 0.01 for 16 images, momentum 0.9, weight decay 1e-4, the two heads at 10x the lr
# (GluonCV's FCN sets lr_mult 10 on head and auxlayer); poly decay (power 0.9) to 0 over
# 50 epochs x 1263 iterations (20,210 images in batches of 16, last batch rolled over).
iters = 50 * 1263
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=1e-4),
                     paramwise_cfg=dict(custom_keys={"decode_head": dict(lr_mult=10.0),
                                                     "auxiliary_head": dict(lr_mult=10.0)}))
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=iters, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
auto_scale_lr = dict(enable=True, base_batch_size=16)
