"""The generated shapes datasets: real layouts, deterministic, never overwriting data."""
import hashlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from trickbench.datasets.base import DataGenError
from trickbench.datasets.shapes import VOC_CLASSES, class_style, make_ade20k, make_imagenet, make_voc


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
    with pytest.raises(DataGenError, match="different parameters"):
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


def text_digest(root):
    """The annotations and image lists only: pure-Python text, independent of the JPEG encoder."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".xml", ".txt"):
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_voc_annotations_are_the_bytes_they_always_were(tmp_path):
    """Pinned to what trickbench/synthetic.py wrote before the shared VOC writer (the 1-based
    boxes, the XML, the lists): a change here changes the published data."""
    root = make_voc(tmp_path, trainval_2007=20, test_2007=20, trainval_2012=20, min_size=48, max_size=64, seed=7)
    assert text_digest(root) == "d0558f8fa28bef6249f2db3ae6d4d2f00505e71933de0c5261bfb34efcc21ebc"


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


def test_cli_writes_and_a_dataset_error_is_one_line_and_exit_2(tmp_path):
    ok = run_cli("-m", "trickbench.datasets", "shapes", "--out", str(tmp_path), "--only", "imagenet",
                 "--scale", "0.02", timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "imagenet: 10 classes, 20 train + 20 val images, 64px" in ok.stdout and "(written in" in ok.stdout
    again = run_cli("-m", "trickbench.datasets", "shapes", "--out", str(tmp_path), "--only", "imagenet",
                    "--scale", "0.02", timeout=300)
    assert again.returncode == 0 and "up to date, skipped" in again.stdout
    refused = run_cli("-m", "trickbench.datasets", "shapes", "--out", str(tmp_path), "--only", "imagenet",
                      "--scale", "0.02", "--seed", "1", timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and len(refused.stderr.strip().splitlines()) == 1
    assert "different parameters (seed: 0 -> 1)" in refused.stderr
    bad = run_cli("-m", "trickbench.datasets", "shapes", "--out", str(tmp_path / "other"), "--scale", "0",
                  timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: scale must be a positive finite number, got 0.0"]
    assert not (tmp_path / "other").exists()


def test_a_folder_that_cannot_be_written_is_a_dataset_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataGenError, match=r"cannot create .*file/x/imagenet.*choose another --out"):
        make_imagenet(tmp_path / "file" / "x", num_classes=2, train_per_class=1, val_per_class=1, size=16)
