"""Broken VOC / ADE20K data is refused before training, naming the file."""
import shutil

import numpy as np
import pytest
from PIL import Image

from downstream.datacheck import DataCheckError, check_ade, check_voc, dataset_cfgs
from downstream.detect import VOC_CLASSES


@pytest.fixture
def voc(synthetic, tmp_path):
    root = tmp_path / "VOCdevkit"
    shutil.copytree(synthetic["voc"], root)
    return root


@pytest.fixture
def ade(synthetic, tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(synthetic["ade20k"], root)
    return root


def voc_cfg(root, split="trainval"):
    return dict(data_root=str(root), ann_file=f"VOC2007/ImageSets/Main/{split}.txt",
                data_prefix=dict(sub_data_root="VOC2007/"))


def ade_cfg(root):
    return dict(data_root=str(root), data_prefix=dict(img_path="images/training", seg_map_path="annotations/training"))


def first_id(root):
    return (root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()[0]


def test_generated_data_passes(voc, ade):
    assert check_voc(voc_cfg(voc), VOC_CLASSES) > 0
    assert check_voc(voc_cfg(voc, "test"), VOC_CLASSES) > 0
    assert check_ade(ade_cfg(ade)) > 0


def test_broken_xml(voc):
    xml = voc / "VOC2007/Annotations" / f"{first_id(voc)}.xml"
    xml.write_text(xml.read_text()[:-40])
    with pytest.raises(DataCheckError, match=f"{xml}.*not valid XML"):
        check_voc(voc_cfg(voc), VOC_CLASSES)


def test_listed_image_missing(voc):
    img = voc / "VOC2007/JPEGImages" / f"{first_id(voc)}.jpg"
    img.unlink()
    with pytest.raises(DataCheckError, match=f"{img} is listed in .*trainval.txt but missing"):
        check_voc(voc_cfg(voc), VOC_CLASSES)


def test_unknown_class_and_empty_split(voc):
    xml = voc / "VOC2007/Annotations" / f"{first_id(voc)}.xml"
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>unicorn</name>", 1))
    with pytest.raises(DataCheckError, match="unicorn"):
        check_voc(voc_cfg(voc), VOC_CLASSES)
    (voc / "VOC2007/ImageSets/Main/test.txt").write_text("")
    with pytest.raises(DataCheckError, match="test.txt is empty"):
        check_voc(voc_cfg(voc, "test"), VOC_CLASSES)


def test_missing_dataset_names_the_layout(tmp_path):
    with pytest.raises(DataCheckError, match="VOC2007/ImageSets/Main/trainval.txt not found.*--data-root"):
        check_voc(voc_cfg(tmp_path / "nothing"), VOC_CLASSES)
    with pytest.raises(DataCheckError, match="ADEChallengeData2016"):
        check_ade(ade_cfg(tmp_path / "nothing"))


def test_label_above_150(ade):
    png = sorted((ade / "annotations/training").glob("*.png"))[2]
    arr = np.asarray(Image.open(png)).copy()
    arr[0, 0] = 151
    Image.fromarray(arr).save(png)
    with pytest.raises(DataCheckError, match=f"{png} has value 151"):
        check_ade(ade_cfg(ade))


def test_missing_label_map(ade):
    png = sorted((ade / "annotations/training").glob("*.png"))[0]
    png.unlink()
    with pytest.raises(DataCheckError, match=f"label map {png} .* is missing"):
        check_ade(ade_cfg(ade))


def test_dataset_cfgs_walks_wrappers():
    leaf = dict(data_root="x")
    cfg = dict(type="RepeatDataset", dataset=dict(type="ConcatDataset", datasets=[leaf, dict(leaf, data_root="y")]))
    assert [d["data_root"] for d in dataset_cfgs(cfg)] == ["x", "y"]
