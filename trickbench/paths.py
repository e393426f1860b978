"""Where the repository's own files are, computed in one place.

The entry points run from any working directory; paths in config and study files are
relative to the working directory first, then to the repository (:func:`resolve`).
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PRETRAIN_CONFIGS = CONFIGS / "pretrain"
STUDIES = CONFIGS / "studies"


def candidates(path: str | Path) -> list[Path]:
    """Where a relative path from a config or study file may be: the working directory, then
    the repository; an absolute path is itself."""
    p = Path(path).expanduser()
    return [p] if p.is_absolute() else [Path.cwd() / p, REPO / p]
