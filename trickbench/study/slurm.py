"""Slurm primitives for the study runner: a job is a generated ``sbatch`` script, stages are
chained by Slurm's own dependencies, and the queue is read from ``squeue`` (never ``sacct``).

Plain scripts rather than submitit: submitit has no dependency graph of its own (only an
sbatch passthrough), needs a Python driver to read results back, and without accounting its
``result()`` on a cancelled job hangs. A generated script is readable, can be resubmitted by
hand with ``sbatch``, and needs nothing alive after submission; the entry points already write
their own results and resume from their own checkpoints (``../shared/REFERENCE.md`` §5).

Every call runs with the caller's environment (``SLURM_CONF`` and the user's defaults apply).
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence
from trickbench.errors import TrickBenchError

TIMEOUT_S = 60  # a busy controller answers slowly; a dead one makes the clients retry for long


@dataclass(frozen=True)
class SlurmOptions:
    """Resources and placement of one stage's jobs; ``None`` leaves the cluster's default."""
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None           # e.g. "2-00:00:00"
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None  # one task per node: the CPUs of that node's process(es)
    mem: str | None = None            # per node, e.g. "64G"
    requeue_signal_s: int = 120       # USR1 this long before the time limit: stop, requeue, resume
    extra: tuple[str, ...] = ()       # passed to sbatch verbatim, e.g. ("--constraint=a100",)

    @property
    def distributed(self) -> bool:
        """Several processes (several GPUs or nodes): started by torchrun under srun."""
        return self.nodes > 1 or self.gpus_per_node > 1


class SlurmError(TrickBenchError, RuntimeError):
    """Slurm refused something, or an option cannot work; the message names it and the fix."""


@dataclass(frozen=True)
class QueueEntry:
    """One job (or array task) as ``squeue`` shows it."""
    job_id: str
    name: str
    state: str        # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ... (squeue %T)
    reason: str       # why it is pending, or how it ended ("" for none)
    dependency: str   # what it still waits for, e.g. "afterok:12(unfulfilled)" ("" for none)
    elapsed: str      # run time so far, e.g. "1:02:03"


_PLAIN = re.compile(r"[^\s'\"\\]+")


def _sbatch_lines(name: str, log: Path, workdir: Path, o: SlurmOptions) -> list[str]:
    for what, value in (("job name", name), ("log path", str(log)), ("work dir", str(workdir))):
        if not _PLAIN.fullmatch(value):
            raise SlurmError(f"Slurm {what} {value!r} has spaces or quotes, which #SBATCH lines cannot carry; "
                             f"choose one without")
    if o.nodes < 1 or o.gpus_per_node < 0 or (o.cpus_per_task is not None and o.cpus_per_task < 1):
        raise SlurmError(f"Slurm resources nodes={o.nodes}, gpus_per_node={o.gpus_per_node}, "
                         f"cpus_per_task={o.cpus_per_task}: need nodes >= 1, gpus_per_node >= 0, cpus_per_task >= 1")
    if o.requeue_signal_s < 1:
        raise SlurmError(f"Slurm requeue_signal_s={o.requeue_signal_s}: it must be >= 1 s (the time a job gets "
                         "to stop cleanly before its time limit)")
    for x in o.extra:
        if not x.startswith("-") or "\n" in x:
            raise SlurmError(f"extra sbatch option {x!r} is not an option; write it as sbatch takes it on its "
                             "command line, e.g. '--constraint=a100'")
    lines = [f"--job-name={name}",
             f"--output={str(log).replace('%', '%%')}",  # one log for every run of the job
             "--open-mode=append",
             f"--chdir={workdir}",
             "--requeue",
             f"--signal=B:USR1@{o.requeue_signal_s}",
             "--kill-on-invalid-dep=yes",
             f"--nodes={o.nodes}",
             "--ntasks-per-node=1"]
    lines += [f"--{flag}={value}" for flag, value in (
        ("partition", o.partition), ("account", o.account), ("qos", o.qos), ("time", o.time),
        ("gpus-per-node", o.gpus_per_node or None), ("cpus-per-task", o.cpus_per_task), ("mem", o.mem))
        if value is not None]
    return lines + list(o.extra)


def _launch(argv: list[str], o: SlurmOptions, python: str) -> str:
    # srun reads no SLURM_CPUS_PER_TASK since Slurm 22.05: the step gets the CPUs only if asked
    cpus = f" --cpus-per-task={o.cpus_per_task}" if o.cpus_per_task else ""
    program = shlex.join(argv)
    if not o.distributed:
        return f"srun --ntasks=1{cpus} {shlex.quote(python)} {program}"
    return (f'first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
            f"port=$((20000 + SLURM_JOB_ID % 20000))  # one rendezvous port per job, so jobs can share a node\n"
            f'srun --nodes="$SLURM_NNODES" --ntasks-per-node=1{cpus} {shlex.quote(python)} -m torch.distributed.run '
            f'--nnodes="$SLURM_NNODES" --nproc_per_node={max(o.gpus_per_node, 1)} --rdzv_backend=c10d '
            f'--rdzv_endpoint="$first:$port" --rdzv_id="$SLURM_JOB_ID" {program}')


def render_script(*, name: str, argv: list[str], log: Path, options: SlurmOptions, workdir: Path,
                  env: dict[str, str] | None = None, python: str = sys.executable) -> str:
    """The sbatch script of one job: ``python ARGV`` from ``workdir`` (under torchrun when the
    stage has several GPUs or nodes), requeued and resumed when its time limit nears."""
    header = "\n".join(f"#SBATCH {line}" for line in _sbatch_lines(name, Path(log), Path(workdir), options))
    exports = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in (env or {}).items())
    return f"""#!/bin/bash
# Generated by the trickbench study runner; resubmit by hand with: sbatch THIS_FILE
{header}
set -euo pipefail
cd {shlex.quote(str(workdir))}
export PYTHONUNBUFFERED=1
# as many threads as the job has CPUs (the submitting shell's OMP_NUM_THREADS is for the submitting machine)
if [ -n "${{SLURM_CPUS_PER_TASK:-}}" ]; then export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"; fi
{exports}echo "[trickbench] $(date '+%F %T') job $SLURM_JOB_ID ($SLURM_JOB_NAME) starts on $(hostname -s)," \\
     "restart ${{SLURM_RESTART_COUNT:-0}}"

# USR1 comes (to this shell only) requeue_signal_s before the time limit: stop the program,
# put the job back in the queue; its next run resumes from the last checkpoint. The TERM goes
# to the job's steps through scancel: srun would turn a TERM of its own into a SIGKILL.
requeue() {{
    echo "[trickbench] $(date '+%F %T') job $SLURM_JOB_ID: time limit near, stopping and requeueing"
    scancel --signal=TERM "$SLURM_JOB_ID" || kill -TERM "${{child:-}}" 2>/dev/null || true
    wait "${{child:-}}" || true
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
}}
trap requeue USR1

{_launch(list(argv), options, python)} &
child=$!
rc=0
wait "$child" || rc=$?
echo "[trickbench] $(date '+%F %T') job $SLURM_JOB_ID ends with exit code $rc"
exit "$rc"
"""


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} is not on PATH: {what} needs a Slurm login node (or use the local launcher)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{shlex.join(cmd)} did not answer in {TIMEOUT_S} s: is the Slurm controller up "
                         f"(scontrol ping)?") from None


def _message(p: subprocess.CompletedProcess) -> str:
    return (p.stderr.strip() or p.stdout.strip() or f"exit code {p.returncode}").replace("\n", "; ")


def check(script: Path) -> None:
    """Ask Slurm whether it would accept ``script`` (``sbatch --test-only``), submitting nothing;
    a rejected partition, account, QOS, time or resource raises :class:`SlurmError`."""
    p = _run(["sbatch", "--test-only", str(script)], "checking a job")
    if p.returncode != 0:
        raise SlurmError(f"Slurm rejects {script}: {_message(p)}. Fix the Slurm options of this stage "
                         f"(study file `slurm`/`resources`, or the command line); `sinfo -s` lists the partitions")


def _log_of(script: Path) -> Path | None:
    m = re.search(r"^#SBATCH --output=(\S+)$", Path(script).read_text(), re.M)
    return Path(m.group(1).replace("%%", "%")) if m else None


def submit(script: Path, *, after_ok: Sequence[str] = (), after_any: Sequence[str] = ()) -> str:
    """Submit ``script`` to start once the jobs ``after_ok`` succeeded and ``after_any`` ended;
    returns its job id. Slurm cancels it if one of ``after_ok`` fails (--kill-on-invalid-dep).
    Every dependency must be a job Slurm still knows: it takes an unknown id as done."""
    wanted = [str(i) for i in (*after_ok, *after_any)]
    if wanted:
        known = queue(wanted)
        unknown = [i for i in wanted if i not in known and not any(k.startswith(f"{i}_") for k in known)]
        if unknown:
            raise SlurmError(f"{script} would depend on job(s) {', '.join(unknown)}, which Slurm no longer knows "
                             f"(ended more than MinJobAge ago, or never existed); Slurm would take them as done "
                             f"and start it at once. Leave finished jobs out of the dependencies (nothing submitted)")
    log = _log_of(script)
    if log is not None:  # Slurm does not create it, and a job without its log folder fails unseen
        log.parent.mkdir(parents=True, exist_ok=True)
    deps = [f"{kind}:{':'.join(map(str, ids))}" for kind, ids in (("afterok", after_ok), ("afterany", after_any)) if ids]
    cmd = ["sbatch", "--parsable", *([f"--dependency={','.join(deps)}"] if deps else []), str(script)]
    p = _run(cmd, "submitting a job")
    if p.returncode != 0:
        raise SlurmError(f"sbatch refused {script}: {_message(p)}")
    return p.stdout.strip().split(";")[0]  # "ID" or "ID;CLUSTER"


_FORMAT = "%i|%T|%r|%E|%M|%j"  # the name last: it may hold the separator


def queue(job_ids: Iterable[str] | None = None) -> dict[str, QueueEntry]:
    """The jobs Slurm still knows (pending, running, or ended less than MinJobAge ago), by id:
    ``job_ids``, or all of the user's. A job it no longer knows is absent, not an error."""
    ids = None if job_ids is None else [str(i) for i in job_ids]
    if ids == []:
        return {}
    select = ["--me"] if ids is None else [f"--jobs={','.join(ids)}"]
    p = _run(["squeue", "--noheader", "--array", "--states=all", *select, f"--format={_FORMAT}"], "reading the queue")
    if p.returncode != 0:
        if "Invalid job id" in p.stderr:  # none of the ids is known any more
            return {}
        raise SlurmError(f"squeue failed: {_message(p)}")
    entries = {}
    for line in p.stdout.splitlines():
        job_id, state, reason, dependency, elapsed, name = line.strip().split("|", 5)
        entries[job_id] = QueueEntry(job_id, name, state, "" if reason == "None" else reason,
                                     "" if dependency == "(null)" else dependency, elapsed)
    return entries


def cancel(job_ids: Iterable[str]) -> None:
    """Cancel these jobs (ended or unknown ones are ignored)."""
    ids = [str(i) for i in job_ids]
    if ids:
        p = _run(["scancel", *ids], "cancelling jobs")
        if p.returncode != 0:
            raise SlurmError(f"scancel {' '.join(ids)} failed: {_message(p)}")


def available() -> bool:
    """Whether sbatch and squeue are here and a Slurm controller answers."""
    if not (shutil.which("sbatch") and shutil.which("squeue")):
        return False
    try:
        return subprocess.run(["squeue", "--noheader", "--me", "--format=%i"], capture_output=True,
                              timeout=TIMEOUT_S).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
