#!/usr/bin/env python
"""Pretrain a ResNet classifier with any combination of the paper's tricks.

    python pretrain/run.py --config configs/pretrain/resnet50_baseline.py --work-dir runs/r50
    torchrun --nproc_per_node 8 pretrain/run.py --config ... --work-dir ... [--resume]

The work dir gets: ``config.json`` (the resolved config and the environment),
``metrics.jsonl`` (one line per epoch), ``tb/`` (TensorBoard), ``last.pth`` and
``best.pth`` (full checkpoints), ``backbone.pth`` (the backbone's state dict under
mmdet/mmseg ``ResNet`` names) and ``result.json``. All are written atomically.
"""
from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

if __name__ == "__main__" and __package__ in (None, ""):
    # Run as a script: drop this folder from the path so its generic module names
    # (config, data, distributed, models) cannot shadow top-level packages; `pretrain`
    # itself is installed. The other entry scripts' folders hold no such names.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
if __name__ == "__main__":
    gc.disable()   # until the imports are done: trickbench.runtime.imports_done

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pretrain import distributed, pipeline
from pretrain.checkpoint import (CheckpointError, Progress, load_classifier, open_work_dir, restore,
                                 save_epoch)
from pretrain.data import (DatasetError, SeededSamples, image_folder, train_transform, val_transform,
                          worker_error_message)
from pretrain.engine import NonFiniteLossError, evaluate, train_one_epoch
from pretrain.models import ResNet, resnet
from pretrain.objective import Objective
from pretrain.tricks.lr_schedule import linear_scaled_lr, lr_at
from pretrain.tricks.param_groups import param_groups
from trickbench.errors import TrickBenchError, report
from trickbench.fileio import atomic_write_json
from trickbench.paths import PRETRAIN_CONFIGS
from trickbench.pretrain_config import ConfigError, PretrainConfig, load_config
from trickbench.runinfo import sha256_file
from trickbench.runtime import atomic_torch_save, environment, imports_done, write_result


DEFAULT_CONFIG = PRETRAIN_CONFIGS / "resnet50_baseline.py"


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="a config under configs/pretrain/ (default: the paper's ResNet-50 baseline, %(default)s)")
    p.add_argument("--work-dir", required=True, help="where the run's files go; its name is the backbone id")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config keys, e.g. model.variant=D loss.label_smoothing=0.1")
    p.add_argument("--resume", action="store_true", help="continue from last.pth in the work dir")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="stop after N epochs of this invocation, as if interrupted (time-sliced jobs; tests)")
    return p.parse_args(argv)


class RunError(TrickBenchError, RuntimeError):
    """A run that cannot go on: its loss blew up, or its checkpoint cannot make a result."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Every random draw of an epoch derives from (seed, epoch, rank), which is what
    makes a resumed run identical to an uninterrupted one."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63


class Loaders(NamedTuple):
    """The data of a run, for this process."""
    train: Iterable                # batches of the training set (a DataLoader, or DALI's loader)
    val: DataLoader
    sampler: Any                   # of the training set, reshuffled every epoch (has set_epoch)
    generator: torch.Generator     # the training loader's, reseeded every epoch
    batch_size_per_process: int
    to_device: Callable            # a batch -> its (images, labels) on the device, finished
    val_to_device: Callable


def build_loaders(cfg: PretrainConfig, dist: distributed.Dist) -> Loaders:
    """The training and validation data of ``cfg.data.backend`` for this process; see
    :mod:`pretrain.pipeline` (``cpu``), :mod:`pretrain.data` (``pil``) and :mod:`pretrain.dali`."""
    data = cfg.data
    if data.batch_size % dist.world_size:
        raise ConfigError(f"data.batch_size={data.batch_size} (global) is not divisible by {dist.world_size} processes")
    per_process = data.batch_size // dist.world_size
    reference = data.backend == "pil"
    train_tf = train_transform(data.image_size, data.augment) if reference else None
    val_tf = val_transform(data.image_size, data.val_resize) if reference else None
    train = image_folder(data.root, data.train_split, train_tf)
    val = image_folder(data.root, data.val_split, val_tf, classes=train.classes)
    if len(train.classes) != cfg.model.num_classes:
        raise ConfigError(f"{Path(data.root) / data.train_split} has {len(train.classes)} classes but "
                          f"model.num_classes={cfg.model.num_classes}; set --cfg-options model.num_classes={len(train.classes)}")
    if len(train) < data.batch_size:
        raise ConfigError(f"data.batch_size={data.batch_size} is larger than the {len(train)} training images "
                          f"under {Path(data.root) / data.train_split}")
    device, memory_format = dist.device, torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    generator = torch.Generator()
    cuda = device.type == "cuda"
    if reference:
        train_set = SeededSamples(train, cfg.run.seed)
        # SeededSamples learns the epoch from set_epoch: its workers must be new each epoch.
        options = dict(num_workers=data.workers, pin_memory=cuda, persistent_workers=False)
        sampler = DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                     seed=cfg.run.seed, drop_last=True)
        val_set = val
        to_device = val_to_device = partial(_float_batch, device=device, memory_format=memory_format)
    else:
        train_set = pipeline.Samples(train.samples, _worker_transform(data), cfg.run.seed)
        # The epoch travels with each index, so the workers live for the whole run.
        options = dict(num_workers=data.workers, pin_memory=cuda, persistent_workers=data.workers > 0)
        sampler = pipeline.EpochIndices(DistributedSampler(train_set, num_replicas=dist.world_size, rank=dist.rank,
                                                           shuffle=True, seed=cfg.run.seed, drop_last=True))
        val_set = pipeline.Samples(val.samples, pipeline.ReferenceResize(data.val_resize, data.image_size, flip=False))
        finish = pipeline.OnDevice(device, cfg.run.channels_last)
        to_device = val_to_device = partial(_uint8_batch, finish=finish, device=device)
    if data.backend == "dali":
        from pretrain import dali

        missing = dali.dali_missing()
        if missing:
            raise ConfigError(f"data.backend='dali': {missing}")
        train_loader = dali.DaliTrainLoader(train.samples, sampler, per_process, data.image_size, cfg.run.seed,
                                            device_id=dist.local_rank, threads=max(data.workers, 1))
        to_device = partial(_dali_batch, on_device=pipeline.OnDevice(device, cfg.run.channels_last))
    else:
        train_loader = DataLoader(train_set, batch_size=per_process, sampler=sampler, drop_last=True,
                                  generator=generator, **options)
    # Disjoint, unpadded shards: the validation figures are exact for any number of processes.
    val_shard = Subset(val_set, list(range(dist.rank, len(val_set), dist.world_size)))
    val_loader = DataLoader(val_shard, batch_size=per_process, shuffle=False, **options)
    return Loaders(train_loader, val_loader, sampler, generator, per_process, to_device, val_to_device)


def _worker_transform(data):
    """What the loader workers of the ``cpu`` backend do to a training image (``augment``)."""
    if data.augment == "paper":
        return pipeline.PaperTransform(data.image_size)
    if data.augment == "flip":   # flip_transform: resize, flip
        return pipeline.ReferenceResize(data.image_size, None, flip=True)
    return pipeline.ReferenceResize(data.image_size, data.image_size, flip=False)   # 'none': as validation


def _float_batch(batch, *, device: torch.device, memory_format: torch.memory_format):
    """The reference pipeline's batches: normalised floats already."""
    images, labels = batch
    images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    return images, labels.to(device, non_blocking=True)


def _uint8_batch(batch, *, finish: pipeline.OnDevice, device: torch.device):
    """The ``cpu`` backend's batches: uint8 pixels and lighting offsets, finished on the device."""
    images, labels, lighting = batch
    images = finish(images.to(device, non_blocking=True), lighting.to(device, non_blocking=True))
    return images, labels.to(device, non_blocking=True)


def _dali_batch(batch, *, on_device: pipeline.OnDevice):
    from pretrain import dali

    images, labels, lighting, jitter = batch
    return dali.finish_batch(images, lighting, jitter, on_device), labels


def build_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> tuple[torch.optim.SGD, float, dict[str, int]]:
    """SGD (Nesterov, §2.1) at the peak lr, linearly scaled with the batch if asked (§3.1), over
    the weight-decay groups (no bias decay, §3.1); also returns the peak lr and the group counts."""
    optim = cfg.optim
    peak_lr = linear_scaled_lr(optim.lr, cfg.data.batch_size, optim.base_batch_size) if optim.linear_scaling else optim.lr
    groups, counts = param_groups(model, optim.weight_decay, optim.no_bias_decay)
    # Fused: one kernel per step, and it takes the on-device ``found_inf`` that lets a bad step be
    # skipped without the host reading the loss (engine.NonFiniteGuard; GradScaler uses it too).
    optimizer = torch.optim.SGD(groups, lr=peak_lr, momentum=optim.momentum, nesterov=optim.nesterov, fused=True)
    return optimizer, peak_lr, counts


def build_objective(cfg: PretrainConfig, device: torch.device, memory_format: torch.memory_format) -> Objective:
    """The loss: label smoothing, mixup and, with a teacher, distillation (§5.2-5.4)."""
    num_classes, loss = cfg.model.num_classes, cfg.loss
    teacher = None
    if loss.distill_teacher:
        teacher = load_classifier(loss.distill_teacher).to(device, memory_format=memory_format).eval()
        teacher.requires_grad_(False)
        if teacher.fc.out_features != num_classes:
            raise CheckpointError(f"teacher {loss.distill_teacher} predicts {teacher.fc.out_features} classes, "
                                  f"the student {num_classes}")
    return Objective(num_classes, loss.label_smoothing, loss.mixup_alpha, teacher, loss.distill_temperature)


def lr_schedule(cfg: PretrainConfig, peak_lr: float, steps_per_epoch: int) -> Callable[[int], float]:
    """The lr of each iteration: :func:`pretrain.tricks.lr_schedule.lr_at` with this run's settings."""
    schedule = cfg.schedule
    return partial(lr_at, peak_lr=peak_lr, steps_per_epoch=steps_per_epoch, epochs=schedule.epochs,
                   warmup_epochs=schedule.warmup_epochs, decay=schedule.decay, milestones=schedule.milestones,
                   gamma=schedule.gamma)


SEED_DIR = re.compile(r"seed[-_]?\d+")


def run_ids(work: Path, cfg: PretrainConfig) -> tuple[str, str]:
    """(backbone id, recipe): ``run.name`` / ``run.recipe``, or from the work dir. A work dir
    named like ``seed3`` is one seed of the recipe its parent names: ``runs/d-cosine/seed3``
    is backbone ``d-cosine-seed3`` of recipe ``d-cosine``, so the seeds of two recipes never
    share an id. Any other work dir names both."""
    work = work.resolve()
    if SEED_DIR.fullmatch(work.name):
        default_recipe, default_name = work.parent.name, f"{work.parent.name}-{work.name}"
    else:
        default_recipe = default_name = work.name
    return cfg.run.name or default_name, cfg.run.recipe or cfg.run.name or default_recipe


@dataclass
class Parts:
    """A run, wired together by :func:`setup`, trained by :func:`fit` and closed by :func:`finish`."""
    cfg: PretrainConfig
    dist: distributed.Dist
    work: Path
    name: str                      # the backbone id
    recipe: str
    model: ResNet                  # the weights that are saved
    ddp_model: torch.nn.Module     # what trains: ``model`` itself, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    loaders: Loaders
    objective: Objective
    schedule: Callable[[int], float]  # iteration -> lr
    peak_lr: float
    progress: Progress             # where the run stands; fit() moves it on
    run_info: dict                 # what config.json and result.json record about the run besides its config
    started: float                 # time.time() when this invocation started
    elapsed_before: float          # wall time of the invocations before this one

    def wall_time(self) -> float:
        """Wall time of the run so far, over every invocation."""
        return self.elapsed_before + time.time() - self.started


def setup(cfg: PretrainConfig, work_dir: str | Path, *, resume: bool = False, device: str | None = None,
          started: float | None = None) -> Parts:
    """Lock the work dir, build every part of the run (in the order that fixes its random draws),
    restore them from ``last.pth`` when resuming, and write ``config.json``."""
    started = time.time() if started is None else started
    dist = distributed.init(device)
    work = Path(work_dir)
    name, recipe = run_ids(work, cfg)
    open_work_dir(work, resume, is_main=dist.is_main)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.run.seed + dist.rank)

    loaders = build_loaders(cfg, dist)
    model_cfg = cfg.model
    model = resnet(model_cfg.depth, model_cfg.variant, num_classes=model_cfg.num_classes,
                   base_channels=model_cfg.base_channels, zero_gamma=model_cfg.zero_gamma, init=model_cfg.init)
    arch = model.arch()
    memory_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    model = model.to(dist.device, memory_format=memory_format)
    optimizer, peak_lr, counts = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(dist.device.type) if cfg.run.precision == "fp16" else None
    steps_per_epoch = len(loaders.train)
    objective = build_objective(cfg, dist.device, memory_format)

    progress = Progress()
    if resume and (work / "last.pth").exists():
        progress = restore(work, cfg, model, optimizer, scaler, is_main=dist.is_main)
        for group in optimizer.param_groups:   # a checkpoint from before the fused optimiser says otherwise
            group.update(fused=True, foreach=None)
    ddp_model = model
    if dist.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    if cfg.run.compile:
        # What trains is compiled; ``model`` keeps its own names, which checkpoints and backbone.pth hold.
        ddp_model = torch.compile(ddp_model)

    run_info = {"name": name, "arch": arch, "tricks": cfg.tricks(), "global_batch_size": cfg.data.batch_size,
                "batch_size_per_process": loaders.batch_size_per_process, "world_size": dist.world_size,
                "base_lr": cfg.optim.lr, "peak_lr": peak_lr, "param_groups": counts, "steps_per_epoch": steps_per_epoch}
    if dist.is_main:
        atomic_write_json(work / "config.json", {"config": cfg.to_dict(), **run_info, **environment()})
        print(f"[{name}] ResNet-{model_cfg.depth}-{arch['variant']} width {model_cfg.base_channels}, tricks: "
              f"{', '.join(cfg.tricks()) or 'none (baseline)'}; global batch {cfg.data.batch_size} on "
              f"{dist.world_size} process(es), lr {cfg.optim.lr} -> {peak_lr:g}; weight decay on {counts['decay']} "
              f"tensors, none on {counts['no_decay']}")
    return Parts(cfg, dist, work, name, recipe, model, ddp_model, optimizer, scaler, loaders, objective,
                 lr_schedule(cfg, peak_lr, steps_per_epoch), peak_lr, progress, run_info, started,
                 elapsed_before=progress.elapsed_s)


def fit(parts: Parts, stop_after: int | None = None) -> Progress:
    """Train from where ``parts.progress`` stands to the last epoch, or for ``stop_after`` epochs
    of this invocation; each epoch ends with its checkpoint, metrics line and TensorBoard points."""
    cfg, progress, is_main = parts.cfg, parts.progress, parts.dist.is_main
    epochs = cfg.schedule.epochs
    end_epoch = epochs if stop_after is None else min(epochs, progress.epoch + stop_after)
    writer = _tensorboard(parts.work) if is_main else None
    for epoch in range(progress.epoch, end_epoch):
        train_stats, val = train_and_evaluate(parts, epoch)
        progress.step = train_stats.pop("next_step")
        progress.epoch = epoch + 1
        progress.metrics = {"epoch": epoch + 1, "step": progress.step, "lr": parts.schedule(progress.step - 1),
                            **train_stats, **val}
        progress.elapsed_s = parts.wall_time()
        improved = val["top1"] > progress.best_top1
        if improved:
            progress.best_top1, progress.best_epoch = val["top1"], epoch + 1
        if is_main:
            save_epoch(parts.work, parts.model, parts.optimizer, parts.scaler, cfg, progress, improved)
            for key in ("train_loss", "val_loss", "top1", "top5", "lr", "images_per_s"):
                writer.add_scalar(key, progress.metrics[key], epoch + 1)
            writer.flush()
            print(f"[{parts.name}] epoch {epoch + 1}/{epochs}: loss {train_stats['train_loss']:.4f}, "
                  f"top-1 {val['top1']:.2f}, top-5 {val['top5']:.2f}, {train_stats['images_per_s']:.0f} img/s")
    if is_main:
        writer.close()
    return progress


def train_and_evaluate(parts: Parts, epoch: int) -> tuple[dict, dict]:
    """One epoch of training and the validation after it: (training stats, validation metrics).
    Every random draw of the epoch derives from (seed, epoch, rank)."""
    cfg, dist, loaders = parts.cfg, parts.dist, parts.loaders
    epochs = cfg.schedule.epochs
    seed = epoch_seed(cfg.run.seed, epoch, dist.rank)
    seed_everything(seed)
    loaders.sampler.set_epoch(epoch)
    if hasattr(getattr(loaders.train, "dataset", None), "set_epoch"):   # the reference pipeline's SeededSamples
        loaders.train.dataset.set_epoch(epoch)
    loaders.generator.manual_seed(seed)
    mixup_generator = torch.Generator().manual_seed(seed)
    bar = _progress(loaders.train, epoch, epochs, enabled=dist.is_main)
    on_log = None
    if dist.is_main:
        on_log = partial(_log_step, bar, parts.name, epoch, epochs, len(loaders.train))
    try:
        train_stats = train_one_epoch(
            parts.ddp_model, bar, parts.optimizer, parts.objective, lr_at=parts.schedule,
            first_step=parts.progress.step, device=dist.device, precision=cfg.run.precision, scaler=parts.scaler,
            generator=mixup_generator, use_mixup=epoch < epochs - cfg.loss.mixup_off_epochs,
            to_device=loaders.to_device, log_interval=cfg.run.log_interval, on_log=on_log)
        val = evaluate(parts.ddp_model, loaders.val, device=dist.device, precision=cfg.run.precision,
                       to_device=loaders.val_to_device)
    except NonFiniteLossError as e:
        good = parts.work / "last.pth" if (parts.work / "last.pth").exists() else None
        raise RunError(
            f"{e} (epoch {epoch}); tricks: {', '.join(cfg.tricks()) or 'none'}, precision {cfg.run.precision}, "
            f"peak lr {parts.peak_lr:g}. Last good checkpoint: {good or 'none yet'}. Usual causes: fp16 overflow "
            f"(try run.precision=bf16 or fp32), an lr too high for the batch (add warmup), or bad input data."
        ) from e
    except DatasetError as e:  # raised in a loader worker: keep its message, not the worker's traceback
        raise DatasetError(worker_error_message(e)) from None
    finally:
        bar.close()
    return train_stats, val


def finish(work: Path, name: str, recipe: str, model: ResNet, cfg: PretrainConfig, progress: Progress,
           run_info: dict, wall_time_s: float, device: str) -> None:
    """``backbone.pth``, then ``result.json``: the metrics are those of the last checkpoint,
    the weights the backbone is cut from."""
    metrics = progress.metrics
    if metrics is None:
        raise RunError(f"{work / 'last.pth'} holds no metrics (written by an older version of the suite); "
                       f"re-run the last epoch: delete {work} or start a new --work-dir")
    backbone_path = atomic_torch_save(work / "backbone.pth", model.backbone_state_dict())
    write_result(work, stage="pretrain", backbone=name, recipe=recipe, seed=cfg.run.seed,
                 metrics={"top1": metrics["top1"], "top5": metrics["top5"], "best_top1": progress.best_top1},
                 config=cfg.to_dict(), checkpoint=backbone_path.resolve(), wall_time_s=wall_time_s, device=device,
                 images_seen=progress.step * cfg.data.batch_size, backbone_sha256=sha256_file(backbone_path),
                 num_classes=cfg.model.num_classes, **run_info)
    print(f"[{name}] done: top-1 {metrics['top1']:.2f}, top-5 {metrics['top5']:.2f}; "
          f"backbone {backbone_path}, result {work / 'result.json'}")


def device_name(device: torch.device) -> str:
    """The device as result.json records it: ``cpu`` or the GPU's model."""
    return "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)


def _tensorboard(work: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(work / "tb"))


def _progress(loader, epoch: int, epochs: int, *, enabled: bool):
    """A progress bar on a terminal; in a log file (no terminal), periodic lines instead."""
    from tqdm import tqdm

    return tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (enabled and sys.stderr.isatty()),
                mininterval=1.0, dynamic_ncols=True, leave=False)


def _log_step(bar, name: str, epoch: int, epochs: int, steps_per_epoch: int, stats: dict) -> None:
    """Every ``run.log_interval`` iterations (when the loss is read from the device): the interval's
    mean loss, the lr and the speed, on the progress bar or as a line of the log."""
    if not bar.disable:
        bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.4g}", img_s=f"{stats['images_per_s']:.0f}",
                        refresh=False)
    else:
        print(f"[{name}] epoch {epoch + 1}/{epochs} iter {stats['step'] - epoch * steps_per_epoch}/{steps_per_epoch}: "
              f"loss {stats['loss']:.4f}, lr {stats['lr']:.4g}, {stats['images_per_s']:.0f} img/s", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        cfg = load_config(args.config, args.cfg_options)
        parts = setup(cfg, args.work_dir, resume=args.resume, device=args.device, started=started)
        progress = fit(parts, stop_after=args.stop_after)
        is_main, epochs = parts.dist.is_main, cfg.schedule.epochs
        if progress.epoch < epochs:
            if is_main:
                print(f"[{parts.name}] stopped after epoch {progress.epoch}/{epochs}; continue with --resume")
            return 0
        if is_main:
            finish(parts.work, parts.name, parts.recipe, parts.model, cfg, progress, parts.run_info,
                   parts.wall_time(), device_name(parts.dist.device))
        distributed.barrier()
        return 0
    except TrickBenchError as e:
        return report(e)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    imports_done()
    sys.exit(main())
