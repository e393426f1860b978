# Tables 3-4, "+ FP16": fp16 compute, fp32 master weights, dynamic loss scaling (§3.2).
# This is the paper's "efficient" setting, the base of Tables 5 and 6 (75.3 -> 76.21 top-1).
_base_ = "./resnet50_bs1024+no-bias-decay.py"
run = dict(precision="fp16")
