"""The part of the bottom package that needs torch: the environment a run records (CUDA,
GPUs, processes), the result record written with it, and checkpoints saved atomically.
The stages import it; the analysis (``evaluation/``) never does.
"""
from __future__ import annotations

import atexit
import gc
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from . import results
from .fileio import atomic_write
from .runinfo import cpu_identity, git_commit, now, study_lineage, versions


def imports_done() -> None:
    """An entry script run as a program turns the garbage collector off before its imports
    (``gc.disable()``) and calls this once they are done: what they made (the modules, classes
    and functions of torch, mmcv, mmdet or mmseg: most of the process's objects, and alive to the
    end) is frozen out of the collector's reach (``gc.freeze``, as Python's docs suggest for
    objects that live as long as the process), and the collector runs again for the rest.

    Each full collection walks every tracked object, 0.2-0.3 s once mmdet is imported: a demo
    detection job on a 2-core CPU made 16 of them before its first iteration (2.9 s) and 2 while
    training (0.6 s), and Python's last collection at exit walks them all once more (1.2 s).
    So the objects alive at exit are frozen too (:mod:`atexit`, before Python's own clean-up):
    the process ends without the walk. Nothing numeric depends on when cyclic garbage is freed:
    the jobs' metrics and weights are the same to the bit."""
    gc.freeze()
    gc.enable()
    atexit.register(gc.freeze)


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (:func:`trickbench.fileio.atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def cpu() -> dict[str, Any]:
    """The CPU this process computes on, as far as it decides the numbers: its model, signature
    and instruction-set flags (:func:`trickbench.runinfo.cpu_identity`), the kernels torch's
    CPU ops actually run (``capability``: "AVX512", "AVX2", "DEFAULT", ...;
    ``$ATEN_CPU_CAPABILITY`` can lower it), the threads torch computes with,
    ``$OMP_NUM_THREADS`` as set (None if unset), and the logical CPUs the process may run on.
    The same run on another CPU gives other numbers (a baseline's top-1: 75.85 on one, 75.90
    on another); the same CPU, the same numbers."""
    return {
        **cpu_identity(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }


def environment() -> dict[str, Any]:
    """What a run records about where it ran (``config.json``, and ``result.json`` next to its
    record's fields): code, packages, host, command, and the devices: the GPUs and the CPU."""
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "command": [sys.executable, *sys.argv],
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu": cpu(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }


def write_result(work_dir: str | os.PathLike, *, stage: str, backbone: str, recipe: str | None = None,
                 seed: int | None, metrics: dict[str, float], config: dict, checkpoint: str | os.PathLike | None,
                 wall_time_s: float, images_seen: int | None = None, arch: dict | None = None, tricks=(),
                 top1: float | None = None, config_file: str | None = None, backbone_sha256: str | None = None,
                 pretrain_dir: str | None = None, device: str | None = None, pretrain_seed: int | None = None,
                 finetune_seed: int | None = None, heldout: dict | None = None, selection: dict | None = None,
                 protocol: dict | None = None, **extra: Any) -> Path:
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
        config_file=config_file, backbone_sha256=backbone_sha256, pretrain_dir=pretrain_dir, study=study,
        pretrain_seed=pretrain_seed, finetune_seed=finetune_seed, heldout=heldout, selection=selection,
        protocol=protocol, extra={**env, **extra})
    return results.write(work_dir, record)
