"""``result.json``: the record every stage writes when it finishes, and the one way it is read.

Each stage (``pretrain/run.py``, ``downstream/detect.py``, ``downstream/segment.py``)
writes one :class:`Result` through :func:`write` when it ends; the leaderboard and
the analysis read them through :func:`read` and :func:`find`. A file that does not
hold a valid record raises :class:`ResultError`, which names the file and the fix.

The fields a comparison study needs are named: ``backbone`` (unique per run: one
seed of one recipe), ``recipe`` (shared by the seeds of one recipe), ``seed``,
``metrics`` (percent), and ``cost`` (wall time, device kind and count,
device-hours, images seen and images/s). What is particular to a stage (iteration
counts, raw metric names, the environment) stays in ``extra``, whose keys are written
at the top level of the file next to the named fields (so ``res["iterations"]`` reads
as before).

Files written before this record existed still read: their recipe is their
backbone id, their seed the config's (``run.seed`` or ``randomness.seed``), and
their cost is rebuilt from ``wall_time_s``, ``world_size`` and ``gpus``.

A pretraining result's ``tricks`` are derived when it is read, from its recorded resolved
config and the one trick table (:mod:`trickbench.tricks`), never taken from the file: a
result written before a trick entered the table names it as a new one does. (The list
written into the file is the same derivation, for a reader of the JSON.)
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import protocols
from .errors import TrickBenchError
from .fileio import atomic_write_json, read_json
from .tricks import factors, tricks_of, variant_of

NAME = "result.json"
# A test-split job's per-image record, next to its result.json: written by downstream/per_image.py,
# read by evaluation/evalset.py (which may not import downstream/), so the contract lives here.
PER_IMAGE_FILE = "per_image.npz"
PER_IMAGE_FORMAT = 1
STAGES = ("pretrain", "detection", "segmentation", "probe")
# The metric a result of each stage cannot be without, and every metric it may carry (percent).
# A probe's (downstream/probe.py) depends on its protocol: PROBE_METRIC.
MAIN_METRIC = {"pretrain": "top1", "detection": "map", "segmentation": "miou"}
PROBE_METRIC = {"knn": "top1", "voc07-svm": "map"}
METRICS = {"pretrain": ("top1", "top5", "best_top1"), "detection": ("map", "map_area"),
           "segmentation": ("miou", "aacc", "macc"), "probe": ("top1", "top5", "map", "map_area")}


class ResultError(TrickBenchError, ValueError):
    """A ``result.json`` that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Cost:
    """What a run cost: the paper's Table 3 reports minutes per epoch; a study adds up device-hours."""
    wall_time_s: float
    device: str                  # "cpu" or the GPU's name
    device_count: int
    images_seen: int | None = None

    @property
    def device_hours(self) -> float:
        return self.wall_time_s * self.device_count / 3600

    @property
    def images_per_s(self) -> float | None:
        return self.images_seen / self.wall_time_s if self.images_seen and self.wall_time_s > 0 else None


@dataclass(frozen=True)
class Result:
    stage: str
    backbone: str                # unique per run: one seed of one recipe
    recipe: str                  # shared by the seeds of one recipe
    seed: int | None
    metrics: dict[str, float]
    cost: Cost
    finished_at: str
    config: dict = field(default_factory=dict)
    checkpoint: str | None = None
    arch: dict | None = None     # depth, style, deep_stem, avg_down, base_channels, variant
    tricks: tuple[str, ...] = ()
    top1: float | None = None    # downstream: the backbone's ImageNet top-1 (given by the user for external ones)
    config_file: str | None = None
    backbone_sha256: str | None = None
    pretrain_dir: str | None = None
    study: dict | None = None    # the study and job that produced it (trickbench.study): name, job, fingerprint
    # downstream: the backbone's pretraining seed and the fine-tune's own (``seed`` is the latter);
    # None in files written before fine-tune seeds existed, where one fine-tune ran per backbone
    pretrain_seed: int | None = None
    finetune_seed: int | None = None
    heldout: dict | None = None  # a hyperparameter trial scored on held-out training data: never a reported number
    selection: dict | None = None  # the trials its hyperparameters were chosen from, and the choice
    protocol: dict | None = None   # downstream: the transfer protocol (trickbench.protocols), None before they were
    extra: dict = field(default_factory=dict)
    source: Path | None = field(default=None, compare=False)  # the file it was read from; not written

    @property
    def run_dir(self) -> Path | None:
        return self.source.parent if self.source else None

    @property
    def is_trial(self) -> bool:
        """A hyperparameter trial (scored on held-out training images, not the test split)."""
        return self.heldout is not None

    @property
    def protocol_name(self) -> str | None:
        """A downstream result's protocol (``finetune`` for files from before protocols); None for a pretraining."""
        return None if self.stage == "pretrain" else protocols.name_of(self.protocol)

    @property
    def main_metric(self) -> str:
        return PROBE_METRIC.get(self.protocol_name, "") if self.stage == "probe" else MAIN_METRIC[self.stage]

    @property
    def config_name(self) -> str:
        return Path(self.config_file or "").stem

    @property
    def variant(self) -> str | None:
        """The backbone's ResNet variant (A-D): a pretrain run's config, else its ``arch``."""
        if self.stage == "pretrain" and is_pretrain_config(self.config):
            return variant_of(self.config)
        v = (self.arch or {}).get("variant")
        return v.upper() if isinstance(v, str) else None

    @property
    def factors(self) -> tuple[str, ...]:
        """Its tricks and its variant where it is not the reference: what tells its recipe apart
        in a study's analysis (:func:`trickbench.tricks.factors`)."""
        return factors(self.tricks, self.variant)


def to_dict(result: Result) -> dict:
    out = asdict(result)
    out.pop("source")
    extra = out.pop("extra")
    clash = sorted(set(extra) & (set(out) | {"schema"}))
    if clash:
        raise ValueError(f"extra fields {clash} would shadow the record's own")
    out |= extra
    out["tricks"] = list(result.tricks)
    out["cost"] |= {"device_hours": result.cost.device_hours, "images_per_s": result.cost.images_per_s}
    return out


def write(work_dir: str | os.PathLike, result: Result) -> Path:
    """``WORK_DIR/result.json``, atomically; the record is checked first, as :func:`read` would."""
    path = Path(work_dir) / NAME
    check(result, path)
    return atomic_write_json(path, to_dict(result))


def read(path: str | os.PathLike) -> Result:
    """The record in ``path``, or a :class:`ResultError` naming it."""
    path = Path(path)
    try:
        data = read_json(path)
    except ValueError as e:
        raise ResultError(str(e)) from None
    except OSError as e:
        raise ResultError(f"{path}: cannot read it ({e.strerror}); fix its permissions, or delete it") from None
    if not isinstance(data, dict):
        raise ResultError(f"{path}: holds a {type(data).__name__}, not a result record; delete it or re-run "
                          f"the stage that wrote it")
    return from_dict(data, path)


def from_dict(data: dict, path: Path) -> Result:
    def bad(problem: str) -> ResultError:
        return ResultError(f"{path}: {problem}; re-run the stage that wrote it, or delete it")

    if data.get("stage") not in STAGES:
        raise bad(f"stage {data.get('stage')!r} is not one of {', '.join(STAGES)}")
    known = {f.name for f in fields(Result)} - {"source", "extra"}
    if "cost" in data:  # this record's layout
        values = {k: v for k, v in data.items() if k in known and k != "extra"}
        values["extra"] = {k: v for k, v in data.items() if k not in known}
        try:
            c = data["cost"]
            values["cost"] = Cost(float(c["wall_time_s"]), str(c["device"]), int(c["device_count"]),
                                  None if c.get("images_seen") is None else int(c["images_seen"]))
        except (KeyError, TypeError, ValueError):
            raise bad(f"cost {data['cost']!r} lacks wall_time_s, device or device_count") from None
    else:  # written before the record: flat, without recipe, seed or cost
        values = _legacy(data, known)
    missing = [k for k in ("backbone", "metrics", "finished_at") if k not in values]
    if missing:
        raise bad(f"no {', '.join(missing)}")
    values.setdefault("recipe", values["backbone"])
    values["tricks"] = tuple(values.get("tricks") or ())
    if values.get("stage") == "pretrain" and is_pretrain_config(values.get("config")):
        # The tricks are what the run's resolved config has on, by today's trick table: files
        # written before a trick was in the table read as new ones do.
        values["tricks"] = tricks_of(values["config"])
    try:
        result = Result(**values, source=path)
    except TypeError as e:
        raise bad(str(e)) from None
    check(result, path)
    return result


def _legacy(data: dict, known: set[str]) -> dict:
    values = {k: v for k, v in data.items() if k in known and k != "cost"}
    config = data.get("config") or {}
    seed = (config.get("run") or {}).get("seed") if data["stage"] == "pretrain" else \
        (config.get("randomness") or {}).get("seed")
    values.setdefault("seed", seed)
    gpus = data.get("gpus") or []
    values["cost"] = Cost(float(data.get("wall_time_s") or 0.0), gpus[0] if gpus else "cpu",
                          int(data.get("world_size") or 1), data.get("images_seen"))
    values["extra"] = {k: v for k, v in data.items() if k not in known and k != "wall_time_s"}
    return values


def is_pretrain_config(config: Any) -> bool:
    """Whether ``config`` is a resolved pretraining config (a dict with its ``model`` section)."""
    return isinstance(config, dict) and isinstance(config.get("model"), dict)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check(result: Result, path: Path) -> None:
    """Every field has the type it needs and every metric is a finite number."""
    def bad(problem: str) -> ResultError:
        return ResultError(f"{path}: {problem}; re-run the stage that wrote it, or delete it")

    if result.stage not in STAGES:
        raise bad(f"stage {result.stage!r} is not one of {', '.join(STAGES)}")
    for name in ("backbone", "recipe", "finished_at"):
        if not isinstance(getattr(result, name), str) or not getattr(result, name):
            raise bad(f"no {name}")
    for name in ("seed", "pretrain_seed", "finetune_seed"):
        value = getattr(result, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad(f"{name} {value!r} is not an integer")
    for name in ("heldout", "selection", "protocol"):
        if getattr(result, name) is not None and not isinstance(getattr(result, name), dict):
            raise bad(f"{name} {getattr(result, name)!r} is not a record")
    if not isinstance(result.metrics, dict):
        raise bad("no metrics")
    if result.protocol is not None and result.protocol.get("name") not in protocols.PROTOCOLS:
        raise bad(f"protocol {result.protocol.get('name')!r} is not one of {', '.join(protocols.PROTOCOLS)}")
    if result.stage == "probe" and result.protocol_name not in PROBE_METRIC:
        raise bad(f"a probe result needs protocol.name {' or '.join(PROBE_METRIC)}, not {result.protocol_name!r}")
    if result.main_metric not in result.metrics:
        raise bad(f"no metric {result.main_metric!r}")
    for name, value in result.metrics.items():
        if name in METRICS[result.stage] and not _finite(value):
            raise bad(f"metric {name!r} is {value!r}, not a finite number")
    if result.top1 is not None and not _finite(result.top1):
        raise bad(f"top1 is {result.top1!r}, not a finite number")
    a = result.arch
    if a and not (isinstance(a, dict) and isinstance(a.get("depth"), int) and isinstance(a.get("variant"), str)
                  and isinstance(a.get("base_channels", 64), int)):
        raise bad(f"arch {a!r} lacks an integer depth, a variant or an integer base_channels")
    if not all(isinstance(t, str) for t in result.tricks):
        raise bad(f"tricks {list(result.tricks)!r} is not a list of names")
    if result.study is not None and not (isinstance(result.study, dict)
                                         and all(isinstance(result.study.get(k), str) for k in ("job", "fingerprint"))):
        raise bad(f"study {result.study!r} lacks the job and fingerprint of the study that produced it")
    for name in ("config_file", "backbone_sha256", "pretrain_dir", "checkpoint"):
        if getattr(result, name) is not None and not isinstance(getattr(result, name), str):
            raise bad(f"{name} {getattr(result, name)!r} is not a string")
    if not _finite(result.cost.wall_time_s) or result.cost.wall_time_s < 0 or result.cost.device_count < 1:
        raise bad(f"cost {result.cost!r} is not a wall time >= 0 on >= 1 device")


@dataclass(frozen=True)
class Found:
    results: list[Result]
    unreadable: list[tuple[Path, str]]   # (file, what is wrong): named, never dropped silently
    foreign: list[Path]                  # JSON files named result.json without a stage: another tool's


def find(root: str | os.PathLike) -> Found:
    """Every ``result.json`` under ``root``, read; those that could not be are returned
    with the reason, not printed."""
    results, unreadable, foreign = [], [], []
    for path in sorted(Path(root).rglob(NAME)):
        try:
            data = read_json(path)
        except (ValueError, OSError) as e:
            unreadable.append((path, str(e)))
            continue
        if not isinstance(data, dict) or "stage" not in data:
            foreign.append(path)
            continue
        try:
            results.append(from_dict(data, path))
        except ResultError as e:
            unreadable.append((path, str(e)))
    return Found(results, unreadable, foreign)
