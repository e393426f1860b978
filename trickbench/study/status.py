"""Where each job of a plan stands, from the files in the work dir (results, stamps,
locks, the event log) and, for a study on Slurm, ``squeue`` (never ``sacct``)."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from trickbench.worklock import LOCK_NAME

from .plan import JobState, Plan, is_done, is_stale, last_error, last_events


def lock_held(work_dir: Path) -> bool:
    """Whether a run holds ``work_dir``'s lock now (every entry point takes it while it runs)."""
    path = work_dir / LOCK_NAME
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def states(plan: Plan, queue: dict[str, tuple[str, str]] | None = None) -> dict[str, JobState]:
    """Per job: done, stale, running, queued, failed, skipped, waiting or not started.
    ``queue`` maps a job id to its Slurm (state, reason) for a study submitted to Slurm."""
    events = last_events(plan)
    out: dict[str, JobState] = {}
    for job in plan.jobs:
        ev = events.get(job.id, {})
        q = (queue or {}).get(job.id)
        if is_done(job):
            out[job.id] = JobState("done")
        elif why := is_stale(job):
            out[job.id] = JobState("stale", f"{why}: runs again")
        elif (lock_held(job.work_dir) or (q and q[0] in ("RUNNING", "COMPLETING"))
              or (ev.get("event") == "started" and lock_held(plan.work_dir / "study"))):
            out[job.id] = JobState("running", f"log: {plan.log(job)}")
        elif ev.get("event") == "started" and queue is None:
            out[job.id] = JobState("interrupted", "its launcher stopped; it resumes from its last checkpoint on "
                                                  "the next run")
        elif q and q[0] in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "SUSPENDED"):
            out[job.id] = JobState("queued", f"Slurm {q[0].lower()} ({q[1]})" if q[1] else f"Slurm {q[0].lower()}")
        elif ev.get("event") == "failed" or (q and q[0] in ("FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL",
                                                            "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")):
            err = ev.get("error") or last_error(plan.log(job))
            out[job.id] = JobState("failed", f"{err} | log: {plan.log(job)}")
        elif ev.get("event") == "submitted" and q is None and plan.log(job).exists():
            # left the queue without this plan's result: it failed, or Slurm cancelled it (a failed dependency)
            out[job.id] = JobState("failed", f"{last_error(plan.log(job))} | log: {plan.log(job)}")
        elif ev.get("event") == "skipped" or (ev.get("event") == "submitted" and q is None):
            because = ev.get("because") or "a job it needs failed"
            out[job.id] = JobState("skipped", f"needs {because}" if ev.get("because") else because)
        elif ev.get("event") == "interrupted":
            out[job.id] = JobState("interrupted", "resumes from its last checkpoint on the next run")
        elif any(out[d].state != "done" for d in job.deps) and not job.after_any:
            waiting = [d for d in job.deps if out[d].state != "done"]
            out[job.id] = JobState("waiting", f"for {waiting[0]}" + (f" and {len(waiting) - 1} more"
                                                                      if len(waiting) > 1 else ""))
        else:
            out[job.id] = JobState("not started")
    return out


def table(plan: Plan, st: dict[str, JobState]) -> str:
    width = max(len(j.id) for j in plan.jobs)
    lines = [f"{'job':<{width}}  {'state':<11}  detail"]
    for job in plan.jobs:
        s = st[job.id]
        lines.append(f"{job.id:<{width}}  {s.state:<11}  {s.detail}".rstrip())
    counts: dict[str, int] = {}
    for s in st.values():
        counts[s.state] = counts.get(s.state, 0) + 1
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()))
    return "\n".join(lines)
