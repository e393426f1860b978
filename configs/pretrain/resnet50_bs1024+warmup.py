# Tables 3-4, "+ LR warmup": linear from 0 to 0.4 over the first 5 epochs, per iteration (§3.1).
_base_ = "./resnet50_bs1024+linear-scaling.py"
schedule = dict(warmup_epochs=5)
