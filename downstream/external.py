"""Backbones the suite did not train: torchvision, timm and mmpretrain ResNet checkpoints.

Each is turned into a state dict under mmdet/mmseg ``ResNet`` names, and its
architecture is read off the keys and shapes:

* torchvision ``resnet*`` and timm ``resnet*`` (plain stem): already mmdet's names, minus ``fc``.
* timm's deep stem (``resnet*c``, ``resnet*d``): ``conv1.{0,1,3,4,6}`` + ``bn1`` become
  ``stem.{0,1,3,4,6,7}``; its avg-down shortcuts already use ``downsample.{1,2}``.
* mmpretrain (and whole mmdet / mmseg models): the ``backbone.`` prefix goes, and the
  heads with it. mmpretrain's deep stem is three ``ConvModule``\\ s,
  ``stem.{0,1,2}.{conv,bn}``, which become ``stem.{0,3,6}`` and ``stem.{1,4,7}``; its
  ResNetV1d has no pool in ``layer1``'s shortcut, so ``layer1.0.downsample.{0,1}``
  become ``.{1,2}`` (mmengine's non-strict loader silently drops them otherwise).
* ``module.`` (DistributedDataParallel) prefixes go; ``state_dict`` / ``model`` wrappers
  are opened; ``.safetensors`` files (timm's Hugging Face Hub weights) are read as such.
* BatchNorm counters (``num_batches_tracked``) absent from every BN, as in files saved
  before PyTorch 0.4.1, are filled with 0 as torch's own BatchNorm does; they play no
  part in the features.

Depth, deep stem, avg-down and width follow from the keys; the result is then
checked key for key and shape for shape against the backbone it will be loaded
into, so that a file that does not fit stops here, naming itself. The stride
position (variant A vs B) leaves no trace in the weights: B (torchvision's, timm's
and mmpretrain's) is assumed unless ``variant`` says otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pretrain.checkpoint import CheckpointError, state_mismatch
from pretrain.models.resnet import ARCH, VARIANTS, resnet, variant_name

from .backbone import extract_state_dict
from .safe_load import load_weights_only

TIMM_STEM = {"conv1.0": "stem.0", "conv1.1": "stem.1", "conv1.3": "stem.3", "conv1.4": "stem.4",
             "conv1.6": "stem.6", "bn1": "stem.7"}
MMPRETRAIN_STEM = {"stem.0.conv": "stem.0", "stem.0.bn": "stem.1", "stem.1.conv": "stem.3", "stem.1.bn": "stem.4",
                   "stem.2.conv": "stem.6", "stem.2.bn": "stem.7"}
COUNTER = "num_batches_tracked"


@dataclass
class ExternalCheckpoint:
    """A foreign checkpoint converted for mmdet / mmseg: the state dict under their
    ``ResNet``'s names, its architecture, the format it came in and what was done to it."""
    state: dict[str, torch.Tensor]
    arch: dict
    format: str
    notes: list[str] = field(default_factory=list)


def detect_format(keys: list[str]) -> str:
    if any(k.startswith("backbone.") for k in keys):
        return "mmpretrain/mmdet/mmseg"
    if any(k.startswith("conv1.0.") for k in keys):
        return "timm-deep-stem"
    if any(k.startswith("stem.") for k in keys) or any(k.startswith("conv1.") for k in keys):
        return "torchvision/timm/mmdet"
    raise CheckpointError("no ResNet keys found (expected conv1.*, stem.* or backbone.*)")


def _rename_modules(state: dict[str, torch.Tensor], table: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        out[f"{table[module]}.{param}" if module in table else key] = value
    return out


def to_openmmlab(state: dict[str, torch.Tensor], source: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Rename the keys to mmdet/mmseg ``ResNet``'s; returns (state dict, detected format)."""
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    try:
        fmt = detect_format(list(state))
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    if fmt.startswith("mmpretrain"):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        state = _rename_modules(state, MMPRETRAIN_STEM)
        if _has_avg_down(state) and "layer1.0.downsample.0.weight" in state:
            # mmpretrain's ResNetV1d has no pool in layer1's shortcut: (conv, bn) at (0, 1) -> (1, 2)
            moved = {}
            for k in [k for k in state if k.startswith("layer1.0.downsample.")]:
                idx, rest = k[len("layer1.0.downsample."):].split(".", 1)
                moved[f"layer1.0.downsample.{int(idx) + 1}.{rest}"] = state.pop(k)
            state.update(moved)
        return state, fmt
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    return (_rename_modules(state, TIMM_STEM) if fmt == "timm-deep-stem" else state), fmt


def fill_bn_counters(state: dict[str, torch.Tensor]) -> int:
    """Add ``num_batches_tracked`` = 0 to every BN when the file has none (PyTorch < 0.4.1
    did not save them; torch's BatchNorm fills them the same way). Returns how many."""
    if any(k.endswith("." + COUNTER) for k in state):
        return 0  # some are there: a missing one is a real mismatch, left to the strict check
    bns = [k[: -len("running_mean")] for k in state if k.endswith(".running_mean")]
    for prefix in bns:
        state[prefix + COUNTER] = torch.tensor(0, dtype=torch.long)
    return len(bns)


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
    if "layer1.0.conv1.weight" not in state:
        raise CheckpointError("layer1.0.conv1.weight is missing: not a ResNet with torchvision's or mmdet's names")
    deep_stem = "stem.0.weight" in state
    avg_down = _has_avg_down(state)
    if avg_down and not deep_stem:
        raise CheckpointError("its shortcuts average-pool (avg_down) but its stem is a single 7x7 conv: no paper "
                              "variant (A/B/C/D) is built that way, so the suite cannot name or rebuild it")
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


def expected_shapes(arch: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the backbone that ``arch`` builds in mmdet / mmseg (the suite's
    ResNet has their names; built on the meta device, so nothing is allocated)."""
    with torch.device("meta"):
        model = resnet(arch["depth"], arch["variant"], num_classes=1, base_channels=arch["base_channels"])
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("fc.")}


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a ``torch.save`` file read with
    ``weights_only=True`` (see :mod:`downstream.safe_load` for the few non-tensor types allowed)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {path} as safetensors: {e}") from e
    try:
        obj = load_weights_only(path)
    except Exception as e:
        raise CheckpointError(f"cannot read {path} with weights_only=True: {e}. Only state dicts (alone or in a "
                              f"checkpoint dict under 'state_dict' / 'model') of tensors and plain data are "
                              f"accepted") from e
    return extract_state_dict(obj, path)


def load_external(path: str | Path, variant: str | None = None) -> ExternalCheckpoint:
    """A foreign checkpoint, converted to OpenMMLab names and checked against the backbone
    it will be loaded into; every failure is a :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint {path} does not exist")
    state, fmt = to_openmmlab(read_state(path), path)
    notes = []
    filled = fill_bn_counters(state)
    if filled:
        notes.append(f"{path} has no BatchNorm counters (num_batches_tracked, not saved before PyTorch 0.4.1); "
                     f"set {filled} of them to 0, as torch does: they do not affect the features")
    try:
        arch = infer_arch(state, variant)
    except CheckpointError as e:
        raise CheckpointError(f"{path} (read as {fmt}): {e}") from None
    problem = state_mismatch(expected_shapes(arch), state)
    if problem:
        raise CheckpointError(f"{path} (read as {fmt}) does not convert to a ResNet-{arch['depth']}-{arch['variant']} "
                              f"of width {arch['base_channels']}: {problem}")
    return ExternalCheckpoint(state, arch, fmt, notes)
