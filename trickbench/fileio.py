"""Atomic writes: a reader sees the old file or the new one, never half of either.

Files get the mode a plain ``open()`` would give (``0o666 & ~umask``), so colleagues
on a shared cluster can read results and checkpoints. A write that fails (a full
disk, a file-size limit) raises :class:`WriteError`, which names the destination and
leaves it as it was. :func:`remove_stale_temps` deletes the temp files that killed
writers leave; :func:`read_jsonl` reads the per-epoch logs :func:`append_jsonl` writes.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple
from .errors import TrickBenchError

# What mkstemp(prefix=f".{name}.", suffix=".tmp") makes: 8 characters from its alphabet.
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")
_HINTS = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (quota)",
          errno.EFBIG: "raise the file-size limit (ulimit -f)"}


class WriteError(TrickBenchError, OSError):
    """Writing ``filename`` failed; ``errno`` and ``strerror`` are the cause's (ENOSPC for
    a full disk, EFBIG for a file-size limit), and the destination is left as it was."""

    def __str__(self) -> str:
        if self.filename is None:
            return super().__str__()
        hint = _HINTS.get(self.errno, "check the folder's space and permissions")
        return (f"cannot write {self.filename}: {self.strerror}; {Path(self.filename).name} is left as it was: "
                f"{hint} or choose another --work-dir")


def _write_error(path: Path, e: BaseException) -> WriteError | None:
    """The OSError behind ``e`` (itself, or the one it was raised from: torch.save turns a
    failed write into a RuntimeError whose context is the OSError) as a WriteError."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    if e is None or isinstance(e, WriteError):
        return None
    return WriteError(e.errno, e.strerror or str(e), str(path))


def _umask() -> int:
    # The umask can only be read by setting it, and it is process-wide: a file another
    # thread creates between these two calls is made under umask 0o077 (private, never
    # world-writable). Caching it at import would close that window but miss a umask set
    # later (by a launcher, or a test), so it is read once per write.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """``write(f)`` into a temporary file next to ``path``, synced, then renamed over it: a
    reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(OSError):  # a filesystem without modes keeps mkstemp's 0o600
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, Exception) and (err := _write_error(path, e)) is not None:
            raise err from e
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files (``.NAME.XXXXXXXX.tmp``) that interrupted atomic writes left
    directly in ``folder`` (not below it), and return them. Other files are not touched.
    Call it only while nothing writes to ``folder`` (e.g. when a run starts): a live
    writer's temp file looks the same. A folder that does not exist has none."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    with os.scandir(folder) as entries:
        for entry in entries:
            if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return sorted(removed)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """One JSON object per line, appended and flushed (the per-epoch metrics log).

    A failed append raises :class:`WriteError` after cutting the file back to its old
    length, so no half line is left for the next append to bury."""
    path = Path(path)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    except OSError as e:
        raise WriteError(e.errno, e.strerror or str(e), str(path)) from e


class Jsonl(NamedTuple):
    records: list[dict]
    torn: bool  # the last line was half written (a kill during append_jsonl) and is left out


def read_jsonl(path: str | os.PathLike) -> Jsonl:
    """The records of a log written by :func:`append_jsonl`, in order:
    ``records, torn = read_jsonl(path)``. A last line that is not a JSON object is left
    out and ``torn`` is True; such a line anywhere else raises ValueError naming the line."""
    path = Path(path)
    lines = [(n, ln) for n, ln in enumerate(path.read_bytes().split(b"\n"), 1) if ln.strip()]
    records = []
    for i, (n, ln) in enumerate(lines):
        try:
            record = json.loads(ln)
            if not isinstance(record, dict):
                raise ValueError(f"a {type(record).__name__}, not an object")
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if i == len(lines) - 1:
                return Jsonl(records, True)
            raise ValueError(f"{path}, line {n}: not a JSON object ({e}); the log is damaged: delete that line "
                             f"(the records after it stay valid) or re-run the stage that wrote it") from e
        records.append(record)
    return Jsonl(records, False)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); the file is damaged, delete it or re-run the stage that wrote it") from e
