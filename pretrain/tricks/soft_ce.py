"""Cross entropy against a target distribution: what label smoothing, mixup and
distillation (He et al. 2019, §5.2-5.4) all reduce to."""
import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_i sum_k -targets[i, k] * log_softmax(logits)[i, k]``."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
