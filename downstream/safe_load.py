"""``torch.load(..., weights_only=True)`` for the checkpoint files of the libraries around the suite.

Under ``weights_only=True`` torch (>= 2.6 by default) rebuilds tensors and plain
containers only, and refuses every other pickled global unless it is allowed
(``torch.serialization.safe_globals``). The files users bring hold a few such
globals besides their tensors:

* training checkpoints of timm (``CheckpointSaver``: ``checkpoint-*.pth.tar``) and of
  torchvision's reference scripts: the run's ``argparse.Namespace`` under ``args``;
* mmengine checkpoints (mmpretrain, mmdet, mmseg, and the suite's own downstream
  runs): the message hub's ``HistoryBuffer``, numpy arrays, scalars and dtypes, and
  ``getattr(HistoryBuffer, 'mean')`` (and min, max, current), which is how the
  buffer's statistics methods pickle.

Each of these rebuilds from data alone, so they are allowed here. ``getattr`` is
not allowed as such (it would reach any attribute of any allowed object): in its
place stands :func:`history_buffer_method`, which gives those methods and refuses
everything else. Any other global is still refused, and no file is ever unpickled
with ``weights_only=False``.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _numpy_globals() -> list:
    """What numpy arrays, scalars and dtypes pickle as (numpy 1.x and 2.x names)."""
    core = getattr(np, "_core", None) or np.core
    found = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    found += [type(np.dtype(t)) for t in "?bBhHiIlLqQefdgFDGSUV"]  # numpy.dtypes.Float64DType, ...
    return found


def history_buffer_method(owner, name: str):
    """``getattr`` as mmengine's checkpoints use it: a statistics method of ``HistoryBuffer``, nothing else."""
    if owner is HistoryBuffer and name in {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({owner!r}, {name!r}) is not a HistoryBuffer statistic; refused")


SAFE_GLOBALS = [argparse.Namespace, HistoryBuffer, (history_buffer_method, "builtins.getattr"), *_numpy_globals()]


def load_weights_only(path: str | Path, map_location="cpu"):
    """``torch.load(path, weights_only=True)``, with the data-only globals above allowed."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)
