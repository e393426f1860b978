"""Pre-flight checks of VOC and ADE20K on disk, before any training starts.

mmdet's and mmseg's readers fail late (mid-epoch) and sometimes vaguely on a
broken annotation; these checks walk the dataset configs of a run and stop
with the offending file and the fix.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


class DataCheckError(RuntimeError):
    pass


VOC_LAYOUT = ("VOCdevkit/VOC2007/{Annotations/*.xml, JPEGImages/*.jpg, ImageSets/Main/{trainval,test}.txt}, "
              "the same for VOC2012")
ADE_LAYOUT = "ADEChallengeData2016/{images,annotations}/{training,validation}/ (.jpg images, .png label maps)"


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
    known = set(classes)

    def one(img_id: str) -> None:
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
            if name not in known:
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

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, ids))
    return len(ids)


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

    def one(img: Path) -> None:
        label = seg_dir / f"{img.stem}.png"
        if not label.is_file():
            raise DataCheckError(f"label map {label} for image {img} is missing")
        try:
            with Image.open(label) as im:
                arr = np.asarray(im)
        except OSError as e:
            raise DataCheckError(f"label map {label} cannot be decoded ({e}); restore it") from e
        if arr.ndim != 2:
            raise DataCheckError(f"label map {label} has {arr.ndim} dimensions; ADE20K label maps are "
                                 f"single-channel PNGs with 0 = unlabelled and 1..{num_classes}")
        top = int(arr.max())
        if top > num_classes:
            raise DataCheckError(f"label map {label} has value {top}, above the {num_classes} ADE20K classes "
                                 f"(0 = unlabelled, 1..{num_classes})")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, images))
    return len(images)
