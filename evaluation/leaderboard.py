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
import math
import sys
from pathlib import Path
from typing import NoReturn

from trickbench.fileio import atomic_write_bytes, read_json

COLUMNS = ["backbone", "arch", "tricks", "top1", "top5", "voc_map", "voc_map_area", "ade_miou", "ade_aacc",
           "ade_macc", "det_config", "seg_config", "pretrain_dir", "det_dir", "seg_dir"]
# stage -> (metric in result.json -> column)
STAGE_COLUMNS = {
    "pretrain": {"top1": "top1", "top5": "top5"},
    "detection": {"map": "voc_map", "map_area": "voc_map_area"},
    "segmentation": {"miou": "ade_miou", "aacc": "ade_aacc", "macc": "ade_macc"},
}
MAIN_METRIC = {"pretrain": "top1", "detection": "map", "segmentation": "miou"}  # a result without it is damaged


class LeaderboardError(RuntimeError):
    pass


def find_results(root: Path) -> list[tuple[Path, dict]]:
    if not root.is_dir():
        raise LeaderboardError(f"--runs {root} is not a directory")
    out = []
    for path in sorted(root.rglob("result.json")):
        try:
            res = read_json(path)
        except ValueError as e:  # names the file and the fix
            raise LeaderboardError(str(e)) from e
        except OSError as e:
            raise LeaderboardError(f"{path}: cannot read it ({e.strerror}); fix its permissions, or delete it") from e
        if not isinstance(res, dict) or "stage" not in res:
            print(f"warning: {path} is not a TrickBench result (no stage); skipped", file=sys.stderr)
            continue
        check_result(path, res)
        out.append((path.parent, res))
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_result(path: Path, res: dict) -> None:
    """Every field the leaderboard reads has the type it needs, and every metric it shows
    is a finite number; otherwise a LeaderboardError names ``path`` and the fix."""
    def bad(problem: str) -> NoReturn:
        raise LeaderboardError(f"{path}: {problem}; re-run the stage that wrote it, or delete it")

    stage, metrics, arch = res["stage"], res.get("metrics"), res.get("arch")
    if not isinstance(stage, str) or stage not in STAGE_COLUMNS:
        bad(f"stage {stage!r} is not one of {', '.join(STAGE_COLUMNS)}")
    if not isinstance(res.get("backbone"), str) or not res["backbone"]:
        bad("no backbone id")
    if not isinstance(metrics, dict):
        bad("no metrics")
    if MAIN_METRIC[stage] not in metrics:
        bad(f"no metric {MAIN_METRIC[stage]!r}")
    for name in STAGE_COLUMNS[stage]:
        if name in metrics and not _finite(metrics[name]):
            bad(f"metric {name!r} is {metrics[name]!r}, not a finite number")
    if res.get("top1") is not None and not _finite(res["top1"]):
        bad(f"top1 is {res['top1']!r}, not a finite number")
    if arch and not (isinstance(arch, dict) and isinstance(arch.get("depth"), int)
                     and isinstance(arch.get("variant"), str) and isinstance(arch.get("base_channels", 64), int)):
        bad(f"arch {arch!r} lacks an integer depth, a variant or an integer base_channels")
    tricks = res.get("tricks", [])
    if not isinstance(tricks, list) or not all(isinstance(t, str) for t in tricks):
        bad(f"tricks {tricks!r} is not a list of names")
    for key in ("finished_at", "config_file", "backbone_sha256"):
        if res.get(key) is not None and not isinstance(res[key], str):
            bad(f"{key} {res[key]!r} is not a string")


def arch_name(res: dict) -> str:
    a = res.get("arch") or {}
    if not a:
        return ""
    width = "" if a.get("base_channels", 64) == 64 else f"-w{a['base_channels']}"
    return f"ResNet-{a['depth']}-{a['variant']}{width}"


def _fmt(x) -> str:
    return "" if x is None else f"{x:.2f}"


def config_name(res: dict) -> str:
    return Path(res.get("config_file") or "").stem


def build_rows(results: list[tuple[Path, dict]], root: Path, configs: dict[str, str] | None = None) -> list[dict]:
    """``configs`` maps a downstream stage to the config (file stem) whose results count,
    e.g. ``{"detection": "faster-rcnn_r50-c4_4xb1-20e_voc0712_paper"}``; by default every
    config does, and the newest result of a backbone and stage wins."""
    configs = configs or {}
    pretrains: dict[str, tuple[Path, dict]] = {}
    for run_dir, res in results:
        if res["stage"] != "pretrain":
            continue
        if res["backbone"] in pretrains:
            raise LeaderboardError(f"two pretrain runs share the backbone id {res['backbone']!r}: "
                                   f"{pretrains[res['backbone']][0]} and {run_dir}; rename one (run.name)")
        pretrains[res["backbone"]] = (run_dir, res)
    rows: dict[str, dict] = {}

    def row_for(backbone: str) -> dict:
        return rows.setdefault(backbone, {c: "" for c in COLUMNS} | {"backbone": backbone})

    for backbone, (run_dir, res) in pretrains.items():
        row = row_for(backbone)
        row.update(arch=arch_name(res), tricks="+".join(res.get("tricks", [])) or "baseline",
                   pretrain_dir=str(run_dir.relative_to(root)))
        for metric, col in STAGE_COLUMNS["pretrain"].items():
            row[col] = _fmt(res["metrics"].get(metric))
    # Downstream: the newest result per (backbone, stage) wins; ties broken by path.
    latest: dict[tuple[str, str], tuple[Path, dict]] = {}
    for run_dir, res in results:
        if res["stage"] == "pretrain" or configs.get(res["stage"]) not in (None, config_name(res)):
            continue  # a pretrain row, or a downstream result of a config not asked for
        pre = pretrains.get(res["backbone"])
        if pre is not None and res.get("backbone_sha256") and pre[1].get("backbone_sha256") \
                and res["backbone_sha256"] != pre[1]["backbone_sha256"]:
            print(f"warning: {run_dir} fine-tuned an older backbone.pth of {res['backbone']!r} "
                  f"(checksum differs); skipped", file=sys.stderr)
            continue
        key = (res["backbone"], res["stage"])
        if key not in latest or (res.get("finished_at") or "", str(run_dir)) > (latest[key][1].get("finished_at") or "", str(latest[key][0])):
            latest[key] = (run_dir, res)
    for (backbone, stage), (run_dir, res) in latest.items():
        row = row_for(backbone)
        if not row["arch"]:
            row["arch"] = arch_name(res)
            row["top1"] = _fmt(res.get("top1"))  # an external backbone's top-1, given by the user
        for metric, col in STAGE_COLUMNS[stage].items():
            row[col] = _fmt(res["metrics"].get(metric))
        prefix = "det" if stage == "detection" else "seg"
        row[f"{prefix}_config"] = config_name(res)
        row[f"{prefix}_dir"] = str(run_dir.relative_to(root))
    for stage, prefix, flag in (("detection", "det", "--det-config"), ("segmentation", "seg", "--seg-config")):
        used = sorted({r[f"{prefix}_config"] for r in rows.values() if r[f"{prefix}_config"]})
        if len(used) > 1:
            print(f"warning: the {stage} column mixes configs ({', '.join(used)}), whose numbers do not compare; "
                  f"pass {flag} to keep one", file=sys.stderr)
    return [rows[k] for k in sorted(rows)]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def format_table(rows: list[dict], columns=("backbone", "arch", "tricks", "top1", "voc_map", "ade_miou", "ade_aacc")) -> str:
    cells = [list(columns)] + [[r[c] or "-" for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True, type=Path, help="folder to scan for result.json files")
    p.add_argument("--out", type=Path, help="CSV to write (default: RUNS/leaderboard.csv)")
    p.add_argument("--det-config", help="count only detection results of this config (its file name, without .py)")
    p.add_argument("--seg-config", help="count only segmentation results of this config (its file name, without .py)")
    args = p.parse_args(argv)
    configs = {stage: Path(name).stem for stage, name in (("detection", args.det_config),
                                                          ("segmentation", args.seg_config)) if name}
    out = args.out or args.runs / "leaderboard.csv"
    try:
        if out.is_dir():
            raise LeaderboardError(f"--out {out} is a folder; give a file, e.g. --out {out / 'leaderboard.csv'}")
        rows = build_rows(find_results(args.runs), args.runs, configs)
        try:
            atomic_write_bytes(out, to_csv(rows).encode())
        except OSError as e:  # a WriteError: the previous file is unchanged
            raise LeaderboardError(f"cannot write --out {out}: {e.strerror}; {out.name} is left as it was: "
                                   f"fix that folder (space, permissions) or choose another --out") from e
    except LeaderboardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"\n{len(rows)} backbone(s); leaderboard written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
