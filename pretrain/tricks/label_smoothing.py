"""Label smoothing (Szegedy et al. 2016; He et al. 2019, §5.2).

The target distribution used here puts ``1 - eps + eps/K`` on the true class and
``eps/K`` on every class (K classes), as PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``,
timm and GluonCV's training script do, so results compare with those
implementations. The paper's formula gives ``1 - eps`` and ``eps/(K-1)`` instead;
with K = 1000 and eps = 0.1 the two differ by 1e-4 per class.
"""
import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """Integer labels (N,) -> smoothed target distributions (N, K) that sum to 1."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label smoothing eps must be in [0, 1), got {eps}")
    one_hot = F.one_hot(labels, num_classes).float()
    return one_hot * (1.0 - eps) + eps / num_classes
