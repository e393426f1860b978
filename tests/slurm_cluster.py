"""A fresh single-node Slurm for one test session: Debian's slurmctld and slurmd, started
with a configuration generated into a temporary folder, with their own ports, state and logs.

Needs root and the packages ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs
them); :func:`why_not` says what is missing, for the tests' skip message. munged is a system
service shared with anything else on the machine: a running one is reused, and one started
here is left running (another test session may be using it). The Slurm daemons are stopped
at the end, by the pids in their pid files, after the session's jobs are cancelled.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

PACKAGES = "slurmctld slurmd slurm-client munge"
INSTALL = f"apt-get install -y --no-install-recommends {PACKAGES}"
PARTITION = "debug"
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")


def why_not() -> str | None:
    """None if a cluster can be started here, else what is missing and how to get it."""
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "munged", "munge")
               if shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if missing:
        return f"Slurm tests need {', '.join(missing)}: run `{INSTALL}` as root (.ci/run does)"
    if os.geteuid() != 0:
        return "Slurm tests start slurmd and munged, which needs root; run the tests as root (as .ci/run in CI)"
    if not MUNGE_KEY.exists():
        return f"{MUNGE_KEY} is missing: create it with `mungekey --create` as user munge (the munge package does)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``slurmd -C``'s node line with RealMemory lowered, so that jobs asking for memory fit."""
    out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    words = out.splitlines()[0].split()
    fixed = []
    for w in words:
        if w.startswith("RealMemory="):
            w = f"RealMemory={max(256, int(w.split('=')[1]) // 2)}"
        fixed.append(w)
    return " ".join(fixed)


def write_conf(root: Path) -> Path:
    """slurm.conf for a one-node cluster whose state, spool, pid and log files all live under ``root``."""
    host = socket.gethostname().split(".")[0]
    for d in ("state", "spool", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=trickbench-test
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# requeued jobs wait for their launch credential to expire before restarting (default 120 s)
AuthInfo=cred_expire=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=300
KillWait=5
# requeued jobs become eligible after cred_expire; these passes start them within seconds (defaults 30 s, 60 s)
SchedulerParameters=bf_interval=1,sched_interval=2
InactiveLimit=0
{_node_line()} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def ensure_munged() -> None:
    """Start munged as user munge unless one answers already (it is left running at the end)."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    MUNGE_RUN.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_RUN, "munge", "munge")
    MUNGE_RUN.chmod(0o755)
    subprocess.run([_sbin("munged")], user="munge", group="munge", check=True, capture_output=True)
    for _ in range(50):
        if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError("munged did not answer within 5 s (see /var/log/munge/munged.log)")


def _wait_idle(env: dict[str, str], root: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    state = ""
    while time.monotonic() < end:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        state = p.stdout.strip()
        if p.returncode == 0 and state == "idle":
            return
        time.sleep(0.2)
    logs = "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in sorted((root / "log").glob("*.log")))
    raise RuntimeError(f"the Slurm node is not idle after {timeout:.0f} s (state {state!r})\n{logs}")


def _kill_pidfile(pidfile: Path, timeout: float = 10) -> None:
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def _cancel_all(env: dict[str, str], timeout: float = 20) -> None:
    """Cancel the cluster's jobs and wait until none is running or completing, so that no
    slurmstepd outlives slurmd."""
    subprocess.run(["scancel", "--user", str(os.getuid())], capture_output=True, env=env)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = subprocess.run(["squeue", "-h", "-t", "running,completing,configuring", "-o", "%i"],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0 or not p.stdout.strip():
            return
        time.sleep(0.3)


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[dict[str, str]]:
    """Start munged (if needed), slurmctld and slurmd on a fresh config under ``root``, wait
    until the node is idle, and yield an environment with ``SLURM_CONF`` set."""
    root = Path(root)
    if len(str(root)) > 60:  # slurmstepd puts unix sockets in the spool dir (108-byte limit)
        root = Path(tempfile.mkdtemp(prefix="slurm-"))
    conf = write_conf(root)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    ensure_munged()
    try:
        subprocess.run([_sbin("slurmctld"), "-f", str(conf)], check=True, capture_output=True, env=env)
        subprocess.run([_sbin("slurmd"), "-f", str(conf)], check=True, capture_output=True, env=env)
        _wait_idle(env, root)
        yield env
    finally:
        _cancel_all(env)
        _kill_pidfile(root / "slurmd.pid")
        _kill_pidfile(root / "slurmctld.pid")
