# Table 3 (ResNet-50 rows): the baseline (batch 256, fp32) against efficient training
# (batch 1024, fp16, with linear scaling, warmup, zero gamma and no bias decay).
# ImageNet only. The paper's Inception-V3 and MobileNet rows are not in the suite.
_base_ = "./_paper_base.py"
name = "paper-table3"
recipes = [
    dict(name="r50-baseline", config="configs/pretrain/resnet50_baseline.py"),
    dict(name="r50-efficient", config="configs/pretrain/resnet50_bs1024+fp16.py"),
]
reference = "r50-baseline"
