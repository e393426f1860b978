"""TrickBench: Bag of Tricks (He et al., CVPR 2019) from ImageNet to VOC detection and ADE20K segmentation."""
__version__ = "0.1.0"
