"""Checkpoints of a pretraining run, and loading classifiers back from them.

Everything is stored as tensors and plain Python values, so every load here
uses ``torch.load(..., weights_only=True)``, for our own files too.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trickbench import results
from trickbench.results import Result

from .models import ResNet, resnet
from trickbench.errors import TrickBenchError


class CheckpointError(TrickBenchError, RuntimeError):
    """A checkpoint that is missing, damaged or made for another model; the message names the file."""


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged zip, pickle of foreign classes, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e


def state_mismatch(own: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> str | None:
    """What keeps ``state`` from loading strictly into a model whose keys and shapes are
    ``own``, in words (missing, unexpected and mis-shaped keys); None when it fits."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k])}"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k]))
    if not (missing or unexpected or shapes):
        return None

    def show(items):
        return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "") if items else "none"
    return f"missing keys: {show(missing)}; unexpected keys: {show(unexpected)}; mis-shaped: {show(shapes)}"


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load every tensor, or raise listing the missing, unexpected and mis-shaped keys."""
    problem = state_mismatch({k: tuple(v.shape) for k, v in module.state_dict().items()}, state)
    if problem:
        raise CheckpointError(f"{source} does not match the model (was it trained with another depth, variant or "
                              f"width?): {problem}")
    module.load_state_dict(state, strict=True)


def build_model(model_cfg: dict) -> ResNet:
    return resnet(model_cfg["depth"], model_cfg["variant"], num_classes=model_cfg["num_classes"],
                  base_channels=model_cfg["base_channels"])


def load_classifier(source: str | Path) -> ResNet:
    """A trained classifier (backbone and head) from a pretrain run directory or
    from one of its full checkpoints (``last.pth`` / ``best.pth``)."""
    source = Path(source)
    if source.is_dir():
        ckpt_path = source / "last.pth"
        if not ckpt_path.is_file():
            raise CheckpointError(f"{source} is not a finished pretrain run: {ckpt_path} is missing")
    else:
        ckpt_path = source
    ckpt = load(ckpt_path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{ckpt_path} is not a TrickBench pretrain checkpoint (no 'model' and 'config'); "
                              f"pass a pretrain run directory or its last.pth/best.pth")
    model = build_model(ckpt["config"]["model"])
    load_state_strict(model, ckpt["model"], ckpt_path)
    return model


def pretrain_result(run_dir: str | Path) -> Result:
    path = Path(run_dir) / "result.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a finished pretrain run: {path} is missing "
                              f"(run python pretrain/run.py --work-dir {run_dir} first)")
    try:
        return results.read(path)
    except results.ResultError as e:
        raise CheckpointError(str(e)) from None
