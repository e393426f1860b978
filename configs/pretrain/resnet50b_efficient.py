# Table 5, ResNet-50-B: stride 2 on the 3x3 conv of the downsampling block (§4.1).
_base_ = "./resnet50_bs1024+fp16.py"
model = dict(variant="B")
