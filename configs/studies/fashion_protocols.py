# Every transfer protocol on the Fashion-MNIST sets (README, "Transfer protocols"): six recipes x two
# pretraining seeds, each backbone fine-tuned in Faster R-CNN and FCN (finetune), trained again with
# the backbone frozen (frozen), and probed: ImageNet k-NN (knn), VOC07 linear SVMs (voc07-svm) and a
# linear segmentation head (ade-linear). The report says how well each cheap protocol ranks the six
# recipes like full fine-tuning, with intervals, and what each costs.
#   python -m trickbench.study run configs/studies/fashion_protocols.py --jobs 2
# The demo's four recipes, plus ResNet-C and label smoothing on the baseline (Kornblith et al. 2019:
# label smoothing raises ImageNet accuracy and hurts fixed features).
_base_ = "./_fashion_base.py"
name = "fashion-protocols"
seeds = [0, 1]
recipes = [
    dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),
    dict(name="r18-baseline+ls", config="configs/pretrain/fashion/resnet18_baseline.py",
         options={"loss.label_smoothing": 0.1}),
    dict(name="r18c-baseline", config="configs/pretrain/fashion/resnet18_baseline.py",
         options={"model.variant": "C"}),
    dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py"),
    dict(name="r18d-efficient+cosine+ls", config="configs/pretrain/fashion/resnet18d_efficient+cosine+label-smoothing.py"),
    dict(name="r18d-efficient+cosine+ls+mixup",
         config="configs/pretrain/fashion/resnet18d_efficient+cosine+label-smoothing+mixup.py"),
]
downstream = dict(protocols=["finetune", "frozen", "linear"], ade_linear="configs/segmentation/linear-d8_fashion.py")
reference = "r18-baseline"
