# The reference Faster R-CNN, sized for a CPU and the generated VOC set
# (python -m trickbench.datasets shapes): small images, a 6-epoch schedule, a narrower FPN
# and box head. The data layout, datasets, metric and the rest of the model are
# the reference's.
_base_ = "./faster-rcnn_r50_fpn_1x_voc0712.py"

data_root = "data/synthetic/VOCdevkit/"
img_scale = (224, 160)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
]
_voc = dict(type="VOCDataset", data_root=data_root, pipeline=train_pipeline,
            filter_cfg=dict(filter_empty_gt=True, min_size=16, bbox_min_size=8))
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(datasets=[
        dict(_voc, ann_file="VOC2007/ImageSets/Main/trainval.txt", data_prefix=dict(sub_data_root="VOC2007/")),
        dict(_voc, ann_file="VOC2012/ImageSets/Main/trainval.txt", data_prefix=dict(sub_data_root="VOC2012/")),
    ])))
val_dataloader = dict(batch_size=4, num_workers=2, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64),
                  bbox_head=dict(in_channels=64, fc_out_channels=256)),
    # fewer proposals and sampled RoIs: a few objects per small image
    train_cfg=dict(rpn_proposal=dict(nms_pre=600, max_per_img=300), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)),
)

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[5], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(enable=False)  # lr 0.01 is set for this batch of 4 directly
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))
