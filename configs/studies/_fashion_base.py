# What every Fashion-MNIST study shares (the demo's and those of the README's measurements): the
# datasets (python -m trickbench.datasets fashion --out data/fashion) and the downstream configs.
# Each study sets its own recipes, seeds and protocols.
data = dict(imagenet="data/fashion/imagenet", voc="data/fashion/VOCdevkit", ade20k="data/fashion/ADEChallengeData2016")
downstream = dict(detection=["configs/detection/faster-rcnn_fpn_fashion.py"],
                  segmentation=["configs/segmentation/fcn-d8_fashion.py"])
reference = "r18-baseline"
