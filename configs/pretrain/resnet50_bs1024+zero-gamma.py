# Tables 3-4, "+ Zero gamma": the last BN of every residual block starts at gamma = 0 (§3.1).
_base_ = "./resnet50_bs1024+warmup.py"
model = dict(zero_gamma=True)
