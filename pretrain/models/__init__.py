from .resnet import VARIANTS, ResNet, resnet, variant_flags

__all__ = ["VARIANTS", "ResNet", "resnet", "variant_flags"]
