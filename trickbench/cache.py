"""The suite's cache folder: data-check results, downloaded datasets (Fashion-MNIST)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$TRICKBENCH_CACHE, else $XDG_CACHE_HOME/trickbench, else ~/.cache/trickbench
    (/tmp/.cache/trickbench without a HOME)."""
    if os.environ.get("TRICKBENCH_CACHE"):
        return Path(os.environ["TRICKBENCH_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "trickbench"
    return Path(os.environ.get("HOME") or "/tmp") / ".cache" / "trickbench"
