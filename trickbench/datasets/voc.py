"""The Pascal VOC layout, written the same way for every generated set: JPEGs, VOC XML
annotations (1-based inclusive boxes) and the ``ImageSets/Main`` lists::

    <VOC20xx>/JPEGImages/<id>.jpg
    <VOC20xx>/Annotations/<id>.xml
    <VOC20xx>/ImageSets/Main/{trainval,train,val,test}.txt
    <VOC20xx>/ImageSets/Main/<class>_<split>.txt          # "<id> 1|-1| 0", as in the devkit

An object is a dict with ``cls`` (index into the class names), ``difficult`` (0 or 1) and
``box``: the tight pixel box, 0-based and inclusive; the shift to VOC's 1-based
coordinates happens here, once.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trickbench.datasets.base import save_jpeg

__all__ = ["VocSource", "VocSplit", "file_safe", "voc_xml", "write_voc_year"]


class VocSource(NamedTuple):
    """The texts of an annotation's ``<source>``: database, annotation, image."""

    database: str
    annotation: str
    image: str


class VocSplit(NamedTuple):
    """One image list of a year: ``count`` images; ``image_id(i)`` names image ``i`` and
    ``render(i)`` draws it: ``(RGB uint8 array, objects)``."""

    name: str
    count: int
    image_id: Callable[[int], str]
    render: Callable[[int], tuple[np.ndarray, list[dict[str, Any]]]]


def file_safe(name: str) -> str:
    return name.replace("/", "_").replace(" ", "_")


def voc_xml(year: str, image_id: str, width: int, height: int, objects: Sequence[dict[str, Any]], *,
            class_names: Sequence[str], source: VocSource) -> bytes:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = year
    ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
    src = ET.SubElement(ann, "source")
    ET.SubElement(src, "database").text = source.database
    ET.SubElement(src, "annotation").text = source.annotation
    ET.SubElement(src, "image").text = source.image
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for obj in objects:
        o = ET.SubElement(ann, "object")
        ET.SubElement(o, "name").text = class_names[obj["cls"]]
        ET.SubElement(o, "pose").text = "Unspecified"
        ET.SubElement(o, "truncated").text = "0"
        ET.SubElement(o, "difficult").text = str(obj["difficult"])
        bnd = ET.SubElement(o, "bndbox")
        for tag, val in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"]):
            ET.SubElement(bnd, tag).text = str(val + 1)  # VOC: 1-based, inclusive
    ET.indent(ann, space="\t")
    return ET.tostring(ann, encoding="utf-8") + b"\n"


def write_voc_year(year_dir: Path, year: str, splits: Sequence[VocSplit], *, class_names: Sequence[str],
                   source: VocSource, jpeg_quality: int) -> dict[str, Any]:
    """Write one ``VOC20xx`` folder; its stats: objects, difficult ones, images per list."""
    jpeg_dir, ann_dir, sets_dir = year_dir / "JPEGImages", year_dir / "Annotations", year_dir / "ImageSets" / "Main"
    for d in (jpeg_dir, ann_dir, sets_dir):
        d.mkdir(parents=True)
    lists: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    n_objects = n_difficult = 0
    for split in splits:
        entries = []
        for i in range(split.count):
            image, objects = split.render(i)
            image_id = split.image_id(i)
            save_jpeg(image, jpeg_dir / f"{image_id}.jpg", jpeg_quality)
            (ann_dir / f"{image_id}.xml").write_bytes(
                voc_xml(year, image_id, image.shape[1], image.shape[0], objects, class_names=class_names,
                        source=source))
            entries.append((image_id, objects))
            n_objects += len(objects)
            n_difficult += sum(o["difficult"] for o in objects)
        lists[split.name] = entries
    if "trainval" in lists:  # like the real devkit, trainval is split into train / val
        lists["train"], lists["val"] = lists["trainval"][0::2], lists["trainval"][1::2]
    for split_name, entries in lists.items():
        (sets_dir / f"{split_name}.txt").write_text("".join(f"{iid}\n" for iid, _ in entries))
        for c, name in enumerate(class_names):
            lines = []
            for iid, objects in entries:
                flags = [o["difficult"] for o in objects if o["cls"] == c]
                lines.append(f"{iid} {-1 if not flags else (1 if 0 in flags else 0):2d}\n")
            (sets_dir / f"{file_safe(name)}_{split_name}.txt").write_text("".join(lines))
    return {"objects": n_objects, "difficult": n_difficult,
            **{f"{split_name}_images": len(entries) for split_name, entries in lists.items()}}
