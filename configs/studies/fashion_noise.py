# The noise of the Fashion-MNIST transfer tasks (README, "The laptop benchmark's noise"): the demo's
# two recipes x three pretraining seeds, every backbone fine-tuned with four fine-tune seeds in
# Faster R-CNN and FCN. The report separates the three sources of a downstream number's noise:
# the fine-tune seed (6 backbones x 3 = 18 degrees of freedom, chi-square interval), the pretraining
# seed (Graybill-Wang, 4 df) and the test images (a bootstrap over them, paired across backbones),
# and plans the seeds of the next study.
#   python -m trickbench.study run configs/studies/fashion_noise.py --work-dir runs/fashion-noise --jobs 2
# Run in the demo's work dir (--work-dir runs/demo), it reuses the demo's jobs (same fingerprints)
# and adds the rest.
_base_ = "./_fashion_base.py"
name = "fashion-noise"
seeds = [0, 1, 2]
recipes = [
    dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),
    dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py"),
]
downstream = dict(seeds=[0, 1, 2, 3])
reference = "r18-baseline"
