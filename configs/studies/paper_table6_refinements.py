# Table 6: the training refinements (§5) on ResNet-50-D with efficient training:
# + cosine, + label smoothing, + distillation w/o mixup, + mixup w/o distillation,
# + distillation w/ mixup. The teachers are ResNet-152-D trained with cosine and label
# smoothing, with mixup for the mixup student (§5.3-5.4); each is trained once (seed 0)
# and serves every seed of its students. ImageNet only.
_base_ = "./_paper_base.py"
name = "paper-table6"
recipes = [
    dict(name="r152d-teacher", config="configs/pretrain/resnet152d_teacher.py", seeds=[0], downstream=False),
    dict(name="r152d-teacher-mixup", config="configs/pretrain/resnet152d_teacher_mixup.py", seeds=[0],
         downstream=False),
    dict(name="r50d-efficient", config="configs/pretrain/resnet50d_efficient.py"),
    dict(name="r50d+cosine", config="configs/pretrain/resnet50d_efficient+cosine.py"),
    dict(name="r50d+cosine+ls", config="configs/pretrain/resnet50d_efficient+cosine+label-smoothing.py"),
    dict(name="r50d+cosine+ls+distill", config="configs/pretrain/resnet50d_efficient+cosine+label-smoothing+distill.py",
         options={"loss.distill_teacher": "@r152d-teacher"}),
    dict(name="r50d+cosine+ls+mixup", config="configs/pretrain/resnet50d_efficient+cosine+label-smoothing+mixup.py"),
    dict(name="r50d+cosine+ls+distill+mixup",
         config="configs/pretrain/resnet50d_efficient+cosine+label-smoothing+distill+mixup.py",
         options={"loss.distill_teacher": "@r152d-teacher-mixup"}),
]
reference = "r50d-efficient"
