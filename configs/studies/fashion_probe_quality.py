# The quality bar of the probes (README, "Transfer protocols"): the three cheap probes (k-NN, VOC07
# SVMs, the linear segmentation head) of fashion_quality.py's backbones, each pretrained network
# against the same network left at its random initialisation, three seeds. A probe that cannot tell
# them apart by more than the seed spread measures nothing.
#   python -m trickbench.study run configs/studies/fashion_probe_quality.py --jobs 2
_base_ = "./fashion_quality.py"
name = "fashion-probe-quality"
# (The detection config stays for the SVM probe's class names; no protocol here trains a detector.)
downstream = dict(protocols=["linear"], ade_linear="configs/segmentation/linear-d8_fashion.py")
