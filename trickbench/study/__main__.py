"""Run a backbone comparison study as one command.

    python -m trickbench.study plan   STUDY [--work-dir DIR]       the jobs, their dependencies and state
    python -m trickbench.study status STUDY [--work-dir DIR]       done, running, failed (with the log), ...
    python -m trickbench.study run    STUDY [--work-dir DIR] [--jobs N] [--gpus 0,1,...]
    python -m trickbench.study run    STUDY --launcher slurm [--partition P] [--account A] [--qos Q]
                                            [--time T] [--sbatch=--constraint=a100 ...]

STUDY is a study file (configs/studies/). The work dir defaults to runs/<study name>.
Run the same command again to continue an interrupted or failed study: done jobs are
skipped, interrupted ones resume from their last checkpoint.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from mmengine.config import DictAction

from trickbench.errors import TrickBenchError, report

from . import plan as plan_mod
from .spec import check_data, load_study
from .status import states, table


def _args(argv):
    p = argparse.ArgumentParser(prog="python -m trickbench.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("plan", "print the jobs and dependencies; runs nothing"),
                        ("status", "where each job stands"), ("run", "run what is not done")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("study", type=Path, help="a study file, e.g. configs/studies/demo.py")
        s.add_argument("--work-dir", type=Path, help="where the study's runs go (default: runs/<study name>)")
        s.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                       help="override keys of the study file, e.g. seeds=[0,1,2]")
        if name != "plan":
            s.add_argument("--launcher", choices=("local", "slurm"), default=None,
                           help="run: on this machine (default) or submit to Slurm; status: read the Slurm queue "
                                "too (default: when the study was submitted to Slurm)")
        if name == "run":
            s.add_argument("--jobs", type=int, help="local: jobs at once (default: GPUs / GPUs per job, 1 on a CPU)")
            s.add_argument("--gpus", help="local: the GPUs to use, e.g. 0,1,2,3 (default: all visible)")
            for opt in ("partition", "account", "qos", "time", "mem"):
                s.add_argument(f"--{opt}", help=f"slurm: --{opt} for every stage (overrides the study file)")
            s.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                           help="slurm: an extra sbatch option for every job, e.g. --sbatch=--constraint=a100 "
                                "(repeatable)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    try:
        study = load_study(args.study, args.cfg_options)
        work = args.work_dir or Path("runs") / study.name
        plan = plan_mod.build(study, work)
        if args.command == "plan":
            print(describe(plan))
            return 0
        if args.command == "run":
            check_data(study)
            for warning in plan.warnings:
                print(f"warning: {warning}", file=sys.stderr)
        slurm = args.launcher == "slurm" or (args.launcher is None and _submitted_to_slurm(plan))
        if args.command == "status":
            queue = None
            if slurm:
                from .slurm_launch import queue_states
                queue = queue_states(plan)
            print(table(plan, states(plan, queue)))
            return 0
        if args.launcher == "slurm":
            from .slurm_launch import submit_plan
            return submit_plan(plan, overrides={k: getattr(args, k) for k in ("partition", "account", "qos",
                                                                              "time", "mem")},
                               extra=args.sbatch)
        from .local import LocalLauncher
        gpus = None if args.gpus is None else [g.strip() for g in args.gpus.split(",") if g.strip()]
        return LocalLauncher(plan, jobs=args.jobs, gpus=gpus).run()
    except TrickBenchError as e:
        return report(e)


def _submitted_to_slurm(plan) -> bool:
    return (plan.work_dir / "study" / "slurm.jsonl").exists()


def describe(plan) -> str:
    """The plan as a user reads it: recipes, then every job with its dependencies, state and command."""
    st = states(plan)
    s = plan.study
    lines = [f"study {s.name} ({s.source}): {len(s.recipes)} recipes x seeds {list(s.seeds)}; "
             f"{len(plan.jobs)} jobs; work dir {plan.work_dir}", "", "recipes:"]
    for r in s.recipes:
        what = (f"external {r.checkpoint} (top-1 {r.top1})" if r.external else
                f"{r.config.name}" + (" " + " ".join(f"{k}={v}" for k, v in r.options.items()) if r.options else ""))
        seeds = "" if r.seeds == s.seeds else f" seeds {list(r.seeds)}"
        lines.append(f"  {r.name}{' (reference)' if r.name == s.reference else ''}: {what}{seeds}"
                     + ("" if r.downstream else " [pretrain only]"))
    lines += ["", "jobs (dependencies first):"]
    for job in plan.jobs:
        state = st[job.id]
        note = f" [{state.state}" + (f": {state.detail}" if state.state == "stale" else "") + "]"
        after = ("after all of: " if not job.after_any else "after (however they end): ")
        deps = "" if not job.deps else f"\n      {after}{', '.join(job.deps) if len(job.deps) <= 4 else f'{len(job.deps)} jobs'}"
        lines.append(f"  {job.id}{note}{deps}\n      python {shlex.join(job.argv)}")
    missing = [f"data.{k} {p}" for k, p in s.roots_read().items() if not p.is_dir()]
    if missing:
        lines += ["", f"note: {', '.join(missing)} does not exist here; run needs it"]
    if s.pretraining_only:
        lines += ["", "pretraining only (no downstream configs): the report analyses top-1 and top-5"]
    lines += [f"\nwarning: {w}" for w in plan.warnings]
    stale = [j for j in plan.jobs if st[j.id].state == "stale"]
    if stale:
        lines += ["", f"{len(stale)} job(s) will run again because their config changed (the old runs are moved to "
                      f"{plan.work_dir / 'superseded'}): {', '.join(j.id for j in stale)}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
