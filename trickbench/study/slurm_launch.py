"""Submit a study's plan to Slurm at once and return: no driver stays alive.

Each job that is not done becomes a generated ``sbatch`` script (``WORK/slurm/``,
readable and resubmittable by hand) chained to the jobs it needs by Slurm itself:
``--dependency=afterok`` (``afterany`` for the report, which covers whatever
finished), always with ``--kill-on-invalid-dep=yes`` so that a failure cancels its
dependents instead of leaving them pending forever. Every script's options are first
checked with ``sbatch --test-only``, so a partition or account the cluster rejects
stops the submission before anything is queued. A job that reaches its time limit
or is preempted is requeued and resumes from its last checkpoint (see
:mod:`trickbench.study.slurm`).

Submitting again is how a study continues: done jobs are skipped, jobs still queued
or running are kept (new jobs wait for them), and the rest are submitted anew.
``status`` reads the result files and ``squeue``; it never needs ``sacct``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from trickbench.fileio import append_jsonl, atomic_write_bytes, read_jsonl
from trickbench.paths import REPO
from trickbench.worklock import lock_work_dir

from . import slurm
from .plan import Job, Plan, is_done, is_stale
from .spec import Resources
from .workdir import event, job_env, now, set_aside, stamp, write_lineage

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}


def options_for(res: Resources, plan: Plan, overrides: dict | None = None, extra=()) -> slurm.SlurmOptions:
    """A stage's resources as sbatch options; the command line's options win over the study's."""
    o = {k: v for k, v in (overrides or {}).items() if v is not None}
    return slurm.SlurmOptions(
        partition=o.get("partition", res.partition), account=o.get("account", res.account),
        qos=o.get("qos", res.qos), time=o.get("time", res.time), nodes=res.nodes, gpus_per_node=res.gpus,
        cpus_per_task=res.cpus, mem=o.get("mem", res.mem), requeue_signal_s=plan.study.requeue_signal_s or 1,
        extra=tuple(res.extra) + tuple(extra))


def records(plan: Plan) -> dict[str, dict]:
    """The latest submission of each job: job id -> {slurm_id, script, ...}."""
    path = plan.work_dir / "study" / "slurm.jsonl"
    out: dict[str, dict] = {}
    if path.exists():
        for rec in read_jsonl(path).records:
            out[rec["job"]] = rec
    return out


def queue_states(plan: Plan) -> dict[str, tuple[str, str]]:
    """Job id -> (Slurm state, reason) for the plan's jobs that Slurm still knows."""
    subs = records(plan)
    q = slurm.queue(r["slurm_id"] for r in subs.values())
    return {job: (q[r["slurm_id"]].state, q[r["slurm_id"]].reason) for job, r in subs.items() if r["slurm_id"] in q}


def script_for(job: Job, plan: Plan, options: slurm.SlurmOptions) -> str:
    env = {**job_env(job, plan), "PYTHONPATH": str(REPO)}
    return slurm.render_script(name=f"{plan.study.name}/{job.id}", argv=list(job.argv), log=plan.log(job),
                               options=options, workdir=REPO, env=env)


def submit_plan(plan: Plan, *, overrides: dict | None = None, extra=(), out=sys.stdout) -> int:
    lock = lock_work_dir(plan.work_dir / "study")  # one submission at a time
    try:
        return _submit(plan, overrides, extra, out)
    finally:
        os.close(lock)


def _submit(plan: Plan, overrides, extra, out) -> int:
    subs = records(plan)
    queued = {job: st for job, st in queue_states(plan).items() if st[0] in ACTIVE}
    todo = [j for j in plan.jobs if not is_done(j) and j.id not in queued]
    if all(j.stage == "report" for j in todo) and not queued:
        todo = [j for j in todo if not (j.work_dir / "report.json").exists()]
    if not todo:
        print(f"[study] {plan.study.name}: nothing to submit: {len(plan.jobs) - len(queued)} jobs done, "
              f"{len(queued)} in the queue", file=out)
        return 0
    # every script is written and checked by Slurm before anything is submitted
    folder = plan.work_dir / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    scripts: dict[str, Path] = {}
    checked: set = set()
    for job in todo:
        options = options_for(job.resources, plan, overrides, extra)
        path = folder / f"{job.slug}.sbatch"
        atomic_write_bytes(path, script_for(job, plan, options).encode())
        scripts[job.id] = path
        if options not in checked:
            slurm.check(path)
            checked.add(options)
    write_lineage(plan, "slurm")
    for job, why, dest in set_aside(plan, keep=set(queued)):
        print(f"[study] {job.id}: {why}; its old run is kept in {dest}", file=out)
    for job in plan.jobs:
        if job.id in queued and job.work_dir.exists() and is_stale(job):
            print(f"[study] warning: {job.id} is still in the queue (Slurm job {subs[job.id]['slurm_id']}) with its "
                  f"old config; cancel it (scancel {subs[job.id]['slurm_id']}) and submit again to run the new one",
                  file=out)
    ids = {job: subs[job]["slurm_id"] for job in queued}
    submitted = []
    for job in todo:
        if job.stage != "report":
            stamp(job, plan)
        after = [ids[d] for d in job.deps if d in ids]
        sid = slurm.submit(scripts[job.id], after_ok=() if job.after_any else after,
                           after_any=after if job.after_any else ())
        ids[job.id] = sid
        append_jsonl(plan.work_dir / "study" / "slurm.jsonl",
                     {"job": job.id, "slurm_id": sid, "script": str(scripts[job.id]), "submitted_at": now(),
                      "fingerprint": job.fingerprint, "after": after})
        event(plan, job.id, "submitted", slurm_id=sid, after=after)
        submitted.append((job, sid, after))
    width = max(len(j.id) for j, _, _ in submitted)
    for job, sid, after in submitted:
        print(f"  {sid:>8}  {job.id:<{width}}" + (f"  after {','.join(after)}" if after else ""), file=out)
    print(f"[study] {plan.study.name}: submitted {len(submitted)} jobs to Slurm ({len(plan.jobs) - len(todo) - len(queued)}"
          f" done, {len(queued)} already queued); scripts in {folder}, logs in {plan.log_dir}.\n"
          f"[study] follow it with: python -m trickbench.study status {plan.study.source} --work-dir {plan.work_dir}"
          f"  (or squeue --me); submit again to continue after a failure", file=out)
    return 0
