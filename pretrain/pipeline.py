"""The input pipeline of pretraining (``data.backend="cpu"``, the default): the paper's §2.1
augmentation with every random draw of the reference pipeline (:mod:`pretrain.data`,
``data.backend="pil"``), at about twice its images per CPU core.

What a loader worker does per image, and why (measured on one core, ``benchmarks/input_pipeline.py``):

* reads the bytes and the JPEG header, then draws the crop box, the flip, the jitter and the
  lighting from the sample's own seed **in the reference pipeline's order and with its
  functions** (torchvision's ``RandomResizedCrop.get_params``, ``ColorJitter.get_params``),
  so the draws are the same;
* decodes with libjpeg-turbo (:mod:`pretrain.decode`), scaled in the DCT domain when the crop
  is at least twice the output on both sides;
* crops and resizes on the ``uint8`` pixels with torch's antialiased bilinear kernel (a view of
  the crop, no copy; about 4x PIL's resize), then flips;
* applies the colour jitter with PIL's own operations, in the drawn order: brightness and
  contrast as 256-entry lookup tables built from ``Image.blend`` (the same bytes as
  ``ImageEnhance``, one pass instead of three), saturation through ``ImageEnhance.Color``;
* hands over ``uint8`` pixels (4x less to copy and to move to the GPU than floats) and the
  lighting offset.

The float conversion, the PCA lighting and the normalisation run per batch on the training
device (:class:`OnDevice`) with the reference's operations in its order. Colour jitter stays
in the worker: on ``uint8`` PIL does it in 0.2-0.5 ms, where float tensor operations on a CPU
take ten times as long, and the two only agree to within PIL's rounding anyway.

With ``augment="flip"`` or ``"none"`` (small images such as Fashion-MNIST) the worker keeps the
reference's PIL resize, so the batches are the reference's to the bit.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageStat
from torch.utils.data import Dataset, Sampler
from torchvision import transforms

from . import decode as dec
from .data import MEAN, PCA_EIGVAL, PCA_EIGVEC, STD, DatasetError, sample_seed

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)   # §2.1's RandomResizedCrop
JITTER = 0.4                                   # §2.1: brightness, contrast, saturation in [0.6, 1.4]
LIGHTING_STD = 0.1

_GRADIENT = Image.frombytes("RGB", (256, 1), bytes(v for v in range(256) for _ in range(3)))


def _size_only(height: int, width: int) -> torch.Tensor:
    """A tensor that torchvision's ``get_params`` reads the size of, without pixels behind it."""
    return torch.empty(()).expand(3, height, width)


@dataclass
class Draws:
    """One training sample's random draws, in the reference pipeline's order."""
    box: tuple[int, int, int, int]          # top, left, height, width in the full image
    flip: bool
    order: list[int]                        # 0 brightness, 1 contrast, 2 saturation, 3 hue (not used)
    factors: tuple[float, float, float]     # brightness, contrast, saturation
    lighting: torch.Tensor                  # the RGB offset eigvec @ (alpha * eigval), alpha ~ N(0, 0.1)


_JITTER = transforms.ColorJitter(JITTER, JITTER, JITTER)
_EIGVAL, _EIGVEC = torch.tensor(PCA_EIGVAL), torch.tensor(PCA_EIGVEC)


def draw(width: int, height: int) -> Draws:
    """The draws of the reference transform (:func:`pretrain.data.train_transform`, ``"paper"``)
    on an image of this size, from torch's global generator, with the reference's own functions
    and in its order: crop, flip, jitter, lighting."""
    top, left, h, w = transforms.RandomResizedCrop.get_params(_size_only(height, width), list(SCALE), list(RATIO))
    flip = bool(torch.rand(1) < 0.5)
    order, b, c, s, _ = _JITTER.get_params(_JITTER.brightness, _JITTER.contrast, _JITTER.saturation, _JITTER.hue)
    alpha = torch.randn(3) * LIGHTING_STD
    return Draws((top, left, h, w), flip, [int(i) for i in order], (b, c, s), _EIGVEC @ (alpha * _EIGVAL))


def jitter(img: Image.Image, order: Sequence[int], factors: Sequence[float]) -> Image.Image:
    """torchvision's ``ColorJitter`` on a PIL image with these draws: the same bytes, faster."""
    for op in order:
        if op == 0:
            img = img.point(_blend_lut(0, factors[0]))
        elif op == 1:
            mean = int(ImageStat.Stat(img.convert("L")).mean[0] + 0.5)   # as ImageEnhance.Contrast
            img = img.point(_blend_lut(mean, factors[1]))
        elif op == 2:   # ImageEnhance.Color, without its bookkeeping
            img = Image.blend(img.convert("L").convert("RGB"), img, factors[2])
    return img


def _blend_lut(level: int, factor: float) -> list[int]:
    """``Image.blend(constant level, img, factor)`` as a lookup table: blend is per pixel and
    per band, so applying it to the 256 values gives every output it can produce."""
    return list(Image.blend(Image.new("RGB", (256, 1), (level,) * 3), _GRADIENT, factor).tobytes()[0::3]) * 3


class DecodeCounts:
    """How often DCT scaling fired in this process (for the benchmark and the log)."""

    def __init__(self):
        self.images = 0
        self.scaled = 0
        self.fallback = 0     # decoded by PIL (CMYK, PNG, ...)


COUNTS = DecodeCounts()


def resized_crop_u8(img: np.ndarray, box_full: tuple[int, int, int, int], full: tuple[int, int],
                    size: int) -> torch.Tensor:
    """The crop ``box_full`` (top, left, height, width in pixels of the ``full`` (width, height)
    image) of ``img`` (the image as decoded, perhaps DCT-scaled), resized to ``size`` x ``size``:
    uint8 (H, W, 3). Scaled images are cropped at the box's exact place in their own pixels."""
    pixels = torch.from_numpy(img)                      # H, W, 3 uint8, no copy
    height, width = img.shape[:2]
    sx, sy = width / full[0], height / full[1]
    top, left, h, w = box_full
    if sx == 1 and sy == 1:
        region = pixels[top:top + h, left:left + w]
    else:
        t0, l0 = round(top * sy), round(left * sx)
        t1, l1 = min(height, round((top + h) * sy)), min(width, round((left + w) * sx))
        region = pixels[t0:t1, l0:l1]
    # (1, 3, h, w) in channels_last memory, the layout torch's fast uint8 antialiased kernel reads.
    x = region.permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=torch.channels_last)
    out = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].permute(1, 2, 0).contiguous()


class PaperTransform:
    """§2.1 for a training image file: (uint8 (S, S, 3) after crop, flip and jitter; the lighting
    offset (3,)). Draws from torch's global generator (seeded per sample by :class:`SeededSamples`)."""

    def __init__(self, image_size: int):
        self.size = image_size

    def __call__(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = dec.read_bytes(path)
        header = dec.read_header(path, data)
        d = draw(header.width, header.height)
        factor = dec.dct_factor((d.box[3], d.box[2]), (self.size, self.size))
        img = dec.decode(path, data, header, factor)
        COUNTS.images += 1
        COUNTS.scaled += img.shape[1] < header.width
        COUNTS.fallback += not header.turbo
        pixels = resized_crop_u8(img, d.box, (header.width, header.height), self.size)
        if d.flip:
            pixels = pixels.flip(1)
        out = jitter(Image.fromarray(pixels.numpy(), "RGB"), d.order, d.factors)
        return torch.from_numpy(np.array(out, dtype=np.uint8)), d.lighting


class ReferenceResize:
    """``augment="flip"`` / ``"none"`` and validation: the reference's PIL resize, optional
    flip and center crop on the decoded image, as uint8 (H, W, 3), and no lighting. A JPEG is
    DCT-scaled first when its shorter side is at least twice ``resize``."""

    def __init__(self, resize: int, crop: int | None, flip: bool):
        self.resize, self.crop, self.flip = resize, crop, flip
        steps = [transforms.Resize(resize)] + ([transforms.CenterCrop(crop)] if crop else [])
        self.steps = transforms.Compose(steps + ([transforms.RandomHorizontalFlip()] if flip else []))

    def __call__(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = dec.read_bytes(path)
        header = dec.read_header(path, data)
        short = min(header.width, header.height)
        factor = dec.dct_factor((short, short), (self.resize, self.resize))
        img = dec.decode(path, data, header, factor)
        COUNTS.images += 1
        COUNTS.scaled += img.shape[1] < header.width
        COUNTS.fallback += not header.turbo
        out = self.steps(Image.fromarray(img, "RGB"))
        return torch.from_numpy(np.array(out, dtype=np.uint8)), torch.empty(0)


class Samples(Dataset):
    """``(uint8 (H, W, 3) image, label, lighting offset)`` for each of ImageFolder's ``samples``.

    Indices are ``(epoch, index)`` pairs (:class:`EpochIndices`) when ``seed`` is given: every
    random draw derives from (seed, epoch, index) alone, so a sample is the same in any worker,
    for any number of workers, in a resumed run, and in persistent workers that never see
    ``set_epoch``."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform, seed: int | None = None):
        self.samples, self.transform, self.seed = samples, transform, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        if self.seed is None:
            path, label = self.samples[key]
            return self._item(path, label)
        epoch, index = key
        path, label = self.samples[index]
        seed = sample_seed(self.seed, epoch, index)
        # Only the CPU generator draws here; seeding it alone costs 1 us, torch.manual_seed 80.
        if torch.utils.data.get_worker_info() is not None:   # a loader worker: its stream is its own
            torch.default_generator.manual_seed(seed)
            return self._item(path, label)
        with torch.random.fork_rng(devices=[]):             # the main process: its stream goes on untouched
            torch.default_generator.manual_seed(seed)
            return self._item(path, label)

    def _item(self, path: str, label: int):
        try:
            image, lighting = self.transform(path)
        except dec.DecodeError as e:
            raise DatasetError(str(e)) from None
        return image, label, lighting


class EpochIndices(Sampler):
    """A sampler's indices tagged with the epoch: ``(epoch, index)``. The epoch travels with
    each index to the workers, so they can stay alive between epochs (``persistent_workers``)."""

    def __init__(self, sampler):
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class OnDevice:
    """The per-batch end of the pipeline, on the training device: ``uint8`` (N, H, W, 3) to the
    normalised float batch, with the reference's operations in its order (``ToTensor``'s
    division, the PCA lighting offset, ``Normalize``), so each pixel gets the same float value.
    The result is in ``channels_last`` memory when asked, else contiguous."""

    def __init__(self, device: torch.device, channels_last: bool = False):
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor, lighting: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = images.shape
        # One pass from uint8 (N, H, W, 3) into the float layout asked for, then in place: on a CPU
        # this is 3x faster than converting the channels_last view and copying it afterwards.
        x = torch.empty((n, 3, h, w), device=images.device, memory_format=self.format)
        x.copy_(images.permute(0, 3, 1, 2)).div_(255)
        if lighting.numel():
            x.add_(lighting.view(-1, 3, 1, 1))
        return x.sub_(self.mean).div_(self.std)
