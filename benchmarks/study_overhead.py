#!/usr/bin/env python
"""Scheduling overhead of the study runner: its wall time against the run times of its jobs.

    python benchmarks/study_overhead.py STUDY --work-dir DIR [--jobs N]

Runs the study from scratch into DIR (which must not exist) with the local launcher,
then prints, from the study's event log: the runner's wall time; the sum of its jobs'
run times (each job's process, start to exit); the ideal wall time with N slots (that
sum / N, or the longest dependency chain if longer); and the launcher's own share,
the gaps between a slot freeing and the next job starting.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from trickbench.paths import REPO



def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", type=Path)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--from-log", action="store_true",
                   help="do not run: read a finished uninterrupted run's event log in --work-dir (wall time: from "
                        "its plan to its last job)")
    args = p.parse_args(argv)
    if args.from_log:
        events = read_events(args.work_dir)
        last_run = max(i for i, e in enumerate(events) if e["event"] == "planned")
        events = events[last_run:]  # the last invocation of the study
        stamps = [datetime.fromisoformat(e["time"]).timestamp() for e in events]
        t0, wall, rc = stamps[0], stamps[-1] - stamps[0], 0
    else:
        if args.work_dir.exists():
            p.error(f"--work-dir {args.work_dir} exists; the benchmark runs the study from scratch")
        t0 = time.time()
        rc = subprocess.run([sys.executable, "-m", "trickbench.study", "run", str(args.study), "--work-dir",
                             str(args.work_dir), "--jobs", str(args.jobs)], cwd=REPO).returncode
        wall = time.time() - t0
        events = read_events(args.work_dir)
    return report(args, events, t0, wall, rc)


def read_events(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "study" / "events.jsonl").read_text().splitlines()]


def report(args, events: list[dict], t0: float, wall: float, rc: int) -> int:
    start = {e["job"]: datetime.fromisoformat(e["time"]).timestamp() for e in events if e["event"] == "started"}
    took = {e["job"]: e["seconds"] for e in events if e["event"] == "done"}
    plan = json.loads((args.work_dir / "study" / "plan.json").read_text())["jobs"]
    deps = {j["id"]: j["deps"] for j in plan}
    chain: dict[str, float] = {}
    for j in plan:  # dependencies first
        chain[j["id"]] = took.get(j["id"], 0.0) + max((chain[d] for d in deps[j["id"]]), default=0.0)
    total = sum(took.values())
    ideal = max(total / args.jobs, max(chain.values(), default=0.0))
    first = min(start.values())
    print(f"\nstudy {args.study} with {args.jobs} slot(s), {len(took)} jobs done (exit {rc})")
    print(f"{'runner wall time':<44} {wall:8.1f} s")
    print(f"{'  of which before the first job started':<44} {first - t0:8.1f} s  (reading and checking the study)")
    print(f"{'sum of the jobs run times':<44} {total:8.1f} s")
    print(f"{'ideal wall time (sum / slots, or the chain)':<44} {ideal:8.1f} s")
    print(f"{'overhead: wall / ideal':<44} {wall / ideal:8.3f}")
    per_stage: dict[str, list[float]] = {}
    for job, s in took.items():
        per_stage.setdefault(job.split("/")[0], []).append(s)
    for stage, ts in per_stage.items():
        print(f"  {stage:<14} {len(ts):3d} jobs, mean {sum(ts) / len(ts):6.1f} s, total {sum(ts):7.1f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
