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
import sys
import time
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
from pretrain.config import ConfigError, PretrainConfig, load_config
from pretrain.data import DatasetError, image_folder, train_transform, val_transform
from pretrain.engine import NonFiniteLossError, evaluate, train_one_epoch
from pretrain.models import ResNet, resnet
from pretrain.objective import Objective
from pretrain.tricks.lr_schedule import linear_scaled_lr, lr_at
from pretrain.tricks.param_groups import param_groups
from trickbench.fileio import append_jsonl, atomic_torch_save, atomic_write_bytes, atomic_write_json
from trickbench.runinfo import environment, sha256_file, write_result


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs/pretrain/resnet50_baseline.py"


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


class RunError(RuntimeError):
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
    sampler = DistributedSampler(train, num_replicas=d.world_size, rank=d.rank, shuffle=True,
                                 seed=cfg.run.seed, drop_last=True)
    generator = torch.Generator()
    kw = dict(num_workers=dc.workers, pin_memory=d.device.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train, batch_size=per_proc, sampler=sampler, drop_last=True, generator=generator, **kw)
    # Disjoint, unpadded shards: the validation figures are exact for any number of processes.
    val_shard = Subset(val, list(range(d.rank, len(val), d.world_size)))
    val_loader = DataLoader(val_shard, batch_size=per_proc, shuffle=False, **kw)
    return train_loader, val_loader, sampler, generator, per_proc


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    cfg = load_config(args.config, args.cfg_options)
    d = distributed.init(args.device)
    work = Path(args.work_dir)
    name = cfg.run.name or work.resolve().name
    last_path, best_path = work / "last.pth", work / "best.pth"
    if last_path.exists() and not args.resume:
        raise RunError(f"{work} already holds a run ({last_path}); pass --resume to continue it, "
                       f"or choose another --work-dir (nothing was changed)")
    if d.is_main:
        work.mkdir(parents=True, exist_ok=True)
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

    start_epoch, step, best_top1 = 0, 0, float("-inf")
    if args.resume and last_path.exists():
        ckpt = load(last_path)
        changed = _config_changes(ckpt["config"], cfg.to_dict())
        if changed:
            raise RunError(f"{last_path} was written with another config ({', '.join(changed)}); resume with "
                           f"the same config and --cfg-options, or start a new --work-dir")
        load_state_strict(model, ckpt["model"], last_path)
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step, best_top1 = ckpt["epoch"], ckpt["step"], ckpt["best_top1"]
        if d.is_main:
            print(f"resumed from {last_path} at epoch {start_epoch}, iteration {step}")

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
        _trim_metrics(work / "metrics.jsonl", start_epoch)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(work / "tb"))
        print(f"[{name}] ResNet-{m.depth}-{arch['variant']} width {m.base_channels}, tricks: "
              f"{', '.join(cfg.tricks()) or 'none (baseline)'}; global batch {cfg.data.batch_size} on "
              f"{d.world_size} process(es), lr {o.lr} -> {peak_lr:g}; weight decay on {counts['decay']} "
              f"tensors, none on {counts['no_decay']}")

    metrics = {}
    end_epoch = s.epochs if args.stop_after is None else min(s.epochs, start_epoch + args.stop_after)
    for epoch in range(start_epoch, end_epoch):
        es = epoch_seed(cfg.run.seed, epoch, d.rank)
        seed_everything(es)
        sampler.set_epoch(epoch)
        loader_gen.manual_seed(es)
        mix_gen = torch.Generator().manual_seed(es)
        bar = _progress(train_loader, epoch, s.epochs, enabled=d.is_main)
        try:
            train_stats = train_one_epoch(
                ddp_model, bar, optimizer, objective, lr_at=schedule, first_step=step, device=d.device,
                precision=cfg.run.precision, scaler=scaler, generator=mix_gen,
                use_mixup=epoch < s.epochs - cfg.loss.mixup_off_epochs, channels_last=cfg.run.channels_last,
                on_step=_reporter(bar, name, epoch, s.epochs, steps_per_epoch, cfg.run.log_interval)
                if d.is_main else None)
        except NonFiniteLossError as e:
            good = last_path if last_path.exists() else None
            raise RunError(
                f"{e} (epoch {epoch}); tricks: {', '.join(cfg.tricks()) or 'none'}, precision {cfg.run.precision}, "
                f"peak lr {peak_lr:g}. Last good checkpoint: {good or 'none yet'}. Usual causes: fp16 overflow "
                f"(try run.precision=bf16 or fp32), an lr too high for the batch (add warmup), or bad input data."
            ) from e
        finally:
            bar.close()
        step = train_stats["next_step"]
        val = evaluate(ddp_model, val_loader, device=d.device, precision=cfg.run.precision,
                       channels_last=cfg.run.channels_last)
        metrics = {"epoch": epoch + 1, "step": step, "lr": schedule(step - 1), **train_stats, **val}
        metrics.pop("next_step")
        improved = val["top1"] > best_top1
        best_top1 = max(best_top1, val["top1"])
        if d.is_main:
            ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch + 1, "step": step,
                    "best_top1": best_top1, "config": cfg.to_dict(),
                    "sampler": {"seed": cfg.run.seed, "epoch": epoch + 1}}
            atomic_torch_save(last_path, ckpt)
            if improved:
                atomic_torch_save(best_path, ckpt)
            append_jsonl(work / "metrics.jsonl", metrics)
            for k in ("train_loss", "val_loss", "top1", "top5", "lr", "images_per_s"):
                writer.add_scalar(k, metrics[k], epoch + 1)
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
        if not metrics:  # resumed a run that had already finished
            metrics = _last_metrics(work / "metrics.jsonl")
        backbone_path = atomic_torch_save(work / "backbone.pth", model.backbone_state_dict())
        write_result(work, stage="pretrain", backbone=name,
                     metrics={"top1": metrics["top1"], "top5": metrics["top5"], "best_top1": best_top1},
                     config=cfg.to_dict(), checkpoint=backbone_path.resolve(), wall_time_s=time.time() - t0,
                     backbone_sha256=sha256_file(backbone_path), num_classes=m.num_classes, **run_info)
        print(f"[{name}] done: top-1 {metrics['top1']:.2f}, top-5 {metrics['top5']:.2f}; "
              f"backbone {backbone_path}, result {work / 'result.json'}")
    distributed.barrier()
    return 0


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


def _trim_metrics(path: Path, epochs_done: int) -> None:
    """On resume, drop per-epoch lines newer than the checkpoint (written after it)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
    if len(kept) != len(lines):
        atomic_write_bytes(path, "".join(ln + "\n" for ln in kept).encode())


def _last_metrics(path: Path) -> dict:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ConfigError, DatasetError, CheckpointError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
