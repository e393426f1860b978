"""No bias decay (He et al. 2019, §3.1; Jia et al. 2018).

Weight decay applies to the weights of conv and linear layers only; biases and
the BN gamma and beta get none. Without the trick every parameter decays (the
baseline of §2).
"""
from __future__ import annotations

from torch import nn


def param_groups(model: nn.Module, weight_decay: float, no_bias_decay: bool) -> tuple[list[dict], dict[str, int]]:
    """Optimizer param groups and the tensor counts ``{'decay': n, 'no_decay': m}``."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_weight = isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight"
            (decay if is_weight or not no_bias_decay else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups, {"decay": len(decay), "no_decay": len(no_decay)}
