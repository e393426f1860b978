"""Zero gamma (He et al. 2019, §3.1; Goyal et al. 2017).

The BN layer that ends each residual block starts with gamma = 0, so every block
begins as the identity and the network behaves as a shallower one early in training.
"""
from torch import nn


def zero_last_bn_gamma(model: nn.Module) -> int:
    """Zero the gamma of ``block.last_bn`` in every residual block; returns how many."""
    n = 0
    for m in model.modules():
        bn = getattr(m, "last_bn", None)
        if isinstance(bn, nn.BatchNorm2d):
            nn.init.zeros_(bn.weight)
            n += 1
    return n
