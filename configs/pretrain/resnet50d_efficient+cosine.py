# Table 6, "+ cosine decay": lr_t = 0.5 (1 + cos(t pi / T)) lr per iteration, warmup excluded (§5.1).
_base_ = "./resnet50d_efficient.py"
schedule = dict(decay="cosine")
