# Table 6, "+ distill w/ mixup" (79.29 top-1): distillation from a teacher trained with
# mixup too, 200 epochs (§5.3-5.4).
_base_ = "./resnet50d_efficient+cosine+label-smoothing+mixup.py"
loss = dict(distill_teacher="runs/resnet152d_teacher_mixup", distill_temperature=20.0)
