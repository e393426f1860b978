#!/usr/bin/env python
"""The leaderboard: one row per pretrained backbone, ImageNet top-1 next to VOC mAP and ADE20K mIoU.

    python evaluation/leaderboard.py --runs runs/ [--out runs/leaderboard.csv]

It is derived, never edited: every ``result.json`` under ``--runs`` is read, the
downstream results are joined to the backbone they fine-tuned (by the backbone
id, checked against the SHA-256 of the ``backbone.pth`` they loaded), and the CSV
is written atomically. The same runs always give the same file. This is the command
line only: finding, joining and tabulating are :mod:`evaluation.table`'s.

A leaderboard never shows partial or wrong numbers: a ``result.json`` that has a
``stage`` but is malformed (not valid JSON, no ``backbone`` or ``metrics``, a metric
that is not a finite number, an ``arch`` without ``depth``, ...) stops it with exit
code 2 and one ``error:`` line naming the file, before anything is written. Only a
``result.json`` with no ``stage`` at all (not a TrickBench result; another tool's) is
skipped, with a warning.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.stats import summary_table
from evaluation.table import (METRICS, add_selection_args, find_results, join, recipes_csv, selected_configs,
                              tabulate, to_csv)
from trickbench import errors
from trickbench.errors import TrickBenchError
from trickbench.fileio import atomic_write_bytes


class LeaderboardError(TrickBenchError, RuntimeError):
    pass


def aligned(cells: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns, for the terminal."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def format_table(rows, columns=("backbone", "arch", "tricks", "top1", "voc_map", "ade_miou", "ade_aacc")) -> str:
    return aligned([list(columns)] + [[r[c] or "-" for c in columns] for r in rows])


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
    out = args.out or args.runs / "leaderboard.csv"
    per_recipe = out.with_name("recipes.csv") if out.name != "recipes.csv" else out.with_name("recipes-summary.csv")
    try:
        if out.is_dir():
            raise LeaderboardError(f"--out {out} is a folder; give a file, e.g. --out {out / 'leaderboard.csv'}")
        table = tabulate(join(find_results(args.runs), selected_configs(args)), args.runs)
        summary = summary_table(table.runs, [m for m in METRICS if any(m in r.metrics for r in table.runs)])
        try:
            atomic_write_bytes(out, to_csv(table.rows).encode())
            atomic_write_bytes(per_recipe, recipes_csv(summary, table).encode())
        except OSError as e:  # a WriteError: the previous file is unchanged
            raise LeaderboardError(f"cannot write {e.filename}: {e.strerror}; it is left as it was: "
                                   f"fix that folder (space, permissions) or choose another --out") from e
    except TrickBenchError as e:
        return errors.report(e)
    print(format_table(table.rows))
    print()
    print(recipe_table(summary))
    print(f"\n{len(table.rows)} run(s) of {len(summary)} recipe(s); per run: {out}, per recipe (mean, std, 95% "
          f"interval, cost): {per_recipe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
