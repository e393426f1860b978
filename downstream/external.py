"""Backbones the suite did not train: torchvision, timm and mmpretrain ResNet checkpoints.

Each is turned into a state dict under mmdet/mmseg ``ResNet`` names, and its
architecture is read off the keys and shapes:

* torchvision ``resnet*`` and timm ``resnet*`` (plain stem): already mmdet's names, minus ``fc``.
* timm's deep stem (``resnet*c``, ``resnet*d``): ``conv1.{0,1,3,4,6}`` + ``bn1`` become
  ``stem.{0,1,3,4,6,7}``; its avg-down shortcuts already use ``downsample.{1,2}``.
* mmpretrain: the ``backbone.`` prefix goes (and the head with it); its ResNetV1d has no
  pool in ``layer1``'s shortcut, so ``layer1.0.downsample.{0,1}`` become ``.{1,2}``
  (loading without that remap silently drops those weights in mmengine's non-strict loader).
* ``module.`` (DistributedDataParallel) prefixes go; ``state_dict`` / ``model`` wrappers are opened.

Depth, deep stem, avg-down and width follow from the keys. The stride position
(variant A vs B) leaves no trace in the weights: B (torchvision's and timm's) is
assumed unless ``variant`` says otherwise.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from pretrain.checkpoint import CheckpointError
from pretrain.models.resnet import ARCH, VARIANTS, variant_name

from .backbone import extract_state_dict

TIMM_STEM = {"conv1.0": "stem.0", "conv1.1": "stem.1", "conv1.3": "stem.3", "conv1.4": "stem.4",
             "conv1.6": "stem.6", "bn1": "stem.7"}


def detect_format(keys: list[str]) -> str:
    if any(k.startswith("backbone.") for k in keys):
        return "mmpretrain"
    if any(k.startswith("conv1.0.") for k in keys):
        return "timm-deep-stem"
    if any(k.startswith("stem.") for k in keys) or any(k.startswith("conv1.") for k in keys):
        return "torchvision/timm/mmdet"
    raise CheckpointError("no ResNet keys found (expected conv1.* or stem.*)")


def to_openmmlab(state: dict[str, torch.Tensor], source: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Rename the keys to mmdet/mmseg ``ResNet``'s; returns (state dict, detected format)."""
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    try:
        fmt = detect_format(list(state))
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if fmt == "mmpretrain":
            if not key.startswith("backbone."):
                continue  # the classification head
            key = key[len("backbone."):]
        elif key.startswith("fc."):
            continue
        if fmt == "timm-deep-stem":
            module, _, param = key.rpartition(".")
            key = f"{TIMM_STEM[module]}.{param}" if module in TIMM_STEM else key
        out[key] = value
    if fmt == "mmpretrain" and _has_avg_down(out) and "layer1.0.downsample.0.weight" in out:
        # mmpretrain's ResNetV1d has no pool in layer1's shortcut: (conv, bn) at (0, 1) -> (1, 2)
        moved = {}
        for k in [k for k in out if k.startswith("layer1.0.downsample.")]:
            idx, rest = k[len("layer1.0.downsample."):].split(".", 1)
            moved[f"layer1.0.downsample.{int(idx) + 1}.{rest}"] = out.pop(k)
        out.update(moved)
    return out, fmt


def _has_avg_down(state: dict[str, torch.Tensor]) -> bool:
    """With avg_down, the shortcut conv of layer2 sits at index 1 (after the pool)."""
    return "layer2.0.downsample.1.weight" in state and state["layer2.0.downsample.1.weight"].dim() == 4


def infer_arch(state: dict[str, torch.Tensor], variant: str | None = None) -> dict:
    """Depth, stem, shortcut and width from OpenMMLab-named keys; ``variant`` fixes the
    stride position (A or B), which the weights cannot tell."""
    blocks = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise CheckpointError(f"no layer{i} in the checkpoint: not a 4-stage ResNet")
        blocks.append(max(idx) + 1)
    bottleneck = "layer1.0.conv3.weight" in state
    depth = next((d for d, (kind, n) in ARCH.items()
                  if tuple(blocks) == n and (kind == "bottleneck") == bottleneck), None)
    if depth is None:
        raise CheckpointError(f"blocks per stage {blocks} ({'bottleneck' if bottleneck else 'basic'}) match no "
                              f"ResNet depth of {sorted(ARCH)}")
    deep_stem = "stem.0.weight" in state
    avg_down = _has_avg_down(state)
    base = state["layer1.0.conv1.weight"].shape[0]
    inferred = variant_name("pytorch", deep_stem, avg_down) if deep_stem else None
    if variant is not None:
        flags = VARIANTS[variant.upper()]
        if (flags["deep_stem"], flags["avg_down"]) != (deep_stem, avg_down):
            raise CheckpointError(f"--variant {variant} does not fit the checkpoint, whose keys show "
                                  f"deep_stem={deep_stem}, avg_down={avg_down} (variant {inferred or 'A or B'})")
        style = flags["style"]
    else:
        style = "pytorch"
    return dict(depth=depth, style=style, deep_stem=deep_stem, avg_down=avg_down, base_channels=base,
                variant=variant_name(style, deep_stem, avg_down))


def load_external(path: str | Path, variant: str | None = None) -> tuple[dict[str, torch.Tensor], dict, str]:
    """(state dict under OpenMMLab names, arch, source format) of a foreign checkpoint,
    read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read {path} with weights_only=True: {e}. Only plain state dicts "
                              f"(or dicts holding one under 'state_dict' / 'model') are accepted") from e
    state, fmt = to_openmmlab(extract_state_dict(obj, path), path)
    return state, infer_arch(state, variant), fmt
