#!/usr/bin/env python
"""The leaderboard: one row per pretrained backbone, ImageNet top-1 next to VOC mAP and ADE20K mIoU.

    python evaluation/leaderboard.py --runs runs/ [--out runs/leaderboard.csv]

It is derived, never edited: every ``result.json`` under ``--runs`` is read, the
downstream results are joined to the backbone they fine-tuned (by the backbone
id, checked against the SHA-256 of the ``backbone.pth`` they loaded), and the CSV
is written atomically. The same runs always give the same file.

A leaderboard never shows partial or wrong numbers: a ``result.json`` that has a
``stage`` but is malformed (not valid JSON, no ``backbone`` or ``metrics``, a metric
that is not a finite number, an ``arch`` without ``depth``, ...) stops it with exit
code 2 and one ``error:`` line naming the file, before anything is written. Only a
``result.json`` with no ``stage`` at all (not a TrickBench result; another tool's) is
skipped, with a warning.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.stats import Run, summary_table
from trickbench import results
from trickbench.fileio import atomic_write_bytes
from trickbench.results import Result
from trickbench.errors import TrickBenchError

COLUMNS = ["backbone", "recipe", "seed", "arch", "tricks", "top1", "top5", "voc_map", "voc_map_area", "ade_miou", "ade_aacc",
           "ade_macc", "det_config", "seg_config", "pretrain_dir", "det_dir", "seg_dir"]
# stage -> (metric in result.json -> column)
STAGE_COLUMNS = {
    "pretrain": {"top1": "top1", "top5": "top5"},
    "detection": {"map": "voc_map", "map_area": "voc_map_area"},
    "segmentation": {"miou": "ade_miou", "aacc": "ade_aacc", "macc": "ade_macc"},
}


class LeaderboardError(TrickBenchError, RuntimeError):
    pass


def find_results(root: Path) -> list[Result]:
    if not root.is_dir():
        raise LeaderboardError(f"--runs {root} is not a directory")
    found = results.find(root)
    for path in found.foreign:
        print(f"warning: {path} is not a TrickBench result (no stage); skipped", file=sys.stderr)
    if found.unreadable:
        path, problem = found.unreadable[0]
        more = f" ({len(found.unreadable) - 1} more unreadable result file(s))" if len(found.unreadable) > 1 else ""
        raise LeaderboardError(problem + more)
    return found.results


def arch_name(res: Result) -> str:
    a = res.arch or {}
    if not a:
        return ""
    width = "" if a.get("base_channels", 64) == 64 else f"-w{a['base_channels']}"
    return f"ResNet-{a['depth']}-{a['variant']}{width}"


def fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


@dataclass
class Joined:
    """One backbone's results: its pretraining (None for an external checkpoint) and the
    newest result of each downstream stage that fine-tuned exactly its ``backbone.pth``."""
    backbone: str
    pretrain: Result | None = None
    downstream: dict[str, Result] = field(default_factory=dict)

    @property
    def first(self) -> Result:
        return self.pretrain or next(iter(self.downstream.values()))


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
            raise LeaderboardError(f"two pretrain runs share the backbone id {res.backbone!r}: "
                                   f"{joined[res.backbone].pretrain.run_dir} and {res.run_dir}; rename one (run.name)")
        joined[res.backbone] = Joined(res.backbone, pretrain=res)
    for res in found:
        if res.stage == "pretrain" or configs.get(res.stage) not in (None, res.config_name):
            continue  # a pretrain result, or a downstream result of a config not asked for
        entry = joined.setdefault(res.backbone, Joined(res.backbone))
        pre = entry.pretrain
        if pre is not None and res.backbone_sha256 and pre.backbone_sha256 \
                and res.backbone_sha256 != pre.backbone_sha256:
            print(f"warning: {res.run_dir} fine-tuned an older backbone.pth of {res.backbone!r} "
                  f"(checksum differs); skipped", file=sys.stderr)
            continue
        held = entry.downstream.get(res.stage)
        if held is None or (res.finished_at, str(res.run_dir)) > (held.finished_at, str(held.run_dir)):
            entry.downstream[res.stage] = res
    for stage, flag in (("detection", "--det-config"), ("segmentation", "--seg-config")):
        used = sorted({j.downstream[stage].config_name for j in joined.values() if stage in j.downstream})
        if len(used) > 1:
            print(f"warning: the {stage} column mixes configs ({', '.join(used)}), whose numbers do not compare; "
                  f"pass {flag} to keep one", file=sys.stderr)
    return [joined[k] for k in sorted(joined) if joined[k].pretrain or joined[k].downstream]


def build_rows(found: list[Result], root: Path, configs: dict[str, str] | None = None) -> list[dict]:
    """One row per backbone (every seed of every recipe): ``COLUMNS``."""
    rows = []
    for j in join(found, configs):
        row = {c: "" for c in COLUMNS} | {"backbone": j.backbone, "recipe": j.first.recipe}
        ref = j.pretrain or j.first
        row.update(arch=arch_name(ref), seed="" if ref.seed is None else str(ref.seed))
        if j.pretrain:
            row.update(tricks="+".join(j.pretrain.tricks) or "baseline",
                       pretrain_dir=str(j.pretrain.run_dir.relative_to(root)))
            for metric, col in STAGE_COLUMNS["pretrain"].items():
                row[col] = fmt(j.pretrain.metrics.get(metric))
        else:
            row["top1"] = fmt(j.first.top1)  # an external backbone's top-1, given by the user
        for stage, res in j.downstream.items():
            for metric, col in STAGE_COLUMNS[stage].items():
                row[col] = fmt(res.metrics.get(metric))
            prefix = "det" if stage == "detection" else "seg"
            row[f"{prefix}_config"] = res.config_name
            row[f"{prefix}_dir"] = str(res.run_dir.relative_to(root))
        rows.append(row)
    return rows


METRICS = ("top1", "top5", "map", "map_area", "miou", "aacc", "macc")


def study_table(joined: list[Joined]) -> tuple[list[Run], dict[str, tuple[str, ...]], dict[str, dict]]:
    """The statistics' table (recipe, seed, metrics), each recipe's tricks, and each recipe's cost."""
    runs, tricks, cost = [], {}, {}
    seen: dict[tuple[str, int], str] = {}
    for j in joined:
        first = j.pretrain or j.first
        recipe, seed = first.recipe, first.seed if first.seed is not None else 0
        if (recipe, seed) in seen:
            raise LeaderboardError(f"backbones {seen[(recipe, seed)]!r} and {j.backbone!r} are both seed {seed} of recipe "
                              f"{recipe!r} ({first.source}); give them distinct seeds or recipes (run.seed, run.recipe)")
        seen[(recipe, seed)] = j.backbone
        metrics = {}
        if j.pretrain:
            metrics |= {k: v for k, v in j.pretrain.metrics.items() if k in ("top1", "top5")}
            tricks.setdefault(recipe, tuple(j.pretrain.tricks))
        elif first.top1 is not None:
            metrics["top1"] = first.top1
        for res in j.downstream.values():
            metrics |= {k: v for k, v in res.metrics.items() if k in METRICS}
        runs.append(Run(recipe, seed, metrics))
        c = cost.setdefault(recipe, {"arch": arch_name(first), "pretrain_device_hours": [], "pretrain_images_per_s": [],
                                     "detection_device_hours": [], "segmentation_device_hours": []})
        if j.pretrain:
            c["pretrain_device_hours"].append(j.pretrain.cost.device_hours)
            if j.pretrain.cost.images_per_s is not None:
                c["pretrain_images_per_s"].append(j.pretrain.cost.images_per_s)
        for stage, res in j.downstream.items():
            c[f"{stage}_device_hours"].append(res.cost.device_hours)
    return runs, tricks, cost


def mean_or_none(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def recipes_csv(summary: dict, cost: dict, tricks: dict) -> str:
    """Per recipe: seeds, mean, std and 95% interval of every metric, and the mean cost of a run."""
    cols = ["recipe", "arch", "tricks", "n_seeds"]
    for m in METRICS:
        cols += [f"{m}_mean", f"{m}_std", f"{m}_ci_low", f"{m}_ci_high"]
    cols += ["pretrain_device_hours", "pretrain_images_per_s", "detection_device_hours", "segmentation_device_hours"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for recipe in sorted(summary):
        row = {"recipe": recipe, "arch": cost[recipe]["arch"],
               "tricks": "+".join(tricks.get(recipe, ())) or ("baseline" if recipe in tricks else ""),
               "n_seeds": max(s.n for s in summary[recipe].values())}
        for m, s in summary[recipe].items():
            row |= {f"{m}_mean": fmt(s.mean), f"{m}_std": fmt(s.std), f"{m}_ci_low": fmt(s.ci_low),
                    f"{m}_ci_high": fmt(s.ci_high)}
        for k in cols[-4:]:
            row[k] = fmt(mean_or_none(cost[recipe][k]), 4 if k.endswith("hours") else 1)
        w.writerow(row)
    return buf.getvalue()


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def aligned(cells: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns, for the terminal."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def format_table(rows: list[dict], columns=("backbone", "arch", "tricks", "top1", "voc_map", "ade_miou", "ade_aacc")) -> str:
    return aligned([list(columns)] + [[r[c] or "-" for c in columns] for r in rows])


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """``--runs``, ``--det-config``, ``--seg-config``: which results a table or report reads."""
    p.add_argument("--runs", required=True, type=Path, help="folder to scan for result.json files")
    p.add_argument("--det-config", help="count only detection results of this config (its file name, without .py)")
    p.add_argument("--seg-config", help="count only segmentation results of this config (its file name, without .py)")


def selected_configs(args: argparse.Namespace) -> dict[str, str]:
    return {stage: Path(name).stem for stage, name in (("detection", args.det_config),
                                                       ("segmentation", args.seg_config)) if name}


def recipe_table(summary: dict) -> str:
    """Per recipe, the seeds and mean ± std of top-1, mAP and mIoU, for the terminal."""
    rows = [["recipe", "seeds", "top1", "voc_map", "ade_miou"]]
    for recipe in sorted(summary):
        s = summary[recipe]
        cells = [f"{s[m].mean:.2f} ± {s[m].std:.2f}" if m in s and s[m].std is not None else
                 (f"{s[m].mean:.2f}" if m in s else "-") for m in ("top1", "map", "miou")]
        rows.append([recipe, str(max(v.n for v in s.values())), *cells])
    return aligned(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p)
    p.add_argument("--out", type=Path, help="the per-run CSV to write (default: RUNS/leaderboard.csv); the "
                                            "per-recipe one, recipes.csv, goes next to it")
    args = p.parse_args(argv)
    configs = selected_configs(args)
    out = args.out or args.runs / "leaderboard.csv"
    per_recipe = out.with_name("recipes.csv") if out.name != "recipes.csv" else out.with_name("recipes-summary.csv")
    try:
        if out.is_dir():
            raise LeaderboardError(f"--out {out} is a folder; give a file, e.g. --out {out / 'leaderboard.csv'}")
        found = find_results(args.runs)
        rows = build_rows(found, args.runs, configs)
        runs, tricks, cost = study_table(join(found, configs))
        summary = summary_table(runs, [m for m in METRICS if any(m in r.metrics for r in runs)])
        try:
            atomic_write_bytes(out, to_csv(rows).encode())
            atomic_write_bytes(per_recipe, recipes_csv(summary, cost, tricks).encode())
        except OSError as e:  # a WriteError: the previous file is unchanged
            raise LeaderboardError(f"cannot write {e.filename}: {e.strerror}; it is left as it was: "
                                   f"fix that folder (space, permissions) or choose another --out") from e
    except LeaderboardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print()
    print(recipe_table(summary))
    print(f"\n{len(rows)} run(s) of {len(summary)} recipe(s); per run: {out}, per recipe (mean, std, 95% interval, "
          f"cost): {per_recipe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
