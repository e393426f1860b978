"""What every launcher does to a study's work dir before and around its jobs: the
lineage (the resolved study, the plan, the commit), the append-only event log, the
stamp a job leaves in its work dir, and moving aside runs the plan no longer wants.

::

    WORK/study/study.json      the resolved study (every recipe, option and path)
    WORK/study/plan.json       the jobs: command, dependencies, fingerprint
    WORK/study/events.jsonl    append-only: planned, started, done, failed, skipped, submitted, ...
    WORK/logs/<job>.log        each job's output (appended over restarts)
    WORK/runs/...              the runs (see plan.py)
    WORK/superseded/<time>/... runs the plan replaced (a recipe changed), kept, never deleted
"""
from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from trickbench.fileio import append_jsonl, atomic_write_json
from trickbench.runinfo import STUDY_ENV, git_commit

from .plan import JOB_STAMP, Job, Plan, is_stale


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def event(plan: Plan, job: str, kind: str, **fields) -> None:
    plan.events.parent.mkdir(parents=True, exist_ok=True)
    append_jsonl(plan.events, {"time": now(), "job": job, "event": kind, **fields})


def _jsonable(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_lineage(plan: Plan, launcher: str) -> None:
    """``study.json`` and ``plan.json``, replaced atomically on every run (the event log keeps
    the history: each run appends a ``planned`` event with the commit and the fingerprints)."""
    folder = plan.work_dir / "study"
    folder.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    atomic_write_json(folder / "study.json", {"study": _jsonable(plan.study), "commit": commit, "written_at": now()})
    atomic_write_json(folder / "plan.json", {"commit": commit, "launcher": launcher,
                                            "jobs": [_jsonable(j) | {"log": str(plan.log(j))} for j in plan.jobs]})
    event(plan, "study", "planned", commit=commit, launcher=launcher, study=str(plan.study.source),
          jobs={j.id: j.fingerprint for j in plan.jobs})


def set_aside(plan: Plan, keep: set[str] = frozenset()) -> list[tuple[Job, str, Path]]:
    """Move the work dirs of stale jobs to ``WORK/superseded/<time>/``: (job, why, where).
    Jobs in ``keep`` (still queued or running on Slurm) are left where they are."""
    moved = []
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for job in plan.jobs:
        why = is_stale(job) if job.work_dir.exists() and job.id not in keep else None
        if why is None:
            continue
        dest = plan.work_dir / "superseded" / stamp / job.work_dir.relative_to(plan.work_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(job.work_dir, dest)
        event(plan, job.id, "superseded", why=why, moved_to=str(dest))
        moved.append((job, why, dest))
    return moved


def stamp(job: Job, plan: Plan) -> None:
    """Mark the job's work dir as this plan's (its fingerprint), before the job writes anything."""
    job.work_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job.work_dir / JOB_STAMP, {"job": job.id, "fingerprint": job.fingerprint,
                                                "study": plan.study.name, "started_at": now()})


def job_env(job: Job, plan: Plan) -> dict[str, str]:
    """What a job's process gets besides the caller's environment: the lineage its result records."""
    return {STUDY_ENV: json.dumps({"study": plan.study.name, "job": job.id, "fingerprint": job.fingerprint,
                                   "study_dir": str(plan.work_dir)})}
