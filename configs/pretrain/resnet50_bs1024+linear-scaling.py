# Tables 3-4, "Linear scaling": batch 1024 and lr 0.1 x 1024/256 = 0.4 (§3.1).
_base_ = "./resnet50_baseline.py"
data = dict(batch_size=1024)
optim = dict(linear_scaling=True)
