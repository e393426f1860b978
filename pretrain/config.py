"""The typed configuration of a pretraining run.

Config files are OpenMMLab-style Python files (``_base_`` inheritance, so each
variant is a small diff of its base; ``--cfg-options model.variant=D``
overrides); they are resolved here into one typed :class:`PretrainConfig`, and an
unknown or misspelled key is an error, never silently ignored.
Every trick is off by default: a config switches on exactly what it names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    depth: int = 50
    variant: str = "A"            # A (the original, the paper's baseline), B, C or D (He et al. 2019, §4)
    base_channels: int = 64       # width; 64 is the paper's
    num_classes: int = 1000
    zero_gamma: bool = False      # §3.1
    init: str = "kaiming"         # 'kaiming' (GluonCV's script) or 'xavier' (the paper's text, §2.1)


@dataclass
class DataConfig:
    root: str = "data/imagenet"   # holds train/<class>/*.JPEG and val/<class>/*.JPEG
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = 224         # RandomResizedCrop / center crop size
    val_resize: int = 256         # shorter side before the center crop
    augment: str = "paper"        # 'paper' (§2.1, PCA lighting included) or 'none' (resize + crop only)
    batch_size: int = 256         # global batch, over all processes
    workers: int = 8              # data loader workers per process


@dataclass
class OptimConfig:
    lr: float = 0.1               # the lr for base_batch_size images
    base_batch_size: int = 256
    linear_scaling: bool = False  # §3.1: lr * batch_size / base_batch_size
    momentum: float = 0.9
    nesterov: bool = True         # §2.1
    weight_decay: float = 1e-4
    no_bias_decay: bool = False   # §3.1


@dataclass
class ScheduleConfig:
    epochs: int = 120
    warmup_epochs: float = 0.0    # §3.1, linear per iteration
    decay: str = "step"           # 'step' (§2.1), 'cosine' (§5.1) or 'constant'
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])
    gamma: float = 0.1


@dataclass
class LossConfig:
    label_smoothing: float = 0.0  # §5.2, eps
    mixup_alpha: float = 0.0      # §5.4, Beta(alpha, alpha); 0 = off
    mixup_off_epochs: int = 0     # train the last N epochs without mixup
    distill_teacher: str | None = None   # §5.3: a pretrain run dir or a classifier checkpoint
    distill_temperature: float = 20.0


@dataclass
class RunConfig:
    precision: str = "fp32"       # 'fp32', 'fp16' (autocast + loss scaling, §3.2) or 'bf16'
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = False
    log_interval: int = 50        # iterations between progress updates in the log
    name: str | None = None       # the backbone id; default: the work dir's name


@dataclass
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def tricks(self) -> list[str]:
        """The paper's tricks this run switches on, in the paper's order."""
        o, s, loss, m = self.optim, self.schedule, self.loss, self.model
        on = {
            "linear_scaling": o.linear_scaling,
            "warmup": s.warmup_epochs > 0,
            "zero_gamma": m.zero_gamma,
            "no_bias_decay": o.no_bias_decay,
            self.run.precision: self.run.precision != "fp32",
            "cosine": s.decay == "cosine",
            "label_smoothing": loss.label_smoothing > 0,
            "distill": loss.distill_teacher is not None,
            "mixup": loss.mixup_alpha > 0,
        }
        return [name for name, enabled in on.items() if enabled]

    def validate(self) -> None:
        checks = [
            (self.model.variant.upper() in "ABCD" and len(self.model.variant) == 1, "model.variant must be A, B, C or D"),
            (self.model.depth in (18, 34, 50, 101, 152), "model.depth must be 18, 34, 50, 101 or 152"),
            (self.model.init in ("kaiming", "xavier"), "model.init must be 'kaiming' or 'xavier'"),
            (self.data.augment in ("paper", "none"), "data.augment must be 'paper' or 'none'"),
            (self.schedule.decay in ("step", "cosine", "constant"), "schedule.decay must be 'step', 'cosine' or 'constant'"),
            (self.run.precision in ("fp32", "fp16", "bf16"), "run.precision must be 'fp32', 'fp16' or 'bf16'"),
            (0 <= self.loss.label_smoothing < 1, "loss.label_smoothing must be in [0, 1)"),
            (self.loss.mixup_alpha >= 0, "loss.mixup_alpha must be >= 0"),
            (self.loss.distill_temperature > 0, "loss.distill_temperature must be > 0"),
            (self.schedule.epochs > 0 and self.data.batch_size > 0, "schedule.epochs and data.batch_size must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def _build(cls: type, values: dict, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a dict, got {values!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(f'{where}{k}' for k in unknown)}; "
                          f"known keys of {where.rstrip('.') or 'the config'}: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in values.items():
        sub = hints[k]
        if dataclasses.is_dataclass(sub):
            kwargs[k] = _build(sub, v, f"{where}{k}.")
        else:
            kwargs[k] = list(v) if isinstance(v, tuple) else v
    return cls(**kwargs)


def from_dict(values: dict) -> PretrainConfig:
    cfg = _build(PretrainConfig, values, "")
    cfg.validate()
    return cfg


def load_config(path: str | Path | None, options: dict[str, Any] | None = None) -> PretrainConfig:
    """A config file (or the defaults, the paper's baseline, when ``path`` is None) plus ``--cfg-options``."""
    from mmengine.config import Config

    if path is None:
        values: dict = {}
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (the configs are under configs/pretrain/)")
        values = Config.fromfile(str(path)).to_dict()
    if options:
        merged = Config(values)
        merged.merge_from_dict(options)
        values = merged.to_dict()
    return from_dict(values)
