#!/usr/bin/env python
"""Images per CPU core of the pretraining input pipeline: the reference (torchvision
``ImageFolder`` + PIL transforms on float tensors, ``data.backend="pil"``) against the
suite's CPU pipeline (``data.backend="cpu"``, :mod:`pretrain.pipeline`), side by side in
one run, on generated ImageNet-sized JPEGs.

    python benchmarks/input_pipeline.py                   # 2,000 JPEGs in /tmp/trickbench-jpegs
    python benchmarks/input_pipeline.py --images 5000 --rounds 5

Both pipelines go end to end **to a normalised float batch on the CPU**, resident in the main
process (every page read once, as the training step would): the new pipeline's per-batch step
(float conversion, PCA lighting, normalisation), which a GPU run does on the GPU, is done here on
the CPU and counted. A figure is images per CPU-second: the images of an
epoch over the CPU time of every process that worked on it (the main process and the loader
workers, from ``getrusage``), so a pipeline cannot look faster by using more cores. Each
configuration runs ``--rounds`` epochs, interleaved (reference, new, reference, new, ...), and
the median is shown, so the machine's drift hits both alike.

The generated images follow ImageNet's: sizes drawn around a mean of about 400 x 350 with a long
tail (a few above 1,500 pixels, a few under 150), mostly 4:3 and 3:4, JPEG quality 75-95,
1/f ("pink") noise content, whose spectrum is that of natural photographs and whose files have
their bits per pixel; 0.5% CMYK JPEGs, a grayscale JPEG and a PNG named ``.JPEG`` (ImageNet has
all three). The last line reads ``per-core speedup: X.XXx`` (new over reference, one worker).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from pretrain import pipeline
from pretrain.data import SeededSamples, image_folder, train_transform, val_transform

CLASSES = 10
MARKER = "benchmark-jpegs.json"


def pink_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB image whose amplitude spectrum falls as 1/f, as natural images' does."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    channels = []
    mix = rng.normal(size=(3, 3)) * 0.3 + np.eye(3)      # correlated colours, as in photographs
    base = [np.fft.irfft2(np.exp(2j * np.pi * rng.random(f.shape)) / f, s=(height, width)) for _ in range(3)]
    for c in range(3):
        channels.append(sum(mix[c, k] * base[k] for k in range(3)))
    img = np.stack(channels, axis=-1)
    img = (img - img.mean()) / (img.std() + 1e-9)
    return np.clip(128 + 48 * img, 0, 255).astype(np.uint8)


def image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): area log-normal around 400 x 350, mostly 4:3 or 3:4, long-tailed."""
    area = float(np.exp(rng.normal(np.log(400 * 350), 0.45)))
    kind = rng.random()
    aspect = 4 / 3 if kind < 0.6 else 3 / 4 if kind < 0.8 else float(np.exp(rng.uniform(np.log(0.6), np.log(1.8))))
    if rng.random() < 0.02:                               # the long tail: large photographs
        area *= rng.uniform(6, 20)
    width = int(np.clip(round(np.sqrt(area * aspect)), 64, 2800))
    height = int(np.clip(round(np.sqrt(area / aspect)), 64, 2800))
    return width, height


def generate(root: Path, n: int, seed: int = 0) -> dict:
    """``root/train/<wnid>/*.JPEG`` (``n`` images) and ``root/val/...`` (``n // 4``), once."""
    marker = root / MARKER
    wanted = {"images": n, "seed": seed, "version": 1}
    if marker.is_file() and json.loads(marker.read_text()).get("params") == wanted:
        return json.loads(marker.read_text())
    rng = np.random.default_rng(seed)
    sizes, kinds = [], {"cmyk": 0, "gray": 0, "png": 0}
    for split, count in (("train", n), ("val", n // 4)):
        for i in range(count):
            wnid = f"n{i % CLASSES:08d}"
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            width, height = image_size(rng)
            img = Image.fromarray(pink_noise(rng, height, width), "RGB")
            path = folder / f"{wnid}_{i}.JPEG"
            quality = int(rng.integers(75, 96))
            if i == 7:
                img.save(path, format="PNG")                   # ImageNet has one PNG named .JPEG
                kinds["png"] += 1
            elif i == 11:
                img.convert("L").save(path, format="JPEG", quality=quality)
                kinds["gray"] += 1
            elif i % 200 == 13:
                img.convert("CMYK").save(path, format="JPEG", quality=quality)
                kinds["cmyk"] += 1
            else:
                img.save(path, format="JPEG", quality=quality)
            if split == "train":
                sizes.append((width, height))
    sizes = np.array(sizes)
    info = {"params": wanted, "mean_size": [float(sizes[:, 0].mean()), float(sizes[:, 1].mean())],
            "max_side": int(sizes.max()), "kinds": kinds,
            "mb": sum(p.stat().st_size for p in (root / "train").rglob("*.JPEG")) / 1e6}
    marker.write_text(json.dumps(info))
    return info


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)   # workers count once joined
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def epoch(dataset, sampler, workers: int, batch: int, finish) -> tuple[float, float, int]:
    """(images per CPU-second, images per wall-second, images) of one pass, workers joined."""
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    cpu0, wall0, n = cpu_seconds(), time.perf_counter(), 0
    for items in loader:
        x = finish(items)
        n += x.shape[0]
    del loader                                                 # its workers are joined by now
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    return n / cpu, n / wall, n


def pipelines(root: Path, split: str, size: int, seed: int):
    """{name: (dataset, sampler, finish)} for the reference and the new pipeline."""
    on_device = pipeline.OnDevice(torch.device("cpu"))
    if split == "train":
        ref = SeededSamples(image_folder(root, split, train_transform(size, "paper")), seed)
        ref_sampler = DistributedSampler(ref, num_replicas=1, rank=0, shuffle=True, seed=seed)
        folder = image_folder(root, split, None)
        new = pipeline.Samples(folder.samples, pipeline.PaperTransform(size), seed)
        new_sampler = pipeline.EpochIndices(DistributedSampler(new, num_replicas=1, rank=0, shuffle=True, seed=seed))
    else:
        ref = image_folder(root, split, val_transform(size, round(size * 256 / 224)))
        ref_sampler = None
        folder = image_folder(root, split, None)
        new = pipeline.Samples(folder.samples, pipeline.ReferenceResize(round(size * 256 / 224), size, flip=False))
        new_sampler = None
    return {"reference (ImageFolder + PIL, float)": (ref, ref_sampler, lambda items: resident(items[0])),
            "new (uint8 workers + batch step)": (new, new_sampler, lambda items: resident(on_device(items[0], items[2])))}


def resident(batch: torch.Tensor) -> torch.Tensor:
    """The batch, every page of it read once in this process, as the training step's first read
    (a copy to the GPU, the first layer) would. The reference's float batch arrives from its worker
    as shared memory mapped lazily: left unread, its page faults (0.05 ms an image) would go
    uncounted, while the new pipeline's batch is written here and paid for in full."""
    batch.view(-1)[:: 4096 // batch.element_size()].sum()
    return batch


def dct_rate(dataset) -> tuple[float, float]:
    """(share of images DCT-scaled, share decoded by PIL) over one pass in this process."""
    pipeline.COUNTS.__init__()
    keys = range(len(dataset)) if dataset.seed is None else [(0, i) for i in range(len(dataset))]
    for k in keys:
        dataset[k]
    c = pipeline.COUNTS
    return c.scaled / max(c.images, 1), c.fallback / max(c.images, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/trickbench-jpegs", help="where the generated JPEGs go (kept between runs)")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    torch.set_num_threads(1)                                   # one core's worth in the main process too
    root = Path(args.data)
    t = time.perf_counter()
    info = generate(root, args.images)
    print(f"{args.images} training JPEGs in {root} (mean {info['mean_size'][0]:.0f} x {info['mean_size'][1]:.0f}, "
          f"largest side {info['max_side']}, {info['mb']:.0f} MB; {info['kinds']['cmyk']} CMYK, "
          f"{info['kinds']['gray']} grayscale, {info['kinds']['png']} PNG named .JPEG); ready in "
          f"{time.perf_counter() - t:.0f} s; torch {torch.__version__}, batch {args.batch}, {args.image_size} px")
    per_core: dict[tuple[str, str, int], list[float]] = {}
    wall: dict[tuple[str, str, int], list[float]] = {}
    for split in ("train", "val"):
        configs = pipelines(root, split, args.image_size, seed=0)
        for workers in args.workers if split == "train" else args.workers[:1]:
            for r in range(args.rounds):
                for name, (ds, sampler, finish) in configs.items():
                    if sampler is not None:
                        sampler.set_epoch(r)
                    if hasattr(ds, "set_epoch"):
                        ds.set_epoch(r)
                    core, w, _ = epoch(ds, sampler, workers, args.batch, finish)
                    per_core.setdefault((split, name, workers), []).append(core)
                    wall.setdefault((split, name, workers), []).append(w)
    print(f"\n{'split':6} {'pipeline':38} {'workers':>7} {'img/s per core':>15} {'img/s (wall)':>13}  rounds")
    for (split, name, workers), values in per_core.items():
        print(f"{split:6} {name:38} {workers:7d} {statistics.median(values):15.0f} "
              f"{statistics.median(wall[(split, name, workers)]):13.0f}  {', '.join(f'{v:.0f}' for v in values)}")
    train = pipelines(root, "train", args.image_size, seed=0)
    val = pipelines(root, "val", args.image_size, seed=0)
    scaled, fallback = dct_rate(train["new (uint8 workers + batch step)"][0])
    vscaled, _ = dct_rate(val["new (uint8 workers + batch step)"][0])
    print(f"\nDCT scaling fired for {100 * scaled:.1f}% of training crops and {100 * vscaled:.1f}% of validation "
          f"images; {100 * fallback:.1f}% of images went to PIL (CMYK, grayscale, PNG)")
    first = args.workers[0]
    names = list(train)
    ratio = (statistics.median(per_core[("train", names[1], first)])
             / statistics.median(per_core[("train", names[0], first)]))
    print(f"per-core speedup: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
