# Table 4: the efficient-training heuristics added one after the other to ResNet-50
# (He et al. 2019, §3): batch 1024 with linear scaling, warmup, zero gamma, no bias
# decay, fp16. ImageNet only. The paper's "BS=1024 without linear scaling" row is
# the recipe r50-bs1024 below.
_base_ = "./_paper_base.py"
name = "paper-table4"
designs = [dict(type="cumulative", name="r50", base="configs/pretrain/resnet50_baseline.py",
                tricks=["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"])]
recipes = [dict(name="r50-bs1024", config="configs/pretrain/resnet50_baseline.py", options={"data.batch_size": 1024})]
# The paper's linear scaling row is batch 1024 with lr 0.1 x 1024 / 256.
trick_options = dict(linear_scaling={"data.batch_size": 1024, "optim.linear_scaling": True})
reference = "r50"
