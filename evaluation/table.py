"""A study's results, found, joined and tabulated: what the leaderboard and the report both read.

* :func:`find_results`: every ``result.json`` under a folder (:func:`trickbench.results.find`);
  a malformed one stops everything with one line naming it, another tool's is skipped with a
  warning.
* :func:`join`: each backbone's pretraining with the downstream results that fine-tuned exactly
  its ``backbone.pth`` (by backbone id, checked against its SHA-256).
* :func:`tabulate`: the joined results as a :class:`StudyTable`: the statistics' runs (recipe x
  seed), each recipe's tricks, factors, architecture and cost, and the leaderboard's rows.
* :func:`to_csv` and :func:`recipes_csv`: ``leaderboard.csv`` (one row per backbone) and
  ``recipes.csv`` (one row per recipe).

No file is written here, and no torch is imported.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from evaluation.stats import Run, Summary
from trickbench import results
from trickbench.errors import TrickBenchError
from trickbench.results import Result

COLUMNS = ["backbone", "recipe", "seed", "arch", "tricks", "top1", "top5", "voc_map", "voc_map_area", "ade_miou", "ade_aacc",
           "ade_macc", "det_config", "seg_config", "pretrain_dir", "det_dir", "seg_dir", "det_finetunes",
           "seg_finetunes",  # a downstream metric is the mean over the backbone's fine-tunes (det_finetunes of them)
           "frozen_map", "frozen_miou", "linear_miou", "knn_top1", "svm_map"]  # the cheaper protocols' numbers
# stage -> (metric in result.json -> column)
STAGE_COLUMNS = {
    "pretrain": {"top1": "top1", "top5": "top5"},
    "detection": {"map": "voc_map", "map_area": "voc_map_area"},
    "segmentation": {"miou": "ade_miou", "aacc": "ade_aacc", "macc": "ade_macc"},
}
METRICS = ("top1", "top5", "map", "map_area", "miou", "aacc", "macc")  # the statistics' metrics, in order
# The protocols other than finetune (trickbench.protocols): (stage, protocol) -> (metric in result.json,
# the metric's name in the table, a column of leaderboard.csv). Their numbers stand beside the fine-tuned
# ones, to be compared with them; no verdict between recipes rests on them.
PROTOCOL_METRICS = {
    ("detection", "frozen"): ("map", "frozen_map"),
    ("segmentation", "frozen"): ("miou", "frozen_miou"),
    ("segmentation", "ade-linear"): ("miou", "linear_miou"),
    ("probe", "knn"): ("top1", "knn_top1"),
    ("probe", "voc07-svm"): ("map", "svm_map"),
}
CHEAP = tuple(name for _, name in PROTOCOL_METRICS.values())


class TableError(TrickBenchError, RuntimeError):
    """Results that cannot be tabulated (unreadable, two runs with one id or one recipe and seed)."""


# ---------------------------------------------------------------- finding and joining


def find_results(root: Path) -> list[Result]:
    if not root.is_dir():
        raise TableError(f"--runs {root} is not a directory")
    found = results.find(root)
    for path in found.foreign:
        print(f"warning: {path} is not a TrickBench result (no stage); skipped", file=sys.stderr)
    if found.unreadable:
        path, problem = found.unreadable[0]
        more = f" ({len(found.unreadable) - 1} more unreadable result file(s))" if len(found.unreadable) > 1 else ""
        raise TableError(problem + more)
    return found.results


@dataclass
class Joined:
    """One backbone's results: its pretraining (None for an external checkpoint), and per
    downstream stage the fine-tunes of exactly its ``backbone.pth`` (the newest of each
    fine-tune seed, in seed order) and the hyperparameter trials that chose their settings."""
    backbone: str
    pretrain: Result | None = None
    downstream: dict[str, list[Result]] = field(default_factory=dict)
    trials: dict[str, list[Result]] = field(default_factory=dict)
    # the other protocols' runs and trials, by (stage, protocol) (PROTOCOL_METRICS)
    protocols: dict[tuple[str, str], list[Result]] = field(default_factory=dict)
    protocol_trials: dict[tuple[str, str], list[Result]] = field(default_factory=dict)

    @property
    def first(self) -> Result:
        return self.pretrain or next(iter([*self.downstream.values(), *self.protocols.values()]))[0]

    @property
    def seed(self) -> int:
        """The backbone's pretraining seed (0 where nothing recorded one)."""
        if self.pretrain is not None:
            return self.pretrain.seed if self.pretrain.seed is not None else 0
        first = self.first
        seed = first.pretrain_seed if first.pretrain_seed is not None else first.seed
        return seed if seed is not None else 0


def finetune_key(res: Result) -> int | None:
    """A fine-tune's seed: the recorded one, else (files from before fine-tune seeds) its ``seed``."""
    return res.finetune_seed if res.finetune_seed is not None else res.seed


def join(found: list[Result], configs: dict[str, str] | None = None) -> list[Joined]:
    """Downstream results joined to the backbone they fine-tuned, by backbone id, checked
    against the SHA-256 of its ``backbone.pth``. ``configs`` maps a downstream stage to the
    config (file stem) whose results count, e.g. ``{"detection":
    "faster-rcnn_r50-c4_4xb1-20e_voc0712_paper"}``; by default every config does, and the
    newest result of a backbone and stage wins (ties broken by path)."""
    configs = configs or {}
    joined: dict[str, Joined] = {}
    for res in found:
        if res.stage != "pretrain":
            continue
        if res.backbone in joined:
            raise TableError(f"two pretrain runs share the backbone id {res.backbone!r}: "
                             f"{joined[res.backbone].pretrain.run_dir} and {res.run_dir}; rename one (run.name)")
        joined[res.backbone] = Joined(res.backbone, pretrain=res)
    newest: dict[tuple[str, tuple[str, str], int | None], Result] = {}
    for res in found:
        if res.stage == "pretrain" or (res.protocol_name in ("finetune", "frozen")
                                       and configs.get(res.stage) not in (None, res.config_name)):
            continue  # a pretrain result, or a fine-tune of a config not asked for
        entry = joined.setdefault(res.backbone, Joined(res.backbone))
        pre = entry.pretrain
        if pre is not None and res.backbone_sha256 and pre.backbone_sha256 \
                and res.backbone_sha256 != pre.backbone_sha256:
            print(f"warning: {res.run_dir} fine-tuned an older backbone.pth of {res.backbone!r} "
                  f"(checksum differs); skipped", file=sys.stderr)
            continue
        kind = (res.stage, res.protocol_name)
        if kind != (res.stage, "finetune") and kind not in PROTOCOL_METRICS:
            print(f"warning: {res.run_dir}: protocol {res.protocol_name} does not run in {res.stage}; skipped",
                  file=sys.stderr)
            continue
        if res.is_trial:  # scored on held-out training images: kept for its cost and choice, never reported
            if kind[1] == "finetune":
                entry.trials.setdefault(res.stage, []).append(res)
            else:
                entry.protocol_trials.setdefault(kind, []).append(res)
            continue
        key = (res.backbone, kind, finetune_key(res))
        held = newest.get(key)
        if held is None or (res.finished_at, str(res.run_dir)) > (held.finished_at, str(held.run_dir)):
            newest[key] = res
    # A backbone's fine-tunes of one stage are averaged only within one config: that of its newest result
    latest: dict[tuple[str, tuple[str, str]], Result] = {}
    for (backbone, kind, _), res in newest.items():
        held = latest.get((backbone, kind))
        if held is None or (res.finished_at, str(res.run_dir)) > (held.finished_at, str(held.run_dir)):
            latest[(backbone, kind)] = res
    for (backbone, kind, _), res in sorted(newest.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        if res.config_name == latest[(backbone, kind)].config_name:
            if kind[1] == "finetune":
                joined[backbone].downstream.setdefault(kind[0], []).append(res)
            else:
                joined[backbone].protocols.setdefault(kind, []).append(res)
    for j in joined.values():  # a trial counts (its cost) only with the config of the runs it chose for
        for stage, runs in j.downstream.items():
            j.trials[stage] = [t for t in j.trials.get(stage, []) if t.config_name == runs[0].config_name]
        for kind, runs in j.protocols.items():
            j.protocol_trials[kind] = [t for t in j.protocol_trials.get(kind, []) if t.config_name == runs[0].config_name]
    for stage, flag in (("detection", "--det-config"), ("segmentation", "--seg-config")):
        used = sorted({r.config_name for j in joined.values() for r in j.downstream.get(stage, [])})
        if len(used) > 1:
            print(f"warning: the {stage} column mixes configs ({', '.join(used)}), whose numbers do not compare; "
                  f"pass {flag} to keep one", file=sys.stderr)
    for kind in PROTOCOL_METRICS:
        used = sorted({r.config_name for j in joined.values() for r in j.protocols.get(kind, [])})
        if len(used) > 1:
            print(f"warning: the {kind[1]} ({kind[0]}) numbers mix configs ({', '.join(used)}), which do not "
                  f"compare; keep one config's runs under --runs", file=sys.stderr)
    return [joined[k] for k in sorted(joined) if joined[k].pretrain or joined[k].downstream or joined[k].protocols]


# ---------------------------------------------------------------- the table


def arch_name(res: Result) -> str:
    a = res.arch or {}
    if not a:
        return ""
    width = "" if a.get("base_channels", 64) == 64 else f"-w{a['base_channels']}"
    return f"ResNet-{a['depth']}-{a['variant']}{width}"


def mean_metric(fts: list[Result], metric: str) -> float | None:
    """The mean of ``metric`` over a backbone's fine-tunes (the per-backbone mean the statistics use)."""
    return mean_or_none([r.metrics[metric] for r in fts if metric in r.metrics])


def common_dir(paths: list[Path]) -> Path:
    parts = zip(*(p.parts for p in paths))
    return Path(*[ps[0] for ps in parts if len(set(ps)) == 1] or ["/"])


def fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def mean_or_none(xs: tuple[float, ...] | list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclass(frozen=True)
class RecipeCost:
    """What the runs of one recipe cost: one value per run that recorded it (an external
    backbone has no pretraining cost, a stage that did not run none of its own)."""
    pretrain_device_hours: tuple[float, ...] = ()
    pretrain_images_per_s: tuple[float, ...] = ()
    detection_device_hours: tuple[float, ...] = ()
    segmentation_device_hours: tuple[float, ...] = ()

    def cells(self) -> tuple[str, ...]:
        """The mean per run of each field, in field order, as recipes.csv and the report show it
        ('' where no run recorded it)."""
        return tuple(fmt(mean_or_none(getattr(self, f.name)), 4 if f.name.endswith("hours") else 1)
                     for f in fields(self))


COST_COLUMNS = tuple(f.name for f in fields(RecipeCost))


@dataclass(frozen=True)
class FineTune:
    """One reported fine-tune: a row of ``runs.csv`` (sweep trials are not rows)."""
    recipe: str
    seed: int                              # the backbone's pretraining seed
    stage: str                             # detection or segmentation
    config: str
    finetune_seed: int | None
    metrics: dict[str, float]
    chosen: dict                           # the hyperparameters chosen on held-out data ({} without a sweep)
    device_hours: float
    sweep_device_hours: float              # its share of its backbone's trials
    device: str
    selection: dict | None = None
    protocol: str = "finetune"


@dataclass(frozen=True)
class StudyTable:
    """What a study's results hold, for the leaderboard and the statistics. A recipe without
    a pretraining result (an external backbone) has no ``tricks`` or ``factors`` entry."""
    runs: tuple[Run, ...]                  # one per backbone: its recipe, seed (None: 0) and metrics
    rows: tuple[dict[str, str], ...]       # leaderboard.csv: one per backbone, keyed by COLUMNS
    arch: dict[str, str]                   # recipe -> "ResNet-50-D" ('' when its results name none)
    tricks: dict[str, tuple[str, ...]]     # recipe -> its on/off tricks (Result.tricks)
    factors: dict[str, tuple[str, ...]]    # recipe -> its tricks and its variant if not B (Result.factors)
    cost: dict[str, RecipeCost]
    stages: frozenset[str]                 # the stages with at least one joined result
    finetunes: tuple[FineTune, ...] = ()   # every reported fine-tune (runs.csv; the variance components)
    trial_hours: dict[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)  # stage -> per backbone
    protocol_runs: tuple[FineTune, ...] = ()  # every run of the other protocols (runs.csv), never in the noise
    # (stage, protocol) -> the device-hours of each backbone measured that way (its runs and trials together)
    protocol_hours: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)

    def plan_costs(self) -> dict[str, float]:
        """Device-hours a seed plan prices (:func:`evaluation.noise.seed_plan`): one pretraining,
        one fine-tune and one sweep trial of each stage, and the trials per backbone; means over
        the runs that recorded them."""
        pre = [h for c in self.cost.values() for h in c.pretrain_device_hours]
        out = {"pretrain": sum(pre) / len(pre)} if pre else {}
        for stage in ("detection", "segmentation"):
            fts = [f.device_hours for f in self.finetunes if f.stage == stage]
            if fts:
                out[stage] = sum(fts) / len(fts)
            per = self.trial_hours.get(stage, ())
            trials = [h for backbone in per for h in backbone]
            if trials:
                out[f"{stage}_trial"] = sum(trials) / len(trials)
                out[f"{stage}_trials"] = round(len(trials) / len(per))
        return out

    @property
    def recipes(self) -> list[str]:
        return sorted({r.recipe for r in self.runs})

    @property
    def downstream(self) -> bool:
        """Whether any backbone has a detection or segmentation result."""
        return bool(self.stages - {"pretrain"})


def leaderboard_rows(joined: list[Joined], root: Path) -> list[dict[str, str]]:
    """One row per backbone (every seed of every recipe): ``COLUMNS``."""
    rows = []
    for j in joined:
        row = {c: "" for c in COLUMNS} | {"backbone": j.backbone, "recipe": j.first.recipe}
        ref = j.pretrain or j.first
        recorded = ref.seed if j.pretrain else (ref.pretrain_seed if ref.pretrain_seed is not None else ref.seed)
        row.update(arch=arch_name(ref), seed="" if recorded is None else str(recorded))
        if j.pretrain:
            row.update(tricks="+".join(j.pretrain.tricks) or "baseline",
                       pretrain_dir=str(j.pretrain.run_dir.relative_to(root)))
            for metric, col in STAGE_COLUMNS["pretrain"].items():
                row[col] = fmt(j.pretrain.metrics.get(metric))
        else:
            row["top1"] = fmt(j.first.top1)  # an external backbone's top-1, given by the user
        for stage, fts in j.downstream.items():
            for metric, col in STAGE_COLUMNS[stage].items():
                row[col] = fmt(mean_metric(fts, metric))
            prefix = "det" if stage == "detection" else "seg"
            row[f"{prefix}_config"] = fts[0].config_name
            where = fts[0].run_dir if len(fts) == 1 else common_dir([r.run_dir for r in fts])
            row[f"{prefix}_dir"] = str(where.relative_to(root))
            row[f"{prefix}_finetunes"] = str(len(fts))
        for kind, runs in j.protocols.items():
            metric, col = PROTOCOL_METRICS[kind]
            row[col] = fmt(mean_metric(runs, metric))
        rows.append(row)
    return rows


def build_rows(found: list[Result], root: Path, configs: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The leaderboard's rows of the results ``found`` under ``root``."""
    return leaderboard_rows(join(found, configs), root)


def tabulate(joined: list[Joined], root: Path) -> StudyTable:
    """The joined results of the runs under ``root`` as a table; two backbones with the same
    recipe and seed are a :class:`TableError`."""
    runs, arch, tricks, factors = [], {}, {}, {}
    cost: dict[str, dict[str, list[float]]] = {}
    seen: dict[tuple[str, int], str] = {}
    finetunes: list[FineTune] = []
    trial_hours: dict[str, list[tuple[float, ...]]] = {}
    protocol_runs: list[FineTune] = []
    protocol_hours: dict[tuple[str, str], list[float]] = {}
    for j in joined:
        first = j.pretrain or j.first
        recipe, seed = first.recipe, j.seed
        if (recipe, seed) in seen:
            raise TableError(f"backbones {seen[(recipe, seed)]!r} and {j.backbone!r} are both seed {seed} of recipe "
                             f"{recipe!r} ({first.source}); give them distinct seeds or recipes (run.seed, run.recipe)")
        seen[(recipe, seed)] = j.backbone
        metrics = {}
        if j.pretrain:
            metrics |= {k: v for k, v in j.pretrain.metrics.items() if k in ("top1", "top5")}
            tricks.setdefault(recipe, tuple(j.pretrain.tricks))
            factors.setdefault(recipe, j.pretrain.factors)
        elif first.top1 is not None:
            metrics["top1"] = first.top1
        for fts in j.downstream.values():
            names = [k for k in METRICS if any(k in r.metrics for r in fts)]
            metrics |= {k: mean_metric(fts, k) for k in names}
        for kind, those in j.protocols.items():
            metric, col = PROTOCOL_METRICS[kind]
            metrics[col] = mean_metric(those, metric)
            trials = j.protocol_trials.get(kind, [])
            protocol_hours.setdefault(kind, []).append(sum(r.cost.device_hours for r in those + trials))
            for r in those:
                protocol_runs.append(FineTune(
                    recipe, seed, kind[0], r.config_name, finetune_key(r) if r.stage != "probe" else None,
                    {col: r.metrics[metric]}, dict((r.selection or {}).get("chosen") or {}),
                    r.cost.device_hours, sum(t.cost.device_hours for t in trials) / len(those), r.cost.device,
                    r.selection, kind[1]))
        for stage, fts in j.downstream.items():
            protocol_hours.setdefault((stage, "finetune"), []).append(
                sum(r.cost.device_hours for r in fts + j.trials.get(stage, [])))
        runs.append(Run(recipe, seed, metrics))
        for stage, trials in j.trials.items():
            trial_hours.setdefault(stage, []).append(tuple(t.cost.device_hours for t in trials))
        for stage, fts in j.downstream.items():
            sweep_hours = sum(t.cost.device_hours for t in j.trials.get(stage, []))
            for r in fts:
                finetunes.append(FineTune(
                    recipe, seed, stage, r.config_name, finetune_key(r),
                    {k: v for k, v in r.metrics.items() if k in METRICS},
                    dict((r.selection or {}).get("chosen") or {}), r.cost.device_hours, sweep_hours / len(fts),
                    r.cost.device, r.selection))
        arch.setdefault(recipe, arch_name(first))
        c = cost.setdefault(recipe, {name: [] for name in COST_COLUMNS})
        if j.pretrain:
            c["pretrain_device_hours"].append(j.pretrain.cost.device_hours)
            if j.pretrain.cost.images_per_s is not None:
                c["pretrain_images_per_s"].append(j.pretrain.cost.images_per_s)
        for stage, fts in j.downstream.items():  # a backbone's fine-tunes and its trials, together
            c[f"{stage}_device_hours"].append(sum(r.cost.device_hours for r in fts + j.trials.get(stage, [])))
    stages = {"pretrain" for j in joined if j.pretrain} | {s for j in joined for s in j.downstream}
    return StudyTable(tuple(runs), tuple(leaderboard_rows(joined, root)), arch, tricks, factors,
                      {r: RecipeCost(**{k: tuple(v) for k, v in c.items()}) for r, c in cost.items()},
                      frozenset(stages), tuple(finetunes), {k: tuple(v) for k, v in trial_hours.items()},
                      tuple(protocol_runs), {k: tuple(v) for k, v in protocol_hours.items()})


# ---------------------------------------------------------------- the CSV files


def to_csv(rows: list[dict[str, str]] | tuple[dict[str, str], ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def recipes_csv(summary: dict[str, dict[str, Summary]], table: StudyTable) -> str:
    """Per recipe: seeds, mean, std and 95% interval of every metric, and the mean cost of a run."""
    cols = ["recipe", "arch", "tricks", "n_seeds"]
    for m in METRICS:
        cols += [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"]
    cols += list(COST_COLUMNS)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for recipe in sorted(summary):
        row = {"recipe": recipe, "arch": table.arch[recipe],
               "tricks": "+".join(table.tricks.get(recipe, ())) or ("baseline" if recipe in table.tricks else ""),
               "n_seeds": max(s.n for s in summary[recipe].values())}
        for m, s in summary[recipe].items():
            row |= {f"{m}_mean": fmt(s.mean), f"{m}_std": fmt(s.std), f"{m}_ci_low": fmt(s.ci_low),
                    f"{m}_ci_high": fmt(s.ci_high)}
        row |= dict(zip(COST_COLUMNS, table.cost[recipe].cells()))
        w.writerow(row)
    return buf.getvalue()


def runs_csv(finetunes: tuple[FineTune, ...] | list[FineTune]) -> str:
    """One row per reported fine-tune: recipe, pretraining seed, task, config, protocol, fine-tune
    seed, each chosen hyperparameter (a column named by its key), each metric (another protocol's
    under its own name: ``frozen_map``, ``knn_top1``...), device-hours (the fine-tune's own plus its
    share of its backbone's sweep)."""
    keys = sorted({k for f in finetunes for k in f.chosen})
    metrics = [m for m in METRICS + CHEAP if any(m in f.metrics for f in finetunes)]
    cols = ["recipe", "pretrain_seed", "task", "config", "protocol", "finetune_seed", *keys, *metrics,
            "device_hours", "device"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for f in sorted(finetunes, key=lambda f: (f.recipe, f.seed, f.stage, f.protocol, f.config, f.finetune_seed or 0)):
        w.writerow({"recipe": f.recipe, "pretrain_seed": f.seed, "task": f.stage, "config": f.config,
                    "protocol": f.protocol, "finetune_seed": "" if f.finetune_seed is None else f.finetune_seed}
                   | {k: f.chosen.get(k, "") for k in keys} | {m: fmt(f.metrics.get(m)) for m in metrics}
                   | {"device_hours": fmt(f.device_hours + f.sweep_device_hours, 5), "device": f.device})
    return buf.getvalue()


# ---------------------------------------------------------------- which results count (both CLIs)


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """``--runs``, ``--det-config``, ``--seg-config``: which results a table or report reads."""
    p.add_argument("--runs", required=True, type=Path, help="folder to scan for result.json files")
    p.add_argument("--det-config", help="count only detection results of this config (its file name, without .py)")
    p.add_argument("--seg-config", help="count only segmentation results of this config (its file name, without .py)")


def selected_configs(args: argparse.Namespace) -> dict[str, str]:
    return {stage: Path(name).stem for stage, name in (("detection", args.det_config),
                                                       ("segmentation", args.seg_config)) if name}
