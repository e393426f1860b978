"""The one base class of every error the suite reports to a user.

Each error is raised where the problem is found, with a message that names the file or
key and the fix; every entry point catches :class:`TrickBenchError` alone, prints
``error: <message>`` and exits with code 2, never a traceback. Each subclass also keeps
the built-in base it had (``ValueError`` for bad values, ``OSError`` for writes), so
code that catches those still does.
"""
from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class TrickBenchError(Exception):
    """Bad input or a failed run, explained in one line (the message) for the user."""


def report(error: BaseException) -> int:
    """Print ``error: <message>`` to stderr; the exit code of bad input (2)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
