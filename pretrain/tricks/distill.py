"""Knowledge distillation (Hinton et al. 2015; He et al. 2019, §5.3).

``loss = CE(y, p) + T^2 * CE(softmax(r / T), softmax(z / T))`` with z the
student's logits, r the teacher's and T the temperature (20 in the paper). The
T^2 factor keeps the soft term's gradients on the scale of the hard one. The
teacher runs in eval mode under ``torch.no_grad``; it is never updated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .soft_ce import soft_cross_entropy


def distillation_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * CE(softmax(r/T), softmax(z/T))``, averaged over the batch."""
    t = temperature
    soft_targets = F.softmax(teacher_logits.float() / t, dim=1)
    return t * t * soft_cross_entropy(student_logits.float() / t, soft_targets)


@torch.no_grad()
def teacher_logits(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if teacher.training:
        raise RuntimeError("the distillation teacher must be in eval mode (call teacher.eval())")
    return teacher(x)
