"""Pre-flight checks of VOC and ADE20K on disk, before any training starts.

mmdet's and mmseg's readers fail late (35-90 s in, or mid-epoch) and sometimes vaguely
on a broken annotation or image; these checks walk the dataset configs of a run and
stop with the offending file and the fix.

VOC (:func:`check_voc`): the split list exists and lists ids; every id has its JPEG and
a valid XML whose objects are of known classes with boxes inside its ``<size>``; every
JPEG decodes in full and is as large as that ``<size>``.

ADE20K (:func:`check_ade`): both folders exist and hold images; every image has its
label map; both decode in full and are equally large; the label map is single-channel
with values 0..num_classes.

Decoding is the slow part. It runs in a thread pool (PIL releases the GIL while it
decodes: on 2 cores 8 threads decode about as many files per second as a process pool,
and nothing forks a process that holds torch). What each file decoded to is cached in
``cache_dir()/datacheck/``, one JSON file per dataset root and split list, keyed by the
file's absolute path, size and mtime_ns: an unchanged file is not decoded again, a
changed one always is. Only files that decoded are cached, and the rules (sizes, label
values) are applied to the cached facts on every run. A missing or damaged cache file
reads as empty.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from trickbench.cache import cache_dir
from trickbench.fileio import atomic_write_json
from trickbench.errors import TrickBenchError


class DataCheckError(TrickBenchError, RuntimeError):
    pass


VOC_LAYOUT = ("VOCdevkit/VOC2007/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{trainval,test}.txt}, "
              "the same for VOC2012")
ADE_LAYOUT = "ADEChallengeData2016/{images,annotations}/{training,validation}/ (.jpg images, .png label maps)"
THREADS = 8
CACHE_VERSION = 1
# What opening the file (not decoding it) raises; anything else a decoder raises means damage.
UNREADABLE = (FileNotFoundError, PermissionError, IsADirectoryError)


def dataset_cfgs(cfg: dict) -> Iterator[dict]:
    """Every leaf dataset config (with a data_root) below a dataloader's dataset, through
    RepeatDataset / ConcatDataset / ClassBalancedDataset wrappers."""
    if isinstance(cfg, dict):
        if "dataset" in cfg:
            yield from dataset_cfgs(cfg["dataset"])
        elif "datasets" in cfg:
            for sub in cfg["datasets"]:
                yield from dataset_cfgs(sub)
        elif "data_root" in cfg:
            yield cfg


def run_datasets(cfg) -> Iterator[dict]:
    """Every leaf dataset config of a run's train, val and test dataloaders."""
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(key):
            yield from dataset_cfgs(cfg[key]["dataset"])


def distinct_datasets(cfg) -> list[dict]:
    """:func:`run_datasets`, each dataset once: a config's test loader is usually its validation
    loader again (``test_dataloader = val_dataloader``), and one check of it is enough."""
    out: list[dict] = []
    for ds in run_datasets(cfg):
        if ds not in out:
            out.append(ds)
    return out


# ---- decoding ---------------------------------------------------------------------------

class ImageSize(NamedTuple):
    width: int
    height: int


class LabelMapFacts(NamedTuple):
    width: int
    height: int
    ndim: int
    top: int  # the largest label value


class Stamp(NamedTuple):
    size: int
    mtime_ns: int


def decode_image(path: Path) -> ImageSize:
    """Every pixel decoded, so that a truncated file fails (``Image.verify`` lets truncation through)."""
    with Image.open(path) as im:
        im.load()
        return ImageSize(*im.size)


def decode_label_map(path: Path) -> LabelMapFacts:
    with Image.open(path) as im:
        arr = np.asarray(im)
        width, height = im.size
    return LabelMapFacts(width, height, arr.ndim, int(arr.max()))


def decode_problem(decode: Callable[[Path], tuple], path: Path) -> tuple | str:
    """``decode(path)``, or what is wrong with the file, in words."""
    try:
        return decode(path)
    except UnidentifiedImageError:
        return "is not an image (PIL cannot identify its format)"
    except UNREADABLE as e:
        return f"cannot be read ({e})"
    except Exception as e:  # by format and damage: OSError, SyntaxError, ValueError, EOFError, zlib.error, ...
        return f"is truncated or damaged ({type(e).__name__}: {e})"


# ---- cache ------------------------------------------------------------------------------

def absolute(path: Path) -> str:
    return os.path.abspath(path)


def _all_ints(values, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(type(v) is int for v in values)


def read_cache_entries(path: Path) -> dict:
    """The ``files`` of a cache file; a missing, unreadable or damaged file gives none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


class DecodeCache:
    """What each file decoded to, valid while the file's size and mtime_ns are as recorded.

    One JSON file per dataset (named from a hash of ``sources``' absolute paths), keyed by
    each file's absolute path. ``save`` writes the files of this run that decoded."""

    def __init__(self, *sources: Path):
        self.sources = [absolute(s) for s in sources]
        key = hashlib.sha256("\0".join(self.sources).encode()).hexdigest()[:20]
        self.path = cache_dir() / "datacheck" / f"{key}.json"
        self.old = read_cache_entries(self.path)
        self.new: dict[str, dict] = {}

    def get(self, file: Path, stamp: Stamp, record: type[tuple]) -> tuple | None:
        entry = self.old.get(absolute(file))
        if not isinstance(entry, dict) or not _all_ints([entry.get("size"), entry.get("mtime_ns")], 2):
            return None
        if Stamp(entry["size"], entry["mtime_ns"]) != stamp or not _all_ints(entry.get("facts"), len(record._fields)):
            return None
        return record(*entry["facts"])

    def put(self, file: Path, stamp: Stamp, facts: tuple) -> None:
        self.new[absolute(file)] = {"size": stamp.size, "mtime_ns": stamp.mtime_ns, "facts": list(facts)}

    def save(self) -> None:
        if self.new == self.old:
            return
        try:
            atomic_write_json(self.path, {"version": CACHE_VERSION, "sources": self.sources, "files": self.new})
        except OSError as e:
            warnings.warn(f"data check: cannot write its cache {self.path} ({e}); the next run decodes every "
                          f"file again. Set TRICKBENCH_CACHE to a writable folder", stacklevel=2)


def examine(file: Path, decode: Callable[[Path], tuple], record: type[tuple],
            cache: DecodeCache) -> tuple[Stamp | None, tuple | str]:
    """The file's stamp, and its facts (from the cache while it is unchanged) or its problem.
    The stamp is taken before decoding, so a file changed meanwhile is decoded again next time."""
    try:
        st = file.stat()
    except OSError as e:
        return None, f"cannot be read ({e})"
    stamp = Stamp(st.st_size, st.st_mtime_ns)
    if stamp.size == 0:
        return stamp, "is an empty file (0 bytes)"
    cached = cache.get(file, stamp, record)
    return stamp, cached if cached is not None else decode_problem(decode, file)


def decode_all(files: Sequence[Path], decode: Callable[[Path], tuple], record: type[tuple],
               cache: DecodeCache) -> list[tuple | str]:
    """Per file, what it decoded to (a ``record``) or what is wrong with it (a str); decoded in
    a thread pool, except the files the cache holds unchanged. Those that decode go to the cache."""
    with ThreadPoolExecutor(THREADS) as pool:
        examined = list(pool.map(lambda f: examine(f, decode, record, cache), files))
    for file, (stamp, result) in zip(files, examined):
        if isinstance(result, record):
            cache.put(file, stamp, result)
    return [result for _, result in examined]


# ---- VOC --------------------------------------------------------------------------------

def read_voc_annotation(sub: Path, img_id: str, ann_file: Path, classes: Sequence[str]) -> ImageSize:
    """The ``<size>`` of one id's XML, after checking that its JPEG exists and that its
    objects have known classes and boxes inside that size."""
    xml_path = sub / "Annotations" / f"{img_id}.xml"
    img_path = sub / "JPEGImages" / f"{img_id}.jpg"
    if not img_path.is_file():
        raise DataCheckError(f"{img_path} is listed in {ann_file} but missing on disk; restore it or remove "
                             f"the id from the list")
    try:
        root_el = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        raise DataCheckError(f"annotation {xml_path} (listed in {ann_file}) is missing") from None
    except ET.ParseError as e:
        raise DataCheckError(f"annotation {xml_path} is not valid XML ({e}); restore it from the VOC archive") from e
    size = root_el.find("size")
    try:
        w, h = int(size.find("width").text), int(size.find("height").text)
    except (AttributeError, TypeError, ValueError):
        raise DataCheckError(f"annotation {xml_path} has no valid <size><width>/<height>") from None
    for obj in root_el.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            raise DataCheckError(f"annotation {xml_path} has an object of unknown class {name!r}; "
                                 f"the classes are {', '.join(classes)}")
        box = obj.find("bndbox")
        try:
            x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DataCheckError(f"annotation {xml_path}: object {name!r} has no valid <bndbox>") from None
        if not (0 <= x1 < x2 <= w + 1 and 0 <= y1 < y2 <= h + 1):
            raise DataCheckError(f"annotation {xml_path}: box ({x1}, {y1}, {x2}, {y2}) of {name!r} lies "
                                 f"outside the {w}x{h} image or is empty")
    return ImageSize(w, h)


def check_voc_image(sub: Path, img_id: str, ann_file: Path, xml_size: ImageSize, decoded: ImageSize | str) -> None:
    img = sub / "JPEGImages" / f"{img_id}.jpg"
    fix = f"restore it from the VOC archive, or remove the id {img_id} from {ann_file}"
    if isinstance(decoded, str):
        raise DataCheckError(f"image {img} cannot be decoded: it {decoded}; {fix}")
    if decoded != xml_size:
        xml_path = sub / "Annotations" / f"{img_id}.xml"
        raise DataCheckError(f"image {img} is {decoded.width}x{decoded.height} but its annotation {xml_path} gives "
                             f"<size> {xml_size.width}x{xml_size.height}, so its boxes do not fit the image; "
                             f"restore both files from the VOC archive, or remove the id {img_id} from {ann_file}")


def check_voc(ds: dict, classes: tuple[str, ...]) -> int:
    root = Path(ds["data_root"])
    sub = Path(root, ds.get("data_prefix", {}).get("sub_data_root", ""))
    ann_file = root / ds["ann_file"]
    if not ann_file.is_file():
        raise DataCheckError(f"VOC split list {ann_file} not found. Expected {VOC_LAYOUT} under the data root; "
                             f"pass --data-root DIR (the folder holding VOC2007/ and VOC2012/)")
    ids = [ln.split()[0] for ln in ann_file.read_text().splitlines() if ln.strip()]
    if not ids:
        raise DataCheckError(f"VOC split {ann_file} is empty: it lists no image ids")
    with ThreadPoolExecutor(THREADS) as pool:
        xml_sizes = list(pool.map(lambda i: read_voc_annotation(sub, i, ann_file, classes), ids))
    cache = DecodeCache(root, sub, ann_file)
    decoded = decode_all([sub / "JPEGImages" / f"{i}.jpg" for i in ids], decode_image, ImageSize, cache)
    cache.save()
    for img_id, xml_size, facts in zip(ids, xml_sizes, decoded):
        check_voc_image(sub, img_id, ann_file, xml_size, facts)
    return len(ids)


# ---- ADE20K -----------------------------------------------------------------------------

def check_ade_pair(img: Path, label: Path, image: ImageSize | str, label_map: LabelMapFacts | str,
                   num_classes: int) -> None:
    if isinstance(image, str):
        raise DataCheckError(f"image {img} cannot be decoded: it {image}; restore it from the ADE20K archive "
                             f"(ADEChallengeData2016.zip), or delete it together with its label map {label}")
    if isinstance(label_map, str):
        raise DataCheckError(f"label map {label} cannot be decoded: it {label_map}; restore it from the ADE20K "
                             f"archive (ADEChallengeData2016.zip), or delete it together with its image {img}")
    if label_map.ndim != 2:
        raise DataCheckError(f"label map {label} has {label_map.ndim} dimensions; ADE20K label maps are "
                             f"single-channel PNGs with 0 = unlabelled and 1..{num_classes}")
    if label_map.top > num_classes:
        raise DataCheckError(f"label map {label} has value {label_map.top}, above the {num_classes} ADE20K classes "
                             f"(0 = unlabelled, 1..{num_classes})")
    if (label_map.width, label_map.height) != image:
        raise DataCheckError(f"label map {label} is {label_map.width}x{label_map.height} but its image {img} is "
                             f"{image.width}x{image.height}; a label map must match its image pixel for pixel. "
                             f"Restore both from the ADE20K archive, or delete both")


def check_ade(ds: dict, num_classes: int = 150) -> int:
    root = Path(ds["data_root"])
    img_dir = root / ds["data_prefix"]["img_path"]
    seg_dir = root / ds["data_prefix"]["seg_map_path"]
    for d in (img_dir, seg_dir):
        if not d.is_dir():
            raise DataCheckError(f"ADE20K folder {d} not found. Expected {ADE_LAYOUT}; "
                                 f"pass --data-root DIR (the ADEChallengeData2016 folder)")
    images = sorted(img_dir.glob("*.jpg"))
    if not images:
        raise DataCheckError(f"ADE20K split {img_dir} holds no .jpg images")
    labels = [seg_dir / f"{img.stem}.png" for img in images]
    with ThreadPoolExecutor(THREADS) as pool:
        present = list(pool.map(Path.is_file, labels))
    for img, label, ok in zip(images, labels, present):
        if not ok:
            raise DataCheckError(f"label map {label} for image {img} is missing")
    cache = DecodeCache(img_dir, seg_dir)
    image_sizes = decode_all(images, decode_image, ImageSize, cache)
    label_maps = decode_all(labels, decode_label_map, LabelMapFacts, cache)
    cache.save()
    for img, label, image, label_map in zip(images, labels, image_sizes, label_maps):
        check_ade_pair(img, label, image, label_map, num_classes)
    return len(images)
