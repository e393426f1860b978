# The README's demo (make demo): a small backbone comparison study on real images that
# runs on a laptop CPU. Fashion-MNIST's train split is the "ImageNet"; its test split,
# composed into canvases, the "VOC" and "ADE20K" (python -m trickbench.datasets fashion). Four
# recipes of the paper's Table 6 path at ResNet-18 scale, two seeds each, each
# fine-tuned in Faster R-CNN and FCN, then the report.
name = "demo"
seeds = [0, 1]
data = dict(imagenet="data/fashion/imagenet", voc="data/fashion/VOCdevkit", ade20k="data/fashion/ADEChallengeData2016")
recipes = [
    dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),
    dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py"),
    dict(name="r18d-efficient+cosine+ls", config="configs/pretrain/fashion/resnet18d_efficient+cosine+label-smoothing.py"),
    dict(name="r18d-efficient+cosine+ls+mixup",
         config="configs/pretrain/fashion/resnet18d_efficient+cosine+label-smoothing+mixup.py"),
]
downstream = dict(detection=["configs/detection/faster-rcnn_fpn_fashion.py"],
                  segmentation=["configs/segmentation/fcn-d8_fashion.py"])
reference = "r18-baseline"
