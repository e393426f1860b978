"""One run per work dir: an advisory lock that a second run into the same folder meets at once.

A POSIX record lock (``fcntl.lockf``) on ``WORK_DIR/.lock``: the kernel releases
it when the process ends, however it ends (a kill, a node failure seen by the
file server), so a lock is never left stale; the file only records who holds it,
for the message. Record locks, unlike ``flock``, are not inherited by forked
children, so data loader workers that outlive a killed run do not keep its work
dir locked (and they work over NFS).
"""
from __future__ import annotations

import fcntl
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from .errors import TrickBenchError

LOCK_NAME = ".lock"


class WorkDirBusy(TrickBenchError, RuntimeError):
    """Another process holds the work dir; the message says which."""


def lock_work_dir(work_dir: str | os.PathLike) -> int:
    """Create ``work_dir`` if needed and lock it for the life of this process; returns the
    lock's file descriptor (keep it open). Raises :class:`WorkDirBusy` if another run holds it."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    fd = os.open(work / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EACCES or EAGAIN: held by another process
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WorkDirBusy(f"{work} is in use by another run ({holder}); wait for it to end, or choose another "
                          f"--work-dir (nothing was changed)") from None
    os.ftruncate(fd, 0)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.pwrite(fd, f"pid {os.getpid()} on {platform.node()} since {stamp}\n".encode(), 0)
    return fd
