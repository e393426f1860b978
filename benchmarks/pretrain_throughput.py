#!/usr/bin/env python
"""Training throughput of our ResNet-50 / ResNet-50-D against timm's ``resnet50`` /
``resnet50d`` under identical settings, side by side in one run.

    python benchmarks/pretrain_throughput.py                          # CPU, fp32, batch 16, 160 px
    python benchmarks/pretrain_throughput.py --device cuda --batch 256 --image-size 224 \\
        --precision bf16 --channels-last

One iteration is forward + backward + SGD step (Nesterov, weight decay) on random
data already on the device, so the figure is the model's, not the data loader's.
The models are timed in interleaved rounds (ours, timm, ours, timm, ...) and the
median round is reported, so drift of the machine hits both alike.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time


import torch

from pretrain.engine import autocast
from pretrain.models import resnet


def build(name: str) -> torch.nn.Module:
    import timm

    return {
        "ours resnet50 (B)": lambda: resnet(50, "B", num_classes=1000),
        "timm resnet50": lambda: timm.create_model("resnet50", num_classes=1000),
        "ours resnet50-D": lambda: resnet(50, "D", num_classes=1000),
        "timm resnet50d": lambda: timm.create_model("resnet50d", num_classes=1000),
    }[name]()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round(model, opt, x, y, iters: int, device, precision: str, scaler) -> float:
    """Images per second over ``iters`` training iterations."""
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    sync(device)
    return iters * x.shape[0] / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--iters", type=int, default=3, help="iterations per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per model first")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    pairs = [("ours resnet50 (B)", "timm resnet50"), ("ours resnet50-D", "timm resnet50d")]
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (args.batch,), device=device)
    rows = []
    for pair in pairs:
        setups = {}
        for name in pair:
            torch.manual_seed(0)
            model = build(name).to(device, memory_format=fmt).train()
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
            scaler = torch.amp.GradScaler(device.type) if args.precision == "fp16" else None
            time_round(model, opt, x, y, args.warmup, device, args.precision, scaler)
            setups[name] = (model, opt, scaler, [])
        for _ in range(args.rounds):
            for name, (model, opt, scaler, speeds) in setups.items():
                speeds.append(time_round(model, opt, x, y, args.iters, device, args.precision, scaler))
        stats = {name: (statistics.median(s[3]), min(s[3]), max(s[3])) for name, s in setups.items()}
        rows.append((pair[0], stats[pair[0]], pair[1], stats[pair[1]]))
        del setups
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device {dev}, batch {args.batch}, {args.image_size}px, {args.precision}, "
          f"{'channels_last' if args.channels_last else 'NCHW'}, median of {args.rounds} rounds x {args.iters} iters")
    print(f"{'model':<20}{'img/s (min-max)':>22}   {'reference':<16}{'img/s (min-max)':>22}   ratio")
    for ours, a, ref, b in rows:
        print(f"{ours:<20}{a[0]:>8.1f} ({a[1]:6.1f}-{a[2]:6.1f})   {ref:<16}{b[0]:>8.1f} ({b[1]:6.1f}-{b[2]:6.1f})"
              f"   {a[0] / b[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
