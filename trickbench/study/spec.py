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
                      segmentation=["configs/segmentation/fcn_r50-d8_4xb4-80k_ade20k-512x512.py"],
                      protocols=["finetune", "frozen", "linear"],   # trickbench/protocols.py; default finetune
                      ade_linear="configs/segmentation/linear_r50-d8_ade20k-512x512.py")
    reference = "r50d"
    question = dict(recipe="r50d+cosine", metric="map", direction="higher",
                    text="Does the cosine schedule make ResNet-50-D a better detection backbone?")
    resources = dict(pretrain=dict(gpus=8, time="3-00:00:00"), detection=dict(gpus=4), probe=dict(gpus=1))
    slurm = dict(partition="gpu", account=None, qos=None, extra=[])

The **question** names the comparison the study is built to resolve: is ``recipe``'s
``metric`` (a report metric: top1, top5, map, map_area, miou, aacc, macc) ``higher``,
``lower`` or ``different`` than the reference's? The report answers it first, from its
Dunnett comparison of that recipe with the reference (evaluation/report.py ``--question``).

A recipe option whose value is ``"@NAME"`` is the pretrain run of recipe NAME (the
same seed where it has it, else its first): that is how a student names its
distillation teacher, and the plan runs the teacher first.

**Designs** make recipes from a base config and a list of tricks (He et al. 2019
stack them cumulatively in Tables 4-9): ``cumulative`` (base, base+t1, base+t1+t2,
...), ``one_at_a_time`` (base, and base+t for each t), ``leave_one_out`` (all tricks,
and all but t for each t) and ``factorial`` (all 2^k combinations). A generated
recipe is named after its base and the tricks it has on, ``r50d+cosine+mixup``.
The tricks are the suite's one trick table (:mod:`trickbench.tricks`: each name, the
pretrain config keys it sets, the paper's section), which the result record and the
report read too: the variants (``resnet_a`` ... ``resnet_d``, one per recipe: a design
that would give a recipe two is refused) and bundles (``efficient``) are tricks of a
design like the others. A study can add keys to what a trick sets (``trick_options``:
the paper's mixup also trains 200 epochs instead of 120, which a 15-epoch laptop recipe
cannot copy; a laptop's ``efficient`` warms up for half an epoch) or define a new one.

The file is read in two steps: :func:`trickbench.typed.build` checks every key and type
against :class:`StudyFile` (the file as written), then :func:`_resolve` checks what the
values mean (names, files, seeds, teachers) and makes the :class:`Study` the plan reads.
"""
from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trickbench import protocols as protocol_table
from trickbench import results as result_table
from trickbench import tricks as trick_table
from trickbench.errors import TrickBenchError
from trickbench.mmconfig import ConfigFileError, check_options, read_config
from trickbench.paths import candidates
from trickbench.typed import ConfigError, build

STAGES = ("pretrain", "detection", "segmentation", "probe", "report")
DESIGNS = ("cumulative", "one_at_a_time", "leave_one_out", "factorial")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
DATA_ROOTS = ("imagenet", "voc", "ade20k")  # ImageNet for pretraining, VOC for detection, ADE20K for segmentation
DIRECTIONS = ("higher", "lower", "different")  # a question's: recipe's metric against the reference's
# The metrics the report compares recipes on (evaluation/table.py METRICS), each with the stage that measures
# it: every metric a pretraining, detection or segmentation result carries, less the best epoch's top-1.
QUESTION_METRICS = {m: stage for stage in ("pretrain", "detection", "segmentation")
                    for m in result_table.METRICS[stage] if m != "best_top1"}


class StudyError(TrickBenchError, ValueError):
    """A study file that cannot be run; the message names the file, the key and the fix."""


# ---------------------------------------------------------------- the file as written


@dataclass
class RecipeEntry:
    name: Any = None
    config: str | None = None
    options: dict[str, Any] | None = None
    checkpoint: str | None = None
    top1: float | None = None
    variant: str | None = None
    seeds: list[int] | None = None
    downstream: bool = True


@dataclass
class DesignEntry:
    type: Any = None
    name: Any = None
    base: str | None = None
    tricks: Any = None
    options: dict[str, Any] | None = None
    teacher: str | None = None
    seeds: list[int] | None = None
    downstream: bool = True


@dataclass
class DownstreamOptions:
    detection: dict[str, Any] | None = None
    segmentation: dict[str, Any] | None = None


@dataclass
class DownstreamSweep:
    detection: dict[str, list[Any]] | None = None
    segmentation: dict[str, list[Any]] | None = None


@dataclass
class DownstreamSeeds:
    """Fine-tune seeds per task, where the tasks' noise and cost ask for different numbers."""
    detection: list[int] | None = None
    segmentation: list[int] | None = None


@dataclass
class DownstreamEntry:
    detection: list[str] | str | None = None
    segmentation: list[str] | str | None = None
    options: DownstreamOptions | None = None
    seeds: list[int] | DownstreamSeeds | None = None  # fine-tune seeds: every backbone is fine-tuned once per seed;
                                            # a list for every task, or dict(detection=[...], segmentation=[...])
    sweep: DownstreamSweep | None = None    # per task: --cfg-options key -> values; the grid is their product
    heldout: float = 0.2                    # the fraction of the training images the sweep scores on
    choose: str = "recipe"                  # choose the sweep's values per recipe or per backbone
    protocols: list[str] | None = None      # trickbench.protocols names ("linear": the three probes); default finetune
    ade_linear: str | None = None           # the ade-linear protocol's config (a TrickBenchBNHead segmentation config)


@dataclass
class QuestionEntry:
    recipe: Any = None
    metric: Any = None
    direction: Any = None
    text: str | None = None


@dataclass
class DataEntry:
    imagenet: str | None = None
    voc: str | None = None
    ade20k: str | None = None


@dataclass
class ResourcesEntry:
    gpus: int | None = None
    nodes: int | None = None
    cpus: int | None = None
    mem: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: list[str] | None = None


@dataclass
class StageResources:
    pretrain: ResourcesEntry | None = None
    detection: ResourcesEntry | None = None
    segmentation: ResourcesEntry | None = None
    probe: ResourcesEntry | None = None
    report: ResourcesEntry | None = None


@dataclass
class SlurmEntry:
    """Defaults of every stage's Slurm resources, and the requeue signal's lead time."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    extra: list[str] | None = None
    time: str | None = None
    cpus: int | None = None
    mem: str | None = None
    requeue_signal_s: int = 120


@dataclass
class StudyFile:
    name: Any = None
    seeds: list[int] = field(default_factory=lambda: [0])
    data: DataEntry | None = None
    recipes: list[RecipeEntry] | None = None
    designs: list[DesignEntry] | None = None
    trick_options: dict[str, dict[str, Any] | None] | None = None
    downstream: DownstreamEntry | None = None
    reference: str | None = None
    question: QuestionEntry | None = None
    resources: StageResources | None = None
    slurm: SlurmEntry | None = None


# ---------------------------------------------------------------- the study the plan reads


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
    design: str | None = None               # the design that made it ("designs[0]")

    @property
    def external(self) -> bool:
        return self.checkpoint is not None

    def teachers(self) -> list[str]:
        """The recipes whose pretrain runs this one reads (``"@NAME"`` option values)."""
        return [v[1:] for v in self.options.values() if isinstance(v, str) and v.startswith("@")]


@dataclass(frozen=True)
class Question:
    """The comparison a study is built to resolve: is ``recipe``'s ``metric`` ``direction`` (higher,
    lower, different) than the reference recipe's? The report answers it (``--question``)."""
    recipe: str
    metric: str
    direction: str
    text: str | None = None

    @property
    def arg(self) -> str:
        """The report's ``--question`` value: ``recipe:metric:direction``."""
        return f"{self.recipe}:{self.metric}:{self.direction}"


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
    finetune_seeds: tuple[int, ...] | dict[str, tuple[int, ...] | None] | None = None
    # None: one fine-tune per backbone, seeded with its pretraining seed; a dict: per task (seeds_of)
    sweep: dict[str, dict[str, tuple]] = field(default_factory=dict)  # per task: key -> values (tasks without: none)
    heldout: float = 0.2
    choose: str = "recipe"                  # "recipe" or "backbone"
    protocols: tuple[str, ...] = (protocol_table.DEFAULT,)   # in the protocol table's order
    ade_linear: Path | None = None          # the ade-linear protocol's segmentation config
    question: Question | None = None        # the comparison the study is built to resolve

    def trained(self, task: str) -> list[tuple[str, Path]]:
        """The (protocol, config) pairs ``task``'s fine-tuning jobs run, in order: finetune and frozen on
        every config of the task, ade-linear (segmentation) on its own config."""
        out = [(p, c) for p in ("finetune", "frozen") if p in self.protocols for c in getattr(self, task)]
        if task == "segmentation" and "ade-linear" in self.protocols:
            out.append(("ade-linear", self.ade_linear))
        return out

    def seeds_of(self, task: str) -> tuple[int, ...] | None:
        """The fine-tune seeds of ``task``'s jobs; None: one fine-tune per backbone, seeded with
        its pretraining seed."""
        if isinstance(self.finetune_seeds, dict):
            return self.finetune_seeds.get(task)
        return self.finetune_seeds

    @property
    def probes(self) -> tuple[str, ...]:
        """The deterministic probes (run once per backbone by downstream/probe.py)."""
        return tuple(p for p in self.protocols if p in protocol_table.PROBES)

    def grid(self, task: str) -> list[dict[str, Any]]:
        """The sweep's grid points of ``task`` in order (the product of its value lists); [] without a sweep."""
        keys = list(self.sweep.get(task, {}))
        if not keys:
            return []
        return [dict(zip(keys, values)) for values in itertools.product(*(self.sweep[task][k] for k in keys))]

    def recipe(self, name: str) -> Recipe:
        for r in self.recipes:
            if r.name == name:
                return r
        raise KeyError(name)

    def roots_read(self) -> dict[str, Path]:
        """The data roots its jobs read: ImageNet if a recipe is pretrained, VOC and ADE20K if a
        recipe is fine-tuned in detection or segmentation. A root set but not read is not needed."""
        pretrained = any(not r.external for r in self.recipes)
        fine_tuned = any(r.downstream for r in self.recipes)
        needed = {"imagenet": pretrained or (fine_tuned and "knn" in self.protocols),
                  "voc": fine_tuned and bool(self.trained("detection") or "voc07-svm" in self.protocols),
                  "ade20k": fine_tuned and bool(self.trained("segmentation"))}
        return {k: p for k, p in self.data.items() if needed[k]}

    @property
    def pretraining_only(self) -> bool:
        return not (self.trained("detection") or self.trained("segmentation") or self.probes)


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
        raw = build(StudyFile, values, noun="key")
    except (ConfigFileError, ConfigError) as e:
        raise StudyError(str(e) if isinstance(e, ConfigFileError) else f"{path}: {e}") from None
    return _resolve(raw, path)


def check_data(study: Study) -> None:
    """Every data root the study's jobs read exists; run before anything is started or submitted."""
    for key, root in study.roots_read().items():
        if not root.is_dir():
            raise StudyError(f"{study.source}: data.{key} {root} does not exist; point data.{key} at the dataset "
                             f"(or --cfg-options data.{key}=PATH), or create it first")


def _file(value: Any, where: str, path: Path, *, must_exist: bool = True) -> Path:
    """A path from the study: relative to the working directory, else to the repository."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise StudyError(f"{path}: {where} must be a path, not {value!r}")
    for candidate in candidates(value):
        if candidate.exists():
            return candidate.resolve()
    if must_exist:
        looked = " and ".join(str(c) for c in candidates(value))
        raise StudyError(f"{path}: {where} {value} does not exist (looked for {looked}); fix the path, or create "
                         f"it first")
    return candidates(value)[0].resolve()


def _seeds(value: list[int] | None, default: tuple[int, ...] | None, where: str, path: Path) -> tuple[int, ...]:
    if value is None:
        return default
    if not value or any(s < 0 for s in value):
        raise StudyError(f"{path}: {where} must be a non-empty list of integers >= 0, not {value!r}")
    if len(set(value)) != len(value):
        raise StudyError(f"{path}: {where} {list(value)} names a seed twice")
    return tuple(value)


def _name(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise StudyError(f"{path}: {where} {value!r} is not a name (letters, digits and . _ + -, starting with a "
                         f"letter or digit): it becomes a folder and a column on the leaderboard")
    return value


def _close(value: Any, known) -> str:
    close = difflib.get_close_matches(str(value), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def slug(trick: str) -> str:
    return trick.replace("_", "-")


def _resolve(v: StudyFile, path: Path) -> Study:
    name = _name(v.name if v.name is not None else path.stem, "name", path)
    seeds = _seeds(v.seeds, (0,), "seeds", path)
    # checked when the study runs (check_data), so that a plan can be printed on a machine without the data
    data_v = v.data or DataEntry()
    data = {k: _file(getattr(data_v, k), f"data.{k}", path, must_exist=False)
            for k in DATA_ROOTS if getattr(data_v, k) is not None}

    settings = {t: trick_table.settings(t) for t in trick_table.TRICKS}
    for t, opts in (v.trick_options or {}).items():
        settings[t] = {**settings.get(t, {}), **(opts or {})}

    recipes = [_recipe(r, f"recipes[{i}]", path, seeds) for i, r in enumerate(v.recipes or [])]
    for i, d in enumerate(v.designs or []):
        for r in _design(d, f"designs[{i}]", path, seeds, settings):
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
                raise StudyError(f"{path}: recipe {r.name} reads the pretrain run of recipe {t!r}, which the study "
                                 f"does not have" + _close(t, names))
            if recipes[names.index(t)].external:
                raise StudyError(f"{path}: recipe {r.name} reads the pretrain run of {t}, an external checkpoint; "
                                 f"give the file itself as the option's value instead")
    _check_cycles(recipes, path)

    ds = v.downstream or DownstreamEntry()
    configs = {}
    for task in ("detection", "segmentation"):
        given = getattr(ds, task)
        files = tuple(_file(c, f"downstream.{task}", path) for c in ([given] if isinstance(given, str) else given or []))
        stems = [c.stem for c in files]
        if len(set(stems)) != len(stems):
            raise StudyError(f"{path}: downstream.{task} has two configs with the same file name; a run's folder "
                             f"is named after it")
        configs[task] = files
    ds_opts = ds.options or DownstreamOptions()
    downstream_options = {t: dict(getattr(ds_opts, t) or {}) for t in ("detection", "segmentation")}
    if isinstance(ds.seeds, DownstreamSeeds):
        finetune_seeds = {t: _seeds(getattr(ds.seeds, t), None, f"downstream.seeds.{t}", path)
                          if getattr(ds.seeds, t) is not None else None for t in ("detection", "segmentation")}
    else:
        finetune_seeds = _seeds(ds.seeds, None, "downstream.seeds", path) if ds.seeds is not None else None
    sweep = {}
    for task in ("detection", "segmentation"):
        for key, values in (getattr(ds.sweep or DownstreamSweep(), task) or {}).items():
            if not isinstance(values, (list, tuple)) or not values:
                raise StudyError(f"{path}: downstream.sweep.{task}[{key!r}] must be a non-empty list of values, not "
                                 f"{values!r}")
            if len(set(map(repr, values))) != len(values):
                raise StudyError(f"{path}: downstream.sweep.{task}[{key!r}] {list(values)} names a value twice")
            if not configs[task]:
                raise StudyError(f"{path}: downstream.sweep.{task} is set but downstream.{task} has no config")
            if key in downstream_options[task]:
                raise StudyError(f"{path}: downstream.sweep.{task}[{key!r}] is also in downstream.options.{task}; "
                                 f"a key is swept or fixed, not both")
            sweep.setdefault(task, {})[key] = tuple(values)
    if not (isinstance(ds.heldout, (int, float)) and not isinstance(ds.heldout, bool) and 0 < ds.heldout <= 0.5):
        raise StudyError(f"{path}: downstream.heldout {ds.heldout!r} must be a fraction in (0, 0.5]: the part of the "
                         f"training images the sweep scores on (VTAB-1k holds out 0.2)")
    if ds.choose not in ("recipe", "backbone"):
        raise StudyError(f"{path}: downstream.choose {ds.choose!r} must be 'recipe' (the mean held-out score over a "
                         f"recipe's pretraining seeds, the default) or 'backbone'")
    protocols = _protocols(ds, configs, path)
    ade_linear = _file(ds.ade_linear, "downstream.ade_linear", path) if ds.ade_linear is not None else None
    if "ade-linear" in protocols and ade_linear is None:
        raise StudyError(f"{path}: protocol ade-linear needs its config: set downstream.ade_linear to a segmentation "
                         f"config with a TrickBenchBNHead decode head (configs/segmentation/linear-d8_fashion.py, "
                         f"linear_r50-d8_ade20k-512x512.py)")
    if ade_linear is not None and "ade-linear" not in protocols:
        raise StudyError(f"{path}: downstream.ade_linear is set but downstream.protocols has no 'ade-linear' (or "
                         f"'linear'); add it, or drop the key")
    for task, key in (("detection", "voc"), ("segmentation", "ade20k")):
        if configs[task] and key not in data:
            raise StudyError(f"{path}: downstream.{task} is set but data.{key} is not; add data = dict({key}=...)")
    for protocol, key, task in (("knn", "imagenet", "ImageNet k-NN"), ("voc07-svm", "voc", "VOC07 classification"),
                                ("ade-linear", "ade20k", "ADE20K linear segmentation")):
        if protocol in protocols and key not in data:
            raise StudyError(f"{path}: protocol {protocol} ({task}) reads data.{key}, which is not set; add "
                             f"data = dict({key}=...) or drop the protocol")
    if any(not r.external for r in recipes) and "imagenet" not in data:
        raise StudyError(f"{path}: recipes are pretrained but data.imagenet is not set; add data = dict(imagenet=...)")

    if v.reference is not None and v.reference not in names:
        raise StudyError(f"{path}: reference {v.reference!r} is not a recipe of the study"
                         + (_close(v.reference, names) or f"; recipes: {', '.join(names)}"))

    question = _question(v.question, v.reference, recipes, configs, protocols, path)

    slurm = v.slurm or SlurmEntry()
    if slurm.requeue_signal_s < 0:
        raise StudyError(f"{path}: slurm.requeue_signal_s must be an integer >= 0 (seconds before the time limit)")
    stages = v.resources or StageResources()
    resources = {s: _resources(slurm, getattr(stages, s), f"resources.{s}", path) for s in STAGES}
    if resources["probe"].gpus > 1 or resources["probe"].nodes > 1:
        raise StudyError(f"{path}: resources.probe asks for {resources['probe'].gpus} GPUs on "
                         f"{resources['probe'].nodes} node(s); a probe (downstream/probe.py) runs in one process on "
                         f"one device: set gpus=1 (or 0 for the CPU) and nodes=1")
    return Study(name, path.resolve(), seeds, tuple(recipes), data, configs["detection"], configs["segmentation"],
                 downstream_options, v.reference, resources, slurm.requeue_signal_s, finetune_seeds, sweep,
                 float(ds.heldout), ds.choose, protocols, ade_linear, question)


def _question(q: QuestionEntry | None, reference: str | None, recipes: list[Recipe],
              configs: dict[str, tuple[Path, ...]], protocols: tuple[str, ...], path: Path) -> Question | None:
    """The study's question, checked: a recipe other than the reference, a report metric that both
    recipes are measured on, a direction; None without one."""
    if q is None:
        return None
    names = [r.name for r in recipes]
    if q.recipe not in names:
        raise StudyError(f"{path}: question.recipe {q.recipe!r} is not a recipe of the study"
                         + (_close(q.recipe, names) or f"; recipes: {', '.join(names)}"))
    if reference is None:
        raise StudyError(f"{path}: question compares recipe {q.recipe} with the reference, which is not set; add "
                         f"reference = 'RECIPE' (the recipe it is compared with)")
    if q.recipe == reference:
        raise StudyError(f"{path}: question.recipe {q.recipe} is the reference itself; name the recipe to compare "
                         f"with it, or another reference")
    if not isinstance(q.metric, str) or q.metric not in QUESTION_METRICS:
        raise StudyError(f"{path}: question.metric {q.metric!r} is not a metric the report compares recipes on"
                         + _close(q.metric.lower(), QUESTION_METRICS) + f"; metrics: {', '.join(QUESTION_METRICS)}")
    if q.direction not in DIRECTIONS:
        raise StudyError(f"{path}: question.direction {q.direction!r} must be one of {', '.join(DIRECTIONS)}: is "
                         f"{q.recipe}'s {q.metric} higher, lower or different than {reference}'s?")
    if q.text is not None and (not q.text.strip() or "\n" in q.text):
        raise StudyError(f"{path}: question.text must be one line of text (the question as the report prints it), "
                         f"not {q.text!r}")
    stage = QUESTION_METRICS[q.metric]
    if stage != "pretrain" and not (configs[stage] and "finetune" in protocols):
        raise StudyError(f"{path}: question.metric {q.metric} is measured by {stage} fine-tuning, which the study "
                         f"does not run; add a config to downstream.{stage} (with protocol finetune), or ask about "
                         f"another metric")
    for r in (recipes[names.index(q.recipe)], recipes[names.index(reference)]):
        if stage != "pretrain" and not r.downstream:
            raise StudyError(f"{path}: question.metric {q.metric} is measured by {stage} fine-tuning, but recipe "
                             f"{r.name} has downstream=False; fine-tune it, or ask about top1")
        if r.external and (q.metric == "top5" or (q.metric == "top1" and r.top1 is None)):
            raise StudyError(f"{path}: question.metric {q.metric}: recipe {r.name} is an external checkpoint "
                             f"without it" + (" (give its top1)" if q.metric == "top1" else "")
                             + "; ask about a downstream metric")
    return Question(q.recipe, q.metric, q.direction, q.text)


def _protocols(ds: DownstreamEntry, configs: dict[str, tuple[Path, ...]], path: Path) -> tuple[str, ...]:
    """The study's protocols, checked: known names, and each with the configs it runs on."""
    given = [protocol_table.DEFAULT] if ds.protocols is None else ds.protocols
    if not isinstance(given, (list, tuple)) or not given or not all(isinstance(p, str) for p in given):
        raise StudyError(f"{path}: downstream.protocols must be a non-empty list of protocol names, not {given!r}")
    for p in given:
        if p != "linear" and p not in protocol_table.PROTOCOLS:
            known = [*protocol_table.PROTOCOLS, "linear"]
            raise StudyError(f"{path}: downstream.protocols: unknown protocol {p!r}" + _close(p, known)
                             + f"; protocols: {', '.join(known)}")
    out = protocol_table.expand(given)
    for p in ("finetune", "frozen"):
        if p in out and ds.protocols is not None and not (configs["detection"] or configs["segmentation"]):
            raise StudyError(f"{path}: protocol {p} trains detectors or segmenters, but downstream.detection and "
                             f"downstream.segmentation name no config")
    return out


def _recipe(r: RecipeEntry, where: str, path: Path, seeds: tuple[int, ...]) -> Recipe:
    name = _name(r.name, f"{where}.name", path)
    where = f"recipe {name}"
    if (r.config is None) == (r.checkpoint is None):
        raise StudyError(f"{path}: {where} needs exactly one of config (a pretrain config to train) and checkpoint "
                         f"(an external weights file)")
    if r.top1 is not None and not 0 <= r.top1 <= 100:
        raise StudyError(f"{path}: {where}: top1 must be a percentage, not {r.top1!r}")
    if r.checkpoint is None and (r.top1 is not None or r.variant is not None):
        raise StudyError(f"{path}: {where}: top1 and variant are for external checkpoints; a trained recipe "
                         f"measures its own top-1")
    if r.checkpoint is not None and r.options:
        raise StudyError(f"{path}: {where}: options apply to a pretrain config, and an external checkpoint has none")
    if r.variant is not None and r.variant not in trick_table.VARIANTS:
        raise StudyError(f"{path}: {where}: variant must be A, B, C or D, not {r.variant!r}")
    return Recipe(
        name=name,
        config=_file(r.config, f"{where}: config", path) if r.config is not None else None,
        options=dict(r.options or {}),
        checkpoint=_file(r.checkpoint, f"{where}: checkpoint", path) if r.checkpoint is not None else None,
        top1=r.top1, variant=r.variant, seeds=_seeds(r.seeds, seeds, f"{where}: seeds", path),
        downstream=r.downstream)


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


def _design(d: DesignEntry, where: str, path: Path, seeds: tuple[int, ...],
            settings: dict[str, dict[str, Any]]) -> list[Recipe]:
    if d.type not in DESIGNS:
        raise StudyError(f"{path}: {where}.type {d.type!r} is not a design" + _close(d.type, DESIGNS)
                         + f"; designs: {', '.join(DESIGNS)}")
    base_name = _name(d.name, f"{where}.name", path)
    names = d.tricks
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(t, str) for t in names):
        raise StudyError(f"{path}: {where}.tricks must be a non-empty list of trick names; known: "
                         f"{', '.join(settings)}")
    if len(set(names)) != len(names):
        raise StudyError(f"{path}: {where}.tricks {list(names)} names a trick twice")
    for t in names:
        if t not in settings:
            raise StudyError(f"{path}: {where}: unknown trick {t!r}" + _close(t, settings)
                             + f"; known: {', '.join(settings)}; define a new one in trick_options")
    if d.type == "factorial" and len(names) > 8:
        raise StudyError(f"{path}: {where}: a factorial design of {len(names)} tricks is {2 ** len(names)} recipes; "
                         f"use leave_one_out or one_at_a_time")
    config = _file(d.base, f"{where}.base", path)
    design_seeds = _seeds(d.seeds, seeds, f"{where}.seeds", path)
    out = []
    for on in design_sets(d.type, list(names)):
        recipe = "+".join([base_name, *map(slug, on)])
        variants = [t for t in on if t in trick_table.TRICKS and trick_table.TRICKS[t].kind == "variant"]
        if len(variants) > 1:
            raise StudyError(f"{path}: {where} ({d.type}) makes recipe {recipe} with two variants "
                             f"({', '.join(variants)}); a recipe has one variant: vary them one_at_a_time, or in "
                             f"designs of their own")
        opts = dict(d.options or {})
        for t in on:
            for key, value in settings[t].items():
                if value == trick_table.TEACHER:
                    if d.teacher is None:
                        raise StudyError(f"{path}: {where}: trick {t} needs a teacher; set teacher='RECIPE' in the "
                                         f"design")
                    value = f"@{d.teacher}"
                opts[key] = value
        out.append(Recipe(name=recipe, config=config, options=opts, tricks=tuple(on), seeds=design_seeds,
                          downstream=d.downstream, design=where))
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


def _resources(slurm: SlurmEntry, stage: ResourcesEntry | None, where: str, path: Path) -> Resources:
    """A stage's resources: the study's Slurm defaults, then the stage's own keys."""
    keys = [f for f in ResourcesEntry.__dataclass_fields__]
    merged = {k: getattr(slurm, k) for k in keys if getattr(slurm, k, None) is not None}
    merged |= {k: getattr(stage, k) for k in keys if stage is not None and getattr(stage, k) is not None}
    for key in ("gpus", "nodes", "cpus"):
        x, least = merged.get(key), (0 if key == "gpus" else 1)
        if x is not None and x < least:
            raise StudyError(f"{path}: {where}.{key} must be an integer >= {least}, not {x!r}")
    return Resources(**{**merged, "extra": tuple(merged.get("extra") or ())})
