"""The generated datasets: real layouts, deterministic, never overwriting data."""
import hashlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from trickbench.synthetic import VOC_CLASSES, SyntheticDataError, class_style, make_ade20k, make_imagenet, make_voc


def digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_and_other_seed_refused(tmp_path):
    a = make_imagenet(tmp_path / "a", num_classes=3, train_per_class=2, val_per_class=2, size=32, seed=1)
    b = make_imagenet(tmp_path / "b", num_classes=3, train_per_class=2, val_per_class=2, size=32, seed=1)
    assert digest(a) == digest(b)
    assert make_imagenet(tmp_path / "a", num_classes=3, train_per_class=2, val_per_class=2, size=32, seed=1) == a
    with pytest.raises(SyntheticDataError, match="different parameters"):
        make_imagenet(tmp_path / "a", num_classes=3, train_per_class=2, val_per_class=2, size=32, seed=2)


def test_imagenet_layout(tmp_path):
    root = make_imagenet(tmp_path, num_classes=3, train_per_class=2, val_per_class=2, size=32)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["n00000000", "n00000001", "n00000002"]
    assert len(list((root / "val").rglob("*.JPEG"))) == 6


def test_voc_layout_and_annotations(tmp_path):
    root = make_voc(tmp_path, trainval_2007=20, test_2007=20, trainval_2012=20)
    for year, splits in (("VOC2007", ("trainval", "test")), ("VOC2012", ("trainval",))):
        for split in splits:
            ids = (root / year / "ImageSets/Main" / f"{split}.txt").read_text().split()
            assert ids
            for i in ids[:5]:
                ann = ET.parse(root / year / "Annotations" / f"{i}.xml").getroot()
                w, h = int(ann.findtext("size/width")), int(ann.findtext("size/height"))
                assert Image.open(root / year / "JPEGImages" / f"{i}.jpg").size == (w, h)
                for obj in ann.findall("object"):
                    assert obj.findtext("name") in VOC_CLASSES and obj.findtext("difficult") in ("0", "1")
                    x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
                    assert 1 <= x1 < x2 <= w and 1 <= y1 < y2 <= h
    assert not (root / "VOC2012/ImageSets/Main/test.txt").exists()


def test_ade_label_maps(tmp_path):
    root = make_ade20k(tmp_path, train=6, val=6, size=64)
    labels = sorted((root / "annotations/training").glob("*.png"))
    assert len(labels) == 6
    for png in labels:
        arr = np.asarray(Image.open(png))
        assert Image.open(png).mode == "L" and arr.max() <= 150
        assert Image.open(root / "images/training" / f"{png.stem}.jpg").size == Image.open(png).size


def test_class_styles_are_distinct():
    assert len({class_style(i)[:2] for i in range(48)}) == 48
