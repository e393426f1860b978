# A small baseline for the generated ImageNet-layout set (python -m trickbench.datasets shapes):
# ResNet-18-B at a quarter width on 64-pixel images; about half a minute on a laptop CPU.
# The lr is the paper's 0.1 per 256 images at this batch of 32 (§2.1).
_base_ = "../resnet50_baseline.py"
model = dict(depth=18, variant="B", base_channels=16, num_classes=10)
data = dict(root="data/synthetic/imagenet", image_size=56, val_resize=64, batch_size=32, workers=2)
optim = dict(lr=0.0125, base_batch_size=256)
schedule = dict(epochs=15, milestones=[10, 13])
run = dict(log_interval=10)
