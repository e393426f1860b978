"""``torch.load(..., weights_only=True)`` for the checkpoint files of the libraries around the suite.

Under ``weights_only=True`` torch (>= 2.6 by default) rebuilds tensors and plain
containers only, and refuses every other pickled global unless it is allowed
(``torch.serialization.safe_globals``). The files users bring hold a few such
globals besides their tensors:

* training checkpoints of timm (``CheckpointSaver``: ``checkpoint-*.pth.tar``) and of
  torchvision's reference scripts: the run's ``argparse.Namespace`` under ``args``;
* mmengine checkpoints (mmpretrain, mmdet, mmseg, and the suite's own downstream
  runs): the message hub's ``HistoryBuffer``, numpy arrays and scalars, and
  ``getattr(HistoryBuffer, 'mean')`` (and min, max, current), which is how the
  buffer's statistics methods pickle.

``Namespace`` and ``HistoryBuffer`` rebuild from data alone and are allowed as they
are. The others are not: numpy's own ``dtype`` and ``_reconstruct`` accept a state
that sets a dtype's flags (a file can make an object array whose raw bytes are read
as pointers, and crash the interpreter), and ``getattr`` would reach any attribute
of any allowed object. In their place stand the stand-ins below, under the names the
files use: numpy arrays and scalars are rebuilt with ``np.frombuffer`` from their
bytes, and only for plain numeric dtypes (bool, integers, floats, complex);
``getattr`` gives the four HistoryBuffer methods and nothing else. Any other global
is refused, and no file is ever unpickled with ``weights_only=False``.
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

PLAIN_KINDS = "biufc"  # bool, signed and unsigned integers, floats, complex: no objects, no structures


def history_buffer_method(owner, name: str):
    """``getattr`` as mmengine's checkpoints use it: a statistics method of ``HistoryBuffer``, nothing else."""
    if owner is HistoryBuffer and name in {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({owner!r}, {name!r}) is not a HistoryBuffer statistic; refused")


class DtypeSpec:
    """Stands for ``numpy.dtype(spec, align, copy)``: keeps the spec and the byte order; any
    other state (fields, flags) is ignored, and only plain numeric kinds are turned into a dtype."""

    def __init__(self, spec, align=False, copy=False):
        self.spec, self.order = spec, "="

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def dtype(self) -> np.dtype:
        if not isinstance(self.spec, str):
            raise pickle.UnpicklingError(f"numpy dtype {self.spec!r} is not a plain numeric type; refused")
        dt = np.dtype(self.spec)
        if dt.kind not in PLAIN_KINDS or dt.fields is not None or dt.subdtype is not None:
            raise pickle.UnpicklingError(f"numpy dtype {self.spec!r} is not a plain numeric type; refused")
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


class ArraySpec:
    """Stands for ``numpy.core.multiarray._reconstruct(ndarray, ...)``: keeps the state that
    numpy's ``__setstate__`` would take (version, shape, dtype, Fortran order, raw bytes)."""

    def __init__(self, cls=None, shape=None, typecode=None):
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def array(self) -> np.ndarray:
        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("a numpy array without the usual state; refused")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, DtypeSpec) or not isinstance(raw, bytes) or \
                not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError("a numpy array that is not plain numeric data; refused")
        dt = dtype.dtype()
        if len(raw) != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise pickle.UnpicklingError("a numpy array whose bytes do not match its shape; refused")
        return np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C").copy()


def numpy_scalar(dtype: DtypeSpec, raw: bytes):
    """Stands for ``numpy.core.multiarray.scalar``: a numpy scalar of a plain numeric dtype."""
    if not isinstance(dtype, DtypeSpec) or not isinstance(raw, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not plain numeric data; refused")
    dt = dtype.dtype()
    if len(raw) != dt.itemsize:
        raise pickle.UnpicklingError("a numpy scalar whose bytes do not match its type; refused")
    return np.frombuffer(raw, dtype=dt)[0]


class _NdarrayMarker:
    """What ``numpy.ndarray`` stands for in a file: only an argument of ``_reconstruct``."""


_NUMPY = [(ArraySpec, f"{m}.multiarray._reconstruct") for m in ("numpy.core", "numpy._core")]
_NUMPY += [(numpy_scalar, f"{m}.multiarray.scalar") for m in ("numpy.core", "numpy._core")]
_NUMPY += [(DtypeSpec, "numpy.dtype"), (_NdarrayMarker, "numpy.ndarray")]
SAFE_GLOBALS = [argparse.Namespace, HistoryBuffer, (history_buffer_method, "builtins.getattr"), *_NUMPY,
                ArraySpec, DtypeSpec]


def _rebuild(obj, seen: set[int]):
    """The loaded tree with every stand-in array turned into a real numpy array."""
    if isinstance(obj, ArraySpec):
        return obj.array()
    if isinstance(obj, (DtypeSpec, _NdarrayMarker)):
        return obj.dtype() if isinstance(obj, DtypeSpec) else np.ndarray
    if isinstance(obj, (torch.Tensor, str, bytes, int, float, bool, type(None))) or id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _rebuild(v, seen)
    elif isinstance(obj, list):
        obj[:] = [_rebuild(v, seen) for v in obj]
    elif isinstance(obj, tuple):
        return type(obj)(_rebuild(v, seen) for v in obj) if type(obj) is tuple else obj
    elif isinstance(obj, (HistoryBuffer, argparse.Namespace)):
        for k, v in vars(obj).items():
            setattr(obj, k, _rebuild(v, seen))
    return obj


def load_weights_only(path: str | Path, map_location="cpu"):
    """``torch.load(path, weights_only=True)``, with the data-only globals above allowed."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        obj = torch.load(path, map_location=map_location, weights_only=True)
    return _rebuild(obj, set())
