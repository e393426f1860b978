# Tables 8 and 9: the refinements of Table 6, and ResNet-50-B with standard training,
# transferred to Faster R-CNN on VOC (Table 8) and FCN on ADE20K (Table 9) in the
# paper's set-up (GluonCV's C4 Faster R-CNN, FCN at 480 px; see the configs).
_base_ = "./paper_table6_refinements.py"
name = "paper-table8-9"
recipes = [
    dict(name="r50b-standard", config="configs/pretrain/resnet50_baseline.py", options={"model.variant": "B"}),
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
downstream = dict(detection=["configs/detection/faster-rcnn_r50-c4_4xb1-20e_voc0712_paper.py"],
                  segmentation=["configs/segmentation/fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py"])
reference = "r50b-standard"
