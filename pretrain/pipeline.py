"""The input pipeline of pretraining (``data.backend="cpu"``, the default): the paper's §2.1
augmentation with every random draw of the reference pipeline (:mod:`pretrain.data`,
``data.backend="pil"``), at about 1.9 times its images per CPU core.

What a loader worker does per image, and what it costs (one core, ``benchmarks/input_pipeline.py``'s
ImageNet-like JPEGs, marginal costs in the worker's loop; the reference takes 4.7 ms in all):

* reads the bytes and the JPEG header (0.07 ms), then draws the crop box, the flip, the jitter
  and the lighting from the sample's own seed **in the reference pipeline's order and with its
  generator calls** (torchvision's ``RandomResizedCrop.get_params``, ``ColorJitter.get_params``,
  :class:`~pretrain.data.Lighting`), so the draws are the same (0.1 ms);
* decodes with libjpeg-turbo to RGBX (:mod:`pretrain.decode`; 1.0-1.1 ms, the floor: entropy
  decoding is most of it), scaled in the DCT domain when the crop is at least twice the output
  on both sides;
* crops (one copy, mirrored if flipped) and resizes on the ``uint8`` pixels with torch's
  antialiased bilinear kernel in channels_last memory (0.25 ms; about 4x PIL's resize);
* applies the colour jitter with PIL's own operations on a PIL view of those pixels (no copy),
  in the drawn order: brightness and contrast as 256-entry lookup tables built from
  ``Image.blend`` (the same bytes as ``ImageEnhance``, one pass instead of three), saturation
  as ``ImageEnhance.Color`` (0.3 ms);
* packs the result into a ``uint8`` (H, W, 3) tensor in one pass (0.05 ms) and hands it over
  with the lighting offset: 4x less than floats for the loader to copy into shared memory
  (0.12 ms a image for ``uint8``) and to move to the GPU.

The float conversion, the PCA lighting and the normalisation run per batch on the training
device (:class:`OnDevice`; 0.24 ms an image when that device is a CPU) with the reference's
operations in its order. Colour jitter stays in the worker: on ``uint8`` PIL does it in 0.3 ms,
where float tensor operations on a CPU take ten times as long, and the two only agree to within
PIL's rounding anyway.

With ``augment="flip"`` or ``"none"`` (small images such as Fashion-MNIST) the worker keeps the
reference's PIL resize, so the batches are the reference's to the bit.
"""
from __future__ import annotations

import math
import operator
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision import transforms

from . import decode as dec
from .data import MEAN, PCA_EIGVAL, PCA_EIGVEC, STD, DatasetError, sample_seed, seeded

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)   # §2.1's RandomResizedCrop
JITTER = 0.4                                   # §2.1: brightness, contrast, saturation in [0.6, 1.4]
LIGHTING_STD = 0.1

_LOG_RATIO = tuple(torch.log(torch.tensor(list(RATIO))).tolist())   # as get_params computes it, float32
_JITTER = transforms.ColorJitter(JITTER, JITTER, JITTER)
_BRIGHTNESS, _CONTRAST, _SATURATION = (tuple(r) for r in (_JITTER.brightness, _JITTER.contrast, _JITTER.saturation))
_EIGVAL, _EIGVEC = torch.tensor(PCA_EIGVAL), torch.tensor(PCA_EIGVEC)
# What torchvision's calls allocate for each draw, allocated once: ``torch.rand(1)`` and
# ``torch.empty(1).uniform_`` fill a new float tensor of one element, ``torch.randint(lo, hi, (1,))``
# a new int64 one (``random_``), ``torch.randn(3)`` a new float tensor of three (``normal_``).
_ONE, _INT, _THREE = torch.empty(1), torch.empty(1, dtype=torch.int64), torch.empty(3)


@dataclass
class Draws:
    """One training sample's random draws, in the reference pipeline's order."""
    box: tuple[int, int, int, int]          # top, left, height, width in the full image
    flip: bool
    order: list[int]                        # 0 brightness, 1 contrast, 2 saturation, 3 hue (not used)
    factors: tuple[float, float, float]     # brightness, contrast, saturation
    lighting: torch.Tensor                  # the RGB offset eigvec @ (alpha * eigval), alpha ~ N(0, 0.1)


def draw(width: int, height: int) -> Draws:
    """The draws of the reference transform (:func:`pretrain.data.train_transform`, ``"paper"``)
    on an image of this size, from torch's global generator, in its order: crop, flip, jitter,
    lighting. The crop and the jitter are torchvision's ``RandomResizedCrop.get_params`` and
    ``ColorJitter.get_params`` call for call, and the lighting :class:`pretrain.data.Lighting`'s:
    the same generator calls on tensors of the same shapes and dtypes, the same arithmetic, but
    without the tensors they allocate and build around them each time (in the worker, 0.3 ms an
    image before, 0.15 now). The same values, checked against torchvision's for 20,000 seeds."""
    box = _crop_params(width, height)
    flip = _ONE.uniform_(0, 1).item() < 0.5                  # torch.rand(1) < 0.5
    order = torch.randperm(4).tolist()
    factors = (_ONE.uniform_(*_BRIGHTNESS).item(), _ONE.uniform_(*_CONTRAST).item(), _ONE.uniform_(*_SATURATION).item())
    alpha = _THREE.normal_().mul_(LIGHTING_STD)              # torch.randn(3) * LIGHTING_STD
    return Draws(box, flip, order, factors, torch.mv(_EIGVEC, alpha.mul_(_EIGVAL)))


def _crop_params(width: int, height: int) -> tuple[int, int, int, int]:
    """``transforms.RandomResizedCrop.get_params(img, SCALE, RATIO)`` on a ``width`` x ``height`` image."""
    area = height * width
    for _ in range(10):
        target_area = area * _ONE.uniform_(SCALE[0], SCALE[1]).item()
        aspect_ratio = _ONE.uniform_(_LOG_RATIO[0], _LOG_RATIO[1]).exp_().item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = _INT.random_(0, height - h + 1).item()           # torch.randint(0, height - h + 1, (1,))
            j = _INT.random_(0, width - w + 1).item()
            return i, j, h, w
    in_ratio = float(width) / float(height)   # fallback to a central crop
    if in_ratio < min(RATIO):
        w = width
        h = int(round(w / min(RATIO)))
    elif in_ratio > max(RATIO):
        h = height
        w = int(round(h * max(RATIO)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def jitter(img: Image.Image, order: Sequence[int], factors: Sequence[float]) -> Image.Image:
    """torchvision's ``ColorJitter`` on an RGB PIL image with these draws: the same bytes, faster.
    Brightness and contrast are ``ImageEnhance``'s blends as lookup tables (one pass instead of
    three; a contrast just before a brightness is one table), saturation is ``ImageEnhance.Color``
    without its bookkeeping; all on PIL's image cores, without an ``Image`` around each step."""
    im = img.im
    ops = [op for op in order if op != 3]
    k = 0
    while k < len(ops):
        op = ops[k]
        if op == 0:
            im = im.point(_blend_lut(0, factors[0]), None)
        elif op == 1:   # ImageEnhance.Contrast: blend with the rounded mean of the grayscale image
            total = sum(map(operator.mul, im.convert("L").histogram(), _LEVELS))
            lut = _blend_lut(int(total / (im.size[0] * im.size[1]) + 0.5), factors[1])
            if k + 1 < len(ops) and ops[k + 1] == 0:   # then brightness: one table for both
                lut = lut.point(_blend_lut(0, factors[0], 1), None)
                k += 1
            im = im.point(lut, None)
        else:   # ImageEnhance.Color: blend with the grayscale image
            im = Image.core.blend(im.convert("L").convert("RGB"), im, factors[2])
        k += 1
    return img._new(im) if im is not img.im else img


_LEVELS = range(256)
_RAMPS = {n: Image.frombytes("L", (256 * n, 1), bytes(_LEVELS) * n).im for n in (1, 3)}
_LEVEL_ROWS: dict[tuple[int, int], object] = {}


def _blend_lut(level: int, factor: float, bands: int = 3):
    """``Image.blend(constant level, img, factor)`` as a lookup table for ``Image.point`` (an L
    image core of the 256 entries once per band): blend is per pixel and per band, so applying
    it to the 256 values gives every output it can produce."""
    row = _LEVEL_ROWS.get((level, bands))
    if row is None:
        row = _LEVEL_ROWS[level, bands] = Image.core.fill("L", (256 * bands, 1), level)
    return Image.core.blend(row, _RAMPS[bands], factor)


class DecodeCounts:
    """How often DCT scaling fired in this process (for the benchmark and the log)."""

    def __init__(self):
        self.images = 0
        self.scaled = 0
        self.fallback = 0     # decoded by PIL (CMYK, PNG, ...)

    def add(self, decoded: np.ndarray, header: dec.Header) -> None:
        self.images += 1
        self.scaled += decoded.shape[1] < header.width
        self.fallback += not header.turbo


COUNTS = DecodeCounts()


def resized_crop_u8(img: np.ndarray, box_full: tuple[int, int, int, int], full: tuple[int, int],
                    size: int, flip: bool = False) -> torch.Tensor:
    """The crop ``box_full`` (top, left, height, width in pixels of the ``full`` (width, height)
    image) of ``img`` (the image as decoded, perhaps DCT-scaled; (H, W, C) uint8), resized to
    ``size`` x ``size`` and, with ``flip``, mirrored left to right: uint8 (size, size, C).
    Scaled images are cropped at the box's exact place in their own pixels.

    With C = 4 (RGBX) torch's antialiased uint8 kernel reads and writes the pixels as they are
    (with 3 it unpacks them to 4 and packs them back). The crop is copied once, into the
    channels_last layout the kernel reads; a flip is that copy's order (the kernel's weights are
    mirror-symmetric: resizing the mirrored crop gives the mirrored output, bit for bit)."""
    pixels = torch.from_numpy(img)                      # H, W, C uint8, no copy
    height, width = img.shape[:2]
    sx, sy = width / full[0], height / full[1]
    top, left, h, w = box_full
    if sx == 1 and sy == 1:
        region = pixels[top:top + h, left:left + w]
    else:
        t0, l0 = round(top * sy), round(left * sx)
        t1, l1 = min(height, round((top + h) * sy)), min(width, round((left + w) * sx))
        region = pixels[t0:t1, l0:l1]
    region = region.flip(1) if flip else region.contiguous()
    # (1, C, h, w) in channels_last memory. unsqueeze before permute: the other order gives the
    # batch dimension a stride of C, with which torch takes the tensor for contiguous NCHW and
    # writes the output so, and the permute back to (H, W, C) becomes a transposing copy (2.5x the
    # resize's own time).
    x = region.unsqueeze(0).permute(0, 3, 1, 2)
    # F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    # is this call after 20 us of argument checks.
    out = _resize_aa(x, (size, size), False, None, None)
    return out[0].permute(1, 2, 0).contiguous()         # no copy: the output is channels_last


_resize_aa = getattr(torch._C._nn, "_upsample_bilinear2d_aa", None) or (
    lambda x, size, align_corners, *_: F.interpolate(x, size=size, mode="bilinear", antialias=True,
                                                     align_corners=align_corners))
_EMPTY_RGB = Image.new("RGB", (0, 0))


def rgb_view(pixels: torch.Tensor) -> Image.Image:
    """A PIL ``RGB`` image on the memory of ``pixels`` (uint8 (H, W, 4), contiguous), no copy:
    PIL keeps RGB as 4 bytes a pixel, the fourth unused. Read-only for PIL (its operations make
    new images); ``pixels`` must outlive it."""
    height, width = pixels.shape[:2]
    img = _EMPTY_RGB._new(Image.core.map_buffer(pixels.numpy(), (width, height), "raw", 0, ("RGB", 0, 1)))
    img.readonly = 1
    return img


def rgb_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 (H, W, 3) tensor: one pass packing PIL's 4 bytes a pixel into
    3, one copy into the tensor (``np.array(img)`` makes one more)."""
    width, height = img.size
    encoder = Image.core.raw_encoder("RGB", "RGB", 0, 1)      # Image._getencoder("RGB", "raw", ("RGB", 0, 1))
    try:
        encoder.setimage(img.im, (0, 0, width, height))
        _, status, data = encoder.encode(width * height * 3)   # the whole image in one block
    finally:
        encoder.cleanup()
    if status != 1:
        raise RuntimeError(f"packing a {width} x {height} image failed ({status})")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(height, width, 3)


class PaperTransform:
    """§2.1 for a training image file: (uint8 (S, S, 3) after crop, flip and jitter; the lighting
    offset (3,)). Draws from torch's global generator (seeded per sample by :class:`Samples`)."""

    def __init__(self, image_size: int):
        self.size = image_size

    def __call__(self, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = dec.read_bytes(path)
        header = dec.read_header(path, data)
        d = draw(header.width, header.height)
        factor = dec.dct_factor((d.box[3], d.box[2]), (self.size, self.size))
        img = dec.decode(path, data, header, factor, channels=4)
        COUNTS.add(img, header)
        pixels = resized_crop_u8(img, d.box, (header.width, header.height), self.size, d.flip)
        return rgb_tensor(jitter(rgb_view(pixels), d.order, d.factors)), d.lighting


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
        COUNTS.add(img, header)
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
        return seeded(sample_seed(self.seed, epoch, index), lambda: self._item(path, label))

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
    The result is in ``channels_last`` memory when asked, else contiguous.

    On a CPU (the benchmark's stand-in for the GPU, or a CPU run) two things the GPU does not
    need: the operations run image by image, so the five passes over each image's floats stay in
    the cache; and the float batch goes into the memory of an earlier batch that nothing holds
    any more, as the CUDA caching allocator does on a GPU. A fresh 38 MB batch (64 x 224 x 224
    x 3 floats) costs about 9,400 page faults, 0.2 ms per image, as much as the arithmetic."""

    def __init__(self, device: torch.device, channels_last: bool = False):
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self._spare: list[torch.Tensor] = []     # CPU: the last batches returned, for reuse once free

    def __call__(self, images: torch.Tensor, lighting: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = images.shape
        # From uint8 (N, H, W, 3) straight into the float layout asked for, then in place: on a CPU
        # this is 3x faster than converting the channels_last view and copying it afterwards.
        x = self._output((n, 3, h, w), images.device)
        src, offset = images.permute(0, 3, 1, 2), lighting.view(-1, 3, 1, 1) if lighting.numel() else None
        if x.device.type != "cpu":
            x.copy_(src).div_(255)
            if offset is not None:
                x.add_(offset)
            return x.sub_(self.mean).div_(self.std)
        mean, std = self.mean[0], self.std[0]
        offsets = offset.unbind(0) if offset is not None else (None,) * n
        for xi, si, oi in zip(x.unbind(0), src.unbind(0), offsets):
            xi.copy_(si).div_(255)
            if oi is not None:
                xi.add_(oi)
            xi.sub_(mean).div_(std)
        return x

    def _output(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if device.type != "cpu":
            return torch.empty(shape, device=device, memory_format=self.format)
        for k in range(len(self._spare)):
            if self._spare[k].shape == shape and _unused(self._spare, k):
                return self._spare[k]
        x = torch.empty(shape, memory_format=self.format)
        self._spare = [b for b in self._spare if b.shape == shape][-1:] + [x]
        return x


def _owners(tensors: list[torch.Tensor], k: int) -> tuple[int, ...]:
    """Who holds the ``k``-th of ``tensors``: Python references to it, C++ references to its
    tensor (views, autograd's saved tensors, DLPack) and to its storage, Python references to the
    storage."""
    refs = sys.getrefcount(tensors[k])
    storage = tensors[k].untyped_storage()
    return refs, tensors[k]._use_count(), torch._C._storage_Use_Count(storage._cdata), sys.getrefcount(storage)


def _unused(tensors: list[torch.Tensor], k: int) -> bool:
    """Whether nothing but the list ``tensors`` holds its ``k``-th tensor: the owners of a tensor
    that only a list holds (measured once, on this Python and this torch)."""
    return _FREE is not None and _owners(tensors, k) == _FREE


try:
    _FREE: tuple[int, ...] | None = _owners([torch.empty(1)], 0)
except AttributeError:   # a torch without these counts: never reuse
    _FREE = None
