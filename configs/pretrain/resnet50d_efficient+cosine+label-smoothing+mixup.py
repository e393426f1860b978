# Table 6, "+ mixup w/o distill": alpha = 0.2, trained 200 epochs instead of 120 (§5.4).
_base_ = "./resnet50d_efficient+cosine+label-smoothing.py"
loss = dict(mixup_alpha=0.2)
schedule = dict(epochs=200)
