#!/usr/bin/env python
"""Is the GPU fed? The real training loader of each ``data.backend`` (``pretrain.run.build_loaders``:
the reference ``pil``, the ``cpu`` pipeline, NVIDIA DALI) on generated ImageNet-sized JPEGs, end to
end to the normalised batch on the device, with and without the training step, next to the same
step on synthetic input already on the device; and the CPU cores each backend keeps busy.

    python benchmarks/loader_throughput.py --device cuda --workers 16 --backends pil cpu dali
    python benchmarks/loader_throughput.py --device cpu --workers 2 --batch 32 --iters 10 --no-step  # a smoke run

This is the measurement of ``../shared/GPU-CHECKS.md`` item 4. Per backend it prints images/s
of the loader alone (to the finished batch on the device), images/s of loader + training step
(forward, backward, SGD, as ``pretrain/engine.py`` runs it), and the CPU cores in use: the CPU
time of this process (its threads: DALI's, the pin-memory thread) and of its loader workers, over
the wall time. The synthetic line is the step alone on a batch that stays on the device: the ceiling
a loader can at best reach. The JPEGs come from ``benchmarks/input_pipeline.py`` (same folder).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from input_pipeline import CLASSES, generate  # noqa: E402  (the generated JPEGs, shared)

from pretrain import distributed  # noqa: E402
from pretrain.engine import autocast  # noqa: E402
from pretrain.models import resnet  # noqa: E402
from pretrain.run import build_loaders  # noqa: E402
from trickbench.pretrain_config import from_dict  # noqa: E402


def children_cpu_seconds() -> float:
    """CPU seconds of this process's live children (the loader workers), from /proc (Linux)."""
    me, total, tick = os.getpid(), 0.0, os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:                       # ppid
            total += (int(fields[11]) + int(fields[12])) / tick   # utime + stime
    return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """The training step of pretrain/engine.py on a ResNet-50, without the bookkeeping."""

    def __init__(self, device: torch.device, precision: str, channels_last: bool):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = resnet(50, "D", num_classes=CLASSES).to(device, memory_format=fmt)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, nesterov=True, fused=True)
        self.device, self.precision = device, precision

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.device, self.precision):
            loss = torch.nn.functional.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def measure(loader, to_device, step, device, iters: int, warmup: int) -> tuple[float, float]:
    """(images/s, CPU cores busy) over ``iters`` batches after ``warmup``."""
    it = iter(loader)
    for _ in range(warmup):
        x, y = to_device(next(it))
        if step:
            step(x, y)
    sync(device)
    wall0, own0, kids0, n = time.perf_counter(), time.process_time(), children_cpu_seconds(), 0
    for _ in range(iters):
        x, y = to_device(next(it))
        if step:
            step(x, y)
        n += x.shape[0]
    sync(device)
    wall = time.perf_counter() - wall0
    cores = (time.process_time() - own0 + children_cpu_seconds() - kids0) / wall
    del it
    return n / wall, cores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/trickbench-jpegs")
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--backends", nargs="+", default=["pil", "cpu", "dali"])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--iters", type=int, default=20, help="timed batches per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--channels-last", action="store_true", default=True)
    p.add_argument("--no-step", action="store_true", help="time the loaders only")
    args = p.parse_args(argv)
    root = Path(args.data)
    generate(root, args.images)
    device = torch.device(args.device)
    dist = distributed.Dist(device=device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    step = None if args.no_step else Step(device, args.precision, args.channels_last)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, {os.cpu_count()} CPUs, "
          f"batch {args.batch}, {args.workers} workers, {args.precision}, channels_last {args.channels_last}")
    rows = []
    if step:
        x = torch.randn(args.batch, 3, 224, 224, device=device).contiguous(
            memory_format=torch.channels_last if args.channels_last else torch.contiguous_format)
        y = torch.randint(0, CLASSES, (args.batch,), device=device)
        rate, cores = measure([(x, y)] * (args.iters + args.warmup), lambda b: b, step, device, args.iters, args.warmup)
        rows.append(("synthetic (on the device)", "-", rate, cores))
    for backend in args.backends:
        cfg = from_dict({"model": {"num_classes": CLASSES}, "run": {"channels_last": args.channels_last},
                         "data": {"root": str(root), "backend": backend, "workers": args.workers,
                                  "batch_size": args.batch}})
        try:
            loaders = build_loaders(cfg, dist)
        except Exception as e:   # DALI missing, no GPU: say so and go on
            print(f"{backend}: skipped ({e})")
            continue
        loaders.sampler.set_epoch(0)
        if hasattr(getattr(loaders.train, "dataset", None), "set_epoch"):
            loaders.train.dataset.set_epoch(0)
        need = args.iters + args.warmup
        if len(loaders.train) < need:
            print(f"{backend}: skipped (the set has {len(loaders.train)} batches, the run needs {need}: --images)")
            continue
        rate, cores = measure(loaders.train, loaders.to_device, None, device, args.iters, args.warmup)
        rows.append((f"{backend}: loader", args.workers, rate, cores))
        if step:
            rate, cores = measure(loaders.train, loaders.to_device, step, device, args.iters, args.warmup)
            rows.append((f"{backend}: loader + step", args.workers, rate, cores))
        del loaders
    print(f"\n{'what':32} {'workers':>7} {'img/s':>9} {'CPU cores busy':>15} {'img/s per core':>15}")
    for what, workers, rate, cores in rows:
        print(f"{what:32} {workers!s:>7} {rate:9.0f} {cores:15.1f} {rate / max(cores, 1e-9):15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
