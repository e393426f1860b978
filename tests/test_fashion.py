"""Fashion-MNIST: the fetch and its fallbacks, the IDX checks, the three datasets through
the real readers, and the whole chain on a small slice.

Most tests run on small IDX files written here (800 train + 800 test items, blobs of
the right kind: bright on black), with the checksum table patched to theirs; one test
reads the real files when set-up has fetched them.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ok, run_cli
from trickbench.cache import cache_dir
from trickbench.datasets import cli, fashion, fashion_mnist
from trickbench.datasets.base import DataGenError

# Where set-up put the real files, looked up before the session's own cache replaces the user's.
REAL_FOLDERS = [p for p in (fashion_mnist.system_dir(), cache_dir() / "fashion-mnist")
                if all((p / n).is_file() for pair in fashion_mnist.FILES.values() for n in pair)]
SMALL = {"imagenet": dict(train_per_class=12, val_per_class=4, size=28),
         "voc": dict(trainval_2007=12, test_2007=10, trainval_2012=8, min_size=96, max_size=112),
         "ade20k": dict(train=10, val=6, min_size=96, max_size=112)}


def _blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` 28x28 items: a bright ellipse with texture on black, one per class shape."""
    y, x = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        cx, cy, a, b = rng.uniform(11, 17), rng.uniform(11, 17), rng.uniform(5, 12), rng.uniform(5, 12)
        m = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1
        out[i][m] = rng.integers(60, 256, size=int(m.sum()))
    return out


def _idx(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _write_set(folder: Path, seed: int = 0, per_class: int = 80) -> dict[str, tuple[str, str]]:
    """The four files in ``folder``; returns their checksum table."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = {}
    for split, (img_name, lab_name) in fashion_mnist.FILES.items():
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        rng.shuffle(labels)
        for name, payload in ((img_name, _idx(0x803, _blobs(rng, labels.size))), (lab_name, _idx(0x801, labels))):
            (folder / name).write_bytes(gzip.compress(payload, mtime=0))
            table[name] = (hashlib.md5(payload).hexdigest(), hashlib.sha256(payload).hexdigest())
    return table


@pytest.fixture(scope="session")
def small_idx(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("fashion-idx")
    return folder, _write_set(folder)


@pytest.fixture
def env(small_idx, tmp_path, monkeypatch):
    """Nothing installed, an empty cache, the small files' checksums; returns (files, system dir, cache)."""
    folder, table = small_idx
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", table)
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setenv(fashion_mnist.SYSTEM_DIR_ENV, str(system))
    monkeypatch.setenv("TRICKBENCH_CACHE", str(tmp_path / "cache"))
    return folder, system, tmp_path / "cache" / "fashion-mnist"


def _no_network(monkeypatch, tmp_path):
    """No apt-get on PATH, and torchvision's mirror a port where nothing listens."""
    from torchvision.datasets import FashionMNIST

    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])


# ---- fetch ------------------------------------------------------------------------------

def test_the_system_copy_is_used_when_installed(env, monkeypatch, tmp_path):
    files, system, cache = env
    for f in files.iterdir():
        shutil.copy(f, system / f.name)
    _no_network(monkeypatch, tmp_path)
    assert fashion_mnist.fetch() == system
    assert not cache.exists()  # nothing copied


def test_the_cache_is_used_and_checked(env, monkeypatch, tmp_path):
    files, _, cache = env
    shutil.copytree(files, cache)
    _no_network(monkeypatch, tmp_path)
    assert fashion_mnist.fetch() == cache
    split = fashion_mnist.load("test")
    assert split.images.shape == (800, 28, 28) and split.labels.shape == (800,)


def test_a_corrupted_file_is_named_with_the_fix(env):
    files, _, cache = env
    shutil.copytree(files, cache)
    bad = cache / "t10k-images-idx3-ubyte.gz"
    payload = bytearray(gzip.decompress(bad.read_bytes()))
    payload[100] ^= 0xFF
    bad.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(fashion_mnist.FashionMNISTError, match=r"t10k-images-idx3-ubyte\.gz fails its checksum.*delete"):
        fashion_mnist.fetch()


def test_a_truncated_file_is_named_with_the_fix(env):
    files, _, cache = env
    shutil.copytree(files, cache)
    bad = cache / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:5000])
    with pytest.raises(fashion_mnist.FashionMNISTError, match=r"train-images-idx3-ubyte\.gz is truncated.*delete"):
        fashion_mnist.load("train")


def test_idx_header_checks():
    good = _idx(0x801, np.arange(10, dtype=np.uint8))
    p = Path("x-labels-idx1-ubyte.gz")
    assert fashion_mnist.read_idx(p, good, 0x801, count=10).tolist() == list(range(10))
    with pytest.raises(fashion_mnist.FashionMNISTError, match="x-labels-idx1-ubyte.gz is truncated or padded"):
        fashion_mnist.read_idx(p, good[:-1], 0x801)
    with pytest.raises(fashion_mnist.FashionMNISTError, match="magic"):
        fashion_mnist.read_idx(p, good, 0x803)
    with pytest.raises(fashion_mnist.FashionMNISTError, match="holds 10 items, expected 11"):
        fashion_mnist.read_idx(p, good, 0x801, count=11)
    with pytest.raises(fashion_mnist.FashionMNISTError, match="less than its IDX header"):
        fashion_mnist.read_idx(p, good[:5], 0x801)


def test_missing_package_and_no_internet_is_a_clear_error(env, monkeypatch, tmp_path, capsys):
    _, _, cache = env
    _no_network(monkeypatch, tmp_path)
    with pytest.raises(fashion_mnist.FashionMNISTError) as e:
        fashion_mnist.fetch()
    msg = str(e.value)
    assert "apt-get or dpkg-deb is not installed" in msg and "torchvision FashionMNIST(download=True) failed" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and str(cache) in msg
    assert not any(cache.glob("*.gz")) and not any(cache.glob(".*"))  # nothing half-written
    assert cli.main(["fetch"]) == 2  # the command line: one error line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: Fashion-MNIST is not installed") and "Traceback" not in err


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_apt_download_is_unpacked_into_the_cache(env, monkeypatch, tmp_path):
    """A stand-in ``apt-get`` that 'downloads' a real .deb built here; dpkg-deb is the real one."""
    files, _, cache = env
    pkg = tmp_path / "pkg"
    data = pkg / "usr/share/datasets/fashion-mnist"
    shutil.copytree(files, data)
    (pkg / "DEBIAN").mkdir()
    (pkg / "DEBIAN/control").write_text("Package: dataset-fashion-mnist\nVersion: 1\nArchitecture: all\n"
                                        "Maintainer: t <t@t>\nDescription: test\n")
    deb = tmp_path / "dataset-fashion-mnist_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(deb)], check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\n[ \"$1 $2\" = 'download dataset-fashion-mnist' ] && cp {deb} .\n")
    (bin_dir / "apt-get").chmod(0o755)
    os.symlink(shutil.which("dpkg-deb"), bin_dir / "dpkg-deb")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert fashion_mnist.fetch() == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in files.iterdir())  # no leftovers


@pytest.mark.skipif(not REAL_FOLDERS, reason="Fashion-MNIST not fetched (python -m trickbench.datasets fetch)")
def test_the_real_files_pass_their_published_checksums():
    test = fashion_mnist.load("test", REAL_FOLDERS[0])
    assert test.images.shape == (10_000, 28, 28)
    assert np.bincount(test.labels).tolist() == [1000] * 10


# ---- the three datasets -------------------------------------------------------------------

@pytest.fixture(scope="session")
def sets(small_idx, tmp_path_factory) -> dict[str, Path]:
    folder, table = small_idx
    mp = pytest.MonkeyPatch()
    mp.setattr(fashion_mnist, "CHECKSUMS", table)
    try:
        return fashion.make_all(tmp_path_factory.mktemp("fashion-sets"), source=folder, sizes=SMALL)
    finally:
        mp.undo()


def _pixel_hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(a.tobytes()).hexdigest() for a in images}


def test_pretraining_set_reads_with_imagefolder_and_holds_no_test_item(sets, small_idx, monkeypatch, tmp_path):
    from pretrain.data import image_folder

    folder, table = small_idx
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", table)
    train_ds = image_folder(sets["imagenet"], "train", None)
    val_ds = image_folder(sets["imagenet"], "val", None, classes=train_ds.classes)
    assert train_ds.classes == [fashion.wnid(c) for c in range(10)]
    assert len(train_ds) == 120 and len(val_ds) == 40
    assert np.bincount(train_ds.targets).tolist() == [12] * 10
    written = np.stack([np.asarray(Image.open(p)) for p, _ in train_ds.samples + val_ds.samples])
    assert written.shape == (160, 28, 28, 3)
    assert len(_pixel_hashes(written)) == 160  # every photo is its own
    train = fashion_mnist.load("train", folder)
    size = SMALL["imagenet"]["size"]
    for path, label in train_ds.samples:  # each train photo is the train item its name gives, of its folder's class
        i = int(Path(path).stem.split("_")[1])
        assert train.labels[i] == label
        rng = np.random.default_rng([0, fashion._DS_IMAGENET, fashion._SPLIT_TRAIN, i])
        assert np.array_equal(np.asarray(Image.open(path)), fashion.render_photo(rng, train.images[i], size))
    # the item shows: the photo is about as bright as the item at its brightest (the background is darker)
    item = train.images[int(Path(train_ds.samples[0][0]).stem.split("_")[1])]
    assert np.asarray(Image.open(train_ds.samples[0][0])).max() > 0.8 * item.max()
    # only the train split is read: the test split never reaches the pretraining set
    read = []
    real_load = fashion_mnist.load
    monkeypatch.setattr(fashion_mnist, "load", lambda split, source=None: read.append(split) or real_load(split, source))
    fashion.make_imagenet(tmp_path, source=folder, **SMALL["imagenet"])
    assert read == ["train"]
    mapping = (sets["imagenet"] / "LOC_synset_mapping.txt").read_text().splitlines()
    assert mapping[9] == "n00000009 Ankle boot"


def test_voc_set_reads_with_mmdet_and_boxes_are_the_visible_items(sets, small_idx, monkeypatch):
    from mmdet.datasets import VOCDataset

    folder, table = small_idx
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", table)
    root = sets["voc"]
    meta = dict(classes=fashion_mnist.CLASSES)
    test = VOCDataset(data_root=str(root), ann_file="VOC2007/ImageSets/Main/test.txt", metainfo=meta,
                      data_prefix=dict(sub_data_root="VOC2007/"), pipeline=[], test_mode=True)
    train = VOCDataset(data_root=str(root), ann_file="VOC2012/ImageSets/Main/trainval.txt", metainfo=meta,
                       data_prefix=dict(sub_data_root="VOC2012/"), pipeline=[])
    assert len(test) == 10 and len(train) == 8 and test.metainfo["classes"] == fashion_mnist.CLASSES
    # Every canvas again from its seed: the reader's boxes are the visible items' tight boxes.
    pool_ids = fashion.test_item_pools(fashion_mnist.load("test", folder).labels, 0)
    split = fashion_mnist.load("test", folder)
    pool = fashion._Pool(split.images, split.labels, pool_ids["voc_test"])
    n_objects = 0
    for i in range(len(test)):
        info = test.get_data_info(i)
        canvas = fashion.render_canvas(np.random.default_rng([0, fashion._DS_VOC, fashion._SPLIT_TEST, i]),
                                            pool, i % 10, min_size=96, max_size=112)
        assert (info["height"], info["width"]) == canvas.label.shape
        assert [inst["bbox_label"] for inst in info["instances"]] == [o["cls"] for o in canvas.objects]
        for k, (inst, obj) in enumerate(zip(info["instances"], canvas.objects)):
            x0, y0, x1, y1 = inst["bbox"]  # mmdet reads VOC's 1-based boxes as 0-based inclusive ones
            assert 0 <= x0 <= x1 < info["width"] and 0 <= y0 <= y1 < info["height"]
            visible = canvas.owner == k
            rows, cols = np.flatnonzero(visible.any(1)), np.flatnonzero(visible.any(0))
            assert (x0, y0, x1, y1) == (cols[0], rows[0], cols[-1], rows[-1])
            assert (canvas.label[visible] == obj["cls"] + 1).all()
            assert obj["visible"] >= fashion.MIN_VISIBLE
            assert inst["ignore_flag"] == obj["difficult"]
            assert obj["index"] in pool_ids["voc_test"]  # test canvases: items of the test pool only
            n_objects += 1
        assert len(canvas.objects) >= 1
    assert n_objects >= 20


def test_voc_annotations_are_the_bytes_they_always_were(sets):
    """Pinned to what the canvases' format version 5 (half of VOC's items for its test split) writes
    on these small files (the 1-based boxes, the XML, the lists): a change here changes the published
    data, and must come with a new ``fashion._CANVAS_VERSION``."""
    h = hashlib.sha256()
    for p in sorted(sets["voc"].rglob("*")):
        if p.is_file() and p.suffix in (".xml", ".txt"):
            h.update(str(p.relative_to(sets["voc"])).encode() + p.read_bytes())
    assert h.hexdigest() == "58bce1aafe8e8823b7cf794317c85276973a88ee4681b6381cf400ad2054529e"


def test_test_split_pools_are_disjoint():
    labels = np.repeat(np.arange(10), 100)
    pools = fashion.test_item_pools(labels, 0)
    sets_ = [set(v.tolist()) for v in pools.values()]
    assert sum(len(s) for s in sets_) == 1000 and len(set().union(*sets_)) == 1000
    # each task's half split evenly between its training and its test canvases
    assert [len(s) for s in sets_] == [250, 250, 250, 250]


def test_ade_set_reads_with_mmseg_and_labels_are_in_range(sets):
    from mmseg.datasets import BaseSegDataset

    classes = ("background", *fashion_mnist.CLASSES)
    root = sets["ade20k"]
    for split, n in (("training", 10), ("validation", 6)):
        ds = BaseSegDataset(data_root=str(root), data_prefix=dict(img_path=f"images/{split}",
                                                                  seg_map_path=f"annotations/{split}"),
                            img_suffix=".jpg", seg_map_suffix=".png", reduce_zero_label=False,
                            metainfo=dict(classes=classes), pipeline=[])
        assert len(ds) == n and ds.metainfo["classes"] == classes
        seen = set()
        for i in range(n):
            info = ds.get_data_info(i)
            label = Image.open(info["seg_map_path"])
            assert label.mode == "L" and label.size == Image.open(info["img_path"]).size
            values = np.unique(np.asarray(label))
            assert values.min() == 0 and values.max() <= 10
            seen |= set(values.tolist())
        assert len(seen) >= 4


def test_writes_are_deterministic_and_refuse_other_parameters(sets, small_idx, tmp_path, monkeypatch):
    folder, table = small_idx
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", table)
    again = fashion.make_all(tmp_path / "again", source=folder, sizes=SMALL)
    for name, root in sets.items():
        a = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
        b = sorted(p.relative_to(again[name]) for p in again[name].rglob("*") if p.is_file())
        assert a == b
        assert all((root / f).read_bytes() == (again[name] / f).read_bytes() for f in a), name
    before = sorted(p for p in again["voc"].rglob("*"))
    with pytest.raises(DataGenError, match="different parameters.*test_2007: 10 -> 11"):
        fashion.make_voc(tmp_path / "again", source=folder, **{**SMALL["voc"], "test_2007": 11})
    assert sorted(p for p in again["voc"].rglob("*")) == before
    assert [p.name for p in (tmp_path / "again").iterdir() if p.name.startswith(".")] == []  # no temp folder left
    # same parameters: a no-op
    assert fashion.make_voc(tmp_path / "again", source=folder, **SMALL["voc"]) == again["voc"]


def test_cli_writes_the_sets(small_idx, tmp_path, monkeypatch, capsys):
    folder, table = small_idx
    monkeypatch.setattr(fashion_mnist, "CHECKSUMS", table)
    monkeypatch.setenv(fashion_mnist.SYSTEM_DIR_ENV, str(folder))
    argv = ["--out", str(tmp_path), "--only", "ade20k", "--ade20k-train", "3", "--ade20k-val", "2"]
    assert cli.main(["fashion", *argv]) == 0
    assert "ade20k: 3 training + 2 validation canvases" in capsys.readouterr().out
    assert cli.main(["fashion", *argv[:-1], "3"]) == 2  # a dataset error: one line, exit 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "different parameters" in err
    assert cli.main(["fashion", "--out", str(tmp_path / "other"), "--only", "voc", "--voc-min-size", "10"]) == 2  # a bad parameter
    assert capsys.readouterr().err.strip().splitlines() == ["error: min_size must be an integer >= 64, got 10"]


# ---- the chain ------------------------------------------------------------------------------

@pytest.mark.slow
def test_chain_on_a_small_slice(sets, tmp_path):
    """Pretrain 1 epoch on the slice, then a few iterations of detection and segmentation
    with the benchmark's own configs."""
    work = tmp_path / "r18"
    ok(run_cli("pretrain/run.py", "--config", "configs/pretrain/fashion/resnet18_baseline.py", "--work-dir",
               str(work), "--device", "cpu", "--cfg-options", f"data.root={sets['imagenet']}", "data.batch_size=16",
               "data.image_size=28", "data.val_resize=28", "schedule.epochs=1", "schedule.milestones=[1]"))
    ok(run_cli("downstream/detect.py", "--backbone", str(work), "--config", "configs/detection/faster-rcnn_fpn_fashion.py",
               "--data-root", f"{sets['voc']}/", "--cfg-options", "train_cfg.max_epochs=1", "train_cfg.val_interval=1",
               "train_dataloader.batch_size=4", "optim_wrapper.optimizer.lr=0.005"))  # the config's lr is for 8
    ok(run_cli("downstream/segment.py", "--backbone", str(work), "--config", "configs/segmentation/fcn-d8_fashion.py",
               "--data-root", str(sets["ade20k"]), "--cfg-options", "train_cfg.max_iters=3", "train_cfg.val_interval=3"))
    import json

    det = json.loads((work / "detection/faster-rcnn_fpn_fashion/result.json").read_text())
    seg = json.loads((work / "segmentation/fcn-d8_fashion/result.json").read_text())
    assert 0 <= det["metrics"]["map"] <= 100 and 0 <= seg["metrics"]["miou"] <= 100
