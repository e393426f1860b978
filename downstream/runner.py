"""What ``detect.py`` and ``segment.py`` share: the reference config plus the pretrained
backbone, the transfer protocol (:mod:`trickbench.protocols`), mmengine's Runner (single
process or torchrun), and the result file.

The protocols these scripts train (``--protocol``):

- ``finetune``: the config as it is.
- ``frozen``: the whole backbone frozen, neck and heads trained with the config's schedule.
  mmdet's / mmseg's ``ResNet`` freeze the stem and stages 1..``frozen_stages`` (weights, and
  BatchNorm affine parameters and statistics: those modules stay in eval mode in ``train()``),
  so ``frozen_stages`` is set to the backbone's ``num_stages`` (4; the C4 detector's backbone
  has 3, and ``frozen_stages=4`` there would look for a ``layer4`` it does not have) and
  ``norm_eval=True``; the C4 detector's res5, the RoI head's ``shared_head``, gets
  ``frozen=True`` (:mod:`downstream.shared_head`). Set after the config is read, so that a
  config cannot undo it; checked on the model at the first iteration.
- ``ade-linear`` (segmentation): a config whose decode head is DINOv2's linear head
  (``TrickBenchBNHead``, :mod:`downstream.linear_head`) and that has no auxiliary head, with
  the backbone frozen as in ``frozen``.

Frozen parameters still sit in the optimizer's parameter groups (mmengine's
``DefaultOptimWrapperConstructor`` adds every parameter), but they never get a gradient, and
torch's SGD, Adam and AdamW skip a parameter whose ``grad`` is None: no weight decay, no
momentum step. The tests check the backbone bit for bit after training.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.runner import CheckpointLoader

from pretrain.checkpoint import CheckpointError, pretrain_result
from trickbench import protocols
from trickbench.errors import TrickBenchError
from trickbench.errors import report as report_error
from trickbench.errors import report_disk_full
from trickbench.fileio import atomic_write_bytes, remove_stale_temps
from trickbench.mmconfig import check_options, read_config
from trickbench.paths import REPO
from trickbench.results import MAIN_METRIC
from trickbench.runinfo import sha256_file
from trickbench.runtime import atomic_torch_save, write_result
from trickbench.worklock import lock_work_dir

from . import backbone as _backbone  # noqa: F401  (registers the TrickBenchPretrained initializer)
from .datacheck import run_datasets
from .external import load_external
from .heldout import apply_heldout, choose
from .per_image import PerImageResults
from .resume_rng import ResumeRandomState
from .safe_load import load_weights_only

OWN_CHECKPOINT = "trickbench-own://"
PROTOCOL_MARKER = ".trickbench-protocol"   # the protocol a run in this work dir was started with
# The protocols a fine-tuning script trains; each script runs those whose stages name its task.
TRAINED_PROTOCOLS = tuple(n for n, p in protocols.PROTOCOLS.items() if {"detection", "segmentation"} & set(p.stages))
LINEAR_HEAD = "TrickBenchBNHead"  # the ade-linear head, registered by downstream/linear_head.py
# mmdet's / mmseg's ResNet: frozen_stages freezes the stem and stages 1..frozen_stages
FREEZABLE_BACKBONES = ("ResNet", "ResNetV1c", "ResNetV1d")
FREEZABLE_SHARED_HEADS = ("TrickBenchResLayer",)


class DownstreamError(TrickBenchError, RuntimeError):
    pass


@CheckpointLoader.register_scheme(prefixes=OWN_CHECKPOINT)
def _load_own_checkpoint(filename: str, map_location=None, logger=None):
    """mmengine's resume checkpoints, read with ``weights_only=True`` like every other file:
    the few non-tensor types they pickle (HistoryBuffer, numpy scalars) are allowed by
    :mod:`downstream.safe_load`, and nothing else is."""
    path = filename[len(OWN_CHECKPOINT):]
    try:
        return load_weights_only(path, map_location=map_location or "cpu")
    except Exception as e:
        raise CheckpointError(f"--resume: cannot read {path} with weights_only=True: {e}. Delete it (and point "
                              f"{Path(path).parent / 'last_checkpoint'} at an earlier checkpoint) or start a new "
                              f"--work-dir") from e


@dataclass
class Backbone:
    """A pretrained backbone, as the downstream stages see it: a pretrain run of the
    suite, or a foreign checkpoint converted to OpenMMLab names (``state``)."""
    id: str
    arch: dict
    checkpoint: Path | None
    sha256: str | None
    top1: float | None
    pretrain_dir: Path | None
    source: str
    state: dict | None = None
    recipe: str | None = None
    seed: int | None = None     # the pretraining seed (a pretrain run's)


def resolve_backbone(source: str, *, variant: str | None = None, name: str | None = None,
                     top1: float | None = None) -> Backbone:
    """``source`` is a pretrain run directory, or a torchvision / timm / mmpretrain /
    OpenMMLab ResNet weights file (see :mod:`downstream.external`)."""
    path = Path(source)
    if path.is_dir():
        res = pretrain_result(path)
        if res.stage != "pretrain":
            raise CheckpointError(f"{path / 'result.json'} is a {res.stage} result, not a pretrain run")
        ckpt = path / "backbone.pth"
        if not ckpt.is_file():
            raise CheckpointError(f"{ckpt} is missing; the pretrain run in {path} did not finish")
        if not res.arch:
            raise CheckpointError(f"{path / 'result.json'} has no arch; re-run the pretraining")
        if variant is not None and variant.upper() != res.arch["variant"]:
            raise CheckpointError(f"--variant {variant}: {path} is a ResNet-{res.arch['variant']} run")
        return Backbone(name or res.backbone, res.arch, ckpt.resolve(), res.backbone_sha256,
                        res.metrics.get("top1") if top1 is None else top1, path.resolve(), "trickbench",
                        recipe=name or res.recipe, seed=res.seed)
    if path.is_file():
        ext = load_external(path, variant)
        bb_id = name or path.stem
        for note in ext.notes:
            print(f"[{bb_id}] note: {note}", flush=True)
        return Backbone(bb_id, ext.arch, None, None, top1, None, f"{ext.format}: {path.resolve()}", ext.state)
    raise CheckpointError(f"--backbone {source}: neither a pretrain run directory (result.json + backbone.pth) "
                          f"nor a checkpoint file")


class CaptureMetrics(Hook):
    """Keeps the metrics of the latest validation, and the iteration it ran at."""
    priority = "LOWEST"

    def __init__(self):
        self.metrics: dict | None = None
        self.at_iter = -1

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics, self.at_iter = dict(metrics or {}), runner.iter


class StopOnNonFiniteLoss(Hook):
    """mmengine trains on through NaN losses; stop at the first one instead, naming
    the iteration and the last good checkpoint."""
    priority = "VERY_HIGH"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")
        if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
            good = _last_checkpoint(Path(runner.work_dir))
            raise DownstreamError(
                f"loss is {float(loss)} at iteration {runner.iter + 1} (epoch {runner.epoch + 1}); last good "
                f"checkpoint: {good or 'none yet'}. Usual causes: an lr too high for the batch "
                f"(optim_wrapper.optimizer.lr, auto_scale_lr), fp16 overflow (drop --amp), or bad annotations.")


def parse_args(task: str, default_config: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Fine-tune a pretrained backbone for {task}.")
    p.add_argument("--backbone", required=True,
                   help="a pretrain run directory (result.json + backbone.pth), or a torchvision / timm / "
                        "mmpretrain ResNet weights file")
    p.add_argument("--variant", choices=list("ABCD"), help="the ResNet variant of a weights file (default: "
                   "read from its keys; A and B look alike there, B is assumed)")
    p.add_argument("--name", help="the backbone id on the leaderboard (default: the run's, or the file's stem)")
    p.add_argument("--recipe", help="the recipe the backbone belongs to, shared by its seeds (default: the run's, "
                                    "or --name)")
    p.add_argument("--top1", type=float, help="ImageNet top-1 of a weights file, for the leaderboard")
    p.add_argument("--config", default=default_config, help=f"an mmengine config (default: {default_config})")
    p.add_argument("--work-dir", help=f"default: BACKBONE/{task}/CONFIG_NAME")
    p.add_argument("--data-root", help="the dataset folder (overrides every data_root of the config)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work dir "
                                                         "(start the run if it has none yet)")
    p.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper; needs a GPU)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the fine-tune: the heads' initialisation and "
                                                       "the data order (default: %(default)s)")
    p.add_argument("--pretrain-seed", type=int, help="the pretraining seed of a weights file, for the record (a "
                                                     "pretrain run directory records its own)")
    p.add_argument("--heldout", type=float, metavar="FRACTION",
                   help="a hyperparameter trial: hold out this fraction of the training images (seeded, the same for "
                        "every backbone), train on the rest and score on it; the test split is not read")
    p.add_argument("--sweep", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                   help="the trial's grid point: config keys set like --cfg-options, recorded as the trial's values")
    p.add_argument("--select-from", nargs="+", type=Path, metavar="TRIAL_DIR",
                   help="use the grid point with the best mean held-out score over these trials' results (their "
                        "work dirs), and record the choice")
    p.add_argument("--protocol", choices=TRAINED_PROTOCOLS, default=protocols.DEFAULT,
                   help="the transfer protocol (trickbench/protocols.py): finetune (the config as it is), frozen "
                        "(the whole backbone frozen, neck and heads trained), ade-linear (segmentation: a linear "
                        "head on the frozen backbone, with a configs/segmentation/linear*.py config) "
                        "(default: %(default)s)")
    p.add_argument("--skip-data-check", action="store_true", help="skip the pre-flight dataset checks")
    args = p.parse_args(argv)
    stages = protocols.get(args.protocol).stages
    if task not in stages:
        allowed = [n for n in TRAINED_PROTOCOLS if task in protocols.get(n).stages]
        p.error(f"--protocol {args.protocol} is a {' and '.join(stages)} protocol; {task} runs "
                f"{' or '.join(allowed)}")
    return args


def set_data_root(cfg: Config, root: str) -> None:
    for ds in run_datasets(cfg):
        ds["data_root"] = root


def use_plain_bn(node) -> None:
    """SyncBN where the reference has it and several GPU processes run; BN otherwise
    (SyncBN needs a process group, and its kernels need GPUs)."""
    if isinstance(node, dict):
        if node.get("type") == "SyncBN":
            node["type"] = "BN"
        for v in node.values():
            use_plain_bn(v)
    elif isinstance(node, list):
        for v in node:
            use_plain_bn(v)


def prepare(cfg: Config, args: argparse.Namespace, task: str, bb: Backbone) -> Config:
    if args.data_root:
        set_data_root(cfg, args.data_root)
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    if args.cfg_options:
        cfg.merge_from_dict(check_options(cfg.to_dict(), args.cfg_options, args.config))
    validate(cfg)
    check_protocol(cfg, getattr(args, "protocol", protocols.DEFAULT), args.config)
    default_root = bb.pretrain_dir or REPO / "work_dirs" / bb.id
    work_dir = Path(args.work_dir) if args.work_dir else default_root / task / Path(args.config).stem
    cfg.work_dir = str(work_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cfg.launcher = "pytorch" if world > 1 else "none"
    if not torch.cuda.is_available():
        cfg.env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"  # NCCL needs GPUs
    if world == 1 or not torch.cuda.is_available():
        use_plain_bn(cfg._cfg_dict)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if int(os.environ.get("RANK", "0")) == 0:
        lock_work_dir(work_dir)  # held until the process ends; a second run into the same folder stops here
        if world == 1:  # with several processes, another rank may be writing its backbone.pth copy right now
            remove_stale_temps(work_dir)
    has_run = (work_dir / "last_checkpoint").exists() or (work_dir / "result.json").exists()
    marker = work_dir / "last_checkpoint"
    if args.resume and not marker.exists() and (work_dir / "result.json").exists():
        raise DownstreamError(f"--resume: the run in {work_dir} has finished (result.json) and has no checkpoint "
                              f"to continue from; choose another --work-dir to run it again")
    if args.resume and marker.exists():
        ckpt = Path(marker.read_text().strip())
        if not ckpt.is_file() or work_dir.resolve() not in ckpt.resolve().parents:
            raise DownstreamError(f"--resume: {marker} points at {ckpt}, which is not a checkpoint in {work_dir}")
        started = work_dir / PROTOCOL_MARKER
        protocol = getattr(args, "protocol", protocols.DEFAULT)
        was = started.read_text().strip() if started.is_file() else protocols.DEFAULT  # before the marker: finetune
        if was != protocol:
            raise DownstreamError(f"--resume: the run in {work_dir} was started with --protocol {was}; continue it "
                                  f"with --protocol {was}, or run --protocol {protocol} in another --work-dir "
                                  f"(nothing was changed)")
        cfg.resume, cfg.load_from = True, OWN_CHECKPOINT + str(ckpt)
    elif has_run:
        raise DownstreamError(f"{work_dir} already holds a {task} run; pass --resume to continue it or choose "
                              f"another --work-dir (nothing was changed)")
    elif int(os.environ.get("RANK", "0")) == 0:  # a new run: which protocol it trains, for a later --resume
        atomic_write_bytes(work_dir / PROTOCOL_MARKER, getattr(args, "protocol", protocols.DEFAULT).encode())
    return cfg


def apply_protocol(cfg: Config, args: argparse.Namespace, task: str) -> tuple[dict | None, dict | None]:
    """A trial's held-out split and grid point, or a final run's chosen hyperparameters;
    returns the records its result keeps (``heldout``, ``selection``)."""
    if args.heldout is not None and args.select_from:
        raise DownstreamError("--heldout (a trial) and --select-from (a run with chosen hyperparameters) exclude "
                              "each other")
    heldout = selection = None
    if args.sweep:
        if args.heldout is None:
            raise DownstreamError("--sweep sets a trial's grid point and needs --heldout: a grid point is scored on "
                                  "held-out training images, never on the test split")
        cfg.merge_from_dict(check_options(cfg.to_dict(), args.sweep, args.config))
    if args.heldout is not None:
        heldout = apply_heldout(cfg, args.heldout, Path(cfg.work_dir)) | {"values": dict(args.sweep)}
    if args.select_from:
        selection = choose(args.select_from, MAIN_METRIC[task])
        cfg.merge_from_dict(check_options(cfg.to_dict(), selection["chosen"], args.config))
    best = ((cfg.get("default_hooks") or {}).get("checkpoint") or {}).get("save_best")
    if best and heldout is None:
        raise DownstreamError(f"default_hooks.checkpoint.save_best={best!r} picks a checkpoint on the evaluation "
                              f"split, which is the test split here; drop it (the suite reports the last "
                              f"checkpoint), or choose settings on held-out data (a study's downstream.sweep)")
    return heldout, selection


def validate(cfg: Config) -> None:
    """The settings a run cannot start without, checked before anything is written."""
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if loader is None:
            continue
        batch = loader.get("batch_size")
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise DownstreamError(f"{key}.batch_size={batch!r}: it must be an integer >= 1")
        workers = loader.get("num_workers", 0)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise DownstreamError(f"{key}.num_workers={workers!r}: it must be an integer >= 0")
    train = cfg.get("train_cfg") or {}
    for key in ("max_epochs", "max_iters", "val_interval"):
        value = train.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DownstreamError(f"train_cfg.{key}={value!r}: it must be an integer >= 1")


def check_protocol(cfg: Config, name: str, config: str | os.PathLike) -> None:
    """The config fits the protocol: a linear head is run as ``ade-linear`` and ``ade-linear``
    runs only a linear head, without an auxiliary head; a frozen protocol's backbone (and the
    C4 detector's shared head) can be frozen whole. Checked before anything is written."""
    model = cfg.model
    head = (model.get("decode_head") or {}).get("type")
    if name == "ade-linear":
        if head != LINEAR_HEAD:
            raise DownstreamError(f"--protocol ade-linear: config {config} has decode head {head!r}, not "
                                  f"{LINEAR_HEAD} (DINOv2's linear head); use a configs/segmentation/linear*.py "
                                  f"config (nothing was written)")
        aux = model.get("auxiliary_head")
        if aux:
            raise DownstreamError(f"--protocol ade-linear: config {config} has an auxiliary head "
                                  f"({aux.get('type') if isinstance(aux, dict) else aux!r}); the linear protocol "
                                  f"trains the linear head alone: set model.auxiliary_head=None (nothing was written)")
    elif head == LINEAR_HEAD:
        raise DownstreamError(f"--protocol {name}: config {config} is a linear-probe config (decode head "
                              f"{LINEAR_HEAD}); run it with --protocol ade-linear (nothing was written)")
    if name == "finetune":
        return
    backbone = (model.get("backbone") or {}).get("type")
    if backbone not in FREEZABLE_BACKBONES:
        raise DownstreamError(f"--protocol {name}: config {config} has backbone {backbone!r}, which cannot be frozen "
                              f"whole here (frozen_stages freezes {', '.join(FREEZABLE_BACKBONES)})")
    shared = (model.get("roi_head") or {}).get("shared_head")
    if shared and shared.get("type") not in FREEZABLE_SHARED_HEADS:
        raise DownstreamError(f"--protocol {name}: config {config} runs part of the backbone in its RoI head as "
                              f"{shared.get('type')!r}, which cannot be frozen; use "
                              f"{' or '.join(FREEZABLE_SHARED_HEADS)} (downstream/shared_head.py)")


def apply_transfer_protocol(cfg: Config, name: str, config: str | os.PathLike) -> None:
    """The protocol step, after the backbone is in the config: ``frozen`` and ``ade-linear``
    freeze the whole backbone (``frozen_stages`` = its ``num_stages``, ``norm_eval``) and the
    C4 detector's shared head (``frozen``); ``finetune`` leaves the config as it is."""
    check_protocol(cfg, name, config)
    if name == "finetune":
        return
    backbone = cfg.model.backbone
    backbone.frozen_stages = backbone.get("num_stages", 4)
    backbone.norm_eval = True
    shared = (cfg.model.get("roi_head") or {}).get("shared_head")
    if shared:
        shared.frozen = True


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside mmengine's DDP wrapper (several processes), or the model itself."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def frozen_parts(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The modules that hold the pretrained backbone: ``backbone``, and the C4 detector's
    ``roi_head.shared_head``."""
    parts = {"backbone": model.backbone}
    shared = getattr(getattr(model, "roi_head", None), "shared_head", None)
    if shared is not None:
        parts["roi_head.shared_head"] = shared
    return parts


def not_frozen(model: torch.nn.Module) -> list[str]:
    """The backbone's parameters that take a gradient and its BatchNorm layers in training mode."""
    from torch.nn.modules.batchnorm import _BatchNorm

    out = []
    for prefix, part in frozen_parts(model).items():
        out += [f"{prefix}.{n}" for n, p in part.named_parameters() if p.requires_grad]
        out += [f"{prefix}.{n} (BatchNorm in training mode)" for n, m in part.named_modules()
                if isinstance(m, _BatchNorm) and m.training]
    return out


class KeepBackboneFrozen(Hook):
    """The frozen protocols' guarantee, checked on the model that trains, at its first
    iteration (after ``model.train()``): no backbone parameter takes a gradient and no
    backbone BatchNorm updates its statistics."""
    priority = "VERY_HIGH"

    def __init__(self, protocol: str):
        self.protocol, self.checked = protocol, False

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.checked:
            return
        self.checked = True
        loose = not_frozen(unwrap(runner.model))
        if loose:
            raise DownstreamError(f"--protocol {self.protocol}: {len(loose)} backbone parameters or BatchNorm layers "
                                  f"would train: {', '.join(loose[:5])}{' ...' if len(loose) > 5 else ''}")


def protocol_settings(cfg: Config, model: torch.nn.Module, task: str) -> dict:
    """What the run does, read from its final config and the model built from it (library
    defaults included): the backbone's frozen stages and BatchNorm, the shared head's (C4),
    the decode heads (segmentation), the schedule and the metric."""
    bb = model.backbone
    params = [p for part in frozen_parts(model).values() for p in part.parameters()]
    out = dict(frozen_stages=bb.frozen_stages, num_stages=bb.num_stages, norm_eval=bool(bb.norm_eval),
               norm_requires_grad=bool((bb.norm_cfg or {}).get("requires_grad", True)),
               backbone_tensors=len(params), backbone_trainable_tensors=sum(p.requires_grad for p in params))
    shared = frozen_parts(model).get("roi_head.shared_head")
    if shared is not None:
        out |= dict(shared_head_frozen=bool(getattr(shared, "frozen", False)),
                    shared_head_norm_eval=bool(shared.norm_eval),
                    shared_head_norm_requires_grad=bool((shared.norm_cfg or {}).get("requires_grad", True)))
    if task == "segmentation":
        aux = cfg.model.get("auxiliary_head")
        out |= dict(decode_head=cfg.model.decode_head.type, decode_head_in_index=model.decode_head.in_index,
                    decode_head_dropout=model.decode_head.dropout_ratio,
                    auxiliary_head=(aux.get("type") if isinstance(aux, dict) else None))
    train = cfg.train_cfg
    out |= {k: train[k] for k in ("max_iters", "max_epochs") if k in train}
    optimizer = cfg.optim_wrapper.optimizer
    out |= dict(optimizer=optimizer.type, lr=optimizer.lr, batch_size=cfg.train_dataloader.batch_size)
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    out |= dict(metric_name=MAIN_METRIC[task], evaluator=evaluators[0]["type"])
    return out


def run(task: str, args: argparse.Namespace, apply_backbone, check_data, read_metrics) -> int:
    """The whole stage; ``apply_backbone(cfg, backbone)``, ``check_data(cfg)`` and
    ``read_metrics(metrics) -> dict`` are the task's own parts."""
    from mmengine.runner import Runner

    t0 = time.time()
    bb = resolve_backbone(args.backbone, variant=args.variant, name=args.name, top1=args.top1)
    if args.recipe:
        bb.recipe = args.recipe
    config_path = Path(args.config)
    if not config_path.is_file():
        raise DownstreamError(f"config {config_path} does not exist (the configs are under configs/{task}/)")
    cfg = prepare(read_config(config_path), args, task, bb)
    heldout, selection = apply_protocol(cfg, args, task)
    if bb.state is not None:  # a foreign checkpoint: keep the converted weights with the run
        bb.checkpoint = atomic_torch_save(Path(cfg.work_dir) / "backbone.pth", bb.state).resolve()
        bb.sha256 = sha256_file(bb.checkpoint)
    apply_backbone(cfg, bb)
    apply_transfer_protocol(cfg, args.protocol, config_path)
    if not args.skip_data_check:  # every process, so that none waits for a rank that stopped
        check_data(cfg)
    runner = Runner.from_cfg(cfg)
    protocol = protocols.get(args.protocol).record(**protocol_settings(cfg, unwrap(runner.model), task))
    if args.protocol != "finetune":
        runner.register_hook(KeepBackboneFrozen(args.protocol))
    capture = CaptureMetrics()
    runner.register_hook(capture)
    runner.register_hook(StopOnNonFiniteLoss())
    runner.register_hook(ResumeRandomState())
    if heldout is None:  # scored on the test split: keep per_image.npz (a trial scores held-out training images)
        runner.register_hook(PerImageResults())
    runner.train()
    if capture.metrics is None or capture.at_iter != runner.iter:
        runner.val_loop.run()  # the schedule did not end on a validation
    if runner.rank == 0:
        world = runner.world_size
        batch = cfg.train_dataloader.batch_size
        write_result(
            cfg.work_dir, stage=task, backbone=bb.id, recipe=bb.recipe or bb.id, seed=args.seed,
            metrics=read_metrics(capture.metrics),
            config=cfg.to_dict(), checkpoint=_last_checkpoint(Path(cfg.work_dir)),
            wall_time_s=time.time() - t0, config_file=str(config_path), backbone_sha256=bb.sha256,
            pretrain_dir=str(bb.pretrain_dir) if bb.pretrain_dir else None, top1=bb.top1, arch=bb.arch,
            backbone_source=bb.source,
            iterations=runner.iter, images_seen=runner.iter * batch * world, raw_metrics=capture.metrics,
            pretrain_seed=bb.seed if bb.seed is not None else args.pretrain_seed, finetune_seed=args.seed,
            heldout=heldout, selection=selection, protocol=protocol)
        print(f"[{bb.id}] {task} done: " + ", ".join(f"{k} {v:.2f}" for k, v in read_metrics(capture.metrics).items())
              + f"; result {Path(cfg.work_dir) / 'result.json'}")
    return 0


def _last_checkpoint(work_dir: Path) -> str | None:
    marker = work_dir / "last_checkpoint"  # written by mmengine's CheckpointHook
    return marker.read_text().strip() if marker.exists() else None


def main(task: str, default_config: str, apply_backbone, check_data, read_metrics, argv=None) -> int:
    args = parse_args(task, default_config, argv)
    try:
        return run(task, args, apply_backbone, check_data, read_metrics)
    except TrickBenchError as e:
        return report_error(e)
    except OSError as e:
        return report_disk_full(e, "a checkpoint", "continue with --resume: finished checkpoints are intact")
