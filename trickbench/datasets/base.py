"""What every generated dataset shares: its error, parameter checks, atomic and idempotent
dataset folders (a marker file records the parameters), and JPEG writing.

A dataset is written into a temporary sibling folder and moved into place with
``os.replace`` only when complete; a hidden marker file (JSON: ``generator``, ``params``,
``stats``) in its root records how it was made. Re-running with the same parameters is a
no-op; an existing folder with different parameters or without a marker is never
touched: a :class:`DataGenError` asks the user to delete it or choose another ``--out``.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trickbench.errors import TrickBenchError

__all__ = ["LAYOUTS", "DataGenError", "DataGenParamError", "check_count", "check_seed", "materialise",
           "read_marker", "save_jpeg"]

#: The layouts every set writes, in the order the CLI writes them (``--only`` picks).
LAYOUTS: tuple[str, ...] = ("imagenet", "voc", "ade20k")


class DataGenError(TrickBenchError, RuntimeError):
    """A dataset could not be generated: its folder holds other data, the write failed,
    or its source (Fashion-MNIST) is missing or damaged; the message names the fix."""


class DataGenParamError(DataGenError, ValueError):
    """A generation parameter out of range (a ``ValueError`` too)."""


def check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataGenParamError(f"seed must be a non-negative integer, got {seed!r}")


def check_count(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataGenParamError(f"{name} must be an integer >= {minimum}, got {value!r}")


def save_jpeg(arr: np.ndarray, path: Path, quality: int) -> None:
    Image.fromarray(np.ascontiguousarray(arr)).save(path, format="JPEG", quality=quality)


def read_marker(root: Path, marker_name: str) -> dict[str, Any] | None:
    """The marker of the dataset at ``root``, None if there is none or it is unreadable."""
    try:
        return json.loads((root / marker_name).read_text())
    except (OSError, ValueError):
        return None


def _normalise(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True))


def check_existing(root: Path, params: dict[str, Any], generator: str, marker_name: str) -> bool:
    """True if ``root`` holds this exact dataset; False if absent/empty; raise otherwise."""
    if not root.exists() and not root.is_symlink():
        return False
    if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
        return False  # an empty folder is not user data; it gets replaced
    marker = read_marker(root, marker_name) if root.is_dir() else None
    if marker is None:
        raise DataGenError(
            f"{root} already exists and was not written by {generator} "
            f"(no readable {marker_name} inside). Refusing to touch it: delete it yourself "
            f"or pick another --out."
        )
    old = marker.get("params")
    if old == _normalise(params):
        return True
    diffs = ", ".join(
        f"{k}: {old.get(k) if isinstance(old, dict) else None!r} -> {v!r}"
        for k, v in sorted(_normalise(params).items())
        if not isinstance(old, dict) or old.get(k) != v
    )
    raise DataGenError(
        f"{root} already holds a dataset of {generator} made with different parameters "
        f"({diffs or 'marker unreadable'}). Refusing to overwrite it: delete {root} "
        f"or pick another --out."
    )


def materialise(root: Path, params: dict[str, Any], write: Callable[[Path], dict[str, Any]], *,
                generator: str, marker_name: str) -> bool:
    """Create ``root`` via ``write(tmp_dir) -> stats`` + ``os.replace``; False if already there.
    ``generator`` and ``marker_name`` name the writing module and its marker file."""
    if check_existing(root, params, generator, marker_name):
        return False
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as e:
        raise DataGenError(f"cannot create {root}: {e.strerror or e}; choose another --out") from e
    try:
        stats = write(tmp)
        marker = {"generator": generator, "params": _normalise(params), "stats": stats}
        (tmp / marker_name).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        try:
            os.replace(tmp, root)
        except OSError:
            # Someone else finished the same dataset concurrently (or created the folder).
            if check_existing(root, params, generator, marker_name):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # only our own temporary folder
        if isinstance(e, OSError) and not isinstance(e, TrickBenchError):
            raise DataGenError(f"cannot write {root}: {e}; nothing was left behind: free disk space "
                               f"or choose another --out") from e
        raise
    return True
