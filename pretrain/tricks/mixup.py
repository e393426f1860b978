"""Mixup (Zhang et al. 2018; He et al. 2019, §5.4).

One ``lambda ~ Beta(alpha, alpha)`` per batch; each example is mixed with the
example at the same position of a shuffled copy of the batch, and so are the
target distributions: ``x = l x_i + (1 - l) x_j``, ``y = l y_i + (1 - l) y_j``.
"""
from __future__ import annotations

import torch
from scipy.special import betaincinv


def sample_lambda(alpha: float, generator: torch.Generator) -> float:
    """``lambda ~ Beta(alpha, alpha)`` drawn by inverting the CDF of a seeded uniform
    (``torch.distributions.Beta`` takes no generator, which exact resume needs)."""
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    return float(betaincinv(alpha, alpha, u))


def mixup(x: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix a batch; ``targets`` are distributions (N, K). Returns (x, targets, lambda).
    ``alpha <= 0`` returns the batch unchanged."""
    if alpha <= 0:
        return x, targets, 1.0
    lam = sample_lambda(alpha, generator)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    x = lam * x + (1.0 - lam) * x[perm]
    targets = lam * targets + (1.0 - lam) * targets[perm]
    return x, targets, lam
