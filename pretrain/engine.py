"""The training and evaluation loops: pure functions of their arguments, no file I/O."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import nn

from .objective import Objective, hard_loss
from trickbench.errors import TrickBenchError


class NonFiniteLossError(TrickBenchError, FloatingPointError):
    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"loss is {loss} at iteration {step}")


def autocast(device: torch.device, precision: str):
    """fp16 or bf16 compute for matmuls and convs, fp32 master weights (§3.2)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    *,
    lr_at: Callable[[int], float],
    first_step: int,
    device: torch.device,
    precision: str,
    scaler: torch.amp.GradScaler | None,
    generator: torch.Generator,
    use_mixup: bool,
    channels_last: bool = False,
    on_step: Callable[[dict], None] | None = None,
) -> dict:
    """One pass over ``loader``; returns the mean loss, images/s and the next step.

    ``lr_at(step)`` sets every param group's lr before each iteration (the
    schedule is per iteration, §3.1 and §5.1). A non-finite loss raises
    :class:`NonFiniteLossError` before the weights are touched.
    """
    model.train()
    step, seen, loss_sum, start = first_step, 0, 0.0, time.perf_counter()
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, targets = objective.prepare(images, labels, generator, use_mixup=use_mixup)
        with autocast(device, precision):  # the teacher, if any, runs in the same precision
            loss = objective.loss(model(x), targets, x)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(step, loss_value)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        step += 1
        seen += images.shape[0]
        loss_sum += loss_value * images.shape[0]
        if on_step is not None:
            on_step({"step": step, "loss": loss_value, "lr": lr, "images_per_s": seen / (time.perf_counter() - start)})
    elapsed = time.perf_counter() - start
    stats = torch.tensor([loss_sum, float(seen)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(stats)
    return {"train_loss": (stats[0] / stats[1].clamp(min=1)).item(), "next_step": step,
            "images_per_s": stats[1].item() / max(elapsed, 1e-9), "epoch_time_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, device: torch.device, precision: str = "fp32",
             channels_last: bool = False) -> dict:
    """Top-1 / top-5 accuracy (percent) and the loss over the loader, summed over processes.

    Each process must see a disjoint shard (no padding), so the figures are exact."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss*n, n
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(images)
        k = min(5, logits.shape[1])
        topk = logits.float().topk(k, dim=1).indices
        hit = topk.eq(labels[:, None])
        n = labels.shape[0]
        totals += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), hard_loss(logits, labels) * n,
                               torch.tensor(n, device=device)]).double()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    n = max(totals[3].item(), 1.0)
    return {"top1": 100.0 * totals[0].item() / n, "top5": 100.0 * totals[1].item() / n,
            "val_loss": totals[2].item() / n, "val_images": int(totals[3].item())}
