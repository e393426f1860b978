#!/usr/bin/env python
"""The README's demo: a small backbone comparison study on real images, as one command.

1. get Fashion-MNIST (the system package, the suite's cache, or ``apt-get download``)
   and write ImageNet-, VOC- and ADE20K-layout datasets from it  (python -m trickbench.datasets fashion)
2. run the study ``configs/studies/demo.py``: 2 recipes x 2 pretraining seeds, each backbone
   fine-tuned in Faster R-CNN and in FCN with 2 fine-tune seeds and probed (k-NN, VOC07
   SVMs), then the report, which opens with the answer to the study's question
                                                                (python -m trickbench.study run)
3. print the per-recipe leaderboard                             (python evaluation/leaderboard.py)

Every command is printed before it runs. Interrupted, it continues where it stopped
when run again: finished jobs are skipped, interrupted ones resume from their checkpoint.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from trickbench.paths import REPO

STUDY = "configs/studies/demo.py"


def sh(*cmd: str) -> int:
    print(f"\n$ {shlex.join(cmd)}", flush=True)
    return subprocess.run([sys.executable if c == "python" else c for c in cmd], cwd=REPO).returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/fashion", help="where the datasets go (default: %(default)s)")
    p.add_argument("--runs", default="runs/demo", help="the study's work dir (default: %(default)s)")
    p.add_argument("--jobs", default="2", help="jobs at once (default 2: on a 2-core CPU, two jobs of one thread "
                                               "each finish about 1.4x sooner than one after the other on both)")
    args = p.parse_args(argv)
    t0 = time.time()
    rc = sh("python", "-m", "trickbench.datasets", "fashion", "--out", args.data)
    if rc != 0:
        return rc
    data = Path(args.data)
    rc = sh("python", "-m", "trickbench.study", "run", STUDY, "--work-dir", args.runs, "--jobs", args.jobs,
            "--cfg-options", f"data.imagenet={data / 'imagenet'}", f"data.voc={data / 'VOCdevkit'}",
            f"data.ade20k={data / 'ADEChallengeData2016'}")
    if rc not in (0, 1):  # 1: some job failed; the leaderboard and the report still show what finished
        return rc
    sh("python", "evaluation/leaderboard.py", "--runs", f"{args.runs}/runs")
    print(f"\nDemo finished in {(time.time() - t0) / 60:.1f} min. Report: {args.runs}/report/report.md (figures in "
          f"{args.runs}/report/figures/); runs: {args.runs}/runs/; datasets: {args.data}/", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
