#!/usr/bin/env python
"""The whole chain on small generated data, as a user would run it by hand:

1. generate ImageNet-, VOC- and ADE20K-layout datasets    (python -m trickbench.synthetic)
2. pretrain two small backbones that differ in variant and tricks   (pretrain/run.py)
3. fine-tune each in Faster R-CNN on VOC and in FCN on ADE20K       (downstream/*.py)
4. build the leaderboard and the report                            (evaluation/leaderboard.py, report.py)

Every command is printed before it runs; its full output goes to a log file under
the runs folder and its summary line to the terminal. A stage whose result.json
already exists is skipped and an interrupted one resumes (``--resume``), so the demo
can be re-run or continued after an interruption.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKBONES = {
    "r18-baseline": "configs/pretrain/synthetic/resnet18_tiny.py",
    "r18d-tricks": "configs/pretrain/synthetic/resnet18d_tiny_tricks.py",
}
DET_CONFIG = "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"
SEG_CONFIG = "configs/segmentation/fcn-d8_ade20k_tiny.py"


def sh(*cmd: str, log: Path | None = None) -> None:
    """Run a stage; with ``log``, keep its output there and show its summary lines."""
    print(f"\n$ {shlex.join(cmd)}" + (f"  > {log}" if log else ""), flush=True)
    t = time.time()
    argv = [sys.executable if c == "python" else c for c in cmd]
    if log is None:
        subprocess.run(argv, cwd=REPO, check=True)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(REPO / log, "w") as f:
            proc = subprocess.run(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        lines = (REPO / log).read_text().splitlines()
        if proc.returncode != 0:
            print("\n".join(lines[-40:]))
            raise SystemExit(f"demo: the stage above failed (exit {proc.returncode}); full output in {log}")
        for line in lines:
            if " done: " in line:
                print("  " + line)
    print(f"  ({time.time() - t:.0f} s)", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/synthetic", help="where the generated datasets go")
    p.add_argument("--runs", default="runs/demo", help="where the runs go")
    args = p.parse_args(argv)
    t0 = time.time()
    data, runs = Path(args.data), Path(args.runs)
    sh("python", "-m", "trickbench.synthetic", "--out", str(data))
    for name, config in BACKBONES.items():
        work = runs / name
        if not (REPO / work / "result.json").exists():
            # --resume continues an interrupted run (and starts one where there is none)
            sh("python", "pretrain/run.py", "--config", config, "--work-dir", str(work), "--resume",
               "--cfg-options", f"data.root={data / 'imagenet'}", log=runs / "logs" / f"{name}-pretrain.log")
        for script, config, root, task in (
            ("downstream/detect.py", DET_CONFIG, data / "VOCdevkit", "detection"),
            ("downstream/segment.py", SEG_CONFIG, data / "ADEChallengeData2016", "segmentation"),
        ):
            task_dir = REPO / work / task / Path(config).stem
            if not (task_dir / "result.json").exists():
                resume = ["--resume"] if (task_dir / "last_checkpoint").exists() else []
                sh("python", script, "--backbone", str(work), "--config", config, "--data-root", f"{root}/",
                   *resume, log=runs / "logs" / f"{name}-{task}.log")
    sh("python", "evaluation/leaderboard.py", "--runs", str(runs))
    sh("python", "evaluation/report.py", "--runs", str(runs))
    print(f"\nDemo finished in {(time.time() - t0) / 60:.1f} min. Runs, checkpoints and result.json files: "
          f"{runs}/; leaderboard: {runs / 'leaderboard.csv'}; report: {runs / 'report' / 'report.md'}; "
          f"datasets: {data}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
