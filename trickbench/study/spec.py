"""A study file: the recipes, seeds, downstream protocols, data and resources of one
backbone comparison, in the config style of the rest of the suite (Python,
``_base_``, ``--cfg-options``), read into one typed :class:`Study`.

::

    name = "refinements"
    seeds = [0, 1, 2]
    data = dict(imagenet="data/imagenet", voc="data/VOCdevkit", ade20k="data/ADEChallengeData2016")
    recipes = [dict(name="r50-b", config="configs/pretrain/resnet50b_efficient.py"),
               dict(name="r50-torchvision", checkpoint="resnet50.pth", top1=76.13, variant="B"),
               dict(name="r152d-teacher", config="configs/pretrain/resnet152d_teacher.py", seeds=[0],
                    downstream=False)]
    designs = [dict(type="cumulative", name="r50d", base="configs/pretrain/resnet50d_efficient.py",
                    tricks=["cosine", "label_smoothing", "distill", "mixup"], teacher="r152d-teacher")]
    trick_options = dict(mixup={"loss.mixup_alpha": 0.2, "schedule.epochs": 200})
    downstream = dict(detection=["configs/detection/faster-rcnn_r50_fpn_1x_voc0712.py"],
                      segmentation=["configs/segmentation/fcn_r50-d8_4xb4-80k_ade20k-512x512.py"])
    reference = "r50d"
    resources = dict(pretrain=dict(gpus=8, time="3-00:00:00"), detection=dict(gpus=4))
    slurm = dict(partition="gpu", account=None, qos=None, extra=[])

A recipe option whose value is ``"@NAME"`` is the pretrain run of recipe NAME (the
same seed where it has it, else its first): that is how a student names its
distillation teacher, and the plan runs the teacher first.

**Designs** make recipes from a base config and a list of tricks (He et al. 2019
stack them cumulatively in Tables 4-9): ``cumulative`` (base, base+t1, base+t1+t2,
...), ``one_at_a_time`` (base, and base+t for each t), ``leave_one_out`` (all tricks,
and all but t for each t) and ``factorial`` (all 2^k combinations). A generated
recipe is named after its base and the tricks it has on, ``r50d+cosine+mixup``.
The tricks are :data:`TRICKS`, each the pretrain config keys it sets; a study can
change what a trick sets (``trick_options``: the paper's mixup also trains 200
epochs instead of 120, which a 15-epoch laptop recipe cannot copy) or define one.
"""
from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trickbench.mmconfig import ConfigFileError, check_options, read_config
from trickbench.errors import TrickBenchError
from trickbench.paths import REPO

STAGES = ("pretrain", "detection", "segmentation", "report")
DESIGNS = ("cumulative", "one_at_a_time", "leave_one_out", "factorial")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")

# The paper's tricks as pretrain config keys (He et al. 2019). Model tweaks (§4) are
# variants: compare them one at a time, not stacked.
TRICKS: dict[str, dict[str, Any]] = {
    "linear_scaling": {"optim.linear_scaling": True},    # §3.1
    "warmup": {"schedule.warmup_epochs": 5},              # §3.1, 5 epochs
    "zero_gamma": {"model.zero_gamma": True},             # §3.1
    "no_bias_decay": {"optim.no_bias_decay": True},       # §3.1
    "fp16": {"run.precision": "fp16"},                    # §3.2
    "resnet_b": {"model.variant": "B"},                   # §4.2, Figure 2a
    "resnet_c": {"model.variant": "C"},                   # §4.2, Figure 2b
    "resnet_d": {"model.variant": "D"},                   # §4.2, Figure 2c
    "cosine": {"schedule.decay": "cosine"},               # §5.1
    "label_smoothing": {"loss.label_smoothing": 0.1},     # §5.2, eps = 0.1
    "distill": {"loss.distill_teacher": "@teacher"},      # §5.3, T = 20 (the config's distill_temperature)
    "mixup": {"loss.mixup_alpha": 0.2},                   # §5.4, alpha = 0.2
}


class StudyError(TrickBenchError, ValueError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Resources:
    """What one job of a stage asks for; the Slurm fields are used by ``--launcher slurm``."""
    gpus: int = 0                  # devices per node (0: CPU); several run under torchrun
    nodes: int = 1
    cpus: int | None = None        # per task
    mem: str | None = None         # e.g. "64G"
    time: str | None = None        # Slurm time limit, e.g. "2-00:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: tuple[str, ...] = ()    # passed to sbatch as they are, e.g. ("--constraint=a100",)


@dataclass(frozen=True)
class Recipe:
    name: str
    config: Path | None = None              # a pretrain config, or None for an external checkpoint
    options: dict[str, Any] = field(default_factory=dict)   # --cfg-options over the config
    checkpoint: Path | None = None          # an external weights file (torchvision, timm, mmpretrain)
    top1: float | None = None               # the external checkpoint's ImageNet top-1, given by the user
    variant: str | None = None              # the external checkpoint's ResNet variant
    seeds: tuple[int, ...] = ()
    downstream: bool = True                 # fine-tune it (False for a teacher only)
    tricks: tuple[str, ...] = ()            # the design's tricks it has on (generated recipes)

    @property
    def external(self) -> bool:
        return self.checkpoint is not None

    def teachers(self) -> list[str]:
        """The recipes whose pretrain runs this one reads (``"@NAME"`` option values)."""
        return [v[1:] for v in self.options.values() if isinstance(v, str) and v.startswith("@")]


@dataclass(frozen=True)
class Study:
    name: str
    source: Path
    seeds: tuple[int, ...]
    recipes: tuple[Recipe, ...]
    data: dict[str, Path]                   # imagenet, voc, ade20k
    detection: tuple[Path, ...]
    segmentation: tuple[Path, ...]
    downstream_options: dict[str, dict]     # per task: --cfg-options for every fine-tuning
    reference: str | None
    resources: dict[str, Resources]
    requeue_signal_s: int = 120

    def recipe(self, name: str) -> Recipe:
        for r in self.recipes:
            if r.name == name:
                return r
        raise KeyError(name)


KEYS = {"name", "seeds", "data", "recipes", "designs", "trick_options", "downstream", "reference", "resources",
        "slurm"}
RECIPE_KEYS = {"name", "config", "options", "checkpoint", "top1", "variant", "seeds", "downstream"}
DESIGN_KEYS = {"type", "name", "base", "tricks", "options", "teacher", "seeds", "downstream"}
DOWNSTREAM_KEYS = {"detection", "segmentation", "options"}
RESOURCE_KEYS = {"gpus", "nodes", "cpus", "mem", "time", "partition", "account", "qos", "extra"}
SLURM_KEYS = {"partition", "account", "qos", "extra", "requeue_signal_s", "time", "cpus", "mem"}
DATA_KEYS = {"imagenet", "voc", "ade20k"}


def load_study(path: str | Path, options: dict[str, Any] | None = None) -> Study:
    """The study in ``path`` (plus ``--cfg-options``), checked: every key known, every
    recipe and trick defined, every file present, no dependency cycle."""
    path = Path(path)
    try:
        cfg = read_config(path, "study")
        values = cfg.to_dict()
        if options:
            cfg.merge_from_dict(check_options(values, options, str(path)))
            values = cfg.to_dict()
    except ConfigFileError as e:
        raise StudyError(str(e)) from None
    return _parse(values, path)


def check_data(study: Study) -> None:
    """Every data root the study reads exists; run before anything is started or submitted."""
    for key, root in study.data.items():
        if not root.is_dir():
            raise StudyError(f"{study.source}: data.{key} {root} does not exist; point data.{key} at the dataset "
                             f"(or --cfg-options data.{key}=PATH), or create it first")


def _unknown(where: str, values: dict, known: set[str], path: Path) -> None:
    if not isinstance(values, dict):
        raise StudyError(f"{path}: {where} must be a dict, not {values!r}")
    for key in sorted(set(values) - known):
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise StudyError(f"{path}: unknown key {where}{key}{hint}; known: {', '.join(sorted(known))}")


def _file(value: Any, where: str, path: Path, *, must_exist: bool = True) -> Path:
    """A path from the study: relative to the working directory, else to the repository."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise StudyError(f"{path}: {where} must be a path, not {value!r}")
    p = Path(value).expanduser()
    for candidate in ([p] if p.is_absolute() else [Path.cwd() / p, REPO / p]):
        if candidate.exists():
            return candidate.resolve()
    if must_exist:
        raise StudyError(f"{path}: {where} {value} does not exist (looked in {Path.cwd()} and {REPO}); fix the "
                         f"path, or create it first")
    return (p if p.is_absolute() else Path.cwd() / p).resolve()


def _seeds(value: Any, where: str, path: Path) -> tuple[int, ...]:
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise StudyError(f"{path}: {where} must be a non-empty list of integers >= 0, not {value!r}")
    if len(set(value)) != len(value):
        raise StudyError(f"{path}: {where} {list(value)} names a seed twice")
    return tuple(value)


def _name(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise StudyError(f"{path}: {where} {value!r} is not a name (letters, digits and . _ + -, starting with a "
                         f"letter or digit): it becomes a folder and a column on the leaderboard")
    return value


def _options(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise StudyError(f'{path}: {where} must be a dict of config keys, e.g. {{"schedule.epochs": 30}}')
    return dict(value)


def slug(trick: str) -> str:
    return trick.replace("_", "-")


def _parse(v: dict, path: Path) -> Study:
    _unknown("", v, KEYS, path)
    name = _name(v.get("name", path.stem), "name", path)
    seeds = _seeds(v.get("seeds", [0]), "seeds", path)

    data_v = v.get("data") or {}
    _unknown("data.", data_v, DATA_KEYS, path)
    # checked when the study runs (check_data), so that a plan can be printed on a machine without the data
    data = {k: _file(p, f"data.{k}", path, must_exist=False) for k, p in data_v.items() if p is not None}

    tricks = dict(TRICKS)
    to = v.get("trick_options") or {}
    if not isinstance(to, dict):
        raise StudyError(f"{path}: trick_options must be a dict of trick name -> config keys")
    for t, opts in to.items():
        tricks[t] = _options(opts, f"trick_options.{t}", path)

    recipes: list[Recipe] = []
    raw_recipes = v.get("recipes") or []
    if not isinstance(raw_recipes, (list, tuple)):
        raise StudyError(f"{path}: recipes must be a list of dict(name=..., config=...) entries")
    for i, r in enumerate(raw_recipes):
        recipes.append(_recipe(r, f"recipes[{i}]", path, seeds))
    raw_designs = v.get("designs") or []
    if not isinstance(raw_designs, (list, tuple)):
        raise StudyError(f"{path}: designs must be a list of dict(type=..., base=..., tricks=[...]) entries")
    for i, d in enumerate(raw_designs):
        for r in _design(d, f"designs[{i}]", path, seeds, tricks):
            same = [o for o in recipes if o.name == r.name]
            if same and (same[0].config, same[0].options) == (r.config, r.options):
                continue  # two designs share their base recipe
            recipes.append(r)
    if not recipes:
        raise StudyError(f"{path}: no recipes; add recipes = [dict(name=..., config=...)] or a design")
    names = [r.name for r in recipes]
    for n in names:
        if names.count(n) > 1:
            raise StudyError(f"{path}: two different recipes are named {n}; rename one")
    for r in recipes:
        for t in r.teachers():
            if t not in names:
                close = difflib.get_close_matches(t, names, n=1)
                raise StudyError(f"{path}: recipe {r.name} reads the pretrain run of recipe {t!r}, which the study "
                                 f"does not have" + (f" (did you mean {close[0]}?)" if close else ""))
            if recipes[names.index(t)].external:
                raise StudyError(f"{path}: recipe {r.name} reads the pretrain run of {t}, an external checkpoint; "
                                 f"give the file itself as the option's value instead")
    _check_cycles(recipes, path)

    ds = v.get("downstream") or {}
    _unknown("downstream.", ds, DOWNSTREAM_KEYS, path)
    det = tuple(_file(c, "downstream.detection", path) for c in _list(ds.get("detection"), "downstream.detection", path))
    seg = tuple(_file(c, "downstream.segmentation", path)
                for c in _list(ds.get("segmentation"), "downstream.segmentation", path))
    for task, configs in (("detection", det), ("segmentation", seg)):
        stems = [c.stem for c in configs]
        if len(set(stems)) != len(stems):
            raise StudyError(f"{path}: downstream.{task} has two configs with the same file name; a run's folder "
                             f"is named after it")
    ds_opts = ds.get("options") or {}
    _unknown("downstream.options.", ds_opts, {"detection", "segmentation"}, path)
    downstream_options = {t: _options(ds_opts.get(t), f"downstream.options.{t}", path)
                          for t in ("detection", "segmentation")}
    if det and "voc" not in data:
        raise StudyError(f"{path}: downstream.detection is set but data.voc is not; add data = dict(voc=...)")
    if seg and "ade20k" not in data:
        raise StudyError(f"{path}: downstream.segmentation is set but data.ade20k is not; add data = dict(ade20k=...)")
    if any(not r.external for r in recipes) and "imagenet" not in data:
        raise StudyError(f"{path}: recipes are pretrained but data.imagenet is not set; add data = dict(imagenet=...)")

    reference = v.get("reference")
    if reference is not None and reference not in names:
        close = difflib.get_close_matches(str(reference), names, n=1)
        raise StudyError(f"{path}: reference {reference!r} is not a recipe of the study"
                         + (f" (did you mean {close[0]}?)" if close else f"; recipes: {', '.join(names)}"))

    slurm = v.get("slurm") or {}
    _unknown("slurm.", slurm, SLURM_KEYS, path)
    signal_s = slurm.get("requeue_signal_s", 120)
    if not isinstance(signal_s, int) or signal_s < 0:
        raise StudyError(f"{path}: slurm.requeue_signal_s must be an integer >= 0 (seconds before the time limit)")
    res_v = v.get("resources") or {}
    _unknown("resources.", res_v, set(STAGES), path)
    resources = {s: _resources({**{k: x for k, x in slurm.items() if k != "requeue_signal_s"}, **(res_v.get(s) or {})},
                               f"resources.{s}", path) for s in STAGES}
    return Study(name, path.resolve(), seeds, tuple(recipes), data, det, seg, downstream_options, reference,
                 resources, signal_s)


def _list(value: Any, where: str, path: Path) -> list:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise StudyError(f"{path}: {where} must be a list of config files")
    return list(value)


def _recipe(r: Any, where: str, path: Path, seeds: tuple[int, ...]) -> Recipe:
    _unknown(f"{where}.", r, RECIPE_KEYS, path)
    name = _name(r.get("name"), f"{where}.name", path)
    where = f"recipe {name}"
    if (r.get("config") is None) == (r.get("checkpoint") is None):
        raise StudyError(f"{path}: {where} needs exactly one of config (a pretrain config to train) and checkpoint "
                         f"(an external weights file)")
    top1 = r.get("top1")
    if top1 is not None and (not isinstance(top1, (int, float)) or isinstance(top1, bool) or not 0 <= top1 <= 100):
        raise StudyError(f"{path}: {where}: top1 must be a percentage, not {top1!r}")
    if r.get("checkpoint") is None and (top1 is not None or r.get("variant") is not None):
        raise StudyError(f"{path}: {where}: top1 and variant are for external checkpoints; a trained recipe "
                         f"measures its own top-1")
    if r.get("checkpoint") is not None and r.get("options"):
        raise StudyError(f"{path}: {where}: options apply to a pretrain config, and an external checkpoint has none")
    variant = r.get("variant")
    if variant is not None and variant not in tuple("ABCD"):
        raise StudyError(f"{path}: {where}: variant must be A, B, C or D, not {variant!r}")
    if not isinstance(r.get("downstream", True), bool):
        raise StudyError(f"{path}: {where}: downstream must be True or False")
    return Recipe(
        name=name,
        config=_file(r["config"], f"{where}: config", path) if r.get("config") is not None else None,
        options=_options(r.get("options"), f"{where}: options", path),
        checkpoint=_file(r["checkpoint"], f"{where}: checkpoint", path) if r.get("checkpoint") is not None else None,
        top1=None if top1 is None else float(top1), variant=variant,
        seeds=_seeds(r["seeds"], f"{where}: seeds", path) if r.get("seeds") is not None else seeds,
        downstream=r.get("downstream", True))


def design_sets(kind: str, tricks: list[str]) -> list[tuple[str, ...]]:
    """The trick sets a design makes, in order (each a tuple in the order given)."""
    if kind == "cumulative":
        return [tuple(tricks[:i]) for i in range(len(tricks) + 1)]
    if kind == "one_at_a_time":
        return [()] + [(t,) for t in tricks]
    if kind == "leave_one_out":
        return [tuple(tricks)] + [tuple(x for x in tricks if x != t) for t in tricks]
    if kind == "factorial":
        return [tuple(t for t, on in zip(tricks, mask) if on)
                for mask in itertools.product((False, True), repeat=len(tricks))]
    raise ValueError(kind)


def _design(d: Any, where: str, path: Path, seeds: tuple[int, ...], tricks: dict[str, dict]) -> list[Recipe]:
    _unknown(f"{where}.", d, DESIGN_KEYS, path)
    kind = d.get("type")
    if kind not in DESIGNS:
        close = difflib.get_close_matches(str(kind), DESIGNS, n=1)
        raise StudyError(f"{path}: {where}.type {kind!r} is not a design" + (f" (did you mean {close[0]}?)" if close
                         else "") + f"; designs: {', '.join(DESIGNS)}")
    base_name = _name(d.get("name"), f"{where}.name", path)
    names = d.get("tricks")
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(t, str) for t in names):
        raise StudyError(f"{path}: {where}.tricks must be a non-empty list of trick names; known: "
                         f"{', '.join(tricks)}")
    if len(set(names)) != len(names):
        raise StudyError(f"{path}: {where}.tricks {list(names)} names a trick twice")
    for t in names:
        if t not in tricks:
            close = difflib.get_close_matches(t, tricks, n=1)
            raise StudyError(f"{path}: {where}: unknown trick {t!r}" + (f" (did you mean {close[0]}?)" if close else "")
                             + f"; known: {', '.join(tricks)}; define a new one in trick_options")
    if kind == "factorial" and len(names) > 8:
        raise StudyError(f"{path}: {where}: a factorial design of {len(names)} tricks is {2 ** len(names)} recipes; "
                         f"use leave_one_out or one_at_a_time")
    teacher = d.get("teacher")
    base_opts = _options(d.get("options"), f"{where}.options", path)
    config = _file(d.get("base"), f"{where}.base", path)
    out = []
    for on in design_sets(kind, list(names)):
        opts = dict(base_opts)
        for t in on:
            for key, value in tricks[t].items():
                if value == "@teacher":
                    if teacher is None:
                        raise StudyError(f"{path}: {where}: trick {t} needs a teacher; set teacher='RECIPE' in the "
                                         f"design")
                    value = f"@{teacher}"
                opts[key] = value
        name = "+".join([base_name, *map(slug, on)])
        out.append(Recipe(name=name, config=config, options=opts, tricks=tuple(on),
                          seeds=_seeds(d["seeds"], f"{where}.seeds", path) if d.get("seeds") is not None else seeds,
                          downstream=d.get("downstream", True)))
    return out


def _check_cycles(recipes: list[Recipe], path: Path) -> None:
    by_name = {r.name: r for r in recipes}
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = trail[trail.index(n):] + [n]
            raise StudyError(f"{path}: the recipes' teachers form a cycle: {' -> '.join(cycle)}; a teacher must be "
                             f"trained before its student")
        state[n] = 1
        for t in by_name[n].teachers():
            visit(t, trail + [n])
        state[n] = 2

    for r in recipes:
        visit(r.name, [])


def _resources(v: dict, where: str, path: Path) -> Resources:
    _unknown(f"{where}.", v, RESOURCE_KEYS, path)
    for key in ("gpus", "nodes", "cpus"):
        x = v.get(key)
        if x is not None and (not isinstance(x, int) or isinstance(x, bool) or x < (1 if key != "gpus" else 0)):
            raise StudyError(f"{path}: {where}.{key} must be an integer >= {1 if key != 'gpus' else 0}, not {x!r}")
    for key in ("mem", "time", "partition", "account", "qos"):
        x = v.get(key)
        if x is not None and not isinstance(x, str):
            raise StudyError(f"{path}: {where}.{key} must be a string, not {x!r}")
    extra = v.get("extra") or ()
    if isinstance(extra, str) or not all(isinstance(e, str) for e in extra):
        raise StudyError(f"{path}: {where}.extra must be a list of sbatch options, e.g. ['--constraint=a100']")
    return Resources(gpus=v.get("gpus") or 0, nodes=v.get("nodes") or 1, cpus=v.get("cpus"), mem=v.get("mem"),
                     time=v.get("time"), partition=v.get("partition"), account=v.get("account"), qos=v.get("qos"),
                     extra=tuple(extra))
