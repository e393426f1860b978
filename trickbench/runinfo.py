"""What every run records next to its results: code version, packages, its study, checksums.

Torch-free, so that the analysis can read it; what needs torch (the run's devices, and the
result file written with them) is :mod:`trickbench.runtime`."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from datetime import datetime, timezone

from .paths import REPO

PACKAGES = ("torch", "torchvision", "mmengine", "mmcv", "mmdet", "mmsegmentation", "numpy", "pillow", "simplejpeg",
            "nvidia-dali-cuda130", "trickbench")   # the decoders: their versions decide the pixels


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
