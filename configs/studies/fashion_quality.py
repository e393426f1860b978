# The quality bar of the Fashion-MNIST benchmark (README, "Data"): does pretraining matter
# downstream? The demo's baseline (ResNet-18-B) and its ResNet-D with the efficient tricks,
# each against the same network left at its random initialisation (one epoch at a vanishing
# lr: the weights stay as initialised, the BN statistics are those of the data), each
# fine-tuned in Faster R-CNN and FCN, three seeds.
#   python -m trickbench.study run configs/studies/fashion_quality.py --jobs 2
_base_ = "./_fashion_base.py"
name = "fashion-quality"
seeds = [0, 1, 2]
recipes = [
    dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),
    dict(name="r18-random-init", config="configs/pretrain/fashion/resnet18_baseline.py",
         options={"optim.lr": 1e-9, "schedule.epochs": 1, "schedule.milestones": [1]}),
    dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py"),
    dict(name="r18d-random-init", config="configs/pretrain/fashion/resnet18d_efficient.py",
         options={"optim.lr": 1e-9, "schedule.epochs": 1, "schedule.warmup_epochs": 0}),
]
reference = "r18-random-init"
