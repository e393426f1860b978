"""Learning rate: linear scaling (§3.1), warmup (§3.1), step decay (§2) and cosine decay (§5.1).

Pure functions of the iteration, so a schedule is trivial to test and to plot.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def linear_scaled_lr(base_lr: float, batch_size: int, base_batch_size: int = 256) -> float:
    """Linear scaling rule (Goyal et al. 2017; He et al. 2019, §3.1): lr = base_lr * b / 256."""
    return base_lr * batch_size / base_batch_size


def lr_at(
    step: int,
    *,
    peak_lr: float,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 0.0,
    decay: str = "step",
    milestones: Sequence[int] = (30, 60, 90),
    gamma: float = 0.1,
) -> float:
    """The learning rate of iteration ``step`` (0-based), updated every iteration.

    * warmup: linear from 0 to ``peak_lr`` over the first ``warmup_epochs`` epochs
      (the first step already has ``peak_lr / warmup_steps``, never exactly 0).
    * ``decay='step'``: divide by ``1/gamma`` at each epoch in ``milestones``.
    * ``decay='cosine'``: ``0.5 * (1 + cos(pi * t / T)) * peak_lr`` with t and T
      counted in iterations after warmup (warmup excluded from T, as in §5.1).
    * ``decay='constant'``: no decay.
    """
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    total = epochs * steps_per_epoch
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if decay == "step":
        epoch = step // steps_per_epoch
        return peak_lr * gamma ** sum(epoch >= m for m in milestones)
    if decay == "cosine":
        t, T = step - warmup_steps, max(1, total - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, T) / T)) * peak_lr
    if decay == "constant":
        return peak_lr
    raise ValueError(f"unknown lr decay {decay!r}; choose 'step', 'cosine' or 'constant'")
