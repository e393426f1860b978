"""What every run records next to its results: code version, packages, and the result file."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import results
from .paths import REPO

PACKAGES = ("torch", "torchvision", "mmengine", "mmcv", "mmdet", "mmsegmentation", "numpy", "trickbench")


def git_commit() -> str | None:
    """The commit of the code that ran, with ``-dirty`` when the tree had local changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    import torch

    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "command": [sys.executable, *sys.argv],
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }


STUDY_ENV = "TRICKBENCH_STUDY_JOB"


def study_lineage() -> dict | None:
    """The study and job this run belongs to, as its launcher (:mod:`trickbench.study`) set
    them in ``$TRICKBENCH_STUDY_JOB`` (JSON); None for a run started by hand."""
    raw = os.environ.get(STUDY_ENV)
    if not raw:
        return None
    try:
        lineage = json.loads(raw)
    except json.JSONDecodeError:
        lineage = None
    if not isinstance(lineage, dict):
        raise ValueError(f"${STUDY_ENV} is not a JSON object ({raw[:80]!r}); unset it, or start the run "
                         f"through python -m trickbench.study")
    return lineage


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_result(work_dir: str | os.PathLike, *, stage: str, backbone: str, recipe: str | None = None,
                 seed: int | None, metrics: dict[str, float], config: dict, checkpoint: str | os.PathLike | None,
                 wall_time_s: float, images_seen: int | None = None, arch: dict | None = None, tricks=(),
                 top1: float | None = None, config_file: str | None = None, backbone_sha256: str | None = None,
                 pretrain_dir: str | None = None, device: str | None = None, **extra: Any) -> Path:
    """``result.json`` (:mod:`trickbench.results`), written atomically: the one file the
    leaderboard and the analysis read from a run. Metrics are percentages, like the
    papers: ``top1``/``top5``; ``map`` (VOC07 11-point mAP at IoU 0.5); ``miou``/``aacc``/``macc``.
    The cost counts one device per process; ``device`` is the kind the run used (default:
    the first visible GPU, else "cpu")."""
    env = environment()
    study = study_lineage()
    device = device or (env["gpus"][0] if env["gpus"] else "cpu")
    cost = results.Cost(round(float(wall_time_s), 3), device, env["world_size"], images_seen)
    record = results.Result(
        stage=stage, backbone=backbone, recipe=recipe or backbone, seed=seed,
        metrics={k: float(v) for k, v in metrics.items()}, cost=cost, finished_at=now(), config=config,
        checkpoint=str(checkpoint) if checkpoint is not None else None, arch=arch, tricks=tuple(tricks), top1=top1,
        config_file=config_file, backbone_sha256=backbone_sha256, pretrain_dir=pretrain_dir, study=study, extra={**env, **extra})
    return results.write(work_dir, record)
