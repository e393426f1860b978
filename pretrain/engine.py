"""The training and evaluation loops: pure functions of their arguments, no file I/O."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .objective import Objective, hard_loss
from trickbench.errors import TrickBenchError


class NonFiniteLossError(TrickBenchError, FloatingPointError):
    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        what = f"loss is {loss}" if not math.isfinite(loss) else f"gradients are not finite (loss {loss:.4g})"
        super().__init__(f"{what} at iteration {step}")


def autocast(device: torch.device, precision: str):
    """fp16 or bf16 compute for matmuls and convs, fp32 master weights (§3.2)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def move(batch, *, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of (images, labels) that needs nothing but the move to ``device``."""
    images, labels = batch[0], batch[1]
    return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


class NonFiniteGuard:
    """Keeps a non-finite loss from reaching the weights without reading it every step.

    Each step multiplies the loss by 1 when it is finite and by NaN when it is not, so a bad
    loss makes every gradient NaN (on every process, once DistributedDataParallel has averaged
    them). The update is then skipped on the device: by ``GradScaler`` with fp16, which checks
    the gradients anyway, and otherwise by the fused optimiser's ``found_inf`` input, set from the
    gradients' largest magnitude (the mechanism ``GradScaler`` itself uses); in fp32 and bf16, once
    a step has gone bad every later update is skipped too (with fp16 the scaler skips only steps
    whose gradients overflow; the weights that later steps touch are never saved, since the epoch's
    last read comes before its checkpoint). The next read raises :class:`NonFiniteLossError` with
    the first bad iteration and its loss. All of this runs on the device; only the reads wait."""

    def __init__(self, device: torch.device, first_step: int, fp16: bool):
        self.first_step, self.fp16 = first_step, fp16
        self.steps = torch.zeros((), dtype=torch.int64, device=device)      # steps taken since first_step
        self.bad = torch.zeros((), dtype=torch.bool, device=device)
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)
        self.nan = torch.full((), float("nan"), device=device)
        self.one = torch.ones((), device=device)

    def watch(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate: ``loss`` itself when finite, NaN times it when not."""
        finite = torch.isfinite(loss.detach())
        if self.fp16:   # fp16 overflow in the gradients is the scaler's business; a bad loss is ours
            self._record(~finite, loss)
        return loss * torch.where(finite, self.one, self.nan)

    def step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """The optimiser's step, skipped on the device when a gradient is not finite or an
        earlier step went bad (fp32 and bf16; with fp16, ``GradScaler.step`` does this)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        peak = torch.nn.utils.get_total_norm(grads, norm_type=float("inf"))   # NaN and inf propagate
        self._record(~torch.isfinite(peak), loss)
        optimizer.grad_scale, optimizer.found_inf = None, self.bad.float()
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf

    def advance(self) -> None:
        self.steps += 1

    def _record(self, bad_now: torch.Tensor, loss: torch.Tensor) -> None:
        newly = bad_now & ~self.bad
        self.bad_step = torch.where(newly, self.steps, self.bad_step)
        self.bad_loss = torch.where(newly, loss.detach().float(), self.bad_loss)
        self.bad |= bad_now

    def state(self) -> torch.Tensor:
        return torch.stack([self.bad.double(), self.bad_step.double(), self.bad_loss.double()])

    def check(self, bad: float, bad_step: float, bad_loss: float) -> None:
        if bad:
            raise NonFiniteLossError(self.first_step + int(bad_step), bad_loss)


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
    to_device: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None,
    log_interval: int = 50,
    on_log: Callable[[dict], None] | None = None,
) -> dict:
    """One pass over ``loader``; returns the mean loss, images/s and the next step.

    ``to_device(batch)`` gives the batch's (images, labels) on the device, finished (see
    :class:`pretrain.pipeline.OnDevice`); by default a batch is (images, labels) to move there. ``lr_at(step)`` sets every param group's lr before
    each iteration (the schedule is per iteration, §3.1 and §5.1). The loss is summed on the
    device and read every ``log_interval`` iterations and at the end (``on_log`` gets the mean
    of the interval), never in between: no step waits for the device. A non-finite loss never
    reaches the weights (:class:`NonFiniteGuard`) and raises :class:`NonFiniteLossError` at
    the next read. ``optimizer`` must be fused (``fused=True``) unless fp16's ``GradScaler`` steps it.
    """
    model.train()
    to_device = to_device or partial(move, device=device)
    distributed = dist.is_available() and dist.is_initialized()
    guard = NonFiniteGuard(device, first_step, fp16=scaler is not None)
    step, seen, start = first_step, 0, time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)   # over the epoch
    since = torch.zeros((), dtype=torch.float64, device=device)      # over the log interval
    seen_at_read = 0

    def read(final: bool = False) -> tuple[float, float]:
        """Wait for the device once: raise if a step went bad, else (the interval's mean loss, the
        epoch's loss sum over every process; the latter at the ``final`` read only)."""
        nonlocal since, seen_at_read
        state = torch.cat([guard.state(), since.view(1), loss_sum.view(1)])
        if distributed:
            flags = state[:1].clone()
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)   # every process stops together
            state[0] = flags[0]
            if final:
                dist.all_reduce(state[4:])                 # the epoch's loss over all processes
        bad, bad_step, bad_loss, interval_sum, epoch_sum = state.tolist()
        guard.check(bad, bad_step, bad_loss)
        mean = interval_sum / max(seen - seen_at_read, 1)
        since, seen_at_read = torch.zeros_like(since), seen
        return mean, epoch_sum

    for batch in loader:
        images, labels = to_device(batch)
        lr = lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, targets = objective.prepare(images, labels, generator, use_mixup=use_mixup)
        with autocast(device, precision):  # the teacher, if any, runs in the same precision
            loss = guard.watch(objective.loss(model(x), targets, x))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            guard.step(optimizer, loss)
        guard.advance()
        n = images.shape[0]
        step, seen = step + 1, seen + n
        weighted = loss.detach().double() * n
        loss_sum += weighted
        since += weighted
        if (step - first_step) % log_interval == 0:
            mean, _ = read()
            if on_log is not None:
                on_log({"step": step, "loss": mean, "lr": lr, "images_per_s": seen / (time.perf_counter() - start)})
    _, total = read(final=True)
    elapsed = time.perf_counter() - start
    count = seen * (dist.get_world_size() if distributed else 1)   # every process sees a full share (drop_last)
    return {"train_loss": total / max(count, 1), "next_step": step,
            "images_per_s": count / max(elapsed, 1e-9), "epoch_time_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, device: torch.device, precision: str = "fp32",
             to_device: Callable[[Any], tuple[torch.Tensor, torch.Tensor]] | None = None) -> dict:
    """Top-1 / top-5 accuracy (percent) and the loss over the loader, summed over processes.

    Each process must see a disjoint shard (no padding), so the figures are exact."""
    model.eval()
    to_device = to_device or partial(move, device=device)
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # correct1, correct5, loss*n, n
    for batch in loader:
        images, labels = to_device(batch)
        with autocast(device, precision):
            logits = model(images)
        k = min(5, logits.shape[1])
        topk = logits.float().topk(k, dim=1).indices
        hit = topk.eq(labels[:, None])
        n = labels.shape[0]
        totals += torch.stack([hit[:, 0].sum().double(), hit.any(dim=1).sum().double(),
                               (hard_loss(logits, labels) * n).double(), totals.new_tensor(n)])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    correct1, correct5, loss_sum, count = totals.tolist()
    n = max(count, 1.0)
    return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "val_loss": loss_sum / n,
            "val_images": int(count)}
