"""Run a study's plan on this machine: as many jobs at once as the slots and devices allow.

Each job is its entry point (``pretrain/run.py``, ``downstream/*.py``,
``evaluation/report.py``) in its own process, with its own ``CUDA_VISIBLE_DEVICES``
and log file; a job that asks for several devices runs under ``torchrun``. A job
that fails does not stop the others: the jobs that need it are skipped and named.
Ctrl-C (or SIGTERM) stops the jobs, which keep their last checkpoint; a SIGKILL of
this process reaches them too (``PR_SET_PDEATHSIG``), so no job is left running
without its launcher. Run the same command again to continue: done jobs are
skipped, interrupted ones resume (every job runs with ``--resume``).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from trickbench.paths import REPO
from trickbench.worklock import lock_work_dir

from .plan import Job, Plan, is_done, last_error
from .spec import StudyError
from .workdir import event, job_env, now, set_aside, stamp, write_lineage

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the job gets SIGTERM when the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Running:
    job: Job
    proc: subprocess.Popen
    devices: list[str]
    started: float
    log: TextIO


@dataclass
class Tally:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=dict)


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES``, else what ``nvidia-smi -L`` lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def command(job: Job, devices: list[str]) -> list[str]:
    argv = list(job.argv)
    if len(devices) > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={len(devices)}",
                *argv]
    return [sys.executable, *argv]


class LocalLauncher:
    def __init__(self, plan: Plan, *, jobs: int | None = None, gpus: list[str] | None = None,
                 out: TextIO = sys.stdout):
        self.plan, self.out = plan, out
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        need = max((j.resources.gpus for j in plan.jobs), default=0)
        if self.gpus and need > len(self.gpus):
            big = [j.id for j in plan.jobs if j.resources.gpus > len(self.gpus)]
            raise StudyError(f"{big[0]} asks for {need} GPUs and this machine has {len(self.gpus)} "
                             f"({', '.join(self.gpus)}); lower resources.{plan.job(big[0]).stage}.gpus in "
                             f"{plan.study.source}, or run it with --launcher slurm")
        per_job = max(1, max((j.resources.gpus for j in plan.jobs if j.stage != "report"), default=1))
        self.slots = jobs or (max(1, len(self.gpus) // per_job) if self.gpus else 1)
        self.free = list(self.gpus)
        self.running: dict[str, Running] = {}
        self.tally = Tally()
        self.stop = False

    # -- one job ---------------------------------------------------------------------------
    def _devices_for(self, job: Job) -> list[str] | None:
        if not self.gpus or job.stage == "report":
            return []
        want = max(1, job.resources.gpus)
        return self.free[:want] if len(self.free) >= want else None

    def _start(self, job: Job, devices: list[str]) -> None:
        if job.stage != "report":
            stamp(job, self.plan)
        for d in devices:
            self.free.remove(d)
        log_path = self.plan.log(job)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a")
        log.write(f"\n=== {now()} {job.id} started by the study's local launcher; devices: "
                  f"{','.join(devices) or 'cpu'} ===\n")
        log.flush()
        env = {**os.environ, **job_env(job, self.plan)}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        else:  # CPU jobs share the cores (or the threads OMP_NUM_THREADS allows): oversubscribed OpenMP
            # threads spin against each other (two 2-thread jobs on 2 cores ran 3x slower than two 1-thread ones)
            given = os.environ.get("OMP_NUM_THREADS", "")
            total = int(given) if given.isdigit() and int(given) > 0 else (os.cpu_count() or 1)
            env["OMP_NUM_THREADS"] = str(max(1, total // self.slots))
        proc = subprocess.Popen(command(job, devices), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                preexec_fn=_die_with_parent)
        self.running[job.id] = Running(job, proc, devices, time.time(), log)
        event(self.plan, job.id, "started", pid=proc.pid, devices=devices, log=str(log_path))
        self._say(f"start {job.id}" + (f" on GPU {','.join(devices)}" if devices else "") + f"  (log: {log_path})")

    def _finish(self, r: Running, rc: int) -> None:
        r.log.close()
        self.free += r.devices
        del self.running[r.job.id]
        took = time.time() - r.started
        job = r.job
        ok = rc == 0 and is_done(job)  # the report too: report.py writes its study stamp
        if ok:
            self.tally.done.append(job.id)
            self.tally.durations.setdefault(job.stage, []).append(took)
            event(self.plan, job.id, "done", seconds=round(took, 1))
            self._say(f"done  {job.id} in {took:.0f} s")
            return
        if self.stop:
            event(self.plan, job.id, "interrupted", rc=rc)
            return
        why = last_error(self.plan.log(job)) if rc != 0 else "it exited 0 without this plan's result.json"
        self.tally.failed.append(job.id)
        event(self.plan, job.id, "failed", rc=rc, log=str(self.plan.log(job)), error=why)
        self._say(f"FAILED {job.id} (exit {rc}): {why}\n        log: {self.plan.log(job)}")
        skipped = [d for d in self.plan.dependents(job.id) if d not in self.tally.skipped]
        for d in skipped:
            self.tally.skipped.append(d)
            event(self.plan, d, "skipped", because=job.id)
        if skipped:
            self._say(f"skip  {len(skipped)} job(s) that need {job.id}: {', '.join(skipped)}")

    # -- the loop ------------------------------------------------------------------------
    def _ready(self, todo: list[Job]) -> list[Job]:
        ended = set(self.tally.done) | set(self.tally.failed) | set(self.tally.skipped)
        out = []
        for job in todo:
            if job.id in ended or job.id in self.running:
                continue
            if job.after_any:
                if all(d in ended or d not in self._todo_ids for d in job.deps) and not self.running:
                    out.append(job)
            elif all(d in self.tally.done or d not in self._todo_ids for d in job.deps):
                out.append(job)
        return out

    def _say(self, msg: str) -> None:
        left = len(self._todo_ids) - len(self.tally.done) - len(self.tally.failed) - len(self.tally.skipped)
        eta = self._eta()
        print(f"[study {time.strftime('%H:%M:%S')}] {len(self.tally.done)}/{len(self._todo_ids)} done, "
              f"{len(self.running)} running, {left - len(self.running)} waiting"
              + (f", ~{eta / 60:.1f} min left" if eta is not None else "") + f" | {msg}", file=self.out, flush=True)

    def _eta(self) -> float | None:
        if not self.tally.durations:
            return None
        every = [t for ts in self.tally.durations.values() for t in ts]
        ended = set(self.tally.done) | set(self.tally.failed) | set(self.tally.skipped)
        left = [self.plan.job(j) for j in self._todo_ids if j not in ended]
        total = 0.0
        for job in left:
            ts = self.tally.durations.get(job.stage) or every
            spent = time.time() - self.running[job.id].started if job.id in self.running else 0.0
            total += max(0.0, sum(ts) / len(ts) - spent)
        return total / self.slots

    def run(self) -> int:
        """Run what is not done; 0 when every job is done, 1 when some failed or were skipped,
        130 when interrupted."""
        lock = lock_work_dir(self.plan.work_dir / "study")  # one launcher per study work dir
        try:
            return self._run()
        finally:
            os.close(lock)

    def _run(self) -> int:
        write_lineage(self.plan, "local")
        for job, why, dest in set_aside(self.plan):
            print(f"[study] {job.id}: {why}; its old run is kept in {dest}", file=self.out)
        todo = [j for j in self.plan.jobs if not is_done(j) or (j.stage == "report" and len(self.plan.jobs) > 1)]
        if all(j.stage == "report" for j in todo) and all(is_done(j) for j in todo):
            todo = []
        self._todo_ids = {j.id for j in todo}
        done_before = len(self.plan.jobs) - len(todo)
        print(f"[study] {self.plan.study.name}: {len(self.plan.jobs)} jobs, {done_before} already done, "
              f"{len(todo)} to run, {self.slots} at a time on "
              + (f"GPUs {','.join(self.gpus)}" if self.gpus else f"the CPU ({os.cpu_count()} cores)")
              + f"; work dir {self.plan.work_dir}", file=self.out, flush=True)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def interrupt(signum, frame):
            self.stop = True
        for s in previous:
            signal.signal(s, interrupt)
        try:
            while not self.stop:
                for job in self._ready(todo):
                    if len(self.running) >= self.slots:
                        break
                    devices = self._devices_for(job)
                    if devices is None:
                        continue
                    self._start(job, devices)
                if not self.running:
                    break
                time.sleep(0.2)
                for r in list(self.running.values()):
                    rc = r.proc.poll()
                    if rc is not None:
                        self._finish(r, rc)
        finally:
            if self.running:
                self._terminate()
            for s, h in previous.items():
                signal.signal(s, h)
        if self.stop:
            print("[study] interrupted: every job stopped at its last checkpoint; run the same command again to "
                  "continue", file=self.out, flush=True)
            return 130
        never = [j.id for j in todo if j.id not in set(self.tally.done) | set(self.tally.failed) | set(self.tally.skipped)]
        ok = not (self.tally.failed or self.tally.skipped or never)
        print(f"[study] finished: {len(self.tally.done)} ran, {done_before} were done, {len(self.tally.failed)} "
              f"failed, {len(self.tally.skipped)} skipped" + ("" if ok else
              f"; see python -m trickbench.study status {self.plan.study.source} --work-dir {self.plan.work_dir}"),
              file=self.out, flush=True)
        for job in self.plan.jobs:
            if job.stage == "report" and job.id in self.tally.done:
                print(f"[study] report: {job.work_dir / 'report.md'}", file=self.out, flush=True)
        return 0 if ok else 1

    def _terminate(self, grace: float = 60.0) -> None:
        for r in self.running.values():
            try:
                os.killpg(r.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + grace
        for r in list(self.running.values()):
            try:
                rc = r.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(r.proc.pid, signal.SIGKILL)
                rc = r.proc.wait()
            self._finish(r, rc)

