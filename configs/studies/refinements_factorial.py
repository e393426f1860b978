# A factorial study of the four refinements (§5) on ResNet-50-D with efficient
# training: all 16 combinations of cosine, label smoothing, mixup and distillation,
# so that the report can estimate each trick's main effect on top-1, mAP and mIoU
# over every context (the paper only stacks them in one order). Mixup trains 200
# epochs, as in the paper (§5.4); the teacher is ResNet-152-D (cosine + label
# smoothing), trained once.
_base_ = "./_paper_base.py"
name = "refinements-factorial"
recipes = [dict(name="r152d-teacher", config="configs/pretrain/resnet152d_teacher.py", seeds=[0], downstream=False)]
designs = [dict(type="factorial", name="r50d", base="configs/pretrain/resnet50d_efficient.py",
                tricks=["cosine", "label_smoothing", "mixup", "distill"], teacher="r152d-teacher")]
trick_options = dict(mixup={"loss.mixup_alpha": 0.2, "schedule.epochs": 200})
downstream = dict(detection=["configs/detection/faster-rcnn_r50-c4_4xb1-20e_voc0712_paper.py"],
                  segmentation=["configs/segmentation/fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py"])
reference = "r50d"
