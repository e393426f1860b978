# Table 6, "+ distill w/o mixup": teacher ResNet-152-D (resnet152d_teacher.py), T = 20 (§5.3).
# Point distill_teacher at the teacher's pretrain run: --cfg-options loss.distill_teacher=runs/r152d
_base_ = "./resnet50d_efficient+cosine+label-smoothing.py"
loss = dict(distill_teacher="runs/resnet152d_teacher", distill_temperature=20.0)
