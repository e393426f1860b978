"""Small, deterministic, *learnable* stand-ins for ImageNet, Pascal VOC and ADE20K.

The generators below write tiny synthetic datasets in exactly the on-disk layouts
of the real ones, so that the real readers (torchvision ``ImageFolder``, mmdet
``VOCDataset`` and mmseg ``ADE20KDataset``) are what the tests and smoke runs
exercise -- only the pixels are fake.

Layouts
-------
ImageNet (``make_imagenet``)::

    <out>/imagenet/train/n00000000/n00000000_1.JPEG
    <out>/imagenet/val/n00000000/ILSVRC2012_val_00000001.JPEG   # val "prepped into folders"

Pascal VOC (``make_voc``)::

    <out>/VOCdevkit/VOC2007/JPEGImages/000001.jpg
    <out>/VOCdevkit/VOC2007/Annotations/000001.xml              # real VOC XML, 1-based boxes
    <out>/VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt
    <out>/VOCdevkit/VOC2007/ImageSets/Main/<class>_{train,val,trainval,test}.txt  # "<id>  1|-1|0"
    <out>/VOCdevkit/VOC2012/...                                  # same, ids 2012_000001, no test

ADE20K SceneParsing (``make_ade20k``)::

    <out>/ADEChallengeData2016/images/training/ADE_train_00000001.jpg
    <out>/ADEChallengeData2016/annotations/training/ADE_train_00000001.png   # mode 'L'
    <out>/ADEChallengeData2016/{images,annotations}/validation/ADE_val_00000001.{jpg,png}

ADE label maps use 0 for "unlabelled/other" (a thin frame and some low-contrast
clutter in every image) and the real 1-based ADE20K ids (1 = wall, 3 = sky, ...)
for a configurable subset of classes.

Learnability
------------
Every class is drawn with one entry of a single visual vocabulary shared by all
three datasets: ``class_style(i) -> (shape, rgb, texture)``.  ImageNet class ``i``,
VOC class ``i`` (index in ``VOC_CLASSES``) and the ``i``-th ADE class id all use
style ``i``, so a backbone pretrained on the synthetic ImageNet learns exactly the
features (shape, colour, texture) that detection and segmentation need.  The
styles of indices < 48 differ in (shape, colour) and those < 144 in
(shape, colour, texture).  Objects sit on smooth, low-saturation gradient
backgrounds with mild noise and a few low-contrast distractor blobs whose colours
never coincide with the saturated object palette, so a tiny CNN trained for a
minute on a CPU gets clearly above chance on top-1, mAP and mIoU.

Determinism and safety
----------------------
Each image draws from its own ``numpy.random.default_rng([seed, dataset, split,
index...])``, so output does not depend on generation order.  Each dataset folder is
written atomically and never overwrites other data (:mod:`trickbench.datasets.base`);
a hidden ``.trickbench-synthetic.json`` marker in the dataset root records the
parameters.

CLI (:mod:`trickbench.datasets.cli`)::

    python -m trickbench.datasets shapes --out DIR [--scale S] [--seed N] [--only imagenet voc ade20k]
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from trickbench.datasets.base import (LAYOUTS, DataGenParamError, check_count, check_seed, materialise,
                                      read_marker, save_jpeg)
from trickbench.datasets.voc import VocSource, VocSplit, write_voc_year

__all__ = [
    "ADE_DEFAULT_CLASS_IDS",
    "ADE_STUFF_IDS",
    "DATASETS",
    "MARKER_NAME",
    "PALETTE",
    "SHAPES",
    "TEXTURES",
    "VOC_CLASSES",
    "class_style",
    "describe",
    "make_ade20k",
    "make_all",
    "make_imagenet",
    "make_voc",
    "makers",
    "shape_mask",
]

# --------------------------------------------------------------------------- #
# Shared visual vocabulary
# --------------------------------------------------------------------------- #

SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "diamond", "cross", "ring")

#: Eight saturated, well separated hues (~45 degrees apart).  Backgrounds and
#: distractors are low-saturation greys, so they never coincide with these.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 30, 30),  # red
    (245, 140, 20),  # orange
    (235, 220, 40),  # yellow
    (40, 170, 50),  # green
    (30, 200, 215),  # cyan
    (35, 70, 215),  # blue
    (135, 45, 205),  # purple
    (230, 60, 170),  # magenta
)

TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker")

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

#: ADE20K (SceneParsing, 1-based) ids treated as "stuff": drawn as wavy bands
#: filling the scene instead of as shaped objects.
ADE_STUFF_IDS: frozenset[int] = frozenset({1, 2, 3, 4, 5, 6, 7, 10, 12, 14, 17, 22, 27, 30})

#: wall, sky, floor (stuff) + person, chair, car, bed, table (objects).
ADE_DEFAULT_CLASS_IDS: tuple[int, ...] = (1, 3, 4, 13, 20, 21, 8, 16)

_ADE_NAMES: dict[int, str] = {
    1: "wall", 2: "building", 3: "sky", 4: "floor", 5: "tree", 6: "ceiling", 7: "road",
    8: "bed", 9: "windowpane", 10: "grass", 11: "cabinet", 12: "sidewalk", 13: "person",
    14: "earth", 15: "door", 16: "table", 17: "mountain", 18: "plant", 19: "curtain",
    20: "chair", 21: "car", 22: "water", 23: "painting", 24: "sofa", 25: "shelf",
    26: "house", 27: "sea", 28: "mirror", 29: "rug", 30: "field",
}

MARKER_NAME = ".trickbench-synthetic.json"
GENERATOR = "trickbench.datasets.shapes"
_FORMAT_VERSION = 1
_JPEG_QUALITY = 90

# Codes mixed into the per-image seeds; never change them (it changes the data).
_DS_IMAGENET, _DS_VOC, _DS_ADE = 1, 2, 3
_SPLIT_TRAIN, _SPLIT_VAL, _SPLIT_TEST, _SPLIT_2012 = 0, 1, 2, 3

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixel-edge coordinates (x1 exclusive)


def class_style(i: int) -> tuple[str, tuple[int, int, int], str]:
    """Return ``(shape, rgb, texture)`` of class index ``i``.

    ``(shape, rgb)`` is pairwise distinct for ``i < 48`` (colour index ``(7a + r) % 8``
    for ``i = 6a + r`` runs over all colours as ``a`` runs over 0..7), and the texture
    separates the repeats, so full styles are distinct for ``i < 144``.
    """
    if i < 0:
        raise ValueError(f"class index must be >= 0, got {i}")
    shape = SHAPES[i % len(SHAPES)]
    rgb = PALETTE[(i // 6 + i) % len(PALETTE)]
    texture = TEXTURES[(i // 6 + 2 * (i // 48)) % len(TEXTURES)]
    return shape, rgb, texture


# --------------------------------------------------------------------------- #
# Rasterisation (vectorised, per-object window only)
# --------------------------------------------------------------------------- #


def _window(box: Box, height: int, width: int) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Pixel window covering ``box`` and the normalised coordinates ``u, v`` in [-1, 1]."""
    x0, y0, x1, y1 = box
    c0, c1 = max(0, int(math.floor(x0))), min(width, int(math.ceil(x1)))
    r0, r1 = max(0, int(math.floor(y0))), min(height, int(math.ceil(y1)))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    hw, hh = max((x1 - x0) / 2.0, 1e-6), max((y1 - y0) / 2.0, 1e-6)
    u = ((np.arange(c0, c1, dtype=np.float32) + 0.5 - cx) / hw)[None, :]
    v = ((np.arange(r0, r1, dtype=np.float32) + 0.5 - cy) / hh)[:, None]
    return slice(r0, r1), slice(c0, c1), u, v


def _shape_from_uv(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``shape`` inscribed in the square ``[-1, 1]^2`` (broadcast u, v)."""
    au, av = np.abs(u), np.abs(v)
    if shape == "ellipse":
        m = u * u + v * v <= 1.0
    elif shape == "rectangle":
        m = (au <= 1.0) & (av <= 1.0)
    elif shape == "triangle":  # apex at the top, base at the bottom
        m = (av <= 1.0) & (au <= (v + 1.0) / 2.0)
    elif shape == "diamond":
        m = au + av <= 1.0
    elif shape == "cross":
        m = ((au <= 0.34) & (av <= 1.0)) | ((av <= 0.34) & (au <= 1.0))
    elif shape == "ring":
        r2 = u * u + v * v
        m = (r2 <= 1.0) & (r2 >= 0.3)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return np.broadcast_to(m, np.broadcast_shapes(u.shape, v.shape))


def shape_mask(shape: str, height: int, width: int, box: Box) -> np.ndarray:
    """Full-image ``(height, width)`` bool mask of ``shape`` filling ``box`` (x0, y0, x1, y1)."""
    mask = np.zeros((height, width), dtype=bool)
    rs, cs, u, v = _window(box, height, width)
    if u.size and v.size:
        mask[rs, cs] = _shape_from_uv(shape, u, v)
    return mask


def texture_pattern(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bool pattern (True = primary colour, False = shaded) over broadcast coordinates."""
    shape = np.broadcast_shapes(u.shape, v.shape)
    if texture == "solid":
        return np.ones(shape, dtype=bool)
    if texture == "stripes":  # ~3 diagonal stripe pairs across an object
        return np.broadcast_to(np.floor((u + v) * 1.5) % 2 == 0, shape)
    if texture == "checker":  # 4 x 4 cells across an object
        return np.broadcast_to((np.floor(u * 2.0) + np.floor(v * 2.0)) % 2 == 0, shape)
    raise ValueError(f"unknown texture {texture!r}; expected one of {TEXTURES}")


def _shade(rgb: np.ndarray) -> np.ndarray:
    """Second colour of a texture: a clearly darker version of ``rgb``."""
    return rgb * 0.45


def _paint(
    img: np.ndarray, rs: slice, cs: slice, mask: np.ndarray, rgb: np.ndarray, pattern: np.ndarray
) -> None:
    """Fill ``img[rs, cs][mask]`` with ``rgb`` where ``pattern`` else with its shade."""
    region = img[rs, cs]
    colours = np.where(pattern[..., None], rgb, _shade(rgb)).astype(np.float32)
    region[mask] = colours[mask]


def _jitter(rng: np.random.Generator, rgb: Sequence[int], amount: int = 15) -> np.ndarray:
    out = np.asarray(rgb, dtype=np.float32) + rng.integers(-amount, amount + 1, size=3)
    return np.clip(out, 0, 255).astype(np.float32)


def _draw_object(
    img: np.ndarray, rng: np.random.Generator, style_index: int, box: Box
) -> tuple[slice, slice, np.ndarray]:
    """Draw one object of style ``style_index`` into ``img``; return its window and mask."""
    shape, rgb, texture = class_style(style_index)
    h, w = img.shape[:2]
    rs, cs, u, v = _window(box, h, w)
    mask = _shape_from_uv(shape, u, v)
    _paint(img, rs, cs, mask, _jitter(rng, rgb), texture_pattern(texture, u, v))
    return rs, cs, mask


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth low-saturation bilinear gradient between four random corner colours."""
    base = rng.uniform(70.0, 185.0)
    corners = np.clip(base + rng.uniform(-32.0, 32.0, size=(2, 2, 3)), 0, 255).astype(np.float32)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    return (
        corners[0, 0] * (1 - y) * (1 - x)
        + corners[0, 1] * (1 - y) * x
        + corners[1, 0] * y * (1 - x)
        + corners[1, 1] * y * x
    ).astype(np.float32)


def _draw_distractors(
    img: np.ndarray, rng: np.random.Generator, max_count: int = 3
) -> list[tuple[slice, slice, np.ndarray]]:
    """A few small low-contrast grey-ish blobs; returns their windows and masks."""
    h, w = img.shape[:2]
    out = []
    for _ in range(int(rng.integers(0, max_count + 1))):
        r = rng.uniform(0.04, 0.09) * min(h, w)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        aspect = rng.uniform(0.6, 1.6)
        box = (cx - r * aspect, cy - r / aspect, cx + r * aspect, cy + r / aspect)
        rs, cs, u, v = _window(box, h, w)
        if not (u.size and v.size):
            continue
        mask = _shape_from_uv("ellipse", u, v)
        local = img[min(int(cy), h - 1), min(int(cx), w - 1)]
        grey = float(local.mean()) + rng.uniform(-35.0, 35.0)
        rgb = np.clip(grey + rng.uniform(-12.0, 12.0, size=3), 0, 255).astype(np.float32)
        img[rs, cs][mask] = rgb
        out.append((rs, cs, mask))
    return out


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float = 4.0) -> np.ndarray:
    """Add mild Gaussian noise and convert to uint8 RGB."""
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _sample_box(
    rng: np.random.Generator, width: int, height: int, frac: float, max_frac: float = 0.95
) -> Box:
    """Random box whose side is ``frac`` of the shorter image side, aspect jittered, fully inside."""
    side = frac * min(width, height)
    aspect = math.exp(rng.uniform(-0.3, 0.3))
    bw = min(side * math.sqrt(aspect), max_frac * width)
    bh = min(side / math.sqrt(aspect), max_frac * height)
    x0 = rng.uniform(0.0, width - bw)
    y0 = rng.uniform(0.0, height - bh)
    return (x0, y0, x0 + bw, y0 + bh)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-6)


def _place_boxes(
    rng: np.random.Generator,
    width: int,
    height: int,
    count: int,
    frac_range: tuple[float, float],
    tiny_prob: float = 0.0,
    tiny_range: tuple[float, float] = (0.09, 0.13),
    max_overlap: float = 0.2,
    tries: int = 30,
) -> list[Box]:
    """Up to ``count`` boxes overlapping each other only slightly; the first is never tiny."""
    boxes: list[Box] = []
    for k in range(count):
        tiny = k > 0 and rng.random() < tiny_prob
        frac_lo, frac_hi = tiny_range if tiny else frac_range
        for _ in range(tries):
            box = _sample_box(rng, width, height, rng.uniform(frac_lo, frac_hi))
            if all(_overlap(box, other) <= max_overlap for other in boxes):
                boxes.append(box)
                break
    return boxes


def _tight_bbox(rs: slice, cs: slice, mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive 0-based ``(x0, y0, x1, y1)`` pixel bbox of a window mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return None
    return (cs.start + int(cols[0]), rs.start + int(rows[0]),
            cs.start + int(cols[-1]), rs.start + int(rows[-1]))


# --------------------------------------------------------------------------- #
# ImageNet
# --------------------------------------------------------------------------- #


def _render_classification(rng: np.random.Generator, size: int, style_index: int) -> np.ndarray:
    img = _background(rng, size, size)
    _draw_distractors(img, rng)
    box = _sample_box(rng, size, size, rng.uniform(0.35, 0.8))
    _draw_object(img, rng, style_index, box)
    return _finish(img, rng)


def _imagenet_params(num_classes: int, train_per_class: int, val_per_class: int, size: int,
                     seed: int) -> dict[str, Any]:
    return {"dataset": "imagenet", "version": _FORMAT_VERSION, "num_classes": num_classes,
            "train_per_class": train_per_class, "val_per_class": val_per_class,
            "size": size, "seed": seed}


def _make_imagenet(out: str | os.PathLike[str], *, num_classes: int, train_per_class: int,
                   val_per_class: int, size: int, seed: int) -> tuple[Path, bool]:
    check_count("num_classes", num_classes, 2)
    check_count("train_per_class", train_per_class)
    check_count("val_per_class", val_per_class)
    check_count("size", size, 16)
    check_seed(seed)
    root = Path(out) / "imagenet"
    params = _imagenet_params(num_classes, train_per_class, val_per_class, size, seed)

    def write(tmp: Path) -> dict[str, Any]:
        wnids = [f"n{c:08d}" for c in range(num_classes)]
        for c, wnid in enumerate(wnids):
            train_dir, val_dir = tmp / "train" / wnid, tmp / "val" / wnid
            train_dir.mkdir(parents=True)
            val_dir.mkdir(parents=True)
            for j in range(train_per_class):
                rng = np.random.default_rng([seed, _DS_IMAGENET, _SPLIT_TRAIN, c, j])
                save_jpeg(_render_classification(rng, size, c), train_dir / f"{wnid}_{j + 1}.JPEG", _JPEG_QUALITY)
            for j in range(val_per_class):
                rng = np.random.default_rng([seed, _DS_IMAGENET, _SPLIT_VAL, c, j])
                name = f"ILSVRC2012_val_{c * val_per_class + j + 1:08d}.JPEG"
                save_jpeg(_render_classification(rng, size, c), val_dir / name, _JPEG_QUALITY)
        return {"classes": num_classes, "train_images": num_classes * train_per_class,
                "val_images": num_classes * val_per_class}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_imagenet(
    out: str | os.PathLike[str],
    *,
    num_classes: int = 10,
    train_per_class: int = 80,
    val_per_class: int = 20,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write ``<out>/imagenet/{train,val}/<wnid>/*.JPEG`` (class ``c`` = ``class_style(c)``)."""
    return _make_imagenet(out, num_classes=num_classes, train_per_class=train_per_class,
                          val_per_class=val_per_class, size=size, seed=seed)[0]


# --------------------------------------------------------------------------- #
# Pascal VOC
# --------------------------------------------------------------------------- #

_VOC_DIFFICULT_AREA = 0.02  # tight-box area below this fraction of the image -> difficult


def _voc_source(year: str) -> VocSource:
    return VocSource(f"The {year} Database (TrickBench synthetic)", f"PASCAL {year}", "synthetic")


def _render_voc(
    rng: np.random.Generator, index: int, min_size: int, max_size: int
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One VOC image with 1-3 objects; the first object's class is ``index % 20``.
    An object: ``cls``, ``box`` (tight, 0-based inclusive), ``difficult``."""
    width = int(rng.integers(min_size, max_size + 1))
    height = int(rng.integers(min_size, max_size + 1))
    img = _background(rng, height, width)
    _draw_distractors(img, rng)
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    boxes = _place_boxes(rng, width, height, count, (0.22, 0.6), tiny_prob=0.08)
    nc = len(VOC_CLASSES)
    objects = []
    for k, box in enumerate(boxes):
        cls = index % nc if k == 0 else int(rng.integers(0, nc))
        rs, cs, mask = _draw_object(img, rng, cls, box)
        bb = _tight_bbox(rs, cs, mask)
        if bb is None:
            continue
        x0, y0, x1, y1 = bb
        area = (x1 - x0 + 1) * (y1 - y0 + 1)
        objects.append({
            "cls": cls,
            "box": bb,
            "difficult": int(area < _VOC_DIFFICULT_AREA * width * height),
        })
    return _finish(img, rng), objects


def _make_voc(out: str | os.PathLike[str], *, trainval_2007: int, test_2007: int,
              trainval_2012: int, min_size: int, max_size: int, seed: int) -> tuple[Path, bool]:
    check_count("trainval_2007", trainval_2007)
    check_count("test_2007", test_2007)
    check_count("trainval_2012", trainval_2012, 0)
    check_count("min_size", min_size, 48)
    check_count("max_size", max_size, min_size)
    check_seed(seed)
    root = Path(out) / "VOCdevkit"
    params = {"dataset": "voc", "version": _FORMAT_VERSION, "trainval_2007": trainval_2007,
              "test_2007": test_2007, "trainval_2012": trainval_2012, "min_size": min_size,
              "max_size": max_size, "seed": seed}

    def split(name: str, count: int, code: int, image_id: Callable[[int], str]) -> VocSplit:
        return VocSplit(name, count, image_id,
                        lambda i: _render_voc(np.random.default_rng([seed, _DS_VOC, code, i]), i, min_size, max_size))

    def write(tmp: Path) -> dict[str, Any]:
        years = {"VOC2007": [split("trainval", trainval_2007, _SPLIT_TRAIN, lambda i: f"{i + 1:06d}"),
                             split("test", test_2007, _SPLIT_TEST, lambda i: f"{trainval_2007 + i + 1:06d}")]}
        if trainval_2012 > 0:
            years["VOC2012"] = [split("trainval", trainval_2012, _SPLIT_2012, lambda i: f"2012_{i + 1:06d}")]
        return {year: write_voc_year(tmp / year, year, splits, class_names=VOC_CLASSES, source=_voc_source(year),
                                     jpeg_quality=_JPEG_QUALITY)
                for year, splits in years.items()}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_voc(
    out: str | os.PathLike[str],
    *,
    trainval_2007: int = 160,
    test_2007: int = 80,
    trainval_2012: int = 80,
    min_size: int = 160,
    max_size: int = 224,
    seed: int = 0,
) -> Path:
    """Write ``<out>/VOCdevkit/VOC2007`` (trainval + test) and ``VOC2012`` (trainval).

    Image width and height are drawn independently from ``[min_size, max_size]``.  The
    first object of image ``i`` of a split has class ``i % 20`` (so every class occurs
    in every split of >= 20 images); 0-2 extra objects get random classes.
    """
    return _make_voc(out, trainval_2007=trainval_2007, test_2007=test_2007,
                     trainval_2012=trainval_2012, min_size=min_size, max_size=max_size,
                     seed=seed)[0]


# --------------------------------------------------------------------------- #
# ADE20K
# --------------------------------------------------------------------------- #


def _band_masks(rng: np.random.Generator, height: int, width: int, n: int) -> np.ndarray:
    """Integer map (h, w) of ``n`` horizontal bands with wavy boundaries."""
    if n <= 1:
        return np.zeros((height, width), dtype=np.int32)
    cuts = np.sort(rng.uniform(0.2, 0.8, size=n - 1))
    while n > 2 and np.min(np.diff(cuts)) < 0.15:  # keep every band reasonably thick
        cuts = np.sort(rng.uniform(0.2, 0.8, size=n - 1))
    x = np.arange(width, dtype=np.float32)[None, :] + 0.5
    y = np.arange(height, dtype=np.float32)[:, None] + 0.5
    band = np.zeros((height, width), dtype=np.int32)
    for cut in cuts:
        amp = rng.uniform(0.0, 0.06) * height
        freq = rng.uniform(0.5, 2.0) * 2 * math.pi / width
        phase = rng.uniform(0, 2 * math.pi)
        band += y > (cut * height + amp * np.sin(freq * x + phase))
    return band


def _render_ade(
    rng: np.random.Generator, index: int, size: int, stuff: Sequence[tuple[int, int]],
    things: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: stuff bands, clutter (label 0), 1-3 objects, a thin unlabelled frame.

    ``stuff`` / ``things`` are ``(ade_id, style_index)`` pairs.  Image and label are
    painted from the same masks, in the same order.
    """
    height = int(round(size * rng.uniform(0.85, 1.15)))
    width = int(round(size * rng.uniform(0.85, 1.15)))
    img = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.uint8)

    if stuff:
        n_bands = min(int(rng.integers(2, 4)), len(stuff))
        first = index % len(stuff)
        others = [k for k in range(len(stuff)) if k != first]
        chosen = [first] + [others[k] for k in rng.permutation(len(others))[: n_bands - 1]]
        chosen = [chosen[k] for k in rng.permutation(len(chosen))]
        band = _band_masks(rng, height, width, len(chosen))
        period = max(size / 10.0, 4.0)
        bu = (np.arange(width, dtype=np.float32)[None, :] + rng.uniform(0, period)) / period
        bv = (np.arange(height, dtype=np.float32)[:, None] + rng.uniform(0, period)) / period
        full = (slice(0, height), slice(0, width))
        for b, k in enumerate(chosen):
            ade_id, style = stuff[k]
            _, rgb, texture = class_style(style)
            mask = band == b
            _paint(img, *full, mask, _jitter(rng, rgb), texture_pattern(texture, bu, bv))
            label[mask] = ade_id

    for rs, cs, mask in _draw_distractors(img, rng, max_count=4):
        label[rs, cs][mask] = 0  # clutter that is no annotated class

    if things:
        count = int(rng.integers(1, 4))
        boxes = _place_boxes(rng, width, height, count, (0.2, 0.5))
        for k, box in enumerate(boxes):
            ade_id, style = things[index % len(things)] if k == 0 else things[int(rng.integers(0, len(things)))]
            rs, cs, mask = _draw_object(img, rng, style, box)
            label[rs, cs][mask] = ade_id

    border = int(rng.integers(1, 4))  # thin unlabelled frame, as around many real ADE images
    frame = np.ones((height, width), dtype=bool)
    frame[border:-border, border:-border] = False
    img[frame] = np.clip(rng.uniform(20.0, 60.0) + rng.uniform(-8.0, 8.0, size=3), 0, 255)
    label[frame] = 0
    return _finish(img, rng), label


def _make_ade20k(out: str | os.PathLike[str], *, train: int, val: int, size: int,
                 class_ids: Iterable[int], seed: int) -> tuple[Path, bool]:
    ids = [int(c) for c in class_ids]
    if not ids or len(set(ids)) != len(ids) or not all(1 <= c <= 150 for c in ids):
        raise DataGenParamError(f"class_ids must be distinct ADE20K ids in 1..150, got {ids!r}")
    check_count("train", train)
    check_count("val", val)
    check_count("size", size, 32)
    check_seed(seed)
    root = Path(out) / "ADEChallengeData2016"
    params = {"dataset": "ade20k", "version": _FORMAT_VERSION, "train": train, "val": val,
              "size": size, "class_ids": ids, "seed": seed}
    # The k-th configured id uses style k (the shared vocabulary).
    stuff = [(c, k) for k, c in enumerate(ids) if c in ADE_STUFF_IDS]
    things = [(c, k) for k, c in enumerate(ids) if c not in ADE_STUFF_IDS]

    def write(tmp: Path) -> dict[str, Any]:
        pixel_counts = np.zeros(256, dtype=np.int64)
        for split, prefix, count, code in (("training", "ADE_train", train, _SPLIT_TRAIN),
                                           ("validation", "ADE_val", val, _SPLIT_VAL)):
            img_dir, ann_dir = tmp / "images" / split, tmp / "annotations" / split
            img_dir.mkdir(parents=True)
            ann_dir.mkdir(parents=True)
            for i in range(count):
                rng = np.random.default_rng([seed, _DS_ADE, code, i])
                arr, label = _render_ade(rng, i, size, stuff, things)
                stem = f"{prefix}_{i + 1:08d}"
                save_jpeg(arr, img_dir / f"{stem}.jpg", _JPEG_QUALITY)
                Image.fromarray(np.ascontiguousarray(label)).save(ann_dir / f"{stem}.png", format="PNG")
                pixel_counts += np.bincount(label.ravel(), minlength=256)
        total = int(pixel_counts.sum())
        return {"training_images": train, "validation_images": val,
                "unlabelled_fraction": round(float(pixel_counts[0]) / total, 4),
                "pixel_fraction": {str(c): round(float(pixel_counts[c]) / total, 4) for c in ids}}

    return root, materialise(root, params, write, generator=GENERATOR, marker_name=MARKER_NAME)


def make_ade20k(
    out: str | os.PathLike[str],
    *,
    train: int = 160,
    val: int = 40,
    size: int = 128,
    class_ids: Iterable[int] = ADE_DEFAULT_CLASS_IDS,
    seed: int = 0,
) -> Path:
    """Write ``<out>/ADEChallengeData2016/{images,annotations}/{training,validation}``.

    Ids in ``ADE_STUFF_IDS`` become 2-3 wavy background bands, the others 1-3 shaped
    objects; the ``k``-th id of ``class_ids`` is drawn with ``class_style(k)``.  Image
    sides are drawn from ``[0.85, 1.15] * size``.
    """
    return _make_ade20k(out, train=train, val=val, size=size, class_ids=class_ids, seed=seed)[0]


# --------------------------------------------------------------------------- #
# All at once
# --------------------------------------------------------------------------- #

DATASETS: tuple[str, ...] = LAYOUTS


def _scaled_kwargs(scale: float) -> dict[str, dict[str, Any]]:
    """Per-dataset keyword arguments for ``scale`` (keeps >= 2 samples per class and split)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise DataGenParamError(f"scale must be a positive finite number, got {scale!r}")

    def n(default: int, minimum: int) -> int:
        return max(minimum, int(round(default * scale)))

    voc_min = 2 * len(VOC_CLASSES)  # every class is the primary object of >= 2 images per split
    n_stuff = sum(c in ADE_STUFF_IDS for c in ADE_DEFAULT_CLASS_IDS)
    ade_min = max(2, n_stuff, len(ADE_DEFAULT_CLASS_IDS) - n_stuff)
    return {
        "imagenet": {"train_per_class": n(80, 2), "val_per_class": n(20, 2)},
        "voc": {"trainval_2007": n(160, voc_min), "test_2007": n(80, voc_min),
                "trainval_2012": n(80, voc_min)},
        "ade20k": {"train": n(160, ade_min), "val": n(40, ade_min)},
    }


_MAKERS: dict[str, Callable[..., tuple[Path, bool]]] = {
    "imagenet": lambda out, seed, kw: _make_imagenet(
        out, num_classes=10, size=64, seed=seed, **kw),
    "voc": lambda out, seed, kw: _make_voc(
        out, min_size=160, max_size=224, seed=seed, **kw),
    "ade20k": lambda out, seed, kw: _make_ade20k(
        out, size=128, class_ids=ADE_DEFAULT_CLASS_IDS, seed=seed, **kw),
}


def makers(out: str | os.PathLike[str], *, scale: float = 1.0,
           seed: int = 0) -> dict[str, Callable[[], tuple[Path, bool]]]:
    """Per dataset, a call that writes it under ``out`` (or finds it up to date):
    ``() -> (root, written)``; ``scale`` multiplies the per-split counts. The parameters
    are checked here, before anything is written."""
    check_seed(seed)
    kwargs = _scaled_kwargs(scale)
    return {name: functools.partial(_MAKERS[name], out, seed, kwargs[name]) for name in DATASETS}


def make_all(out: str | os.PathLike[str], *, scale: float = 1.0, seed: int = 0) -> dict[str, Path]:
    """Write all three datasets under ``out``; ``scale`` multiplies the per-split counts."""
    return {name: make()[0] for name, make in makers(out, scale=scale, seed=seed).items()}


def describe(name: str, root: Path) -> str:
    """One line on the dataset ``name`` written at ``root``, from its marker."""
    marker = read_marker(root, MARKER_NAME) or {}
    p, s = marker.get("params", {}), marker.get("stats", {})
    if name == "imagenet":
        return (f"imagenet: {p.get('num_classes')} classes, {s.get('train_images')} train + "
                f"{s.get('val_images')} val images, {p.get('size')}px")
    if name == "voc":
        v7, v12 = s.get("VOC2007", {}), s.get("VOC2012", {})
        objs = v7.get("objects", 0) + v12.get("objects", 0)
        diff = v7.get("difficult", 0) + v12.get("difficult", 0)
        return (f"voc: VOC2007 {v7.get('trainval_images')} trainval + {v7.get('test_images')} test, "
                f"VOC2012 {v12.get('trainval_images', 0)} trainval images, {objs} objects "
                f"({diff} difficult), {p.get('min_size')}-{p.get('max_size')}px")
    ids = p.get("class_ids", [])
    names = ",".join(f"{c}:{_ADE_NAMES.get(c, '?')}" for c in ids)
    return (f"ade20k: {s.get('training_images')} training + {s.get('validation_images')} "
            f"validation images, ~{p.get('size')}px, classes [{names}], "
            f"{100 * s.get('unlabelled_fraction', 0):.1f}% unlabelled pixels")
