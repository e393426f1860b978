"""Checkpoints of a pretraining run: the work dir's commit and resume protocol, and
loading classifiers back from them.

Each epoch ends with ``last.pth`` (the commit), then ``best.pth`` and the epoch's
metrics line, which a resume rebuilds from ``last.pth`` if a kill came between
them (:func:`save_epoch`, :func:`restore`). Everything is stored as tensors and
plain Python values, so every load here uses ``torch.load(..., weights_only=True)``,
for our own files too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trickbench import results
from trickbench.errors import TrickBenchError
from trickbench.fileio import append_jsonl, atomic_write_bytes, read_jsonl, remove_stale_temps
from trickbench.pretrain_config import PretrainConfig, fingerprint_view
from trickbench.results import Result
from trickbench.runtime import atomic_torch_save
from trickbench.worklock import lock_work_dir

from .models import ResNet, resnet


class CheckpointError(TrickBenchError, RuntimeError):
    """A checkpoint that is missing, damaged or made for another model or config; the message names the file."""


class WorkDirError(TrickBenchError, RuntimeError):
    """A work dir that cannot be used as asked: it holds a run and ``--resume`` was not given,
    or its metrics log is damaged; the message names the file."""


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


# -- a run's work dir: commit and resume ---------------------------------------------------------

@dataclass
class Progress:
    """Where a run stands: what the last checkpoint holds besides the weights."""
    epoch: int = 0                 # epochs done
    step: int = 0                  # iterations done
    best_top1: float = float("-inf")
    best_epoch: int = 0
    metrics: dict | None = None    # the last epoch's metrics line
    elapsed_s: float = 0.0         # wall time of the run so far, over every invocation


def open_work_dir(work: Path, resume: bool, *, is_main: bool) -> None:
    """Lock the work dir for this run (main process), clear the temp files of writes a
    kill interrupted, and refuse to overwrite a run without ``--resume``."""
    if is_main:
        lock_work_dir(work)  # held until the process ends
        for stale in remove_stale_temps(work):
            print(f"removed {stale}, left by an interrupted write")
    last = work / "last.pth"
    if last.exists() and not resume:
        raise WorkDirError(f"{work} already holds a run ({last}); pass --resume to continue it, "
                           f"or choose another --work-dir (nothing was changed)")


def restore(work: Path, cfg: PretrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler | None, *, is_main: bool) -> Progress:
    """Model, optimizer, loss scaler and schedule position from ``last.pth``. The checkpoint is
    the commit point of an epoch: what a kill left unwritten after it (that epoch's metrics
    line, ``best.pth``) is written again from it, and lines after it are dropped."""
    last_path = work / "last.pth"
    ckpt = load(last_path)
    # A checkpoint from before a key existed resumes with that key at its default (ADDED_LATER).
    changed = _config_changes(fingerprint_view(ckpt["config"]), fingerprint_view(cfg.to_dict()))
    if changed:
        raise CheckpointError(f"{last_path} was written with another config ({', '.join(changed)}); resume with "
                              f"the same config and --cfg-options, or start a new --work-dir")
    load_state_strict(model, ckpt["model"], last_path)
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    progress = Progress(ckpt["epoch"], ckpt["step"], ckpt["best_top1"], ckpt.get("best_epoch", 0), ckpt.get("metrics"),
                        ckpt.get("elapsed_s", 0.0))
    if is_main:
        _sync_metrics(work / "metrics.jsonl", progress)
        _sync_best(work, progress)
        print(f"resumed from {last_path} at epoch {progress.epoch}, iteration {progress.step}")
    return progress


def save_epoch(work: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
               cfg: PretrainConfig, progress: Progress, improved: bool) -> None:
    """``last.pth`` (the commit), then ``best.pth`` and the metrics line, which a resume can
    rebuild from it."""
    ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "epoch": progress.epoch,
            "step": progress.step, "best_top1": progress.best_top1, "best_epoch": progress.best_epoch,
            "metrics": progress.metrics, "elapsed_s": progress.elapsed_s, "config": cfg.to_dict(),
            "sampler": {"seed": cfg.run.seed, "epoch": progress.epoch}}
    atomic_torch_save(work / "last.pth", ckpt)
    if improved:
        atomic_torch_save(work / "best.pth", ckpt)
    append_jsonl(work / "metrics.jsonl", progress.metrics)


# Where the data lives and how it is logged may change between a run and its resume.
# The run's names (run.name, run.recipe) only label its result: a study's plan sets them
# explicitly, and a run started before it did resumes under them.
RESUME_MAY_CHANGE = {"data.root", "data.workers", "run.log_interval", "run.name", "run.recipe", "run.compile"}


def _config_changes(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Keys (dotted) whose values differ, other than those in RESUME_MAY_CHANGE."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_changes(a, b, f"{name}.")
        elif a != b and name not in RESUME_MAY_CHANGE:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


def _sync_metrics(path: Path, progress: Progress) -> None:
    """``metrics.jsonl`` as the checkpoint has it: one line per epoch up to its epoch. Lines
    written after it (a kill between the two) go, a torn last line goes, and the checkpoint's
    own epoch line is written if the kill came before it."""
    try:
        lines, torn = read_jsonl(path) if path.exists() else ([], False)
    except ValueError as e:
        raise WorkDirError(str(e)) from None
    kept = [ln for ln in lines if ln.get("epoch", 0) <= progress.epoch]
    if progress.metrics is not None and not any(ln.get("epoch") == progress.epoch for ln in kept):
        kept.append(progress.metrics)
    if torn or kept != lines:
        atomic_write_bytes(path, "".join(json.dumps(ln, sort_keys=True) + "\n" for ln in kept).encode())


def _sync_best(work: Path, progress: Progress) -> None:
    """``best.pth`` is the checkpoint of the best epoch; a kill between ``last.pth`` and it
    leaves the previous best, which is replaced here by ``last.pth``'s copy."""
    best = work / "best.pth"
    if progress.best_epoch != progress.epoch or progress.epoch == 0:
        return
    if best.exists() and torch.load(best, map_location="cpu", weights_only=True, mmap=True)["epoch"] == progress.epoch:
        return
    atomic_write_bytes(best, (work / "last.pth").read_bytes())
