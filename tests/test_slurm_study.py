"""A whole study submitted to a real Slurm (the ``slurm`` fixture: slurmctld + slurmd started
for the test session): the plan's dependencies held by the scheduler, a job requeued in the
middle of its run continuing from its checkpoint, status from squeue without sacct, and a
rejected Slurm option stopping the submission before anything is queued."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ok, run_cli
from tests.test_study import DET, PRETRAIN, SEG, job_metrics, write_study
from trickbench.study.slurm import queue

pytestmark = pytest.mark.slow


def slurm_study(folder: Path, data: dict[str, Path], extra: str = "") -> Path:
    """One recipe, two seeds, detection and segmentation; the pretraining long enough to requeue."""
    return write_study(folder, f'''
name = "slurm-small"
seeds = [0, 1]
data = dict(imagenet="{data['imagenet']}", voc="{data['voc']}", ade20k="{data['ade20k']}")
recipes = [dict(name="r18", config="{PRETRAIN}", options={{"schedule.epochs": 4, "schedule.milestones": [3]}})]
downstream = dict(detection=["{DET}"], segmentation=["{SEG}"],
                  options=dict(detection={{"train_cfg.max_epochs": 1, "optim_wrapper.optimizer.lr": 0.005}},
                               segmentation={{"train_cfg.max_iters": 8, "train_cfg.val_interval": 8}}))
resources = dict(pretrain=dict(cpus=1), detection=dict(cpus=1), segmentation=dict(cpus=1), report=dict(cpus=1))
{extra}''')


def events(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "study" / "events.jsonl").read_text().splitlines()]


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; queue: {queue()}")


def test_slurm_study_chained_by_the_scheduler_requeued_and_resumed(slurm, synthetic, tmp_path):
    path = slurm_study(tmp_path, synthetic)
    work = tmp_path / "w"
    proc = ok(run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--launcher", "slurm"))
    assert "submitted 7 jobs to Slurm" in proc.stdout  # it returns at once: no driver stays alive
    subs = {json.loads(x)["job"]: json.loads(x) for x in (work / "study" / "slurm.jsonl").read_text().splitlines()}
    ids = {job: s["slurm_id"] for job, s in subs.items()}
    det0 = f"detection/{Path(DET).stem}/r18/seed0"
    # the scheduler itself holds the chain: the fine-tunings wait for their pretraining, the report for all
    q = queue(ids.values())
    assert f"afterok:{ids['pretrain/r18/seed0']}" in q[ids[det0]].dependency
    assert f"afterany:{ids['pretrain/r18/seed0']}" in q[ids["report"]].dependency
    script = (work / "slurm" / "pretrain__r18__seed0.sbatch").read_text()
    for line in ("--requeue", "--open-mode=append", "--kill-on-invalid-dep=yes", "--signal=B:USR1@"):
        assert line in script
    # requeue the first pretraining once it has saved an epoch: it comes back and resumes from it
    run0 = work / "runs" / "r18" / "seed0"
    wait_for(lambda: (run0 / "last.pth").exists(), 600, "the first epoch's checkpoint")
    subprocess.run(["scontrol", "requeue", ids["pretrain/r18/seed0"]], check=True)
    status = ok(run_cli("-m", "trickbench.study", "status", str(path), "--work-dir", str(work))).stdout
    assert "queued" in status or "running" in status
    wait_for(lambda: all(queue([i]).get(i) is None or queue([i])[i].state in ("COMPLETED", "FAILED", "CANCELLED")
                         for i in ids.values()), 1200, "every job to end")
    status = ok(run_cli("-m", "trickbench.study", "status", str(path), "--work-dir", str(work))).stdout
    assert status.strip().endswith("7 done"), status
    log = (work / "logs" / "pretrain__r18__seed0.log").read_text()
    assert "restart 0" in log and "restart 1" in log  # one log, both runs (--open-mode=append)
    assert "resumed from" in log and "at epoch" in log
    assert (work / "report" / "report.md").exists()
    metrics = job_metrics(work)
    assert len(metrics) == 6
    # submitting again submits nothing: every job is done
    again = ok(run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--launcher", "slurm"))
    assert "nothing to submit" in again.stdout


def test_slurm_rejected_option_stops_the_submission_before_anything_is_queued(slurm, synthetic, tmp_path):
    path = slurm_study(tmp_path, synthetic)
    before = set(queue())
    proc = run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(tmp_path / "w"), "--launcher",
                   "slurm", "--partition", "no-such-partition")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no-such-partition" in proc.stderr or "partition" in proc.stderr.lower()
    assert "Traceback" not in proc.stderr
    assert set(queue()) == before
    assert not (tmp_path / "w" / "study" / "slurm.jsonl").exists()
