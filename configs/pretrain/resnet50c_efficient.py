# Table 5, ResNet-50-C: B with the deep stem of three 3x3 convs, 32-32-64 (§4.1).
_base_ = "./resnet50_bs1024+fp16.py"
model = dict(variant="C")
