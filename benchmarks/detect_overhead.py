#!/usr/bin/env python
"""Iteration time of ``downstream/detect.py`` against mmdet's own ``tools/train.py`` on
the same resolved config, same machine, same run: the adapter should add nothing.

    python benchmarks/detect_overhead.py --backbone runs/demo/r18d-tricks \\
        --data-root data/synthetic/VOCdevkit/ [--config configs/detection/...] [--rounds 2]

The config is resolved once through detect.py's own code (reference config +
backbone + weights), dumped, and trained by both entry points for one epoch
without validation, in alternating rounds. mmengine logs the time of every
logged iteration (``vis_data/scalars.json``); the medians are compared, leaving
out the first logged interval (start-up). Rounds alternate the order (ABBA).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from mmengine.config import Config
from mmengine.utils import get_installed_path

from downstream import detect, runner
from trickbench.paths import REPO

ONE_EPOCH = ["train_cfg.max_epochs=1", "train_cfg.val_interval=100", "default_hooks.checkpoint.interval=100",
             "default_hooks.logger.interval=5"]


def iteration_times(work_dir: Path) -> list[float]:
    logs = sorted(work_dir.glob("*/vis_data/scalars.json"))
    if not logs:
        raise SystemExit(f"no mmengine log under {work_dir}")
    times = [json.loads(ln)["time"] for ln in logs[-1].read_text().splitlines() if '"time"' in ln]
    return times[1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--config", default=str(REPO / "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"))
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="detect-overhead-"))
    # The config both entry points train: detect.py's resolution of it, dumped.
    ns = argparse.Namespace(data_root=args.data_root, cfg_options=_options(ONE_EPOCH), work_dir=str(tmp / "resolved"),
                            config=args.config, seed=0, amp=False, resume=False)
    bb = runner.resolve_backbone(args.backbone)
    cfg = runner.prepare(Config.fromfile(args.config), ns, "detection", bb)
    detect.apply_backbone(cfg, bb)
    cfg.custom_imports = dict(imports=["downstream.backbone"], allow_failed_imports=False)  # our initializer
    resolved = tmp / "resolved.py"
    cfg.dump(str(resolved))
    tools_train = Path(get_installed_path("mmdet")) / ".mim/tools/train.py"
    times: dict[str, list[float]] = {"downstream/detect.py": [], "mmdet tools/train.py": []}
    per_round: dict[str, list[float]] = {name: [] for name in times}
    for r in range(args.rounds):
        for name in (list(times) if r % 2 == 0 else list(times)[::-1]):  # ABBA: order effects cancel
            work = tmp / f"{name.split('/')[0].split()[0]}-{r}"
            if name.startswith("downstream"):
                cmd = ["downstream/detect.py", "--backbone", args.backbone, "--config", args.config,
                       "--data-root", args.data_root, "--work-dir", str(work), "--skip-data-check",
                       "--cfg-options", *ONE_EPOCH]
            else:
                cmd = [str(tools_train), str(resolved), "--work-dir", str(work)]
            proc = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-3000:])
                raise SystemExit(f"{name} failed (exit {proc.returncode})")
            t = iteration_times(work)
            times[name] += t
            per_round[name].append(statistics.median(t))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"config {Path(args.config).name}, backbone {bb.id}, {args.rounds} rounds of one epoch each")
    for name, t in med.items():
        rounds = ", ".join(f"{x * 1000:.0f}" for x in per_round[name])
        print(f"{name:<24} {t * 1000:8.1f} ms/iter (median of {len(times[name])} logged intervals; "
              f"per round: {rounds})")
    a, b = med["downstream/detect.py"], med["mmdet tools/train.py"]
    print(f"detect.py / tools/train.py = {a / b:.3f}")
    return 0


def _options(pairs: list[str]) -> dict:
    """``key=int`` pairs as --cfg-options gives them."""
    return {key: int(value) for key, value in (pair.split("=", 1) for pair in pairs)}


if __name__ == "__main__":
    sys.exit(main())
