"""Image decoding for the training and validation pipelines.

JPEGs go through libjpeg-turbo by way of ``simplejpeg`` (about twice PIL's speed on one
core, ``../shared/REFERENCE.md`` section 8), with the same accurate integer IDCT and
fancy upsampling that Pillow's own libjpeg-turbo uses, so a full decode gives the same
pixels. What libjpeg-turbo cannot turn into RGB (ImageNet holds 22 CMYK JPEGs and one
PNG named ``.JPEG``) and every other format go through PIL.

Both decoders can scale a JPEG down by 1/2, 1/4 or 1/8 in the DCT domain while decoding
(simplejpeg's ``min_width``/``min_height``, PIL's ``Image.draft``), which skips most of
the work. :func:`decode` scales only as far as keeps a region of interest at least as
large as the size it will be resized to, so the resize still only shrinks: it pays for
crops whose both sides are at least twice the output, and is a no-op for the rest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from trickbench.errors import TrickBenchError

try:  # an optional speed-up: the pipeline runs, slower, with PIL alone
    import simplejpeg
except ImportError:  # pragma: no cover - simplejpeg is a dependency
    simplejpeg = None


class DecodeError(TrickBenchError, RuntimeError):
    """An image that cannot be read; the message names the file and the fix."""


def unreadable(path: str, error: Exception) -> DecodeError:
    return DecodeError(f"corrupt or unreadable image {path}: {error}. Replace it with a good copy "
                       f"(re-extract the archive) or delete it and restart the run.")


@dataclass
class Header:
    """What an image's header says: its size and whether libjpeg-turbo can decode it to RGB."""
    width: int
    height: int
    turbo: bool   # a JPEG that simplejpeg decodes (not CMYK, not another format)


def read_header(path: str, data: bytes) -> Header:
    """The size of the image in ``data`` (read from ``path``) without decoding it."""
    if simplejpeg is not None and data[:2] == b"\xff\xd8":
        try:
            height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            if colorspace not in ("CMYK", "YCCK"):
                return Header(width, height, turbo=True)
        except ValueError:
            pass  # let PIL say what is wrong, or read what libjpeg-turbo would not
    try:
        with Image.open(_bytes_io(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise unreadable(path, e) from e
    return Header(width, height, turbo=False)


def dct_factor(region: tuple[float, float], out: tuple[int, int]) -> int:
    """The largest DCT scaling denominator (1, 2, 4 or 8) that keeps a ``region`` (width,
    height, in pixels of the full image) at least ``out`` (width, height) once scaled."""
    fits = min(region[0] / out[0], region[1] / out[1])
    factor = 1
    while factor < 8 and fits >= 2 * factor:
        factor *= 2
    return factor


def decode(path: str, data: bytes, header: Header, factor: int = 1, channels: int = 3) -> np.ndarray:
    """The image as RGB pixels, a writable uint8 (H, W, ``channels``) array, scaled down by at
    most 1/``factor`` in the DCT domain (a JPEG only; libjpeg rounds the scaled size up). With
    ``channels=4`` each pixel is RGBX (X = 255), the layout that libjpeg-turbo writes as fast as
    RGB and that PIL and torch's resize work in. Raises :class:`DecodeError` naming ``path``."""
    if channels not in (3, 4):
        raise ValueError(f"channels must be 3 (RGB) or 4 (RGBX), not {channels}")
    if header.turbo:
        try:
            # min_width/min_height pick the largest scaling whose output is at least this large.
            array = simplejpeg.decode_jpeg(data, colorspace="RGB" if channels == 3 else "RGBX",
                                           min_width=math.ceil(header.width / factor),
                                           min_height=math.ceil(header.height / factor))
            return array
        except ValueError:
            pass  # a recoverable libjpeg warning in strict mode: PIL decodes what it can, or says what is wrong
    try:
        img = Image.open(_bytes_io(data))
        if factor > 1 and img.format == "JPEG":
            img.draft("RGB", (math.ceil(header.width / factor), math.ceil(header.height / factor)))
        img = img.convert("RGB")
        return np.array(img if channels == 3 else img.convert("RGBX"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise unreadable(path, e) from e


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise unreadable(path, e) from e


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)
