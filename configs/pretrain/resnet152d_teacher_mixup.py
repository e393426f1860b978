# The teacher for "distill w/ mixup" (§5.4: "the teacher model is also trained with mixup").
_base_ = "./resnet152d_teacher.py"
loss = dict(mixup_alpha=0.2)
schedule = dict(epochs=200)
