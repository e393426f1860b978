# The Fashion-MNIST baseline (data: python -m trickbench.datasets fashion --out data/fashion): ResNet-18-B
# at a quarter width (16) on 48-pixel photos (each train item on a textured background, see
# trickbench/datasets/fashion.py), 10 classes, 2,000 train images per class; the paper's Nesterov SGD,
# lr 0.1 per 256 images (§2.1), step decay, no tricks.
# Why 48 pixels: at 32 the last stage of a ResNet is 1x1, so its 3x3 kernels are trained on their
# centre tap only (the rest see zero padding), and the dilated FCN, which runs that stage densely,
# got background-only segmentation from it. At 48 the last stage is 2x2 and the items are 34-44
# pixels, the scale of the canvases' items; a pass costs about 1.3x one at 32.
# Departures from §2.1, for images this small and a schedule this short (3 epochs, the demo's
# budget on a 2-core CPU): augment="flip" (resize, flip; see pretrain/data.py::flip_transform)
# instead of RandomResizedCrop down to 8% of the area, colour jitter and PCA lighting (the photos'
# tint and background already vary); val resizes to 48 with no center crop; lr /10 after epoch 2
# of 3 instead of 30/60/90.
_base_ = "../resnet50_baseline.py"
model = dict(depth=18, variant="B", base_channels=16, num_classes=10)
data = dict(root="data/fashion/imagenet", image_size=48, val_resize=48, augment="flip", batch_size=128,
            workers=1)
optim = dict(lr=0.05, base_batch_size=256)
schedule = dict(epochs=3, milestones=[2])
run = dict(log_interval=20)
