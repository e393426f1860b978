# + cosine decay (§5.1) and label smoothing, eps = 0.1 (§5.2).
_base_ = "./resnet18d_efficient.py"
schedule = dict(decay="cosine")
loss = dict(label_smoothing=0.1)
