#!/usr/bin/env python
"""The report of a backbone comparison: does a better ImageNet backbone make a better
detector and segmenter, and which differences between recipes are real?

    python evaluation/report.py --runs DIR [--out DIR] [--reference RECIPE] [--det-config NAME] [--seg-config NAME]
                                [--question RECIPE:METRIC:DIRECTION [--question-text TEXT]]

Reads every ``result.json`` under ``--runs`` (:mod:`trickbench.results`), joins each
backbone's pretraining, detection and segmentation and tabulates them
(:mod:`evaluation.table`), analyses the table (:func:`analyse`, an :class:`Analysis`), and
writes into ``--out`` (default ``RUNS/report``):

* ``report.md``: the tables, the figures, and the statistics in sentences a reader can quote;
* ``report.json``: every number, machine-readable;
* ``recipes.csv``: per recipe, seeds, mean, std and 95% interval of every metric, and the cost;
* ``leaderboard.csv``: every run (one row per backbone, so per seed);
* ``figures/``: top-1 against mAP and against mIoU, the effects against the reference
  recipe (a forest chart) and the ranks by each metric (a bump chart), as PNG and SVG.

The statistics are :mod:`evaluation.stats`'s: correlations over recipes with two-level
bootstrap intervals and Holm-adjusted permutation p-values, effects against the reference
paired by seed, rank inversions, and the main effect of each factor (a trick, a ResNet
variant against B, a bundle such as ``efficient``: :mod:`trickbench.tricks`) where recipes
differ by exactly that factor. Where the downstream jobs left a ``per_image.npz``, the
noise section adds the test set's own noise: a bootstrap over the test images, paired across
runs (:mod:`evaluation.evalset`). With ``--question`` (a study's ``question``: is RECIPE's
METRIC higher, lower or different than the reference's?) the report opens with its answer,
read from the comparison of that recipe with the reference (:class:`Answer`). Everything is
seeded: the same runs give the same bytes.
External backbones (their top-1 given with ``--top1``) take part; a stage that did not run
leaves a gap. Runs that were only pretrained get the ImageNet part (summary, effects,
probability of improvement, factor effects, cost), and the downstream sections say why they
are absent.

Bad input (a malformed ``result.json`` or ``per_image.npz``, per-image files scored on
different test images, two runs with one backbone id, two backbones with the same recipe and
seed, an unknown ``--reference``, a ``--det-config`` or ``--seg-config``
with no result, downstream results none of which could be joined) ends with exit code 2 and
one line naming the file or recipe, and no report is written.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluation import evalset, noise, plots, stats
from evaluation.table import (CHEAP, COST_COLUMNS, METRICS, PROTOCOL_METRICS, FineTune, Joined, StudyTable,
                              add_selection_args, find_results, finetune_key, join, recipes_csv, runs_csv,
                              selected_configs, tabulate, to_csv)
from trickbench import errors
from trickbench import protocols as protocol_table
from trickbench.errors import TrickBenchError
from trickbench.fileio import atomic_write_bytes, atomic_write_json
from trickbench.runinfo import now, study_lineage
from trickbench.tricks import TRICKS, factor_members

DOWNSTREAM = ("map", "miou")
EVALSET_METRICS = ("map", "map_area", "miou")  # the metrics a per_image.npz can be resampled for
PLAN_EFFECT = 1.0   # points: the difference a seed plan is made for, unless --plan-effect says otherwise
UNITS = {"top1": "ImageNet top-1", "top5": "ImageNet top-5", "map": "VOC mAP (VOC07 11-point)",
         "map_area": "VOC mAP (area)", "miou": "ADE20K mIoU", "aacc": "ADE20K pixel accuracy",
         "macc": "ADE20K mean class accuracy", "frozen_map": "VOC mAP, frozen backbone",
         "frozen_miou": "ADE20K mIoU, frozen backbone", "linear_miou": "ADE20K mIoU, linear head (ade-linear)",
         "knn_top1": "ImageNet k-NN top-1", "svm_map": "VOC07 classification mAP, linear SVMs"}
PROTOCOL_OF = {col: kind for kind, (_, col) in PROTOCOL_METRICS.items()}  # cheap metric -> (stage, protocol)
TASK_OF = {"map": "detection", "miou": "segmentation"}
# the cheap metrics each fine-tuned one is compared with: the task's own protocols, and the ImageNet probe
CHEAP_FOR = {"map": ("frozen_map", "svm_map", "knn_top1"), "miou": ("frozen_miou", "linear_miou", "knn_top1")}
COST_HEADERS = {"pretrain_device_hours": "pretraining device-hours", "pretrain_images_per_s": "pretraining images/s",
                "detection_device_hours": "detection device-hours",
                "segmentation_device_hours": "segmentation device-hours"}


class ReportError(TrickBenchError, RuntimeError):
    pass


# -- the question ---------------------------------------------------------------------------------

DIRECTIONS = ("higher", "lower", "different")  # as a study's question.direction (trickbench/study/spec.py)


@dataclass(frozen=True)
class Question:
    """The comparison the runs were made to resolve: is ``recipe``'s ``metric`` ``direction`` (higher,
    lower, different) than the reference recipe's? ``text``: the question in the study's words."""
    recipe: str
    metric: str
    direction: str
    text: str | None = None


def parse_question(value: str, text: str | None = None) -> Question:
    """``--question RECIPE:METRIC:DIRECTION`` (what a study's plan passes); a malformed one is a
    :class:`ReportError` that says the form and the known metrics and directions."""
    parts = value.split(":")
    if len(parts) != 3 or not all(parts):
        raise ReportError(f"--question {value!r} must be RECIPE:METRIC:DIRECTION, e.g. r18d:miou:higher")
    recipe, metric, direction = parts
    if metric not in METRICS:
        close = difflib.get_close_matches(metric.lower(), METRICS, n=1)
        raise ReportError(f"--question: {metric!r} is not a metric the report compares recipes on"
                          + (f" (did you mean {close[0]}?)" if close else "") + f"; metrics: {', '.join(METRICS)}")
    if direction not in DIRECTIONS:
        raise ReportError(f"--question: direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
    if text is not None and not text.strip():
        raise ReportError("--question-text is empty; give the question in words, or leave it out")
    return Question(recipe, metric, direction, text)


@dataclass(frozen=True)
class Answer:
    """The question answered from the report's own comparison of the recipe with the reference (its
    :class:`stats.Effect` in 'Effects against ...': Dunnett's many-to-one interval, the seed variance
    pooled over the recipes), with the reason where that comparison has no pooled interval and, where
    the runs left per-image files, the test-set noise of the difference as context."""
    question: Question
    reference: str
    effect: stats.Effect | None                      # None: the recipe or the metric has no run
    reason: str | None = None                        # why there is no pooled interval (None: there is one)
    seed_plan: bool = False                          # the report plans the next study's seeds for the metric
    evalset: evalset.DifferenceNoise | None = None   # recipe - reference over test-image resamples (paired)
    images: int | None = None                        # the test images resampled

    @property
    def verdict(self) -> str:
        """'yes', 'no' (the interval excludes 0 on the other side) or 'not resolved'."""
        if self.reason is not None:
            return "not resolved"
        above, below, d = self.effect.ci_low > 0, self.effect.ci_high < 0, self.question.direction
        if (d == "higher" and above) or (d == "lower" and below) or (d == "different" and (above or below)):
            return "yes"
        if (d == "higher" and below) or (d == "lower" and above):
            return "no"
        return "not resolved"

    @property
    def words(self) -> str:
        """The verdict in one line, with the difference, its interval, df and adjusted p."""
        q, e = self.question, self.effect
        what = f"{q.recipe}'s {stats.name(q.metric)}"
        if self.reason is not None:
            return f"Not resolved: {self.reason}"
        p = "" if e.pvalue is None else ", adjusted p " + ("< 0.001" if e.pvalue < 0.001 else f"= {e.pvalue:.2g}")
        numbers = f"{e.diff:+.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}] points, {e.df} df{p}"
        verdict = self.verdict
        if verdict == "yes":
            how = "differs from" if q.direction == "different" else f"is {q.direction} than"
            side = f": it is {'higher' if e.ci_low > 0 else 'lower'}" if q.direction == "different" else ""
            return f"Yes: {what} {how} {self.reference}'s beyond seed noise{side} ({numbers})"
        if verdict == "no":
            other, side = ("lower", "below") if q.direction == "higher" else ("higher", "above")
            return (f"No: {what} is {other} than {self.reference}'s, not {q.direction}: the interval lies {side} "
                    f"zero ({numbers})")
        return (f"Not resolved: the interval covers 0 ({numbers}); a study with more seeds could tell"
                + (": see 'Seeds for the next study'" if self.seed_plan else ""))

    @property
    def lines(self) -> list[str]:
        """Where the numbers come from, and the test-set noise of the difference where measured."""
        e = self.effect
        out = []
        if e is not None and e.diff is not None and self.reason is None:
            out.append(f"{self.question.recipe} minus {self.reference}, over backbone means: Dunnett's many-to-one "
                       f"test ({e.n} vs {e.n_reference} backbones, the seed variance pooled over every recipe, 95% "
                       f"family-wise), as in 'Effects against {self.reference}'.")
        elif e is not None and e.diff is not None:
            out.append(f"{self.question.recipe} minus {self.reference}: {e.diff:+.2f} points, without an interval.")
        if self.evalset is not None:
            out.append(f"Test-set noise, which the seed interval does not include (every backbone is scored on the same "
                       f"{self.images} test images): a paired bootstrap over the images gives {self.evalset.words}.")
        return out


def answer(q: Question, runs: Sequence[stats.Run], reference: str, effects: Sequence[stats.Effect],
           seed_plans: Sequence[noise.SeedPlan] = (), test_set: Sequence[evalset.EvalSetNoise] = ()) -> Answer:
    """``q`` answered from ``effects`` (:func:`stats.pooled_effects` of ``runs`` against ``reference``).
    A question about the reference itself is a ValueError."""
    if q.recipe == reference:
        raise ValueError(f"--question asks about {q.recipe}, which is the reference it would be compared with; "
                         f"name another recipe, or another --reference")
    recipes = list(dict.fromkeys(r.recipe for r in runs))
    measured: dict[str, list[float]] = {}  # recipe -> its backbones' values of the metric
    for r in runs:
        if q.metric in r.metrics:
            measured.setdefault(r.recipe, []).append(float(r.metrics[q.metric]))
    effect = next((e for e in effects if e.recipe == q.recipe and e.metric == q.metric), None)
    reason = None
    if q.recipe not in recipes:
        close = difflib.get_close_matches(q.recipe, recipes, n=1)
        reason = (f"no run of recipe {q.recipe}" + (f" (did you mean {close[0]}?)" if close else "")
                  + f"; the recipes are {', '.join(recipes)}")
    elif not measured:
        reason = f"no run has {UNITS[q.metric]}: no {STAGE_OF.get(q.metric, 'pretrain')} result to compare"
    elif [r for r in (q.recipe, reference) if r not in measured]:
        missing = " and ".join(r for r in (q.recipe, reference) if r not in measured)
        reason = f"{UNITS[q.metric]} was not measured for {missing}"
    elif effect is None or effect.method != "dunnett" or effect.ci_low is None:
        c = next(c for c in noise.comparisons(measured, reference, q.metric) if c.recipe == q.recipe)
        reason = c.reason or "Dunnett's test gave no interval"
    diff = next((c for e in test_set if e.metric == q.metric and e.reason is None for c in e.comparisons
                 if c.recipe == q.recipe and c.other == reference), None)
    images = next((e.images for e in test_set if e.metric == q.metric), None) if diff is not None else None
    return Answer(q, reference, effect, reason, any(p.metric == q.metric for p in seed_plans), diff, images)


def question_record(a: Answer) -> dict:
    """report.json's ``question``: the question, the verdict, the comparison's numbers (null where not
    estimated), the reason, the test-set sd of the difference, and the sentences."""
    q, e, t = a.question, a.effect, a.evalset
    dunnett = e is not None and a.reason is None
    return {"recipe": q.recipe, "metric": q.metric, "direction": q.direction, "text": q.text,
            "reference": a.reference, "verdict": a.verdict, "estimate": e.diff if e is not None else None,
            "low": e.ci_low if dunnett else None, "high": e.ci_high if dunnett else None,
            "df": e.df if dunnett else None, "pvalue": e.pvalue if dunnett else None,
            "method": "dunnett" if dunnett else None, "n": e.n if e is not None else 0,
            "n_reference": e.n_reference if e is not None else 0, "reason": a.reason,
            "evalset": None if t is None else {"sd": t.sd, "sd_unpaired": t.sd_unpaired, "low": t.low,
                                               "high": t.high, "confidence": t.confidence, "images": a.images},
            "words": a.words, "lines": a.lines}


# -- the analysis ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Analysis:
    """What the report says, as numbers (:mod:`evaluation.stats`' dataclasses, each with its
    ``words``); report.md and report.json are both written from it."""
    reference: str
    metrics: tuple[str, ...]                       # those some run measured, in METRICS order
    summary: dict[str, dict[str, stats.Summary]]   # recipe -> metric -> over its seeds
    correlations: tuple[stats.Correlation, ...]    # top-1 against each downstream metric, across recipes
    effects: tuple[stats.Effect, ...]              # every other recipe against the reference, every metric
    improvement: tuple[stats.Improvement, ...]     # P(recipe > reference), top-1 and the downstream metrics
    inversions: tuple[stats.Inversion, ...]        # pairs ordered one way by top-1, the other downstream
    trick_effects: tuple[stats.TrickEffect, ...]   # each factor with at least one pair of recipes
    trick_effects_left_out: tuple[str, ...]        # recipes that share their factor set with another
    factors: dict[str, frozenset[str]]             # the factors sought -> the names a recipe has when on
    components: tuple[noise.VarianceComponents, ...] = ()  # per downstream metric: pretraining and fine-tune sd
    seed_effects: tuple[noise.SeedEffect, ...] = ()        # per downstream metric: a common fine-tune-seed effect?
    seed_plans: tuple[noise.SeedPlan, ...] = ()            # per downstream metric: seeds for the stated effect
    agreement: tuple[stats.Agreement, ...] = ()            # per task and cheap protocol: ranks like fine-tuning?
    protocol_summary: dict[str, dict[str, stats.Summary]] = field(default_factory=dict)  # recipe -> metric -> seeds
    evalset: tuple[evalset.EvalSetNoise, ...] = ()         # per downstream metric: the test set's own noise
    question: Answer | None = None                         # the question the runs were made to resolve

    @property
    def downstream(self) -> tuple[str, ...]:
        """The downstream metrics top-1 is compared with: mAP and mIoU where measured."""
        return tuple(m for m in DOWNSTREAM if m in self.metrics)

    @property
    def pretrain_only(self) -> bool:
        """No run has a detection or segmentation result (each has mAP or mIoU): the runs were
        only pretrained, so the correlations, the rank inversions and their figures are absent."""
        return not self.downstream


def choose_reference(recipes: list[str], sets: Mapping[str, tuple[str, ...]], asked: str | None) -> str:
    """``asked``, else the recipe named 'baseline', else a pretrained recipe without factors (no
    trick, variant B), else the one with the fewest."""
    if asked is not None:
        if asked not in recipes:
            raise ReportError(f"--reference {asked!r} is not a recipe of these runs; the recipes are "
                              f"{', '.join(recipes)}")
        return asked
    if "baseline" in recipes:
        return "baseline"
    plain = [r for r in recipes if r in sets and not sets[r]]
    return (plain or sorted(recipes, key=lambda r: (len(sets.get(r, ())) if r in sets else 99, r)))[0]


def analyse(runs: Sequence[stats.Run], sets: Mapping[str, Iterable[str]], reference: str,
            finetunes: Sequence[FineTune] = (), costs: Mapping[str, float] | None = None,
            plan_effect: float = PLAN_EFFECT, per_image: Sequence[evalset.RunImages] = (),
            question: Question | None = None) -> Analysis:
    """The statistics of ``runs`` (one per backbone; a downstream metric is the mean of the
    backbone's fine-tunes) against ``reference``. ``sets`` maps each pretrained recipe to
    its factors (its tricks and its variant where it is not B: ``Result.factors``): the main
    effect of each factor, bundles included (:func:`trickbench.tricks.factor_members`), is taken
    between the recipes whose sets tell them apart; recipes that share a set differ in something
    else (depth, settings) and are left out of it.

    Every "beyond noise" verdict against the reference and between pairs rests on the seed
    variance pooled over the recipes (Dunnett, Tukey HSD: :func:`stats.pooled_effects`). With
    ``finetunes`` (every fine-tune, :class:`evaluation.table.FineTune`), each downstream metric's
    noise is split into its pretraining-seed and fine-tune-seed components, the fine-tune seed is
    tested for a common effect, and a seed plan is made for ``plan_effect`` points with
    ``costs`` (device-hours: ``pretrain``, and per stage ``detection``/``segmentation`` for one
    fine-tune and ``detection_trial``/``segmentation_trial`` for one trial, with
    ``detection_trials``/``segmentation_trials`` trials per backbone). With ``per_image`` (every
    fine-tune's per-image test data, :func:`per_image_runs`), the evaluation-set noise of each
    downstream metric (:func:`evaluation.evalset.evalset_noise`, against ``reference``). With
    ``question``, its :class:`Answer` from the effects against ``reference``."""
    present = tuple(m for m in METRICS if any(m in r.metrics for r in runs))
    ys = [m for m in DOWNSTREAM if m in present]
    across = "top1" in present and bool(ys)
    by_set: dict[frozenset[str], list[str]] = {}
    for recipe, names in sets.items():
        by_set.setdefault(frozenset(names), []).append(recipe)
    unique = {rs[0]: s for s, rs in by_set.items() if len(rs) == 1}
    factors = factor_members(unique.values()) if len(unique) > 1 else {}
    cheap = [m for m in CHEAP if any(m in r.metrics for r in runs)]
    effects = tuple(stats.pooled_effects(runs, reference, present))
    parts = _noise(finetunes, costs or {}, plan_effect)
    test_set = tuple(evalset.evalset_noise(per_image, m, reference) for m in EVALSET_METRICS
                     if any(r.stage == evalset.TASK[m] for r in per_image))
    return Analysis(
        reference=reference,
        metrics=present,
        summary=stats.summary_table(runs, present),
        correlations=tuple(stats.correlations(runs, x="top1", ys=ys)) if across else (),
        effects=effects,
        improvement=tuple(stats.improvement_probabilities(runs, reference, [m for m in ("top1", *ys) if m in present])),
        inversions=tuple(stats.rank_inversions(runs, x="top1", ys=ys, pooled=stats.pooled_pairs(runs, ["top1", *ys])))
        if across else (),
        trick_effects=tuple(t for t in stats.trick_effects(runs, unique, present, factors) if t.n_pairs),
        trick_effects_left_out=tuple(sorted(set(sets) - set(unique))),
        factors=factors,
        **parts,
        agreement=tuple(g for y in ys for g in stats.protocol_agreement(runs, y, [m for m in CHEAP_FOR[y]
                                                                                  if m in cheap])),
        protocol_summary=stats.summary_table(runs, [*ys, *cheap]) if cheap else {},
        evalset=test_set,
        question=None if question is None else answer(question, runs, reference, effects, parts["seed_plans"],
                                                      test_set),
    )


def per_image_runs(joined: Sequence[Joined]) -> list[evalset.RunImages]:
    """Every reported fine-tune with its ``per_image.npz`` read (``data`` None where the run has
    none: runs from before the jobs wrote it), in the table's terms: the recipe, the pretraining
    seed and the fine-tune seed. A file that cannot be read is an error naming it."""
    out = []
    for j in joined:
        recipe = (j.pretrain or j.first).recipe
        for stage, fts in j.downstream.items():
            for r in fts:
                path = r.run_dir / evalset.FILE
                out.append(evalset.RunImages(recipe, j.seed, finetune_key(r) or 0, stage, path,
                                             evalset.load(path) if path.is_file() else None, dict(r.metrics)))
    return out


STAGE_OF = {"map": "detection", "map_area": "detection", "miou": "segmentation", "aacc": "segmentation",
            "macc": "segmentation"}


def _noise(finetunes: Sequence[FineTune], costs: Mapping[str, float], plan_effect: float) -> dict:
    """Variance components, the common fine-tune-seed test and the seed plan of each downstream
    metric that has replicate fine-tunes (a metric fine-tuned once per backbone has none)."""
    components, effects, plans = [], [], []
    for metric in DOWNSTREAM + ("map_area", "aacc", "macc"):
        obs = [noise.Obs(f.recipe, f.seed, f.finetune_seed if f.finetune_seed is not None else 0, f.metrics[metric])
               for f in finetunes if metric in f.metrics]
        if not obs or len({o.ft_seed for o in obs}) < 2:
            continue
        vc = noise.variance_components(obs, metric)
        components.append(vc)
        effects.append(noise.finetune_seed_effect(obs, metric))
        stage = STAGE_OF[metric]
        if metric in DOWNSTREAM and vc.reason is None and costs.get("pretrain") and costs.get(stage):
            plans.append(noise.seed_plan(vc, vc.recipes, costs["pretrain"], costs[stage],
                                         costs.get(f"{stage}_trial", 0.0), int(costs.get(f"{stage}_trials", 0)),
                                         effect=plan_effect))
    return dict(components=tuple(components), seed_effects=tuple(effects), seed_plans=tuple(plans))


# -- report.md: one function per section -------------------------------------------------------

def _cell(s: stats.Summary | None) -> str:
    if s is None:
        return "-"
    if s.std is None:
        return f"{s.mean:.2f} (1 seed)"
    if s.ci_low is None:
        return f"{s.mean:.2f} ± {s.std:.2f} [no spread]"
    return f"{s.mean:.2f} ± {s.std:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"


def _seeds(summary: dict[str, dict[str, stats.Summary]], recipe: str) -> int:
    return max(s.n for s in summary[recipe].values())


def only_pretrained(runs_dir: str, so: str, cheap: bool = False) -> str:
    """Why a downstream section is absent from the report of runs that were only pretrained (``cheap``:
    or measured by cheap protocols alone, no fine-tuning)."""
    if cheap:
        return (f"No fine-tuned detection or segmentation results under `{runs_dir}`: these backbones were measured "
                f"by cheap protocols only (see below), so {so}.")
    return f"No detection or segmentation results under `{runs_dir}`: these runs were only pretrained, so {so}."


WHY_ABSENT = {"correlations": "there is no transfer to correlate with top-1",
              "inversions": "there is no downstream metric to rank the recipes by"}


def title_section(a: Analysis, table: StudyTable, runs_dir: str, configs: dict[str, str]) -> list[str]:
    seeds = sorted({_seeds(a.summary, r) for r in a.summary})
    lines = [f"# Backbone comparison: `{runs_dir}`", "",
             f"{len(a.summary)} recipes, {len(table.runs)} runs (seeds per recipe: {', '.join(map(str, seeds))}); "
             f"reference recipe: **{a.reference}**. "
             + "".join(f"{stage.capitalize()} results: config `{name}`. " for stage, name in configs.items()),
             "Intervals are 95%; differences are in points (percent)."]
    if seeds == [1]:
        lines += ["", "**Every recipe has one seed: no interval can be estimated, and no difference can be told "
                  "from noise.** Run more seeds (`run.seed`) to compare recipes."]
    return lines


def question_section(a: Analysis) -> list[str]:
    """The question the runs were made to resolve, and its answer: the verdict, then its numbers."""
    if a.question is None:
        return []
    q = a.question.question
    asked = "different from" if q.direction == "different" else f"{q.direction} than"
    lines = ["## The question", ""] + ([f"> {q.text}", ""] if q.text else [])
    lines += [f"Is {q.recipe}'s {UNITS[q.metric]} {asked} {a.reference}'s?", "", f"**{a.question.words}.**"]
    return lines + [""] * bool(a.question.lines) + [f"- {x}" for x in a.question.lines]


def correlations_section(a: Analysis, runs_dir: str, figures: dict[str, str]) -> list[str]:
    lines = ["## Does ImageNet top-1 predict transfer?", ""]
    if a.pretrain_only:
        return lines + [only_pretrained(runs_dir, WHY_ABSENT["correlations"], bool(a.protocol_summary))]
    if not a.correlations:
        lines.append("Not computed: the runs lack top-1 or every downstream metric.")
    lines += [f"- {c.words}" for c in a.correlations]
    for y in DOWNSTREAM:
        if f"top1_vs_{y}" in figures:
            lines += ["", f"![top-1 against {UNITS[y]}]({figures[f'top1_vs_{y}']})"]
    return lines


def recipes_section(a: Analysis, table: StudyTable) -> list[str]:
    shown = [m for m in (("top1", "top5") if a.pretrain_only else ("top1", "map", "miou", "aacc")) if m in a.metrics]
    lines = ["## Recipes", "", "Mean ± std [95% interval] over seeds.", "",
             "| recipe | tricks | seeds | " + " | ".join(UNITS[m] for m in shown) + " |",
             "|---|---|---|" + "---|" * len(shown)]
    for recipe in sorted(a.summary):
        names = "+".join(table.factors.get(recipe, ())) or ("baseline" if recipe in table.factors else "external")
        lines.append(f"| {recipe} | {names} | {_seeds(a.summary, recipe)} | "
                     + " | ".join(_cell(a.summary[recipe].get(m)) for m in shown) + " |")
    return lines


def effects_section(a: Analysis, figures: dict[str, str]) -> list[str]:
    lines = [f"## Effects against {a.reference}", "",
             "Each recipe minus the reference over backbone means (a backbone's downstream number is the mean of "
             "its fine-tunes), with Dunnett's many-to-one test: the seed variance pooled over every recipe, the "
             "family of comparisons controlled at 95%; its degrees of freedom are shown."]
    for m in a.metrics:
        effects = [e for e in a.effects if e.metric == m]
        if effects:
            lines += ["", f"**{UNITS[m]}**", *(f"- {e.words}" for e in effects)]
    if "forest" in figures:
        lines += ["", f"![effects against {a.reference}]({figures['forest']})"]
    return lines


def improvement_section(a: Analysis) -> list[str]:
    if not a.improvement:
        return []
    return ["Probability that a run of the recipe beats a run of the reference:", "",
            *(f"- {i.words}" for i in a.improvement)]


def inversions_section(a: Analysis, runs_dir: str, figures: dict[str, str]) -> list[str]:
    lines = ["## Rank inversions", ""]
    if a.pretrain_only:
        return lines + [only_pretrained(runs_dir, WHY_ABSENT["inversions"], bool(a.protocol_summary))]
    if not a.inversions:
        lines.append("None: every pair of recipes is in the same order by top-1 and by each downstream metric.")
    else:
        real = [i for i in a.inversions if i.real]
        lines.append(f"{len(a.inversions)} pair(s) of recipes are ordered differently by top-1 and by a downstream "
                     f"metric; {len(real)} of them real (both differences outside noise).")
        lines += [f"- {i.words}" for i in a.inversions]
    if "bump" in figures:
        lines += ["", f"![ranks by metric]({figures['bump']})"]
    return lines


def trick_effects_section(a: Analysis) -> list[str]:
    lines = []
    if a.trick_effects:
        how = "Over the pairs of recipes that differ by exactly that trick."
        named = list(dict.fromkeys(t.trick for t in a.trick_effects))
        bundles = [n for n in named if len(a.factors.get(n, ())) > 1]
        if bundles:
            members = {b: TRICKS[b].members if b in TRICKS else sorted(a.factors[b]) for b in bundles}
            how += (" A bundle counts as one trick, whose pairs differ by all of its tricks at once: "
                    + "; ".join(f"`{b}` = {' + '.join(m)}" for b, m in members.items()) + ".")
        variants = [n for n in named if n in TRICKS and TRICKS[n].kind == "variant"]
        if variants:
            how += (f" A variant ({', '.join(f'`{v}`' for v in variants)}) is measured against ResNet-B, the "
                    f"reference variant.")
        lines += ["## Main effect of each trick", "", how, ""]
        lines += [f"- {t.words}" for t in a.trick_effects if t.metric in ("top1", "map", "miou")]
        lines += ["", "(The other metrics' trick effects are in `report.json`.)"]
    if a.trick_effects_left_out:
        lines += [""] * bool(lines) + [
            f"Left out of the trick effects, as they share their tricks and variant with another recipe (they "
            f"differ in depth or settings): {', '.join(a.trick_effects_left_out)}."]
    return lines


METRIC_DEFINITIONS = {
    "top1": "ImageNet top-1: single centre crop of the validation split (the pretraining config's validation "
            "transform)",
    "map": "VOC mAP: mmdet's VOCMetric at IoU 0.5, VOC07's 11-point interpolated AP, difficult objects ignored",
    "map_area": "VOC mAP (area): the same, with the area under the interpolated precision-recall curve (VOC2010+)",
    "miou": "ADE20K mIoU: mmseg's IoUMetric, the mean over classes of the IoU on the validation split",
}


def provenance_section(a: Analysis, table: StudyTable) -> list[str]:
    """Where each number comes from: protocol, configs, metric definitions, selection, seeds, devices."""
    if not table.finetunes:
        return []
    lines = ["## Where the numbers come from", ""]
    for stage in ("detection", "segmentation"):
        fts = [f for f in table.finetunes if f.stage == stage]
        if not fts:
            continue
        configs = sorted({f.config for f in fts})
        ft_seeds = sorted({f.finetune_seed for f in fts if f.finetune_seed is not None})
        per_backbone = sorted(set(Counter((f.recipe, f.seed) for f in fts).values()))
        devices = sorted({f.device for f in fts})
        selected = [f.selection for f in fts if f.selection]
        how = ("full fine-tuning (`finetune`: every layer trained), the last checkpoint, scored on the test split"
               f" ({'VOC2007 test' if stage == 'detection' else 'ADE20K validation'})")
        lines.append(f"- **{stage}**: config {', '.join(f'`{c}`' for c in configs)}; {how}; fine-tune seeds "
                     f"{ft_seeds or 'one per backbone'} ({'/'.join(map(str, per_backbone))} per backbone: a "
                     f"backbone's number is their mean); device {', '.join(devices)}.")
        if selected:
            split = selected[0].get("split") or {}
            keys = sorted({k for sel in selected for k in sel.get("chosen", {})})
            lines.append(f"  Hyperparameters ({', '.join(f'`{k}`' for k in keys)}) chosen on held-out training "
                         f"images, never the test split: a seeded {split.get('fraction')} of the training set (split "
                         f"seed {split.get('seed')}, the same for every backbone), {len(selected[0]['grid'])} grid "
                         f"points, best mean held-out {UNITS.get(selected[0]['metric'], selected[0]['metric'])}; "
                         f"then refit on the whole training set.")
        else:
            lines.append("  Hyperparameters: the config's, the same for every backbone (no sweep).")
    lines += [f"- {METRIC_DEFINITIONS[m]}." for m in ("top1", "map", "map_area", "miou") if m in a.metrics]
    for name in dict.fromkeys(p for (_, p) in sorted(table.protocol_hours) if p != "finetune"):
        row = protocol_table.get(name)
        lines.append(f"- `{name}` ({', '.join(row.stages)}): trains {row.trains}; frozen: {row.frozen}; reports "
                     f"{row.metric}.")
    lines.append("- Every reported fine-tune, and every run of another protocol, is a row of `runs.csv` (sweep "
                 "trials are not).")
    return lines


def selection_section(table: StudyTable) -> list[str]:
    """The hyperparameters each recipe (or backbone) was given, with the held-out scores they were chosen by."""
    chosen: dict[tuple[str, str, str], dict] = {}
    for f in table.finetunes:
        if f.selection:
            who = ", ".join(f.selection.get("backbones", [])) or f.recipe
            chosen.setdefault((f.stage, f.recipe, who), f.selection)
    if not chosen:
        return []
    lines = ["## Chosen hyperparameters", "", "Mean held-out score of each grid point over the backbones it was "
             "chosen for (the best is in bold); the test split was not read.", ""]
    for (stage, recipe, who), sel in sorted(chosen.items()):
        cells = []
        for point, score in zip(sel["grid"], sel["mean_heldout_score"]):
            text = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in point.items()) + f": {score:.2f}"
            cells.append(f"**{text}**" if point == sel["chosen"] else text)
        lines.append(f"- {stage}, {recipe} (from {who}): " + "; ".join(cells))
    return lines


def evalset_lines(a: Analysis) -> list[str]:
    """The evaluation-set noise of mAP and mIoU; one line when no run has a per_image.npz."""
    shown = [e for e in a.evalset if e.metric in DOWNSTREAM]
    if not shown:
        return []
    if all(e.no_files for e in shown):
        return [f"Test-set noise not measured: no run has a `{evalset.FILE}` (runs from before the downstream jobs "
                f"wrote one; fine-tune again to measure it)."]
    lines = ["Test-set noise: which images happen to be in the test split, the trained models fixed. A bootstrap over "
             "the test images, the same resamples for every run, so a difference between recipes is paired (what "
             "the backbones share cancels); a backbone's value is the mean of its fine-tunes'.", ""]
    for e in shown:
        lines.append(f"- {e.words}")
        lines += [f"  - {line}" for line in e.lines]
    return lines


def noise_section(a: Analysis) -> list[str]:
    """Where the noise comes from (seeds and test set), and the seeds the next device-hours should buy."""
    test_set = evalset_lines(a)
    measured = any(not e.no_files for e in a.evalset if e.metric in DOWNSTREAM)
    split = {vc.metric for vc in a.components}
    once = [f"- {stats.name(m)}: every backbone was fine-tuned once, so its fine-tune noise cannot be told from "
            f"the pretraining seed's here (give the task 2+ fine-tune seeds: `downstream.seeds`)"
            for m in a.downstream if m not in split]
    if not a.components:  # a study whose per-image files measured the test set's noise says why the seeds' is not
        return ["## Where the noise comes from", "", *once, *[""] * bool(once), *test_set] if measured else []
    lines = ["## Where the noise comes from", ""]
    if all(vc.reason is not None for vc in a.components):  # e.g. one fine-tune per backbone
        return lines + [f"- {vc.words}" for vc in a.components if vc.metric in DOWNSTREAM] + [
            "", "Set the study's `downstream.seeds` (e.g. `[0, 1, 2]`) to measure the fine-tune noise beside the "
                "pretraining seed's."] + [""] * bool(test_set) + test_set
    lines += ["A metric is recipe + pretraining-seed effect + fine-tune noise. Method of moments on the nested "
              "design: the fine-tune sd from the spread between one backbone's fine-tunes (exact chi-square "
              "interval), the pretraining sd from the spread of backbone means within a recipe (Graybill-Wang "
              "modified large-sample interval, truncated at 0); 95% intervals, degrees of freedom shown.", ""]
    lines += [f"- {vc.words}" for vc in a.components if vc.metric in DOWNSTREAM] + once
    lines += ["", "Common fine-tune-seed effect (the same seed gives every backbone the same head initialisation "
                  "and data order):", ""]
    lines += [f"- {e.words}" for e in a.seed_effects if e.metric in DOWNSTREAM]
    lines += [""] * bool(test_set) + test_set
    if a.seed_plans:
        lines += ["", "## Seeds for the next study", ""]
        for plan in a.seed_plans:
            lines += [f"**{plan.words}**", ""] + [f"- {x}" for x in plan.lines] + [""]
        lines.pop()
    return lines


PROTOCOL_ORDER = (("detection", "finetune"), ("detection", "frozen"), ("probe", "voc07-svm"),
                  ("segmentation", "finetune"), ("segmentation", "frozen"), ("segmentation", "ade-linear"),
                  ("probe", "knn"))


def protocols_section(a: Analysis, table: StudyTable, figures: dict[str, str]) -> list[str]:
    """Each protocol's cost, its numbers per recipe, and how well each cheap one ranks the recipes
    like full fine-tuning."""
    if not table.protocol_runs:
        return []
    lines = ["## Cheap protocols against full fine-tuning", "",
             "Each protocol measures every backbone (`protocol` in its `result.json`; what each trains and freezes "
             "is in the README's protocol table). A cheap protocol is worth running in place of fine-tuning when it "
             "ranks the recipes the same way: Spearman and Kendall rank correlations over the recipe means, with "
             "two-level bootstrap 95% intervals (recipes, then pretraining seeds within each), Holm over each "
             f"task's tests; with fewer than {stats.MIN_AGREEMENT_RECIPES} recipes a correlation is not estimable. "
             "No verdict between recipes rests on a cheap protocol.", "",
             "| protocol | stage | reports | device-hours per backbone | backbones |", "|---|---|---|---|---|"]
    for kind in PROTOCOL_ORDER:
        hours = table.protocol_hours.get(kind)
        if hours:
            metric = PROTOCOL_METRICS[kind][1] if kind in PROTOCOL_METRICS else {"detection": "map",
                                                                                    "segmentation": "miou"}[kind[0]]
            lines.append(f"| `{kind[1]}` | {kind[0]} | {UNITS[metric]} | {sum(hours) / len(hours):.4f} | "
                         f"{len(hours)} |")
    lines.append("")
    lines.append("Device-hours include a protocol's sweep trials and a probe's feature extraction."
                 + (" `frozen` trains the neck and heads only: the whole backbone is frozen, its BatchNorm statistics "
                    "and the C4 detector's res5 (its RoI head) included." if any(p == "frozen" for _, p in
                                                                               table.protocol_hours) else ""))
    for y in ("map", "miou"):
        rows = [g for g in a.agreement if g.finetuned == y]
        if rows:
            lines += ["", f"**{TASK_OF[y].capitalize()}: fine-tuned {UNITS[y]}**", *(f"- {g.words}" for g in rows)]
    cols = [m for m in ("map", "frozen_map", "svm_map", "miou", "frozen_miou", "linear_miou", "knn_top1", "top1")
            if any(m in v for v in a.protocol_summary.values()) or (m == "top1" and m in a.metrics)]
    if cols:
        lines += ["", "Recipe means (± sd over pretraining seeds):", "",
                  "| recipe | " + " | ".join(UNITS[m] for m in cols) + " |", "|---|" + "---|" * len(cols)]
        for recipe in sorted(set(a.summary) | set(a.protocol_summary)):
            cells = []
            for m in cols:
                sm = a.protocol_summary.get(recipe, {}).get(m) or a.summary.get(recipe, {}).get(m)
                cells.append("-" if sm is None else f"{sm.mean:.2f}" + (f" ± {sm.std:.2f}" if sm.std is not None
                                                                         else ""))
            lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    if "protocols" in figures:
        lines += ["", f"![cheap protocols against fine-tuning]({figures['protocols']})"]
    return lines


def cost_section(a: Analysis, table: StudyTable) -> list[str]:
    shown = [c for c in COST_COLUMNS if c.startswith("pretrain") or not a.pretrain_only]
    lines = ["## Cost", "", "Mean per backbone of the recipe (downstream: all its fine-tunes and sweep trials "
             "together); device-hours = wall time × devices.", "",
             "| recipe | arch | " + " | ".join(COST_HEADERS[c] for c in shown) + " |",
             "|---|---|" + "---|" * len(shown)]
    for recipe in sorted(table.cost):
        cells = dict(zip(COST_COLUMNS, table.cost[recipe].cells()))
        lines.append(f"| {recipe} | {table.arch[recipe] or '-'} | " + " | ".join(cells[c] or "-" for c in shown) + " |")
    return lines


def markdown(a: Analysis, table: StudyTable, runs_dir: str, figures: dict[str, str], configs: dict[str, str]) -> str:
    """report.md: the sections in order, a blank line between two; a section with nothing to say is left out."""
    sections = [
        title_section(a, table, runs_dir, configs),
        question_section(a),
        correlations_section(a, runs_dir, figures),
        recipes_section(a, table),
        effects_section(a, figures),
        improvement_section(a),
        inversions_section(a, runs_dir, figures),
        trick_effects_section(a),
        noise_section(a),
        protocols_section(a, table, figures),
        selection_section(table),
        cost_section(a, table),
        provenance_section(a, table),
        ["Every run is in `leaderboard.csv`, every number in `report.json`."],
    ]
    lines: list[str] = []
    for section in filter(None, sections):
        lines += [""] * bool(lines) + section
    return "\n".join(lines) + "\n"


# -- figures and report.json --------------------------------------------------------------------

def render_figures(a: Analysis, folder: Path) -> dict[str, str]:
    """The figures, as paths relative to the report (``figures/NAME.png``); a figure without
    enough data says so in its picture (:mod:`evaluation.plots`). Runs that were only
    pretrained get the forest chart alone."""
    made: dict[str, str] = {}
    for y in a.downstream if "top1" in a.metrics else ():
        corr = next((c for c in a.correlations if c.y == y and c.method == "pearson" and c.scale == "raw"), None)
        plots.scatter(a.summary, folder, f"top1_vs_{y}", x="top1", y=y, correlation=corr)
        made[f"top1_vs_{y}"] = f"figures/top1_vs_{y}.png"
    plots.forest([e for e in a.effects if e.metric in ("top1", "map", "miou")], folder, "forest")
    made["forest"] = "figures/forest.png"
    if not a.pretrain_only:
        plots.bump(a.summary, folder, "bump", metrics=tuple(m for m in ("top1", "map", "miou") if m in a.metrics))
        made["bump"] = "figures/bump.png"
    if a.agreement:
        pairs = [(g.cheap, g.finetuned, next((c for c in g.correlations if c.method == "spearman"), None))
                 for g in a.agreement]
        plots.protocols(a.protocol_summary, folder, "protocols", pairs=pairs)
        made["protocols"] = "figures/protocols.png"
    return made


def _comparison(e: stats.Effect) -> dict:
    """One recipe against the reference: the fields other tools read (``method``: how the
    interval was made; ``df``: the degrees of freedom behind it)."""
    method = {"dunnett": "dunnett", "paired": "paired t", "welch": "welch t"}.get(e.method, e.method)
    df = e.df if e.df is not None else (e.n - 1 if e.method == "paired" and e.ci_low is not None else None)
    return {"recipe": e.recipe, "reference": e.reference, "metric": e.metric, "estimate": e.diff, "low": e.ci_low,
            "high": e.ci_high, "df": df, "pvalue": e.pvalue, "method": method}


def _agreement(agreement: Sequence[stats.Agreement]) -> list[dict]:
    """report.json's ``protocol_agreement``: per task, cheap protocol and method, the rank correlation
    with full fine-tuning (``estimate``, ``low``, ``high``; null where not estimable), and the ranks."""
    out = []
    for g in agreement:
        stage, protocol = PROTOCOL_OF[g.cheap]
        common = {"task": TASK_OF[g.finetuned], "protocol": protocol, "protocol_task": stage, "metric": g.cheap,
                  "against": "finetune", "finetuned_metric": g.finetuned, "n_recipes": g.n_recipes,
                  "top_k": g.k, "top_k_shared": g.top_k, "ranks": [list(r) for r in g.ranks], "words": g.words}
        by_method = {c.method: c for c in g.correlations}
        for method in stats.RANK_METHODS:
            c = by_method.get(method)
            out.append(common | {"method": method, "estimate": c and c.estimate, "low": c and c.ci_low,
                                 "high": c and c.ci_high, "p": c and c.p, "p_holm": c and c.p_holm,
                                 "n_boot": c.n_boot if c else 0})
    return out


def to_json(a: Analysis, table: StudyTable, runs_dir: str) -> str:
    data = {
        "reference": a.reference, "metrics": list(a.metrics), "n_runs": len(table.runs),
        "summary": {r: {m: stats.record(s) for m, s in v.items()} for r, v in sorted(a.summary.items())},
        "correlations": [stats.record(c) for c in a.correlations],
        "effects": [stats.record(e) for e in a.effects],
        "improvement": [stats.record(i) for i in a.improvement],
        "inversions": [stats.record(i) for i in a.inversions],
        "trick_effects": [stats.record(t) for t in a.trick_effects],
        "trick_effects_left_out": list(a.trick_effects_left_out),
        "comparisons": [_comparison(e) for e in a.effects],
        "variance_components": [noise.record(vc) for vc in a.components],
        "finetune_seed_effects": [noise.record(e) for e in a.seed_effects],
        "seed_plan": [noise.record(p) for p in a.seed_plans],
        "evalset_noise": [evalset.record(e) for e in a.evalset],
        "question": None if a.question is None else question_record(a.question),
        "protocol_agreement": _agreement(a.agreement),
        "protocol_cost": [{"task": stage, "protocol": protocol, "device_hours_per_backbone": sum(h) / len(h),
                           "backbones": len(h)} for (stage, protocol), h in sorted(table.protocol_hours.items())],
        "cost": {r: {"arch": table.arch[r]} | asdict(table.cost[r]) for r in sorted(table.cost)},
        "runs": [asdict(r) | {"metrics": dict(r.metrics)} for r in table.runs],
    }
    if a.pretrain_only:  # the downstream sections are empty: why
        data["left_out"] = {k: only_pretrained(runs_dir, why, bool(a.protocol_summary))
                            for k, why in WHY_ABSENT.items()}
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


# -- the command ------------------------------------------------------------------------------------

def write_report(runs_dir: Path, out: Path, reference: str | None, configs: dict[str, str],
                 plan_effect: float = PLAN_EFFECT, question: Question | None = None) -> Analysis:
    """Everything is computed before anything is written; the files are made in a temporary
    folder next to ``out`` and moved into it at the end, so a failure leaves no partial report."""
    found = find_results(runs_dir)
    joined = join(found, configs)
    if not joined:
        raise ReportError(f"no result.json under {runs_dir}: run pretrain/run.py and the downstream stages first")
    if not any(j.downstream or j.protocols for j in joined) and (configs or any(r.stage != "pretrain" for r in found)):
        # downstream results were asked for (a config) or written, and none could be used
        raise ReportError(f"no detection or segmentation result under {runs_dir}: fine-tune the backbones with "
                          f"downstream/detect.py and downstream/segment.py first"
                          + (" (or drop --det-config / --seg-config)" if configs else ""))
    table = tabulate(joined, runs_dir)
    per_image = per_image_runs(joined)  # reads every per_image.npz: a bad one stops here, named
    try:
        ref = choose_reference(table.recipes, table.factors, reference)
        a = analyse(table.runs, table.factors, ref, table.finetunes, table.plan_costs(), plan_effect, per_image,
                    question)
    except ValueError as e:
        raise ReportError(str(e)) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".report.", dir=out))
        try:
            figures = render_figures(a, tmp / "figures")
            files = {
                "report.md": markdown(a, table, str(runs_dir), figures, configs),
                "report.json": to_json(a, table, str(runs_dir)),
                "recipes.csv": recipes_csv(a.summary, table),
                "leaderboard.csv": to_csv(table.rows),
                "runs.csv": runs_csv(table.finetunes + table.protocol_runs),
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
    except OSError as e:  # --out is a file, or cannot be written: the previous report is intact
        raise ReportError(f"cannot write the report into --out {out}: {e.strerror or e}; choose another --out") from e
    return a


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p)
    p.add_argument("--out", type=Path, help="where the report goes (default: RUNS/report)")
    p.add_argument("--reference", help="the recipe every other is compared with (default: 'baseline', or the "
                                       "recipe without tricks)")
    p.add_argument("--plan-effect", type=float, default=PLAN_EFFECT,
                   help="the difference (points) the seed plan is made for: the effect the next study should be able "
                        "to detect, never the one this study found (default: %(default)s)")
    p.add_argument("--question", metavar="RECIPE:METRIC:DIRECTION",
                   help="the comparison the runs were made to resolve: is RECIPE's METRIC (top1, map, miou, ...) "
                        "higher, lower or different than the reference's? The report opens with its answer")
    p.add_argument("--question-text", metavar="TEXT", help="the question in words, printed above the answer")
    args = p.parse_args(argv)
    out = args.out or args.runs / "report"
    try:
        if not args.plan_effect > 0:
            raise ReportError(f"--plan-effect {args.plan_effect}: the difference to plan seeds for must be > 0 points")
        if args.question_text is not None and args.question is None:
            raise ReportError("--question-text needs --question RECIPE:METRIC:DIRECTION: the comparison it asks")
        question = parse_question(args.question, args.question_text) if args.question is not None else None
        a = write_report(args.runs, out, args.reference, selected_configs(args), args.plan_effect, question)
        lineage = study_lineage()
        if lineage:  # a study's job: the fingerprint by which the study knows this report is its plan's
            atomic_write_json(out / ".trickbench-job.json", {**lineage, "finished_at": now()})
    except TrickBenchError as e:
        return errors.report(e)
    for c in a.correlations:
        if c.method == "pearson" and c.scale == "raw":
            print(c.words)
    if a.question is not None:
        print(f"question: {a.question.words}")
    print(f"report: {out / 'report.md'} (numbers in report.json, per recipe in recipes.csv, figures in "
          f"{out / 'figures'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
