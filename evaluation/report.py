#!/usr/bin/env python
"""The report of a backbone comparison: does a better ImageNet backbone make a better
detector and segmenter, and which differences between recipes are real?

    python evaluation/report.py --runs DIR [--out DIR] [--reference RECIPE] [--det-config NAME] [--seg-config NAME]

Reads every ``result.json`` under ``--runs`` (:mod:`trickbench.results`), joins each
backbone's pretraining, detection and segmentation (:func:`evaluation.leaderboard.join`),
and writes into ``--out`` (default ``RUNS/report``):

* ``report.md``: the tables, the figures, and the statistics in sentences a reader can quote;
* ``report.json``: every number, machine-readable;
* ``recipes.csv``: per recipe, seeds, mean, std and 95% interval of every metric, and the cost;
* ``leaderboard.csv``: every run (one row per backbone, so per seed);
* ``figures/``: top-1 against mAP and against mIoU, the effects against the reference
  recipe (a forest chart) and the ranks by each metric (a bump chart), as PNG and SVG.

The statistics are :mod:`evaluation.stats`'s: correlations over recipes with two-level
bootstrap intervals and Holm-adjusted permutation p-values, effects against the reference
paired by seed, rank inversions, and the main effect of each trick where recipes differ by
one trick. Everything is seeded: the same runs give the same bytes. External backbones
(their top-1 given with ``--top1``) take part; a stage that did not run leaves a gap.

Bad input (a malformed ``result.json``, two runs with one backbone id, two backbones with
the same recipe and seed, an unknown ``--reference``, no downstream result at all) ends
with exit code 2 and one line naming the file or recipe, and no report is written.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from evaluation import stats
from evaluation.leaderboard import (METRICS, LeaderboardError, fmt, mean_or_none, add_selection_args, build_rows,
                                    find_results, join, recipes_csv, selected_configs, study_table, to_csv)
from trickbench.fileio import atomic_write_bytes, atomic_write_json
from trickbench.runinfo import now, study_lineage
from trickbench.errors import TrickBenchError

DOWNSTREAM = ("map", "miou")
UNITS = {"top1": "ImageNet top-1", "top5": "ImageNet top-5", "map": "VOC mAP (VOC07 11-point)",
         "map_area": "VOC mAP (area)", "miou": "ADE20K mIoU", "aacc": "ADE20K pixel accuracy",
         "macc": "ADE20K mean class accuracy"}


class ReportError(TrickBenchError, RuntimeError):
    pass


def choose_reference(recipes: list[str], tricks: dict[str, tuple[str, ...]], asked: str | None) -> str:
    if asked is not None:
        if asked not in recipes:
            raise ReportError(f"--reference {asked!r} is not a recipe of these runs; the recipes are "
                              f"{', '.join(recipes)}")
        return asked
    if "baseline" in recipes:
        return "baseline"
    plain = [r for r in recipes if r in tricks and not tricks[r]]
    return (plain or sorted(recipes, key=lambda r: (len(tricks.get(r, ())) if r in tricks else 99, r)))[0]


def analyse(runs: list[stats.Run], tricks: dict[str, tuple[str, ...]], reference: str) -> dict:
    present = [m for m in METRICS if any(m in r.metrics for r in runs)]
    ys = [m for m in DOWNSTREAM if m in present]
    has_top1 = "top1" in present
    # Recipes that share a trick set differ in something else (variant, depth, lr): a trick's
    # main effect is taken only between recipes whose trick sets tell them apart.
    by_set: dict[frozenset, list[str]] = {}
    for recipe, ts in tricks.items():
        by_set.setdefault(frozenset(ts), []).append(recipe)
    unique = {rs[0]: tricks[rs[0]] for rs in by_set.values() if len(rs) == 1}
    out = {
        "reference": reference,
        "metrics": present,
        "summary": stats.summary_table(runs, present),
        "correlations": stats.correlations(runs, x="top1", ys=ys) if has_top1 and ys else [],
        "effects": stats.effects(runs, reference, present),
        "inversions": stats.rank_inversions(runs, x="top1", ys=ys) if has_top1 and ys else [],
        "trick_effects": [t for t in stats.trick_effects(runs, unique, present) if t.n_pairs]
        if len(unique) > 1 else [],
        "trick_effects_left_out": sorted(set(tricks) - set(unique)),
        "improvement": stats.improvement_probabilities(runs, reference, [m for m in ("top1", *ys) if m in present]),
    }
    return out


# -- writing ------------------------------------------------------------------------------------

def _cell(s: stats.Summary | None) -> str:
    if s is None:
        return "-"
    if s.std is None:
        return f"{s.mean:.2f} (1 seed)"
    if s.ci_low is None:
        return f"{s.mean:.2f} ± {s.std:.2f} [no spread]"
    return f"{s.mean:.2f} ± {s.std:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"


def markdown(a: dict, runs_dir: str, figures: dict[str, str], cost: dict, tricks: dict, n_runs: int,
             configs: dict[str, str]) -> str:
    summary, ref = a["summary"], a["reference"]
    seeds = sorted({max(s.n for s in v.values()) for v in summary.values()})
    lines = [f"# Backbone comparison: `{runs_dir}`", "",
             f"{len(summary)} recipes, {n_runs} runs (seeds per recipe: {', '.join(map(str, seeds))}); "
             f"reference recipe: **{ref}**. "
             + "".join(f"{stage.capitalize()} results: config `{name}`. " for stage, name in configs.items()),
             "Intervals are 95%; differences are in points (percent)."]
    if seeds == [1]:
        lines += ["", "**Every recipe has one seed: no interval can be estimated, and no difference can be told "
                  "from noise.** Run more seeds (`run.seed`) to compare recipes."]
    lines += ["", "## Does ImageNet top-1 predict transfer?", ""]
    if not a["correlations"]:
        lines.append("Not computed: the runs lack top-1 or every downstream metric.")
    for c in a["correlations"]:
        lines.append(f"- {c.words}")
    for y in ("map", "miou"):
        if f"top1_vs_{y}" in figures:
            lines += ["", f"![top-1 against {UNITS[y]}]({figures[f'top1_vs_{y}']})"]
    lines += ["", "## Recipes", "", "Mean ± std [95% interval] over seeds.", ""]
    shown = [m for m in ("top1", "map", "miou", "aacc") if m in a["metrics"]]
    lines.append("| recipe | tricks | seeds | " + " | ".join(UNITS[m] for m in shown) + " |")
    lines.append("|---|---|---|" + "---|" * len(shown))
    for recipe in sorted(summary):
        n = max(s.n for s in summary[recipe].values())
        t = "+".join(tricks.get(recipe, ())) or ("baseline" if recipe in tricks else "external")
        lines.append(f"| {recipe} | {t} | {n} | " + " | ".join(_cell(summary[recipe].get(m)) for m in shown) + " |")
    lines += ["", f"## Effects against {ref}", ""]
    for m in a["metrics"]:
        effects = [e for e in a["effects"] if e.metric == m]
        if effects:
            lines.append(f"**{UNITS[m]}**")
            lines += [f"- {e.words}" for e in effects]
            lines.append("")
    if "forest" in figures:
        lines += [f"![effects against {ref}]({figures['forest']})", ""]
    if a["improvement"]:
        lines += ["Probability that a run of the recipe beats a run of the reference:", ""]
        lines += [f"- {i.words}" for i in a["improvement"]]
        lines.append("")
    lines += ["## Rank inversions", ""]
    inv = a["inversions"]
    if not inv:
        lines.append("None: every pair of recipes is in the same order by top-1 and by each downstream metric.")
    real = [i for i in inv if i.real]
    if inv:
        lines.append(f"{len(inv)} pair(s) of recipes are ordered differently by top-1 and by a downstream metric; "
                     f"{len(real)} of them real (both differences outside noise).")
        lines += [f"- {i.words}" for i in inv]
    if "bump" in figures:
        lines += ["", f"![ranks by metric]({figures['bump']})"]
    if a["trick_effects"]:
        lines += ["", "## Main effect of each trick", "",
                  "Over the pairs of recipes that differ by exactly that trick.", ""]
        lines += [f"- {t.words}" for t in a["trick_effects"] if t.metric in ("top1", "map", "miou")]
        lines += ["", "(The other metrics' trick effects are in `report.json`.)"]
    if a["trick_effects_left_out"]:
        lines += ["", f"Left out of the trick effects, as they share their tricks with another recipe (they "
                      f"differ in variant, depth or settings): {', '.join(a['trick_effects_left_out'])}."]
    lines += ["", "## Cost", "", "Mean per run of the recipe; device-hours = wall time × devices.", "",
              "| recipe | arch | pretraining device-hours | pretraining images/s | detection device-hours | "
              "segmentation device-hours |", "|---|---|---|---|---|---|"]
    for recipe in sorted(cost):
        c = cost[recipe]
        lines.append(f"| {recipe} | {c['arch'] or '-'} | " + " | ".join(
            fmt(mean_or_none(c[k]), 4 if k.endswith("hours") else 1) or "-"
            for k in ("pretrain_device_hours", "pretrain_images_per_s", "detection_device_hours",
                      "segmentation_device_hours")) + " |")
    lines += ["", "Every run is in `leaderboard.csv`, every number in `report.json`.", ""]
    return "\n".join(lines)


def render_figures(a: dict, folder: Path) -> dict[str, str]:
    """The figures, as paths relative to the report (``figures/NAME.png``); a figure without
    enough data says so in its picture (:mod:`evaluation.plots`)."""
    from evaluation import plots

    made: dict[str, str] = {}
    for y in ("map", "miou"):
        if y not in a["metrics"] or "top1" not in a["metrics"]:
            continue
        corr = next((c for c in a["correlations"] if c.y == y and c.method == "pearson" and c.scale == "raw"), None)
        plots.scatter(a["summary"], folder, f"top1_vs_{y}", x="top1", y=y, correlation=corr)
        made[f"top1_vs_{y}"] = f"figures/top1_vs_{y}.png"
    plots.forest([e for e in a["effects"] if e.metric in ("top1", "map", "miou")], folder, "forest")
    made["forest"] = "figures/forest.png"
    plots.bump(a["summary"], folder, "bump", metrics=tuple(m for m in ("top1", "map", "miou") if m in a["metrics"]))
    made["bump"] = "figures/bump.png"
    return made


def to_json(a: dict, cost: dict, runs: list[stats.Run], n_runs: int) -> str:
    data = {
        "reference": a["reference"], "metrics": a["metrics"], "n_runs": n_runs,
        "summary": {r: {m: asdict(s) for m, s in v.items()} for r, v in sorted(a["summary"].items())},
        "correlations": [asdict(c) for c in a["correlations"]],
        "effects": [asdict(e) for e in a["effects"]],
        "improvement": [asdict(i) for i in a["improvement"]],
        "inversions": [asdict(i) for i in a["inversions"]],
        "trick_effects": [asdict(t) for t in a["trick_effects"]],
        "trick_effects_left_out": a["trick_effects_left_out"],
        "cost": {r: cost[r] for r in sorted(cost)},
        "runs": [asdict(r) | {"metrics": dict(r.metrics)} for r in runs],
    }
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_report(runs_dir: Path, out: Path, reference: str | None, configs: dict[str, str]) -> dict:
    """Everything is computed before anything is written; the files are made in a temporary
    folder next to ``out`` and moved into it at the end, so a failure leaves no partial report."""
    found = find_results(runs_dir)
    joined = join(found, configs)
    if not joined:
        raise ReportError(f"no result.json under {runs_dir}: run pretrain/run.py and the downstream stages first")
    if not any(j.downstream for j in joined):
        raise ReportError(f"no detection or segmentation result under {runs_dir}: fine-tune the backbones with "
                          f"downstream/detect.py and downstream/segment.py first"
                          + (" (or drop --det-config / --seg-config)" if configs else ""))
    runs, tricks, cost = study_table(joined)
    try:
        ref = choose_reference(sorted({r.recipe for r in runs}), tricks, reference)
        a = analyse(runs, tricks, ref)
    except ValueError as e:
        raise ReportError(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report.", dir=out))
    try:
        figures = render_figures(a, tmp / "figures")
        files = {
            "report.md": markdown(a, str(runs_dir), figures, cost, tricks, len(runs), configs),
            "report.json": to_json(a, cost, runs, len(runs)),
            "recipes.csv": recipes_csv(a["summary"], cost, tricks),
            "leaderboard.csv": to_csv(build_rows(found, runs_dir, configs)),
        }
        for name, text in files.items():
            atomic_write_bytes(tmp / name, text.encode())
        if (out / "figures").exists():
            shutil.rmtree(out / "figures")
        if (tmp / "figures").exists():
            os.replace(tmp / "figures", out / "figures")
        for name in files:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return a


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p)
    p.add_argument("--out", type=Path, help="where the report goes (default: RUNS/report)")
    p.add_argument("--reference", help="the recipe every other is compared with (default: 'baseline', or the "
                                       "recipe without tricks)")
    args = p.parse_args(argv)
    configs = selected_configs(args)
    out = args.out or args.runs / "report"
    try:
        a = write_report(args.runs, out, args.reference, configs)
    except (ReportError, LeaderboardError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out is a file, or cannot be written: the previous report is intact
        print(f"error: cannot write the report into --out {out}: {e.strerror or e}; choose another --out",
              file=sys.stderr)
        return 2
    lineage = study_lineage()
    if lineage:  # a study's job: the fingerprint by which the study knows this report is its plan's
        atomic_write_json(out / ".trickbench-job.json", {**lineage, "finished_at": now()})
    for c in a["correlations"]:
        if c.method == "pearson" and c.scale == "raw":
            print(c.words)
    print(f"report: {out / 'report.md'} (numbers in report.json, per recipe in recipes.csv, figures in "
          f"{out / 'figures'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
