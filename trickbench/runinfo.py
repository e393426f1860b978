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
from typing import Any

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


# The instruction-set extensions by which torch picks its CPU kernels (ATen's AVX2 / AVX512 builds,
# oneDNN's bf16 / VNNI / AMX paths): the same run on CPUs that differ in them gives other numbers.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
CPUINFO = "/proc/cpuinfo"


def cpu_identity(cpuinfo: str | os.PathLike = CPUINFO) -> dict[str, Any]:
    """The CPU as ``/proc/cpuinfo`` (Linux) describes its first processor: ``model`` (the model
    name), ``signature`` (x86 family/model/stepping, which tells apart CPUs that a virtual
    machine names alike) and ``flags``: for each of :data:`CPU_FLAGS`, whether it has it.
    Without that file, the model is what :func:`platform.processor` says and the rest is None:
    not known."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return {"model": platform.processor() or None, "signature": None, "flags": None}
    first: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if first:
                break
            continue
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    have = set((first.get("flags") or first.get("Features") or "").split())   # x86 | ARM
    parts = [first.get(k) for k in ("cpu family", "model", "stepping")]
    return {"model": first.get("model name") or first.get("Model") or platform.processor() or None,
            "signature": "/".join(parts) if all(parts) else None,
            "flags": {flag: flag in have for flag in CPU_FLAGS}}


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
