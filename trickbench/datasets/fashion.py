"""Three datasets from Fashion-MNIST, in the on-disk layouts of ImageNet, Pascal VOC and
ADE20K, so that the real readers (torchvision ``ImageFolder``, mmdet ``VOCDataset``,
mmseg's segmentation datasets) are what runs.

Pretraining, ImageNet layout (``make_imagenet``), from Fashion-MNIST's **train** split::

    <out>/imagenet/train/n00000003/n00000003_01234.png   # class 3 (Dress), train item 1234
    <out>/imagenet/val/n00000003/ILSVRC2012_val_00000301.png
    <out>/imagenet/LOC_synset_mapping.txt                 # "n00000003 Dress", as in ImageNet's devkit

Per class, ``train_per_class`` items for train and the next ``val_per_class`` (a seeded
draw without replacement) for the held-out val folder. Each image is a "photo" of its item
(``render_photo``): the item, tinted and scaled to 70-92% of ``size``, placed anywhere on a
``size`` x ``size`` background of the same family as the canvases' below, with pixel
noise; RGB PNGs (lossless). Like ImageNet's photos and unlike the bare items on black,
they make a classifier tell the item from its surroundings, which is what detection and
segmentation on the canvases need: a classifier trained on the bare items names only
about 20% of the items cut from canvases, against 83% of the same items bare.

Detection, VOC layout (``make_voc``) and segmentation, ADE20K layout (``make_ade20k``),
are canvases composed from items of Fashion-MNIST's **test** split only, so no item a
backbone saw in pretraining is in them. The test split's 10,000 items are shuffled once
(``seed``) and halved: the first half feeds VOC, the second ADE20K; of each half, the
first half feeds the training canvases and the second half the validation/test canvases
(``TEST_FRACTION``: the test canvases are many, so that which items they happen to hold moves
a metric little; training canvases draw from 2,500 items, plenty for their few hundred
canvases)::

    <out>/VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}   trainval + test
    <out>/VOCdevkit/VOC2012/...                                       trainval
    <out>/ADEChallengeData2016/{images,annotations}/{training,validation}

A canvas: a textured background (a smooth random colour field, oriented stripes, a few
translucent clutter shapes, pixel noise), then 2-4 items, each scaled to 28-60 pixels
(log-uniform), tinted with a random low-saturation colour, partly overlapping the items
before it. An item's mask is its pixels brighter than ``ITEM_THRESHOLD`` with the holes
filled; later items occlude earlier ones, and a placement that would leave an earlier
item less than ``MIN_VISIBLE`` visible is drawn again. The box of an item is the tight
box of its *visible* pixels; it is ``difficult`` when less than 60% of it is visible or
its box is under 16 pixels on its longer side. ADE label maps (PNG, mode L): 0 =
background, ``1 + class`` on the item's visible pixels. The class names are
Fashion-MNIST's (``trickbench.datasets.fashion_mnist.CLASSES``); the configs set them
through the datasets' ``metainfo``.

Determinism and safety are those of the shapes set (:mod:`trickbench.datasets.shapes`):
every image draws from ``numpy.random.default_rng([seed, dataset, split, index])``, each
dataset folder is written atomically and never overwrites other data
(:mod:`trickbench.datasets.base`), and a hidden ``.trickbench-fashion.json`` marker
records the parameters.

CLI (:mod:`trickbench.datasets.cli`)::

    python -m trickbench.datasets fashion --out data/fashion [--seed N] [--only imagenet voc ade20k] [...]
"""
from __future__ import annotations

import colorsys
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from trickbench.datasets import fashion_mnist
from trickbench.datasets.base import (LAYOUTS, DataGenError, DataGenParamError, check_count, check_seed,
                                      materialise, read_marker, save_jpeg)
from trickbench.datasets.voc import VocSource, VocSplit, write_voc_year

__all__ = ["DATASETS", "DEFAULTS", "MARKER_NAME", "Canvas", "describe", "make_ade20k", "make_all", "make_imagenet",
           "make_voc", "makers", "render_canvas", "render_photo", "test_item_pools", "wnid"]

MARKER_NAME = ".trickbench-fashion.json"
GENERATOR = "trickbench.datasets.fashion"
_FORMAT_VERSION = 4      # the ImageNet-layout photos
_CANVAS_VERSION = 5      # the canvases (5: half of each task's items for its test split, was a fifth)
TEST_FRACTION = 0.5      # of each task's half of the test split's items, the part for its test canvases
_JPEG_QUALITY = 95
ITEM_THRESHOLD = 24      # grey value above which a pixel of a (resized) item is the item's
MIN_VISIBLE = 0.35       # every item keeps at least this fraction of its mask visible
DIFFICULT_VISIBLE = 0.6  # less visible than this: difficult
DIFFICULT_SIDE = 16      # a visible box shorter than this on its longer side: difficult

# Codes mixed into the per-image seeds; never change them (it changes the data).
_DS_IMAGENET, _DS_VOC, _DS_ADE, _DS_POOLS = 11, 12, 13, 14
_SPLIT_TRAIN, _SPLIT_VAL, _SPLIT_TEST, _SPLIT_2012 = 0, 1, 2, 3

DATASETS: tuple[str, ...] = LAYOUTS


def wnid(c: int) -> str:
    """The ImageNet-like folder name of class ``c``; sorted, they are in label order."""
    return f"n{c:08d}"


# --------------------------------------------------------------------------- #
# Pretraining: ImageNet layout from the train split
# --------------------------------------------------------------------------- #

def _make_imagenet(out, *, train_per_class: int, val_per_class: int, size: int, seed: int,
                   source: Path | None) -> tuple[Path, bool]:
    check_count("train_per_class", train_per_class)
    check_count("val_per_class", val_per_class)
    check_count("size", size, 16)
    check_seed(seed)
    root = Path(out) / "imagenet"
    params = {"dataset": "imagenet", "version": _FORMAT_VERSION, "train_per_class": train_per_class,
              "val_per_class": val_per_class, "size": size, "seed": seed}

    def write(tmp: Path) -> dict[str, Any]:
        train = fashion_mnist.load("train", source)
        mapping = []
        n_val = 0
        for c, name in enumerate(fashion_mnist.CLASSES):
            ids = np.flatnonzero(train.labels == c)
            if train_per_class + val_per_class > ids.size:
                raise DataGenParamError(f"train_per_class + val_per_class = {train_per_class + val_per_class} exceeds the "
                                 f"{ids.size} train items of class {name!r}")
            ids = np.random.default_rng([seed, _DS_IMAGENET, c]).permutation(ids)
            train_dir, val_dir = tmp / "train" / wnid(c), tmp / "val" / wnid(c)
            train_dir.mkdir(parents=True)
            val_dir.mkdir(parents=True)
            for i in sorted(ids[:train_per_class]):
                photo = render_photo(np.random.default_rng([seed, _DS_IMAGENET, _SPLIT_TRAIN, i]), train.images[i], size)
                Image.fromarray(photo).save(train_dir / f"{wnid(c)}_{i:05d}.png")
            for i in sorted(ids[train_per_class:train_per_class + val_per_class]):
                n_val += 1
                photo = render_photo(np.random.default_rng([seed, _DS_IMAGENET, _SPLIT_VAL, i]), train.images[i], size)
                Image.fromarray(photo).save(val_dir / f"ILSVRC2012_val_{n_val:08d}.png")
            mapping.append(f"{wnid(c)} {name}\n")
        (tmp / "LOC_synset_mapping.txt").write_text("".join(mapping))
        return {"classes": len(fashion_mnist.CLASSES), "train_images": 10 * train_per_class, "val_images": n_val}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_imagenet(out, *, train_per_class: int = 2000, val_per_class: int = 100, size: int = 48, seed: int = 0,
                  source: Path | None = None) -> Path:
    """Write ``<out>/imagenet/{train,val}/<wnid>/*.png`` from Fashion-MNIST's train split
    (``source``: the folder of the four ``.gz`` files; default: :func:`trickbench.datasets.fashion_mnist.fetch`)."""
    return _make_imagenet(out, train_per_class=train_per_class, val_per_class=val_per_class, size=size,
                          seed=seed, source=source)[0]


# --------------------------------------------------------------------------- #
# Canvases of test-split items
# --------------------------------------------------------------------------- #

def test_item_pools(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets of the test split: ``voc_train``, ``voc_test``, ``ade_train``, ``ade_val``."""
    perm = np.random.default_rng([seed, _DS_POOLS]).permutation(labels.size)
    half = labels.size // 2
    voc, ade = perm[:half], perm[half:]
    cut_voc, cut_ade = round((1 - TEST_FRACTION) * voc.size), round((1 - TEST_FRACTION) * ade.size)
    return {"voc_train": voc[:cut_voc], "voc_test": voc[cut_voc:],
            "ade_train": ade[:cut_ade], "ade_val": ade[cut_ade:]}


class _Pool:
    """Items of one pool, by class."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, ids: np.ndarray):
        self.images = images
        self.by_class = [np.sort(ids[labels[ids] == c]) for c in range(len(fashion_mnist.CLASSES))]
        empty = [fashion_mnist.CLASSES[c] for c, v in enumerate(self.by_class) if v.size == 0]
        if empty:
            raise DataGenError(f"no test-split item of class(es) {', '.join(empty)} in this pool")

    def draw(self, rng: np.random.Generator, cls: int) -> tuple[int, np.ndarray]:
        ids = self.by_class[cls]
        i = int(ids[int(rng.integers(0, ids.size))])
        return i, self.images[i]


@dataclass
class Canvas:
    """One composed image: ``image`` (H, W, 3) uint8, ``label`` (H, W) uint8 (0 = background,
    1 + class), ``owner`` (H, W) int16 (-1 = background, else the item's index in
    ``objects``), and per item ``objects``: cls, source index (in the test split),
    0-based inclusive visible box, visible fraction, difficult."""

    image: np.ndarray
    label: np.ndarray
    owner: np.ndarray
    objects: list[dict[str, Any]]


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1] (bicubic upsampling of a coarse grid)."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((width, height), Image.BICUBIC)
    return np.clip(np.asarray(img), 0.0, 1.0)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour field + oriented stripes + translucent clutter shapes, (H, W, 3) float."""
    base = rng.uniform(20.0, 80.0)
    field = _smooth_field(rng, height, width, int(rng.integers(3, 7)))
    tint = rng.uniform(-25.0, 25.0, size=3)
    img = (base + rng.uniform(20.0, 50.0) * (field[..., None] - 0.5) + tint).astype(np.float32)
    # oriented stripes of random period and contrast
    theta, period = rng.uniform(0, math.pi), rng.uniform(4.0, 14.0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    stripes = np.sin((x * math.cos(theta) + y * math.sin(theta)) * 2 * math.pi / period + rng.uniform(0, 6.3))
    img += (rng.uniform(3.0, 12.0) * stripes)[..., None]
    # clutter: translucent ellipses, rectangles and bars of any grey, item-sized
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        a, b = rng.uniform(3.0, 0.25 * width), rng.uniform(2.0, 0.25 * height)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            m = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0
        elif kind == 1:
            m = (np.abs(x - cx) <= a) & (np.abs(y - cy) <= b)
        else:
            phi = rng.uniform(0, math.pi)
            u = (x - cx) * math.cos(phi) + (y - cy) * math.sin(phi)
            v = -(x - cx) * math.sin(phi) + (y - cy) * math.cos(phi)
            m = (np.abs(u) <= a) & (np.abs(v) <= rng.uniform(1.0, 3.0))
        alpha = rng.uniform(0.2, 0.5)
        colour = rng.uniform(0.0, 140.0) + rng.uniform(-20.0, 20.0, size=3)
        img[m] = (1 - alpha) * img[m] + alpha * colour
    return img


def _item_patch(rng: np.random.Generator, item: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """The item resized to about ``side`` pixels (aspect jittered), tinted: (RGB float, mask)."""
    aspect = math.exp(rng.uniform(-0.15, 0.15))
    w = max(8, int(round(side * math.sqrt(aspect))))
    h = max(8, int(round(side / math.sqrt(aspect))))
    grey = np.asarray(Image.fromarray(item).resize((w, h), Image.BILINEAR), dtype=np.float32)
    mask = ndimage.binary_fill_holes(grey > ITEM_THRESHOLD)
    hue, sat = rng.random(), rng.uniform(0.0, 0.45)
    tint = np.asarray(colorsys.hsv_to_rgb(hue, sat, 1.0), dtype=np.float32)
    gain = rng.uniform(0.95, 1.25)
    return grey[..., None] * tint * gain, mask


def render_photo(rng: np.random.Generator, item: np.ndarray, size: int,
                 side: tuple[float, float] = (0.7, 0.92)) -> np.ndarray:
    """A ``size`` x ``size`` RGB uint8 "photo" of one item for the pretraining set: the
    canvases' background, the item tinted and scaled to ``side`` x ``size`` (log-uniform;
    at most 0.92, so that ``_item_patch``'s aspect jitter keeps it in the frame), placed at
    random, then pixel noise."""
    img = _background(rng, size, size)
    s = math.exp(rng.uniform(math.log(side[0] * size), math.log(side[1] * size)))
    rgb, mask = _item_patch(rng, item, s)
    h, w = mask.shape
    y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    img[y0:y0 + h, x0:x0 + w][mask] = rgb[mask]
    img = img + rng.normal(0.0, rng.uniform(3.0, 9.0), size=img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_canvas(rng: np.random.Generator, pool: _Pool, first_class: int, *, min_size: int, max_size: int,
                  items: tuple[int, int] = (2, 4), side: tuple[float, float] = (28.0, 60.0),
                  tries: int = 20) -> Canvas:
    """One canvas; its first item is of class ``first_class`` (so every class occurs)."""
    width = int(rng.integers(min_size, max_size + 1))
    height = int(rng.integers(min_size, max_size + 1))
    img = _background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int16)
    areas: list[int] = []
    placed: list[dict[str, Any]] = []
    count = int(rng.integers(items[0], items[1] + 1))
    for k in range(count):
        cls = first_class if k == 0 else int(rng.integers(0, len(fashion_mnist.CLASSES)))
        index, item = pool.draw(rng, cls)
        s = math.exp(rng.uniform(math.log(side[0]), math.log(min(side[1], 0.9 * min(width, height)))))
        rgb, mask = _item_patch(rng, item, s)
        h, w = mask.shape
        if not mask.any() or h > height or w > width:
            continue
        for _ in range(tries):
            y0, x0 = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            window = owner[y0:y0 + h, x0:x0 + w]
            hidden = np.bincount(window[mask].astype(np.int64) + 1, minlength=len(areas) + 1)[1:]
            visible = np.bincount(owner.ravel().astype(np.int64) + 1, minlength=len(areas) + 1)[1:] - hidden
            if all(v >= MIN_VISIBLE * a for v, a in zip(visible, areas)):
                break
        else:
            continue  # no placement leaves the earlier items visible enough: skip this item
        window[mask] = len(areas)
        img[y0:y0 + h, x0:x0 + w][mask] = rgb[mask]
        areas.append(int(mask.sum()))
        placed.append({"cls": cls, "index": index})
    img = img + rng.normal(0.0, rng.uniform(3.0, 9.0), size=img.shape).astype(np.float32)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    label = np.zeros((height, width), dtype=np.uint8)
    objects = []
    for k, obj in enumerate(placed):
        vis = owner == k
        label[vis] = obj["cls"] + 1
        rows, cols = np.flatnonzero(vis.any(axis=1)), np.flatnonzero(vis.any(axis=0))
        box = (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
        fraction = float(vis.sum()) / areas[k]
        longer = max(box[2] - box[0] + 1, box[3] - box[1] + 1)
        objects.append({**obj, "box": box, "visible": round(fraction, 4),
                        "difficult": int(fraction < DIFFICULT_VISIBLE or longer < DIFFICULT_SIDE)})
    return Canvas(image, label, owner, objects)


# --------------------------------------------------------------------------- #
# Detection: VOC layout
# --------------------------------------------------------------------------- #

def _voc_source(year: str) -> VocSource:
    return VocSource("TrickBench Fashion-MNIST canvases (items of the test split)", f"PASCAL {year} layout",
                     "Fashion-MNIST (Zalando, MIT licence)")


def _make_voc(out, *, trainval_2007: int, test_2007: int, trainval_2012: int, min_size: int, max_size: int,
              seed: int, source: Path | None) -> tuple[Path, bool]:
    for name, value, minimum in (("trainval_2007", trainval_2007, 1), ("test_2007", test_2007, 1),
                                 ("trainval_2012", trainval_2012, 0), ("min_size", min_size, 64),
                                 ("max_size", max_size, min_size)):
        check_count(name, value, minimum)
    check_seed(seed)
    root = Path(out) / "VOCdevkit"
    params = {"dataset": "voc", "version": _CANVAS_VERSION, "trainval_2007": trainval_2007, "test_2007": test_2007,
              "trainval_2012": trainval_2012, "min_size": min_size, "max_size": max_size, "seed": seed}

    def write(tmp: Path) -> dict[str, Any]:
        test = fashion_mnist.load("test", source)
        ids = test_item_pools(test.labels, seed)
        pools = {k: _Pool(test.images, test.labels, ids[k]) for k in ("voc_train", "voc_test")}

        def split(name: str, count: int, code: int, pool: str, image_id: Callable[[int], str]) -> VocSplit:
            def render(i: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
                canvas = render_canvas(np.random.default_rng([seed, _DS_VOC, code, i]), pools[pool],
                                       i % len(fashion_mnist.CLASSES), min_size=min_size, max_size=max_size)
                return canvas.image, canvas.objects

            return VocSplit(name, count, image_id, render)

        years = {"VOC2007": [split("trainval", trainval_2007, _SPLIT_TRAIN, "voc_train", lambda i: f"{i + 1:06d}"),
                             split("test", test_2007, _SPLIT_TEST, "voc_test",
                                   lambda i: f"{trainval_2007 + i + 1:06d}")]}
        if trainval_2012 > 0:
            years["VOC2012"] = [split("trainval", trainval_2012, _SPLIT_2012, "voc_train",
                                      lambda i: f"2012_{i + 1:06d}")]
        return {year: write_voc_year(tmp / year, year, splits, class_names=fashion_mnist.CLASSES,
                                     source=_voc_source(year), jpeg_quality=_JPEG_QUALITY)
                for year, splits in years.items()}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_voc(out, *, trainval_2007: int = 200, test_2007: int = 1000, trainval_2012: int = 200, min_size: int = 96,
             max_size: int = 128, seed: int = 0, source: Path | None = None) -> Path:
    """Write ``<out>/VOCdevkit/VOC2007`` (trainval + test) and ``VOC2012`` (trainval).
    Canvas sides are drawn from ``[min_size, max_size]``; the first item of canvas ``i``
    of a split is of class ``i % 10``."""
    return _make_voc(out, trainval_2007=trainval_2007, test_2007=test_2007, trainval_2012=trainval_2012,
                     min_size=min_size, max_size=max_size, seed=seed, source=source)[0]


# --------------------------------------------------------------------------- #
# Segmentation: ADE20K layout
# --------------------------------------------------------------------------- #

def _make_ade20k(out, *, train: int, val: int, min_size: int, max_size: int, seed: int,
                 source: Path | None) -> tuple[Path, bool]:
    for name, value, minimum in (("train", train, 1), ("val", val, 1), ("min_size", min_size, 64),
                                 ("max_size", max_size, min_size)):
        check_count(name, value, minimum)
    check_seed(seed)
    root = Path(out) / "ADEChallengeData2016"
    params = {"dataset": "ade20k", "version": _CANVAS_VERSION, "train": train, "val": val, "min_size": min_size,
              "max_size": max_size, "seed": seed}

    def write(tmp: Path) -> dict[str, Any]:
        test = fashion_mnist.load("test", source)
        ids = test_item_pools(test.labels, seed)
        counts = np.zeros(len(fashion_mnist.CLASSES) + 1, dtype=np.int64)
        for split, prefix, count, code, pool_name in (("training", "ADE_train", train, _SPLIT_TRAIN, "ade_train"),
                                                      ("validation", "ADE_val", val, _SPLIT_VAL, "ade_val")):
            pool = _Pool(test.images, test.labels, ids[pool_name])
            img_dir, ann_dir = tmp / "images" / split, tmp / "annotations" / split
            img_dir.mkdir(parents=True)
            ann_dir.mkdir(parents=True)
            for i in range(count):
                canvas = render_canvas(np.random.default_rng([seed, _DS_ADE, code, i]), pool,
                                       i % len(fashion_mnist.CLASSES), min_size=min_size, max_size=max_size)
                stem = f"{prefix}_{i + 1:08d}"
                save_jpeg(canvas.image, img_dir / f"{stem}.jpg", _JPEG_QUALITY)
                Image.fromarray(canvas.label, mode="L").save(ann_dir / f"{stem}.png")
                counts += np.bincount(canvas.label.ravel(), minlength=counts.size)
        return {"training_images": train, "validation_images": val,
                "background_fraction": round(float(counts[0]) / counts.sum(), 4),
                "pixel_fraction": {name: round(float(counts[c + 1]) / counts.sum(), 4)
                                   for c, name in enumerate(fashion_mnist.CLASSES)}}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_ade20k(out, *, train: int = 300, val: int = 500, min_size: int = 96, max_size: int = 128, seed: int = 0,
                source: Path | None = None) -> Path:
    """Write ``<out>/ADEChallengeData2016/{images,annotations}/{training,validation}``."""
    return _make_ade20k(out, train=train, val=val, min_size=min_size, max_size=max_size, seed=seed,
                        source=source)[0]


# --------------------------------------------------------------------------- #
# All at once
# --------------------------------------------------------------------------- #

DEFAULTS: dict[str, dict[str, int]] = {
    "imagenet": {"train_per_class": 2000, "val_per_class": 100, "size": 48},
    # many test canvases (inference is cheap): which items the test split happens to hold moves a
    # metric little (README, "The laptop benchmark's noise")
    "voc": {"trainval_2007": 200, "test_2007": 1000, "trainval_2012": 200, "min_size": 96, "max_size": 128},
    "ade20k": {"train": 300, "val": 500, "min_size": 96, "max_size": 128},
}
_MAKERS = {"imagenet": _make_imagenet, "voc": _make_voc, "ade20k": _make_ade20k}


def makers(out: str | os.PathLike[str], *, seed: int = 0, source: Path | None = None,
           sizes: dict[str, dict[str, int]] | None = None) -> dict[str, Callable[[], tuple[Path, bool]]]:
    """Per dataset, a call that writes it under ``out`` (or finds it up to date):
    ``() -> (root, written)``; ``sizes`` overrides :data:`DEFAULTS` per dataset; ``source``:
    the folder of the four ``.gz`` files (default: :func:`trickbench.datasets.fashion_mnist.fetch`)."""
    check_seed(seed)
    source = fashion_mnist.fetch() if source is None else source
    sizes = sizes or {}
    return {name: functools.partial(_MAKERS[name], out, seed=seed, source=source,
                                    **{**DEFAULTS[name], **sizes.get(name, {})})
            for name in DATASETS}


def make_all(out, *, seed: int = 0, source: Path | None = None,
             sizes: dict[str, dict[str, int]] | None = None) -> dict[str, Path]:
    """All three datasets under ``out``; ``sizes`` overrides :data:`DEFAULTS` per dataset."""
    return {name: make()[0] for name, make in makers(out, seed=seed, source=source, sizes=sizes).items()}


def describe(name: str, root: Path) -> str:
    """One line on the dataset ``name`` written at ``root``, from its marker."""
    marker = read_marker(root, MARKER_NAME) or {}
    p, s = marker.get("params", {}), marker.get("stats", {})
    if name == "imagenet":
        return (f"imagenet: 10 classes, {s.get('train_images')} train + {s.get('val_images')} val images "
                f"(Fashion-MNIST train split), {p.get('size')}px")
    if name == "voc":
        v7, v12 = s.get("VOC2007", {}), s.get("VOC2012", {})
        return (f"voc: VOC2007 {v7.get('trainval_images')} trainval + {v7.get('test_images')} test, VOC2012 "
                f"{v12.get('trainval_images', 0)} trainval canvases, "
                f"{v7.get('objects', 0) + v12.get('objects', 0)} items "
                f"({v7.get('difficult', 0) + v12.get('difficult', 0)} difficult), "
                f"{p.get('min_size')}-{p.get('max_size')}px")
    return (f"ade20k: {s.get('training_images')} training + {s.get('validation_images')} validation canvases, "
            f"{p.get('min_size')}-{p.get('max_size')}px, {100 * s.get('background_fraction', 0):.1f}% background")
