# Table 5, ResNet-50-D: C with a 2x2 avg pool before the shortcut's 1x1 conv (§4.1).
# Also the first row of Table 6 ("Efficient", 77.16 top-1).
_base_ = "./resnet50_bs1024+fp16.py"
model = dict(variant="D")
