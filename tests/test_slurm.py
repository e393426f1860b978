"""The Slurm primitives against a real single-node Slurm started for the test session
(the ``slurm`` fixture, tests/slurm_cluster.py): generated scripts, dependency chains held by
the scheduler, Slurm cancelling the dependents of a failed job, a rejected option caught
before submission, and a requeued job resuming from its checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trickbench.study.slurm import SlurmError, SlurmOptions, available, cancel, check, queue, render_script, submit

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE"}

# Counts to STEPS, one step every 0.4 s, and says when SIGTERM stops it; its checkpoint records which run did each step,
# replaced atomically, so a run killed at any moment resumes where the last one stopped.
COUNTER = """\
import json, os, signal, sys, time
ckpt, steps = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGTERM, lambda *_: (print("stopped by SIGTERM", flush=True), sys.exit(143)))
run = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
done = json.load(open(ckpt)) if os.path.exists(ckpt) else []
print(f"run {run} resumes at step {len(done)}", flush=True)
for step in range(len(done), steps):
    time.sleep(0.4)
    done.append([step, run])
    with open(ckpt + ".tmp", "w") as f:
        json.dump(done, f)
    os.replace(ckpt + ".tmp", ckpt)
    print(f"step {step} run {run}", flush=True)
"""


def wait_until(predicate, timeout: float, what: str, poll: float = 0.3):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; queue: {queue()}")


def state(job_id: str) -> str:
    entry = queue([job_id]).get(job_id)
    return entry.state if entry else "UNKNOWN"


def ended(*job_ids: str) -> bool:
    return all(state(j) in ENDED for j in job_ids)


def script(tmp: Path, name: str, argv: list[str], **options) -> Path:
    path = tmp / f"{name}.sbatch"
    path.write_text(render_script(name=name, argv=argv, log=tmp / "logs" / f"{name}.log",
                                  options=SlurmOptions(**options), workdir=tmp))
    return path


def writer(out: Path, seconds: float = 0.0, exit_code: int = 0) -> list[str]:
    """argv of a one-liner that writes its start and end times to ``out`` and exits with ``exit_code``."""
    return ["-c", f"import sys, time; t = time.time(); time.sleep({seconds}); "
                  f"open({str(out)!r}, 'w').write(f'{{t}} {{time.time()}}'); sys.exit({exit_code})"]


def test_slurm_render_script_options(tmp_path):
    text = render_script(name="pre-r50", argv=["pretrain/run.py", "--config", "a b.py", "--resume"],
                         log=tmp_path / "r50.log", workdir=tmp_path, env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"},
                         options=SlurmOptions(partition="gpu", time="2-00:00:00", gpus_per_node=4,
                                              cpus_per_task=32, mem="200G", extra=("--constraint=a100",)))
    for line in ("--job-name=pre-r50", f"--output={tmp_path}/r50.log", "--open-mode=append", "--requeue",
                 "--signal=B:USR1@120", "--kill-on-invalid-dep=yes", "--partition=gpu", "--time=2-00:00:00",
                 "--gpus-per-node=4", "--cpus-per-task=32", "--mem=200G", "--constraint=a100"):
        assert f"#SBATCH {line}\n" in text
    assert "--account" not in text and "--qos" not in text
    assert "-m torch.distributed.run" in text and "--nproc_per_node=4" in text and "'a b.py'" in text
    assert "export CUBLAS_WORKSPACE_CONFIG=:4096:8" in text
    single = render_script(name="det", argv=["downstream/detect.py"], log=tmp_path / "d.log",
                           workdir=tmp_path, options=SlurmOptions(gpus_per_node=1))
    assert "torch.distributed" not in single and f"srun --ntasks=1 {sys.executable} downstream/detect.py" in single
    for bad in (dict(extra=("constraint=a100",)), dict(nodes=0), dict(requeue_signal_s=0)):
        with pytest.raises(SlurmError):
            render_script(name="x", argv=["a.py"], log=tmp_path / "x.log", workdir=tmp_path,
                          options=SlurmOptions(**bad))
    with pytest.raises(SlurmError, match="spaces"):
        render_script(name="x y", argv=["a.py"], log=tmp_path / "x.log", workdir=tmp_path, options=SlurmOptions())


def test_slurm_chain_held_by_scheduler(slurm, tmp_path):
    assert available()
    outs = [tmp_path / f"out{i}" for i in range(3)]
    first = submit(script(tmp_path, "chain0", writer(outs[0], seconds=4)))
    second = submit(script(tmp_path, "chain1", writer(outs[1])), after_ok=[first])
    third = submit(script(tmp_path, "chain2", writer(outs[2])), after_ok=[second])

    wait_until(lambda: state(first) == "RUNNING", 30, "the first job to start")
    q = queue([first, second, third])
    assert (q[second].state, q[second].reason, q[second].dependency) == \
        ("PENDING", "Dependency", f"afterok:{first}(unfulfilled)")
    assert (q[third].state, q[third].dependency) == ("PENDING", f"afterok:{second}(unfulfilled)")
    shown = subprocess.run(["scontrol", "show", "job", second], capture_output=True, text=True, check=True).stdout
    assert f"Dependency=afterok:{first}" in shown and "KillOInInvalidDependent=Yes" in shown
    assert not outs[1].exists()

    wait_until(lambda: ended(first, second, third), 60, "the chain to finish")
    assert [state(j) for j in (first, second, third)] == ["COMPLETED"] * 3
    times = [tuple(map(float, o.read_text().split())) for o in outs]
    assert times[0][1] <= times[1][0] and times[1][1] <= times[2][0], times
    assert set(queue()) >= {first, second, third}  # the user's jobs, as status reads them


def test_slurm_failed_job_cancels_afterok_not_afterany(slurm, tmp_path):
    failing = submit(script(tmp_path, "fails", writer(tmp_path / "f", seconds=1, exit_code=3)))
    blocked = submit(script(tmp_path, "blocked", writer(tmp_path / "never")), after_ok=[failing])
    cleanup = submit(script(tmp_path, "cleanup", writer(tmp_path / "cleanup")), after_any=[failing])

    wait_until(lambda: ended(failing, blocked, cleanup), 60, "Slurm to settle the dependents")
    q = queue([failing, blocked, cleanup])
    assert q[failing].state == "FAILED" and q[failing].reason == "NonZeroExitCode"
    assert q[blocked].state == "CANCELLED" and q[blocked].reason == "DependencyNeverSatisfied"
    assert q[cleanup].state == "COMPLETED" and (tmp_path / "cleanup").exists()
    assert not (tmp_path / "never").exists()
    with pytest.raises(SlurmError, match="424242"):  # Slurm itself would take an unknown id as done
        submit(script(tmp_path, "orphan", writer(tmp_path / "orphan")), after_ok=[failing, "424242"])
    assert all(j.name != "orphan" for j in queue().values())
    assert "ends with exit code 3" in (tmp_path / "logs" / "fails.log").read_text()


def test_slurm_check_rejects_bad_partition_before_submitting(slurm, tmp_path):
    before = queue()
    bad = script(tmp_path, "badpart", writer(tmp_path / "x"), partition="no-such-partition")
    with pytest.raises(SlurmError) as e:
        check(bad)
    assert "no-such-partition" in str(e.value) and str(bad) in str(e.value)
    assert queue().keys() == before.keys() and all(j.name != "badpart" for j in queue().values())
    check(script(tmp_path, "goodpart", writer(tmp_path / "y"), partition="debug", time="00:05:00"))
    assert queue().keys() == before.keys()
    with pytest.raises(SlurmError, match="sbatch refused"):
        submit(bad)


def _requeue_and_resume(tmp_path: Path, interrupt) -> tuple[list, str]:
    prog, ckpt, steps = tmp_path / "count.py", tmp_path / "ckpt.json", 12
    prog.write_text(COUNTER)
    job = submit(script(tmp_path, "counter", [str(prog), str(ckpt), str(steps)]))
    wait_until(lambda: ckpt.exists() and len(json.loads(ckpt.read_text())) >= 3, 30, "three steps done")
    interrupt(job)
    wait_until(lambda: state(job) == "COMPLETED", 60, "the requeued job to finish")
    done = json.loads(ckpt.read_text())
    assert [s for s, _ in done] == list(range(steps))  # each step once, in order: resumed, not restarted
    runs = [r for _, r in done]
    assert runs[0] == 0 and runs[-1] == 1 and runs == sorted(runs), runs  # run 1 went on where run 0 stopped
    log = (tmp_path / "logs" / "counter.log").read_text()
    assert "restart 0" in log and "restart 1" in log and "run 0 resumes at step 0" in log  # both runs, appended
    assert f"run 1 resumes at step {runs.index(1)}" in log
    assert "stopped by SIGTERM" in log  # the program itself was asked to stop, not killed
    return done, log


def test_slurm_requeued_job_resumes_from_checkpoint(slurm, tmp_path):
    _requeue_and_resume(tmp_path, lambda job: subprocess.run(["scontrol", "requeue", job], check=True))


def test_slurm_usr1_near_time_limit_requeues_and_resumes(slurm, tmp_path):
    """What --signal=B:USR1@N does before the time limit, sent now: the script's trap stops the
    program and requeues the job."""
    _, log = _requeue_and_resume(
        tmp_path, lambda job: subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True))
    assert "time limit near, stopping and requeueing" in log


def test_slurm_cancel(slurm, tmp_path):
    job = submit(script(tmp_path, "sleeper", writer(tmp_path / "z", seconds=60)))
    cancel([job])
    wait_until(lambda: state(job) == "CANCELLED", 20, "the job to be cancelled")
    cancel([job])  # already ended: ignored
    assert queue(["999999"]) == {}
