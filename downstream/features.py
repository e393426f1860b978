"""The frozen backbone's features for the deterministic probes (``downstream/probe.py``), computed
once per backbone and cached.

The backbone is mmdet's ``ResNet`` built from the pretrain run's architecture and loaded strictly
(:func:`downstream.backbone.backbone_fields`), every stage frozen, in eval mode; its last stage's
feature map is pooled (``gap``: global average, DINO's k-NN; ``2x2``: average-pooled to 2x2 and
flattened, VISSL's VOC07 SVM on res5) and L2-normalised.

A cache file (``WORK_DIR/features/<probe>-<split>-<key>.pt``) holds the features and a ``meta``
record of what they were computed from: the backbone's SHA-256, the probe, the split, the image
transform, the pooling and a digest of the image list. Its name carries a hash of that record, so a
changed backbone, transform or image list reads another file and is computed afresh. A file whose
record does not hash to its name (copied or renamed from another backbone's) is refused with
:class:`FeatureCacheError`, never used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision import transforms

from pretrain.data import MEAN, STD, DatasetError, load_rgb, val_transform, worker_error_message
from trickbench.errors import TrickBenchError
from trickbench.runtime import atomic_torch_save

from .backbone import backbone_fields

CACHE_FOLDER = "features"
CACHE_VERSION = 1
POOLINGS = ("gap", "2x2")


class FeatureCacheError(TrickBenchError, ValueError):
    """A cache file that does not hold what its name says; the message names it and the fix."""


@dataclass(frozen=True)
class Transform:
    """How an image becomes the backbone's input. ``center-crop``: the pretraining's validation
    transform (shorter side to ``resize``, center crop ``image_size``); ``square``: resized to
    ``image_size`` x ``image_size`` (VISSL's VOC07 input). Both then ToTensor and ImageNet's
    mean/std, as pretraining normalises."""
    kind: str
    image_size: int
    resize: int | None = None
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    def build(self) -> transforms.Compose:
        if self.kind == "center-crop":
            return val_transform(self.image_size, self.resize)
        if self.kind == "square":
            return transforms.Compose([transforms.Resize((self.image_size, self.image_size)), transforms.ToTensor(),
                                       transforms.Normalize(self.mean, self.std)])
        raise ValueError(f"unknown transform kind {self.kind!r}")

    def record(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Images(torch.utils.data.Dataset):
    """The images at ``paths``, decoded (a damaged file names itself) and transformed."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(load_rgb(str(self.paths[index])))


def build_backbone(arch: dict, checkpoint: str | Path, sha256: str | None, device: str) -> torch.nn.Module:
    """mmdet's ResNet with the pretrained weights loaded strictly (``init_weights`` runs the
    ``TrickBenchPretrained`` initializer, which also checks the file's SHA-256), all four stages
    frozen, in eval mode; it returns the last stage's feature map."""
    from mmdet.models.backbones import ResNet  # noqa: F401  (registers mmdet's ResNet)
    from mmdet.registry import MODELS
    from mmengine.logging import MMLogger

    model = MODELS.build(backbone_fields(arch, checkpoint, sha256) | dict(out_indices=(3,), frozen_stages=4))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # mmengine logs every tensor's initialisation at INFO
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model.eval()  # mmdet's ResNet.train() returns None, so this is not chained
    return model.to(device)


def pool(x: torch.Tensor, pooling: str) -> torch.Tensor:
    """``gap``: global average (DINO ``eval_knn``); ``2x2``: average-pooled to 2x2, flattened
    channel-major (VISSL's res5 ``AvgPool2d`` for VOC07 SVMs). Then L2-normalised."""
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; one of {POOLINGS}")
    x = F.adaptive_avg_pool2d(x, 1 if pooling == "gap" else 2).flatten(1)
    return F.normalize(x.float(), dim=1, p=2)


@torch.inference_mode()
def extract(model: torch.nn.Module, dataset, pooling: str, device: str, batch_size: int,
            workers: int) -> torch.Tensor:
    """The pooled, L2-normalised last-stage features of every image of ``dataset``, in order, on the
    CPU (one tensor, filled batch by batch: ImageNet's train split at ResNet-50's 2048 is 10 GB)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=device.startswith("cuda"))
    out, done = None, 0
    try:
        for images in loader:
            x = pool(model(images.to(device, non_blocking=True))[-1], pooling).cpu()
            if out is None:
                out = torch.empty(len(dataset), x.shape[1])
            out[done:done + len(x)] = x
            done += len(x)
    except DatasetError as e:  # raised again by the loader with the worker's traceback in its message
        raise DatasetError(worker_error_message(e)) from None
    return out if out is not None else torch.zeros(0, 0)


def images_digest(names: list[str]) -> str:
    """What a split lists, in order (the relative paths or ids): part of a cache's key."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def cache_meta(*, backbone_sha256: str, probe: str, split: str, transform: Transform, pooling: str,
               images: list[str]) -> dict:
    return dict(version=CACHE_VERSION, backbone_sha256=backbone_sha256, probe=probe, split=split,
                transform=transform.record(), pooling=pooling, images=images_digest(images), count=len(images))


def cache_key(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:20]


def cache_path(work_dir: str | os.PathLike, meta: dict) -> Path:
    return Path(work_dir) / CACHE_FOLDER / f"{meta['probe']}-{meta['split']}-{cache_key(meta)}.pt"


def load_cached(path: Path, meta: dict) -> torch.Tensor | None:
    """The features cached at ``path`` for ``meta``; None if there are none yet."""
    if not path.is_file():
        return None
    fix = f"delete {path} (the features are computed again on the next run)"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FeatureCacheError(f"feature cache {path} cannot be read ({type(e).__name__}: {e}); {fix}") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), dict)
            and isinstance(obj.get("features"), torch.Tensor)):
        raise FeatureCacheError(f"feature cache {path} holds no features and meta record; {fix}")
    got = obj["meta"]
    if got != meta:
        diff = sorted(k for k in set(got) | set(meta) if got.get(k) != meta.get(k))
        if "backbone_sha256" in diff:
            what = (f"another backbone's features (backbone SHA-256 {str(got.get('backbone_sha256'))[:12]}..., "
                    f"not {meta['backbone_sha256'][:12]}...)")
        else:
            what = f"features computed with other settings ({', '.join(diff)} differ)"
        raise FeatureCacheError(f"feature cache {path} holds {what}: it was copied or renamed from another "
                                f"cache; {fix}")
    if obj["features"].shape[0] != meta["count"]:
        raise FeatureCacheError(f"feature cache {path} holds {obj['features'].shape[0]} feature vectors for "
                                f"{meta['count']} images; {fix}")
    return obj["features"]


def save_cache(path: Path, features: torch.Tensor, meta: dict) -> Path:
    return atomic_torch_save(path, {"features": features.contiguous(), "meta": meta})
