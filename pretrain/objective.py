"""The training objective: integer labels -> target distributions (label smoothing,
mixup) -> loss (soft cross entropy, plus the distillation term).

With every trick off this is exactly ``F.cross_entropy(logits, labels)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .tricks.distill import distillation_term, teacher_logits
from .tricks.label_smoothing import smooth_one_hot
from .tricks.mixup import mixup
from .tricks.soft_ce import soft_cross_entropy


@dataclass
class Objective:
    num_classes: int
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    teacher: nn.Module | None = None
    temperature: float = 20.0

    def prepare(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, *, use_mixup: bool = True):
        """Inputs and target distributions (N, K) for one batch."""
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if use_mixup and self.mixup_alpha > 0:
            x, targets, _ = mixup(x, targets, self.mixup_alpha, generator)
        return x, targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = soft_cross_entropy(logits, targets)
        if self.teacher is not None:
            loss = loss + distillation_term(logits, teacher_logits(self.teacher, x), self.temperature)
        return loss


def hard_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain cross entropy, for validation."""
    return F.cross_entropy(logits.float(), labels)
