# Table 6, "+ label smoothing": eps = 0.1 (§5.2).
_base_ = "./resnet50d_efficient+cosine.py"
loss = dict(label_smoothing=0.1)
