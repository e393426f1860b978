"""The command line of the generated datasets::

    python -m trickbench.datasets shapes  --out data/synthetic [--scale S] [--seed N] [--only imagenet voc ade20k]
    python -m trickbench.datasets fashion --out data/fashion [--seed N] [--only ...] [--voc-test-2007 N ...]
    python -m trickbench.datasets fetch   # find or fetch Fashion-MNIST, check it, print its folder

Each set writes the layouts it is asked for, one line per dataset; a dataset error
(a folder holding other data, a bad parameter, Fashion-MNIST missing or damaged) is one
``error: ...`` line and exit code 2.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trickbench.datasets import fashion, fashion_mnist, shapes
from trickbench.datasets.base import LAYOUTS
from trickbench.errors import TrickBenchError, report

__all__ = ["main", "write"]

PROG = "python -m trickbench.datasets"


def write(makers: dict[str, Callable[[], tuple[Path, bool]]], describe: Callable[[str, Path], str],
          only: Sequence[str] | None = None) -> None:
    """Write (or find up to date) each dataset of ``makers`` that ``only`` names, in layout
    order, printing one line on each."""
    for name in LAYOUTS:
        if only is not None and name not in only:
            continue
        t0 = time.perf_counter()
        root, written = makers[name]()
        state = f"written in {time.perf_counter() - t0:.1f}s" if written else "up to date, skipped"
        print(f"{describe(name, root)} -> {root} ({state})", flush=True)


def _set_parser(sub, name: str, description: str, example_out: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=description, description=description)
    p.add_argument("--out", required=True, help=f"output folder (created if missing), e.g. {example_out}")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--only", nargs="+", choices=LAYOUTS, metavar="{imagenet,voc,ade20k}",
                   help="write only these datasets (default: all)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Write the suite's generated datasets in the real "
                                                            "ImageNet, Pascal VOC and ADE20K on-disk layouts.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{shapes,fashion,fetch}")
    p = _set_parser(sub, "shapes", "Small deterministic synthetic ImageNet / Pascal VOC / ADE20K datasets of "
                                   "drawn shapes (trickbench.datasets.shapes).", "data/synthetic")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the per-split image counts (default 1.0; min 2 per class/split)")
    p = _set_parser(sub, "fashion", "The Fashion-MNIST pretraining (ImageNet layout), detection (VOC layout) and "
                                    "segmentation (ADE20K layout) datasets (trickbench.datasets.fashion); "
                                    "fetches Fashion-MNIST first.", "data/fashion")
    for name, values in fashion.DEFAULTS.items():
        for key, default in values.items():
            p.add_argument(f"--{name}-{key.replace('_', '-')}", type=int, default=default, dest=f"{name}.{key}",
                           help=f"{name} {key} (default {default})")
    sub.add_parser("fetch", help="only find or fetch the four Fashion-MNIST IDX files, check them, print the folder",
                   description=fashion_mnist.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"fashion-mnist: {fashion_mnist.fetch(verbose=True)} (4 files, checksums ok)")
        elif args.command == "shapes":
            write(shapes.makers(args.out, scale=args.scale, seed=args.seed), shapes.describe, args.only)
        else:
            sizes = {name: {key: getattr(args, f"{name}.{key}") for key in values}
                     for name, values in fashion.DEFAULTS.items()}
            makers = fashion.makers(args.out, seed=args.seed, source=fashion_mnist.fetch(verbose=True), sizes=sizes)
            write(makers, fashion.describe, args.only)
    except TrickBenchError as e:
        return report(e)
    return 0
