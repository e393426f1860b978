# Table 5: the model tweaks (§4, Figure 2), each on its own on ResNet-50 with
# efficient training: ResNet-50 (A), -B, -C, -D. ImageNet only.
_base_ = "./_paper_base.py"
name = "paper-table5"
designs = [dict(type="one_at_a_time", name="r50-efficient", base="configs/pretrain/resnet50_bs1024+fp16.py",
                tricks=["resnet_b", "resnet_c", "resnet_d"])]
reference = "r50-efficient"
