# Transfer measured fairly on the Fashion-MNIST sets (README, "Fine-tune seeds, held-out selection and
# pooled noise"): three recipes of the demo, two pretraining seeds each, every backbone fine-tuned with
# three fine-tune seeds, and the detection learning rate chosen per recipe from three values on a
# held-out fifth of the training canvases (never on the test split), then refit on all of them.
#   python -m trickbench.study run configs/studies/fashion_seeds.py --work-dir runs/fashion-seeds --jobs 2
# The report has the two variance components (pretraining seed, fine-tune seed) with their intervals,
# the comparisons with the seed noise pooled over the recipes, the chosen lr per recipe and a seed plan.
_base_ = "./_fashion_base.py"
name = "fashion-seeds"
seeds = [0, 1]
recipes = [
    dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),
    dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py"),
    dict(name="r18d-efficient+cosine+ls", config="configs/pretrain/fashion/resnet18d_efficient+cosine+label-smoothing.py"),
]
downstream = dict(
    seeds=[0, 1, 2],
    sweep=dict(detection={"optim_wrapper.optimizer.lr": [0.01, 0.02, 0.04]}),
    heldout=0.2,
    choose="recipe",
)
reference = "r18-baseline"
