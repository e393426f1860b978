"""From a pretrain run to the backbone of an mmdet / mmseg model, loaded strictly.

The suite's ``backbone.pth`` already uses the key names of OpenMMLab's ``ResNet``
(``pretrain/models/resnet.py``), so the adapter only has to (1) build the same
architecture there and (2) make every library default that would change the
experiment explicit. The weights are loaded by the ``TrickBenchPretrained``
initializer: every backbone tensor is loaded, or the run stops with the lists of
missing, unexpected and mis-shaped keys (mmengine's own ``Pretrained`` loads
non-strictly and only logs them).
"""
from __future__ import annotations

from pathlib import Path

import torch
from mmengine.model.weight_init import BaseInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

from pretrain.checkpoint import CheckpointError, load_state_strict
from trickbench.runinfo import sha256_file

EXPANSION = {18: 1, 34: 1, 50: 4, 101: 4, 152: 4}


def stage_channels(arch: dict) -> list[int]:
    """Output channels of the four stages, e.g. [256, 512, 1024, 2048] for ResNet-50."""
    return [arch["base_channels"] * 2**i * EXPANSION[arch["depth"]] for i in range(4)]


def pretrained_init(checkpoint: str | Path, sha256: str | None = None, *, only: tuple[str, ...] = (),
                    skip: tuple[str, ...] = ()) -> dict:
    """The ``init_cfg`` that loads (part of) ``backbone.pth`` strictly: the tensors whose
    names start with one of ``only`` (all if empty), less those starting with one of ``skip``."""
    return dict(type="TrickBenchPretrained", checkpoint=str(checkpoint), sha256=sha256, only=list(only),
                skip=list(skip))


def backbone_fields(arch: dict, checkpoint: str | Path, sha256: str | None = None, *,
                    skip: tuple[str, ...] = ()) -> dict:
    """The ``ResNet`` fields that describe the pretrained architecture and its weights.

    ``zero_init_residual`` is False (mmdet/mmseg default it to True; it would only
    matter for a random init, and must never look like a trick that was on);
    ``pretrained`` is None and ``init_cfg`` is ours, so the reference configs'
    ``torchvision://`` / ``open-mmlab://`` URLs are never used.
    """
    return dict(
        type="ResNet",
        depth=arch["depth"],
        style=arch["style"],
        deep_stem=arch["deep_stem"],
        avg_down=arch["avg_down"],
        base_channels=arch["base_channels"],
        stem_channels=arch["base_channels"],
        zero_init_residual=False,
        pretrained=None,
        init_cfg=pretrained_init(checkpoint, sha256, skip=skip),
    )


LAST_STAGE = "layer4."  # the tensors the C4 detector runs in its RoI head, not its backbone


def shared_head_fields(arch: dict, checkpoint: str | Path, sha256: str | None = None) -> dict:
    """The C4 detector's shared RoI head: the backbone's last stage, with its pretrained
    weights. ``TrickBenchResLayer`` (:mod:`downstream.shared_head`) builds it for every
    variant and width; ``backbone_fields(..., skip=(LAST_STAGE,))`` loads the rest, so that
    between them every tensor of ``backbone.pth`` is loaded exactly once."""
    return dict(
        type="TrickBenchResLayer",
        depth=arch["depth"],
        stage=3,
        style=arch["style"],
        avg_down=arch["avg_down"],
        base_channels=arch["base_channels"],
        init_cfg=pretrained_init(checkpoint, sha256, only=(LAST_STAGE,)),
    )


def extract_state_dict(obj, source: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict, or one under ``state_dict`` / ``model`` (torchvision, timm, mmpretrain)."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no state dict of tensors")
    return obj


@WEIGHT_INITIALIZERS.register_module(name="TrickBenchPretrained")
class StrictPretrainedInit(BaseInit):
    """Load a backbone state dict with ``weights_only=True`` and ``strict`` key and shape checks.

    ``only`` / ``skip`` select the tensors by name prefix, for models that hold the
    backbone in two modules (the C4 detector's ``layer4`` runs in its RoI head)."""

    def __init__(self, checkpoint: str, sha256: str | None = None, only=(), skip=(), **kwargs):
        super().__init__(**kwargs)
        self.checkpoint, self.sha256 = checkpoint, sha256
        self.only, self.skip = tuple(only), tuple(skip)

    def __call__(self, module: torch.nn.Module) -> None:
        path = Path(self.checkpoint)
        if not path.is_file():
            raise CheckpointError(f"backbone weights {path} do not exist")
        if self.sha256 and sha256_file(path) != self.sha256:
            raise CheckpointError(f"{path} changed since its pretrain run recorded it (SHA-256 differs); "
                                  f"re-run the pretraining or point --backbone at the right run")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"cannot read backbone weights {path}: {e}") from e
        state = {k: v for k, v in extract_state_dict(obj, path).items()
                 if (not self.only or k.startswith(self.only)) and not k.startswith(self.skip)}
        part = "".join(f" (tensors {w} {', '.join(p)})" for w, p in (("under", self.only), ("not under", self.skip)) if p)
        load_state_strict(module, state, f"{path}{part}")
        if hasattr(module, "_params_init_info"):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        what = "every backbone tensor" if not (self.only or self.skip) else "every selected backbone tensor"
        return f"{self.__class__.__name__}: {what} loaded strictly from {self.checkpoint}"
