"""Broken VOC / ADE20K data is refused before training, naming the file."""
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from downstream import datacheck
from downstream.datacheck import DataCheckError, cache_dir, check_ade, check_voc, dataset_cfgs
from downstream.detect import VOC_CLASSES

# How a file gets broken, and what the check says about it.
BREAKAGES = {
    "empty": (lambda data: b"", "is an empty file"),
    "truncated": (lambda data: data[: len(data) // 2], "is truncated or damaged"),
    "not an image": (lambda data: b"this is not a JPEG\n" * 40, "is not an image"),
}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own decode cache, never the user's."""
    monkeypatch.setenv("TRICKBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


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


def middle_image(root):
    ids = (root / "VOC2007/ImageSets/Main/trainval.txt").read_text().split()
    return root / "VOC2007/JPEGImages" / f"{ids[len(ids) // 2]}.jpg"


def middle_pair(root):
    images = sorted((root / "images/training").glob("*.jpg"))
    img = images[len(images) // 2]
    return img, root / "annotations/training" / f"{img.stem}.png"


def escaped(path):
    return re.escape(str(path))


def resized(path, dw):
    """Rewrite the image ``dw`` pixels wider (same format, nearest so label values stay)."""
    with Image.open(path) as im:
        im = im.resize((im.width + dw, im.height), Image.NEAREST)
    im.save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return im.size


def count_decodes(monkeypatch, name):
    """Calls of the module's decoder ``name``, in the order they happen."""
    calls = []
    real = getattr(datacheck, name)
    monkeypatch.setattr(datacheck, name, lambda path: calls.append(path) or real(path))
    return calls


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


@pytest.mark.parametrize("how", BREAKAGES)
def test_broken_voc_image(voc, how):
    img = middle_image(voc)
    img.write_bytes(BREAKAGES[how][0](img.read_bytes()))
    with pytest.raises(DataCheckError, match=f"image {escaped(img)} cannot be decoded: it {BREAKAGES[how][1]}.*"
                                             f"restore it from the VOC archive, or remove the id {img.stem} "
                                             f"from .*trainval.txt"):
        check_voc(voc_cfg(voc), VOC_CLASSES)


@pytest.mark.parametrize("how", BREAKAGES)
def test_broken_ade_image(ade, how):
    img, png = middle_pair(ade)
    img.write_bytes(BREAKAGES[how][0](img.read_bytes()))
    with pytest.raises(DataCheckError, match=f"image {escaped(img)} cannot be decoded: it {BREAKAGES[how][1]}.*"
                                             f"restore it .* or delete it together with its label map {escaped(png)}"):
        check_ade(ade_cfg(ade))


def test_truncated_label_map(ade):
    img, png = middle_pair(ade)
    png.write_bytes(png.read_bytes()[:-60])
    with pytest.raises(DataCheckError, match=f"label map {escaped(png)} cannot be decoded: it is truncated"):
        check_ade(ade_cfg(ade))


def test_voc_image_of_another_size_than_its_xml(voc):
    img = middle_image(voc)
    with Image.open(img) as im:
        w, h = im.size
    resized(img, 8)
    xml = voc / "VOC2007/Annotations" / f"{img.stem}.xml"
    with pytest.raises(DataCheckError, match=f"image {escaped(img)} is {w + 8}x{h} but its annotation {escaped(xml)} "
                                             f"gives <size> {w}x{h}"):
        check_voc(voc_cfg(voc), VOC_CLASSES)


def test_ade_label_map_of_another_size_than_its_image(ade):
    img, png = middle_pair(ade)
    with Image.open(img) as im:
        w, h = im.size
    resized(png, 8)
    with pytest.raises(DataCheckError, match=f"label map {escaped(png)} is {w + 8}x{h} but its image {escaped(img)} "
                                             f"is {w}x{h}"):
        check_ade(ade_cfg(ade))


def cached_paths(cache):
    [cache_file] = (cache / "datacheck").glob("*.json")
    return set(json.loads(cache_file.read_text())["files"])


def test_cache_skips_unchanged_files_and_rechecks_changed_ones(voc, monkeypatch, cache):
    decoded = count_decodes(monkeypatch, "decode_image")
    n = check_voc(voc_cfg(voc), VOC_CLASSES)
    assert len(decoded) == n
    decoded.clear()
    assert check_voc(voc_cfg(voc), VOC_CLASSES) == n
    assert decoded == []

    img = middle_image(voc)
    good, st = img.read_bytes(), img.stat()
    changes = {"other size, same mtime": (good[: len(good) // 2], st.st_mtime_ns, "is truncated"),
               "same size, later mtime": (b"x" * st.st_size, st.st_mtime_ns + 10**9, "is not an image")}
    for content, mtime_ns, problem in changes.values():
        assert str(img) in cached_paths(cache)
        decoded.clear()
        img.write_bytes(content)
        os.utime(img, ns=(st.st_atime_ns, mtime_ns))
        with pytest.raises(DataCheckError, match=f"{escaped(img)} cannot be decoded: it {problem}"):
            check_voc(voc_cfg(voc), VOC_CLASSES)
        assert decoded == [img] and str(img) not in cached_paths(cache)

        decoded.clear()
        img.write_bytes(good)  # restored as it was: decoded again, since a file that failed is not cached
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert check_voc(voc_cfg(voc), VOC_CLASSES) == n
        assert decoded == [img]


def test_cached_ade_facts_still_meet_the_rules(ade, monkeypatch):
    images = count_decodes(monkeypatch, "decode_image")
    labels = count_decodes(monkeypatch, "decode_label_map")
    n = check_ade(ade_cfg(ade))
    assert len(images) == len(labels) == n
    images.clear(), labels.clear()
    with pytest.raises(DataCheckError, match="above the 2 ADE20K classes"):
        check_ade(ade_cfg(ade), num_classes=2)
    assert images == labels == []


def _wrong_types(text):
    data = json.loads(text)
    for entry in data["files"].values():
        entry["facts"] = [str(v) for v in entry["facts"]]
    return json.dumps(data)


@pytest.mark.parametrize("garble", [lambda t: "", lambda t: t[: len(t) // 2], lambda t: "[1, 2]",
                                    lambda t: t.replace('"version": 1', '"version": 99'), _wrong_types],
                         ids=["empty", "cut", "list", "other-version", "wrong-types"])
def test_damaged_cache_is_ignored(voc, monkeypatch, cache, garble):
    n = check_voc(voc_cfg(voc), VOC_CLASSES)
    [cache_file] = (cache / "datacheck").glob("*.json")
    cache_file.write_text(garble(cache_file.read_text()))
    decoded = count_decodes(monkeypatch, "decode_image")
    assert check_voc(voc_cfg(voc), VOC_CLASSES) == n
    assert len(decoded) == n
    assert len(json.loads(cache_file.read_text())["files"]) == n  # rewritten whole


def test_unwritable_cache_only_warns(voc, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TRICKBENCH_CACHE", str(tmp_path / "a-file/cache"))
    with pytest.warns(UserWarning, match="cannot write its cache"):
        assert check_voc(voc_cfg(voc), VOC_CLASSES) > 0


def test_cache_dir_follows_the_environment(monkeypatch):
    monkeypatch.setenv("TRICKBENCH_CACHE", "/tb")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    monkeypatch.setenv("HOME", "/home/u")
    assert cache_dir() == Path("/tb")
    monkeypatch.delenv("TRICKBENCH_CACHE")
    assert cache_dir() == Path("/xdg/trickbench")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path("/home/u/.cache/trickbench")
    monkeypatch.delenv("HOME")
    assert cache_dir() == Path("/tmp/.cache/trickbench")


def test_dataset_cfgs_walks_wrappers():
    leaf = dict(data_root="x")
    cfg = dict(type="RepeatDataset", dataset=dict(type="ConcatDataset", datasets=[leaf, dict(leaf, data_root="y")]))
    assert [d["data_root"] for d in dataset_cfgs(cfg)] == ["x", "y"]


def test_a_test_loader_that_is_the_validation_loader_is_checked_once(monkeypatch):
    from trickbench.mmconfig import read_config
    import downstream.detect as detect
    import downstream.segment as segment

    for module, config, check in ((detect, "configs/detection/faster-rcnn_fpn_fashion.py", "check_voc"),
                                  (segment, "configs/segmentation/fcn-d8_fashion.py", "check_ade")):
        cfg = read_config(config)
        seen = []
        monkeypatch.setattr(module, check, lambda ds, *_: seen.append(ds))
        module.check_data(cfg)
        every = list(datacheck.run_datasets(cfg))
        assert len(every) == len(seen) + 1 and all(ds in seen for ds in every)   # test = val, checked once
        assert sorted(map(str, seen)) == sorted(set(map(str, seen)))
    other = dict(train_dataloader=dict(dataset=dict(data_root="a")), val_dataloader=dict(dataset=dict(data_root="b")),
                 test_dataloader=dict(dataset=dict(data_root="c")))
    assert [d["data_root"] for d in datacheck.distinct_datasets(other)] == ["a", "b", "c"]
