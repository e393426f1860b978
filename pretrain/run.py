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
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):
    # Run as a script: drop this folder from the path so its generic module names
    # (config, data, distributed, models) cannot shadow top-level packages; `pretrain`
    # itself is installed. The other entry scripts' folders hold no such names.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pretrain import distributed
from pretrain.checkpoint import CheckpointError, load, load_classifier, load_state_strict
from trickbench.pretrain_config import ConfigError, PretrainConfig, load_config
from pretrain.data import (DatasetError, SeededSamples, image_folder, train_transform, val_transform,
                          worker_error_message)
from pretrain.engine import NonFiniteLossError, evaluate, train_one_epoch
from pretrain.models import ResNet, resnet
from pretrain.objective import Objective
from pretrain.tricks.lr_schedule import linear_scaled_lr, lr_at
from pretrain.tricks.param_groups import param_groups
from trickbench.fileio import (append_jsonl, atomic_torch_save, atomic_write_bytes, atomic_write_json,
                              read_jsonl, remove_stale_temps)
from trickbench.runinfo import environment, sha256_file, write_result
from trickbench.worklock import lock_work_dir
from trickbench.errors import TrickBenchError, report
from trickbench.paths import PRETRAIN_CONFIGS


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
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Every random draw of an epoch derives from (seed, epoch, rank), which is what
    makes a resumed run identical to an uninterrupted one."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % 2**63


def build_loaders(cfg: PretrainConfig, d: distributed.Dist):
    dc = cfg.data
    if dc.batch_size % d.world_size:
        raise ConfigError(f"data.batch_size={dc.batch_size} (global) is not divisible by {d.world_size} processes")
    per_proc = dc.batch_size // d.world_size
    train = image_folder(dc.root, dc.train_split, train_transform(dc.image_size, dc.augment))
    val = image_folder(dc.root, dc.val_split, val_transform(dc.image_size, dc.val_resize), classes=train.classes)
    if len(train.classes) != cfg.model.num_classes:
        raise ConfigError(f"{Path(dc.root) / dc.train_split} has {len(train.classes)} classes but "
                          f"model.num_classes={cfg.model.num_classes}; set --cfg-options model.num_classes={len(train.classes)}")
    if len(train) < dc.batch_size:
        raise ConfigError(f"data.batch_size={dc.batch_size} is larger than the {len(train)} training images "
                          f"under {Path(dc.root) / dc.train_split}")
    train = SeededSamples(train, cfg.run.seed)
    sampler = DistributedSampler(train, num_replicas=d.world_size, rank=d.rank, shuffle=True,
                                 seed=cfg.run.seed, drop_last=True)
    generator = torch.Generator()
    kw = dict(num_workers=dc.workers, pin_memory=d.device.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train, batch_size=per_proc, sampler=sampler, drop_last=True, generator=generator, **kw)
    # Disjoint, unpadded shards: the validation figures are exact for any number of processes.
    val_shard = Subset(val, list(range(d.rank, len(val), d.world_size)))
    val_loader = DataLoader(val_shard, batch_size=per_proc, shuffle=False, **kw)
    return train_loader, val_loader, sampler, generator, per_proc


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
class Progress:
    """Where a run stands: what the last checkpoint holds besides the weights."""
    epoch: int = 0                 # epochs done
    step: int = 0                  # iterations done
    best_top1: float = float("-inf")
    best_epoch: int = 0
    metrics: dict | None = None    # the last epoch's metrics line
    elapsed_s: float = 0.0         # wall time of the run so far, over every invocation


def open_work_dir(work: Path, resume: bool, d: distributed.Dist) -> None:
    """Lock the work dir for this run (main process), clear the temp files of writes a
    kill interrupted, and refuse to overwrite a run without ``--resume``."""
    if d.is_main:
        lock_work_dir(work)  # held until the process ends
        for stale in remove_stale_temps(work):
            print(f"removed {stale}, left by an interrupted write")
    last = work / "last.pth"
    if last.exists() and not resume:
        raise RunError(f"{work} already holds a run ({last}); pass --resume to continue it, "
                       f"or choose another --work-dir (nothing was changed)")


def restore(work: Path, cfg: PretrainConfig, model, optimizer, scaler, d: distributed.Dist) -> Progress:
    """Model, optimizer, loss scaler and schedule position from ``last.pth``. The checkpoint is
    the commit point of an epoch: what a kill left unwritten after it (that epoch's metrics
    line, ``best.pth``) is written again from it, and lines after it are dropped."""
    last_path = work / "last.pth"
    ckpt = load(last_path)
    changed = _config_changes(ckpt["config"], cfg.to_dict())
    if changed:
        raise RunError(f"{last_path} was written with another config ({', '.join(changed)}); resume with "
                       f"the same config and --cfg-options, or start a new --work-dir")
    load_state_strict(model, ckpt["model"], last_path)
    optimizer.load_state_dict(ckpt["optimizer"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    progress = Progress(ckpt["epoch"], ckpt["step"], ckpt["best_top1"], ckpt.get("best_epoch", 0), ckpt.get("metrics"),
                        ckpt.get("elapsed_s", 0.0))
    if d.is_main:
        _sync_metrics(work / "metrics.jsonl", progress)
        _sync_best(work, progress)
        print(f"resumed from {last_path} at epoch {progress.epoch}, iteration {progress.step}")
    return progress


def save_epoch(work: Path, model, optimizer, scaler, cfg: PretrainConfig, progress: Progress, improved: bool) -> None:
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


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    cfg = load_config(args.config, args.cfg_options)
    d = distributed.init(args.device)
    work = Path(args.work_dir)
    name, recipe = run_ids(work, cfg)
    open_work_dir(work, args.resume, d)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif d.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.run.seed + d.rank)

    train_loader, val_loader, sampler, loader_gen, per_proc = build_loaders(cfg, d)
    m = cfg.model
    model: ResNet = resnet(m.depth, m.variant, num_classes=m.num_classes, base_channels=m.base_channels,
                           zero_gamma=m.zero_gamma, init=m.init)
    arch = model.arch()
    memory_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    model = model.to(d.device, memory_format=memory_format)

    o = cfg.optim
    peak_lr = linear_scaled_lr(o.lr, cfg.data.batch_size, o.base_batch_size) if o.linear_scaling else o.lr
    groups, counts = param_groups(model, o.weight_decay, o.no_bias_decay)
    optimizer = torch.optim.SGD(groups, lr=peak_lr, momentum=o.momentum, nesterov=o.nesterov)
    scaler = torch.amp.GradScaler(d.device.type) if cfg.run.precision == "fp16" else None
    s = cfg.schedule
    steps_per_epoch = len(train_loader)

    def schedule(step: int) -> float:
        return lr_at(step, peak_lr=peak_lr, steps_per_epoch=steps_per_epoch, epochs=s.epochs,
                     warmup_epochs=s.warmup_epochs, decay=s.decay, milestones=s.milestones, gamma=s.gamma)

    teacher = None
    if cfg.loss.distill_teacher:
        teacher = load_classifier(cfg.loss.distill_teacher).to(d.device, memory_format=memory_format).eval()
        teacher.requires_grad_(False)
        if teacher.fc.out_features != m.num_classes:
            raise CheckpointError(f"teacher {cfg.loss.distill_teacher} predicts {teacher.fc.out_features} classes, "
                                  f"the student {m.num_classes}")
    objective = Objective(m.num_classes, cfg.loss.label_smoothing, cfg.loss.mixup_alpha, teacher,
                          cfg.loss.distill_temperature)

    progress = Progress()
    if args.resume and (work / "last.pth").exists():
        progress = restore(work, cfg, model, optimizer, scaler, d)
    before = progress.elapsed_s  # the invocations before this one

    ddp_model = model
    if d.enabled:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)

    run_info = {"name": name, "arch": arch, "tricks": cfg.tricks(), "global_batch_size": cfg.data.batch_size,
                "batch_size_per_process": per_proc, "world_size": d.world_size, "base_lr": o.lr,
                "peak_lr": peak_lr, "param_groups": counts, "steps_per_epoch": steps_per_epoch}
    writer = None
    if d.is_main:
        atomic_write_json(work / "config.json", {"config": cfg.to_dict(), **run_info, **environment()})
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(work / "tb"))
        print(f"[{name}] ResNet-{m.depth}-{arch['variant']} width {m.base_channels}, tricks: "
              f"{', '.join(cfg.tricks()) or 'none (baseline)'}; global batch {cfg.data.batch_size} on "
              f"{d.world_size} process(es), lr {o.lr} -> {peak_lr:g}; weight decay on {counts['decay']} "
              f"tensors, none on {counts['no_decay']}")

    end_epoch = s.epochs if args.stop_after is None else min(s.epochs, progress.epoch + args.stop_after)
    for epoch in range(progress.epoch, end_epoch):
        es = epoch_seed(cfg.run.seed, epoch, d.rank)
        seed_everything(es)
        sampler.set_epoch(epoch)
        train_loader.dataset.set_epoch(epoch)
        loader_gen.manual_seed(es)
        mix_gen = torch.Generator().manual_seed(es)
        bar = _progress(train_loader, epoch, s.epochs, enabled=d.is_main)
        try:
            train_stats = train_one_epoch(
                ddp_model, bar, optimizer, objective, lr_at=schedule, first_step=progress.step, device=d.device,
                precision=cfg.run.precision, scaler=scaler, generator=mix_gen,
                use_mixup=epoch < s.epochs - cfg.loss.mixup_off_epochs, channels_last=cfg.run.channels_last,
                on_step=_reporter(bar, name, epoch, s.epochs, steps_per_epoch, cfg.run.log_interval)
                if d.is_main else None)
            val = evaluate(ddp_model, val_loader, device=d.device, precision=cfg.run.precision,
                           channels_last=cfg.run.channels_last)
        except NonFiniteLossError as e:
            good = work / "last.pth" if (work / "last.pth").exists() else None
            raise RunError(
                f"{e} (epoch {epoch}); tricks: {', '.join(cfg.tricks()) or 'none'}, precision {cfg.run.precision}, "
                f"peak lr {peak_lr:g}. Last good checkpoint: {good or 'none yet'}. Usual causes: fp16 overflow "
                f"(try run.precision=bf16 or fp32), an lr too high for the batch (add warmup), or bad input data."
            ) from e
        except DatasetError as e:  # raised in a loader worker: keep its message, not the worker's traceback
            raise DatasetError(worker_error_message(e)) from None
        finally:
            bar.close()
        progress.step = train_stats.pop("next_step")
        progress.epoch = epoch + 1
        progress.metrics = {"epoch": epoch + 1, "step": progress.step, "lr": schedule(progress.step - 1),
                            **train_stats, **val}
        progress.elapsed_s = before + time.time() - t0
        improved = val["top1"] > progress.best_top1
        if improved:
            progress.best_top1, progress.best_epoch = val["top1"], epoch + 1
        if d.is_main:
            save_epoch(work, model, optimizer, scaler, cfg, progress, improved)
            for k in ("train_loss", "val_loss", "top1", "top5", "lr", "images_per_s"):
                writer.add_scalar(k, progress.metrics[k], epoch + 1)
            writer.flush()
            print(f"[{name}] epoch {epoch + 1}/{s.epochs}: loss {train_stats['train_loss']:.4f}, "
                  f"top-1 {val['top1']:.2f}, top-5 {val['top5']:.2f}, {train_stats['images_per_s']:.0f} img/s")

    if d.is_main:
        writer.close()
    if end_epoch < s.epochs:
        if d.is_main:
            print(f"[{name}] stopped after epoch {end_epoch}/{s.epochs}; continue with --resume")
        return 0
    if d.is_main:
        device = "cpu" if d.device.type == "cpu" else torch.cuda.get_device_name(d.device)
        finish(work, name, recipe, model, cfg, progress, run_info, before + time.time() - t0, device)
    distributed.barrier()
    return 0


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


def _progress(loader, epoch: int, epochs: int, *, enabled: bool):
    """A progress bar on a terminal; in a log file (no terminal), periodic lines instead."""
    from tqdm import tqdm

    return tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (enabled and sys.stderr.isatty()),
                mininterval=1.0, dynamic_ncols=True, leave=False)


def _reporter(bar, name: str, epoch: int, epochs: int, steps_per_epoch: int, log_interval: int):
    def report(st: dict) -> None:
        if not bar.disable:
            bar.set_postfix(loss=f"{st['loss']:.3f}", lr=f"{st['lr']:.4g}", img_s=f"{st['images_per_s']:.0f}",
                            refresh=False)
        elif st["step"] % log_interval == 0:
            print(f"[{name}] epoch {epoch + 1}/{epochs} iter {st['step'] - epoch * steps_per_epoch}/{steps_per_epoch}: "
                  f"loss {st['loss']:.4f}, lr {st['lr']:.4g}, {st['images_per_s']:.0f} img/s", flush=True)
    return report


# Where the data lives and how it is logged may change between a run and its resume.
RESUME_MAY_CHANGE = {"data.root", "data.workers", "run.log_interval"}


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
        raise RunError(str(e)) from None
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


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except TrickBenchError as e:
        return report(e)
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
