"""The typed configuration of a pretraining run: a contract between the config files, the
pretraining stage (``pretrain/run.py``), the study plan and the result record. It imports no
torch.

Config files are OpenMMLab-style Python files (``_base_`` inheritance, so each
variant is a small diff of its base; ``--cfg-options model.variant=D``
overrides); they are resolved here into one typed :class:`PretrainConfig`, and an
unknown or misspelled key is an error, never silently ignored.
Every trick is off by default: a config switches on exactly what it names.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .mmconfig import ConfigFileError, read_config
from .tricks import tricks_of
from .typed import ConfigError, build

__all__ = ["ConfigError", "PretrainConfig", "fingerprint_view", "from_dict", "load_config"]


@dataclass
class ModelConfig:
    depth: int = 50
    variant: str = "A"            # A (the original, the paper's baseline), B, C or D (He et al. 2019, §4)
    base_channels: int = 64       # width; 64 is the paper's
    num_classes: int = 1000
    zero_gamma: bool = False      # §3.1
    init: str = "kaiming"         # 'kaiming' (GluonCV's script) or 'xavier' (the paper's text, §2.1)


BACKENDS = ("cpu", "pil", "dali")


@dataclass
class DataConfig:
    root: str = "data/imagenet"   # holds train/<class>/*.JPEG and val/<class>/*.JPEG
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = 224         # RandomResizedCrop / center crop size
    val_resize: int = 256         # shorter side before the center crop
    augment: str = "paper"        # 'paper' (§2.1, PCA lighting included), 'flip' (small images: flip only) or 'none'
                                  # (resize + crop only)
    batch_size: int = 256         # global batch, over all processes
    workers: int = 8              # data loader workers per process
    backend: str = "cpu"          # 'cpu' (uint8 in the workers, the rest per batch on the device; pretrain/pipeline.py),
                                  # 'pil' (the reference: torchvision ImageFolder + PIL on floats, as before issue 22)
                                  # or 'dali' (NVIDIA DALI decodes the crops on the GPU; pretrain/dali.py)


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
    compile: bool = False         # torch.compile the model (timm's --torchcompile); needs a C++ compiler on a CPU
    log_interval: int = 50        # iterations between progress updates in the log
    name: str | None = None       # the backbone id, unique per run; default: from the work dir (see run.py)
    recipe: str | None = None     # shared by the seeds of one recipe; default: from the work dir


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
        """The paper's tricks this run switches on, in the paper's order (the variant is not one:
        see :mod:`trickbench.tricks`)."""
        return list(tricks_of(self.to_dict()))

    def validate(self) -> None:
        m, dc, o, s, loss, r = self.model, self.data, self.optim, self.schedule, self.loss, self.run
        checks = [
            (m.variant.upper() in "ABCD" and len(m.variant) == 1, "model.variant must be A, B, C or D"),
            (m.depth in (18, 34, 50, 101, 152), "model.depth must be 18, 34, 50, 101 or 152"),
            (m.base_channels >= 2 and m.base_channels % 2 == 0, "model.base_channels must be an even number >= 2"),
            (m.num_classes >= 2, "model.num_classes must be >= 2"),
            (m.init in ("kaiming", "xavier"), "model.init must be 'kaiming' or 'xavier'"),
            (dc.augment in ("paper", "flip", "none"), "data.augment must be 'paper', 'flip' or 'none'"),
            (dc.image_size >= 8, "data.image_size must be >= 8 pixels"),
            (dc.val_resize >= dc.image_size, "data.val_resize must be >= data.image_size (resize, then center crop)"),
            (dc.batch_size >= 1, "data.batch_size must be >= 1"),
            (dc.workers >= 0, "data.workers must be >= 0 (0 loads in the main process)"),
            (dc.backend in BACKENDS, f"data.backend must be one of {', '.join(BACKENDS)}"),
            (o.lr > 0, "optim.lr must be > 0"),
            (o.base_batch_size >= 1, "optim.base_batch_size must be >= 1"),
            (0 <= o.momentum < 1, "optim.momentum must be in [0, 1)"),
            (o.weight_decay >= 0, "optim.weight_decay must be >= 0"),
            (s.epochs >= 1, "schedule.epochs must be >= 1"),
            (0 <= s.warmup_epochs < s.epochs, "schedule.warmup_epochs must be in [0, schedule.epochs)"),
            (s.decay in ("step", "cosine", "constant"), "schedule.decay must be 'step', 'cosine' or 'constant'"),
            (all(e > 0 for e in s.milestones), "schedule.milestones must be epochs > 0"),
            (s.gamma > 0, "schedule.gamma must be > 0"),
            (0 <= loss.label_smoothing < 1, "loss.label_smoothing must be in [0, 1)"),
            (loss.mixup_alpha >= 0, "loss.mixup_alpha must be >= 0"),
            (0 <= loss.mixup_off_epochs <= s.epochs, "loss.mixup_off_epochs must be in [0, schedule.epochs]"),
            (loss.distill_temperature > 0, "loss.distill_temperature must be > 0"),
            (r.precision in ("fp32", "fp16", "bf16"), "run.precision must be 'fp32', 'fp16' or 'bf16'"),
            (r.log_interval >= 1, "run.log_interval must be >= 1 (iterations between log lines)"),
            (r.seed >= 0, "run.seed must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


# Keys added after studies had been planned with fingerprints, and the value each one takes by
# default. A fingerprint holds what the config decides, not the suite's code (a new version of the
# suite or of torch re-runs nothing), so such a key at its default is left out of it: a study planned
# before the key existed keeps its finished jobs. Set to anything else, it is part of the fingerprint.
ADDED_LATER = {("data", "backend"): "cpu", ("run", "compile"): False}


def fingerprint_view(values: dict) -> dict:
    """The resolved config dict as a study fingerprint hashes it (see ``ADDED_LATER``)."""
    out = {section: dict(keys) if isinstance(keys, dict) else keys for section, keys in values.items()}
    for (section, key), default in ADDED_LATER.items():
        if out.get(section, {}).get(key, default) == default:
            out.get(section, {}).pop(key, None)
    return out


def from_dict(values: dict) -> PretrainConfig:
    cfg = build(PretrainConfig, values)
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
        try:
            values = read_config(path).to_dict()
        except ConfigFileError as e:
            raise ConfigError(str(e)) from None
    if options:
        merged = Config(values)
        merged.merge_from_dict(options)
        values = merged.to_dict()
    return from_dict(values)
