# Tables 3-4, "+ No bias decay": weight decay on conv and FC weights only (§3.1).
_base_ = "./resnet50_bs1024+zero-gamma.py"
optim = dict(no_bias_decay=True)
