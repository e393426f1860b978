"""The one base class of every error the suite reports to a user.

Each error is raised where the problem is found, with a message that names the file or
key and the fix; every entry point catches :class:`TrickBenchError` alone, prints
``error: <message>`` and exits with code 2, never a traceback. Each subclass also keeps
the built-in base it had (``ValueError`` for bad values, ``OSError`` for writes), so
code that catches those still does.
"""
from __future__ import annotations

import errno
import sys

EXIT_BAD_INPUT = 2
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class TrickBenchError(Exception):
    """Bad input or a failed run, explained in one line (the message) for the user."""


def report(error: BaseException) -> int:
    """Print ``error: <message>`` to stderr; the exit code of bad input (2)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def report_disk_full(error: OSError, what: str, then: str) -> int:
    """A write that failed for want of space (``DISK_FULL``), said in one line: what could not be
    written (``error.filename`` or ``what``), and what to do ``then``; exit code 2. Any other
    ``OSError`` is raised again: it is not the user's to fix."""
    if error.errno not in DISK_FULL:
        raise error
    print(f"error: cannot write {error.filename or what}: {error.strerror}. Free disk space (or choose another "
          f"--work-dir), then {then}", file=sys.stderr)
    return EXIT_BAD_INPUT
