"""The deterministic probes (downstream/probe.py): DINO's weighted k-NN against a brute-force
scikit-learn one, VOC07's 11-point AP against a direct implementation, VISSL's treatment of
difficult images, the feature cache, and both probes end to end through the command line."""
import json
import shutil

import numpy as np
import pytest
import torch

from downstream import features as feats
from downstream.probe import (DIFFICULT, NEGATIVE, POSITIVE, ProbeError, knn_classifier, pretrain_data, svm_targets,
                              topk_accuracy, voc07_ap, voc07_svm, voc_classes, voc_image_labels, voc_splits)
from tests.conftest import REPO, ok, run_cli

TINY = str(REPO / "configs/pretrain/synthetic/resnet18_tiny.py")
# One thread per command: these runs are small, and with two OpenMP threads on a 2-core machine where
# another process holds a core, the spinning threads make a 7 s pretraining take 90 s.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


# ---- k-NN ---------------------------------------------------------------------------------

def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_knn_votes_as_a_brute_force_weighted_knn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    classes, dim = 5, 16
    centres = unit(rng.normal(size=(classes, dim)))
    train_y = np.repeat(np.arange(classes), 24)
    train = unit(centres[train_y] + 0.3 * rng.normal(size=(train_y.size, dim)))
    # well-separated test points near a centre, and ambiguous ones halfway between two or anywhere
    near = unit(centres[np.arange(40) % classes] + 0.3 * rng.normal(size=(40, dim)))
    between = unit(centres[np.arange(20) % classes] + centres[(np.arange(20) + 1) % classes]
                   + 0.1 * rng.normal(size=(20, dim)))
    anywhere = unit(rng.normal(size=(20, dim)))
    test = np.concatenate([near, between, anywhere])

    knn = KNeighborsClassifier(n_neighbors=20, metric="cosine", algorithm="brute",
                               weights=lambda d: np.exp((1 - d) / 0.07)).fit(train, train_y)
    votes = knn_classifier(torch.tensor(train, dtype=torch.float32), torch.tensor(train_y),
                           torch.tensor(test, dtype=torch.float32), num_classes=classes, k=20, temperature=0.07,
                           chunk_size=7)  # chunks that do not divide the test set
    assert votes.argmax(1).numpy().tolist() == knn.predict(test).tolist()
    proba = votes / votes.sum(1, keepdim=True)
    assert np.allclose(proba.numpy(), knn.predict_proba(test), atol=1e-4)
    assert len(set(knn.predict(between))) > 1  # the ambiguous points are not all one class


def test_knn_by_hand():
    # two train points of class 0 along x, one of class 1 along y; the test point leans to y
    train = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    test = torch.nn.functional.normalize(torch.tensor([[0.2, 1.0]]), dim=1)
    votes = knn_classifier(train, labels, test, num_classes=2, k=3, temperature=0.07)
    c, s = test[0].tolist()
    assert torch.allclose(votes, torch.tensor([[2 * np.exp(c / 0.07), np.exp(s / 0.07)]], dtype=torch.float32))
    assert votes.argmax().item() == 1  # one near neighbour outweighs two far ones
    # k=1: the nearest alone votes; a k above the number of train points: all of them do
    assert torch.allclose(knn_classifier(train, labels, test, num_classes=2, k=1),
                          torch.tensor([[0.0, np.exp(s / 0.07)]], dtype=torch.float32))
    assert torch.allclose(knn_classifier(train, labels, test, num_classes=2, k=10), votes)
    assert topk_accuracy(votes, torch.tensor([1])) == {"top1": 100.0}          # 2 classes: no top5
    assert topk_accuracy(torch.tensor([[1.0, 1.0, 0.5]] * 2), torch.tensor([1, 0]), ks=(1, 2)) == \
        {"top1": 50.0, "top2": 100.0}  # a tie goes to the lower class index


# ---- VOC07 AP and the SVM targets ---------------------------------------------------------

def direct_voc07_ap(scores, labels):
    """VOC07 11-point AP written out: difficult (0) items dropped, ranked by score, then the mean
    over t = 0, 0.1, ..., 1 of the best precision at recall >= t."""
    keep = [i for i, y in enumerate(labels) if y != 0]
    ranked = sorted(keep, key=lambda i: -scores[i])
    npos = sum(labels[i] == 1 for i in keep)
    tp = fp = 0
    points = []
    for i in ranked:
        tp += labels[i] == 1
        fp += labels[i] == -1
        points.append((tp / npos, tp / (tp + fp)))
    # t = i * 0.1 as VOC's devkit (0:0.1:1) and np.arange compute it: 0.30000000000000004 for i = 3
    return sum(max([p for r, p in points if r >= i * 0.1], default=0.0) for i in range(11)) / 11


@pytest.mark.parametrize("case", [
    ([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, -1, 1, -1, -1, 1]),
    ([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [1, 0, -1, 0, 1, -1, 0]),   # difficult items in the ranking
    ([0.1, 0.2, 0.3, 0.4], [1, -1, -1, -1]),                          # the positive ranked last
    ([3.0, 2.0, 1.0], [1, 1, -1]),                                    # perfect
])
def test_voc07_ap_is_the_11_point_interpolated_ap(case):
    scores, labels = case
    assert voc07_ap(np.array(scores), np.array(labels)) == pytest.approx(direct_voc07_ap(scores, labels), abs=1e-6)


def test_voc07_ap_random_rankings_and_difficult_items_ignored():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.choice([1, -1, -1, 0], size=30)
        labels[0] = 1
        scores = rng.normal(size=30)
        ap = voc07_ap(scores, labels)
        assert ap == pytest.approx(direct_voc07_ap(scores.tolist(), labels.tolist()), abs=1e-6)
        # a difficult item counts neither as a hit nor as a false alarm: dropping them changes nothing
        keep = labels != 0
        assert voc07_ap(scores[keep], labels[keep]) == pytest.approx(ap, abs=1e-6)
    # while counting them as negatives would lower the AP where one ranks above a positive
    labels, scores = np.array([1, 0, 1]), np.array([0.3, 0.9, 0.1])
    assert voc07_ap(scores, labels) == pytest.approx(1.0)
    assert voc07_ap(scores, np.where(labels == 0, -1, labels)) < 1.0
    with pytest.raises(ValueError):
        voc07_ap(np.array([1.0, 0.5]), np.array([-1, 0]))


def test_voc07_ap_is_not_sklearns_average_precision():
    from sklearn.metrics import average_precision_score

    scores, labels = np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, -1, -1, 1, -1])
    ours = voc07_ap(scores, labels)
    assert ours == pytest.approx(direct_voc07_ap(scores.tolist(), labels.tolist()), abs=1e-6)
    assert ours == pytest.approx((6 * 1.0 + 5 * 0.5) / 11, abs=1e-6)   # 11-point: 0.7727
    assert average_precision_score(labels == 1, scores) == pytest.approx(0.75)  # step-wise: (1 + 0.5) / 2
    assert abs(ours - average_precision_score(labels == 1, scores)) > 0.02
    assert voc07_ap(scores, labels, mode="area") == pytest.approx(0.75)  # what VISSL reports, here sklearn's too


def test_difficult_images_train_as_negatives_as_vissl_does():
    assert svm_targets(np.array([POSITIVE, DIFFICULT, NEGATIVE])).tolist() == [1, -1, -1]


def test_a_class_too_rare_for_the_cross_validation_gets_no_ap_and_the_others_do():
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 6)), rng.normal(size=(20, 6))
    train_labels = np.full((30, 2), NEGATIVE)
    train_labels[:15, 0] = POSITIVE
    train_labels[:2, 1] = POSITIVE          # 2 positives: a 3-fold split would leave a fold without one
    test_labels = np.full((20, 2), NEGATIVE)
    test_labels[:10, :] = POSITIVE
    per_class = voc07_svm(train, train_labels, test, test_labels, ("common", "rare"))
    assert per_class["common"]["ap"] is not None
    assert per_class["rare"]["ap"] is None and "needs 3 of each" in per_class["rare"]["why"]


# ---- VOC labels ---------------------------------------------------------------------------

def xml(*objects):
    body = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult></object>" for n, d in objects)
    return f"<annotation><size><width>10</width><height>10</height></size>{body}</annotation>"


def test_voc_image_labels(tmp_path):
    classes = ("cat", "dog", "bird", "cow")
    path = tmp_path / "a.xml"
    path.write_text(xml(("cat", 0), ("cat", 1), ("dog", 1), ("dog", 1)))
    assert voc_image_labels(path, classes).tolist() == [1, 0, -1, -1]   # present, only difficult, absent
    path.write_text(xml(("bird", 1), ("bird", 0)).replace("<difficult>0</difficult>", ""))
    assert voc_image_labels(path, classes).tolist() == [-1, -1, 1, -1]  # no <difficult>: not difficult
    path.write_text(xml(("horse", 0)))
    with pytest.raises(ProbeError, match=rf"{path}.*'horse'.*--classes-from"):
        voc_image_labels(path, classes)
    path.write_text("<annotation><object>")
    with pytest.raises(ProbeError, match=rf"{path} is not valid XML"):
        voc_image_labels(path, classes)


def test_voc_labels_agree_with_the_per_class_lists(synthetic):
    from mmdet.datasets import VOCDataset

    classes = VOCDataset.METAINFO["classes"]
    trainval, test = voc_splits(synthetic["voc"], classes)
    main = synthetic["voc"] / "VOC2007/ImageSets/Main"
    for split in (trainval, test):
        for c, name in enumerate(classes):
            listed = dict(ln.split() for ln in (main / f"{name}_{split.name}.txt").read_text().splitlines())
            assert [int(listed[i]) for i in split.names] == split.labels[:, c].tolist(), (name, split.name)
    assert (trainval.labels == DIFFICULT).any()  # the generated set has difficult-only images


def test_voc_split_errors_name_the_file(synthetic, tmp_path):
    root = tmp_path / "VOCdevkit"
    shutil.copytree(synthetic["voc"] / "VOC2007", root / "VOC2007")
    with pytest.raises(ProbeError, match="VOCdevkit folder"):
        voc_splits(tmp_path, ("cat",))
    first = (root / "VOC2007/ImageSets/Main/test.txt").read_text().split()[0]
    bad = root / "VOC2007/Annotations" / f"{first}.xml"
    bad.write_text("<annotation>")
    from mmdet.datasets import VOCDataset

    with pytest.raises(ProbeError, match=f"{bad} is not valid XML"):
        voc_splits(root, VOCDataset.METAINFO["classes"])
    (root / "VOC2007/ImageSets/Main/trainval.txt").unlink()
    with pytest.raises(ProbeError, match="trainval.txt not found"):
        voc_splits(root, VOCDataset.METAINFO["classes"])


def test_voc_classes():
    assert len(voc_classes(None)) == 20 and voc_classes(None)[0] == "aeroplane"
    fashion = voc_classes(str(REPO / "configs/detection/faster-rcnn_fpn_fashion.py"))
    assert len(fashion) == 10 and fashion[0] == "T-shirt/top"
    for config in ("faster-rcnn_r50_fpn_1x_voc0712.py", "faster-rcnn_fpn_voc0712_tiny.py",
                   "faster-rcnn_r50-c4_4xb1-20e_voc0712_paper.py"):  # VOCDataset's own classes, as mmdet reads them
        assert voc_classes(str(REPO / "configs/detection" / config)) == voc_classes(None)


# ---- the feature cache --------------------------------------------------------------------

def test_pooling_and_the_cache_key(tmp_path):
    x = torch.randn(3, 8, 4, 4)
    assert feats.pool(x, "gap").shape == (3, 8) and feats.pool(x, "2x2").shape == (3, 32)
    assert torch.allclose(feats.pool(x, "2x2").norm(dim=1), torch.ones(3))
    t = feats.Transform("square", 56)
    meta = feats.cache_meta(backbone_sha256="a" * 64, probe="knn", split="train", transform=t, pooling="gap",
                            images=["x/1.jpg", "x/2.jpg"])
    other = [dict(meta, backbone_sha256="b" * 64),
             feats.cache_meta(backbone_sha256="a" * 64, probe="knn", split="train",
                              transform=feats.Transform("square", 64), pooling="gap", images=["x/1.jpg", "x/2.jpg"]),
             feats.cache_meta(backbone_sha256="a" * 64, probe="knn", split="train", transform=t, pooling="gap",
                              images=["x/1.jpg"])]
    assert len({feats.cache_path(tmp_path, m) for m in [meta, *other]}) == 4
    path = feats.save_cache(feats.cache_path(tmp_path, meta), torch.ones(2, 8), meta)
    assert torch.equal(feats.load_cached(path, meta), torch.ones(2, 8))
    assert feats.load_cached(feats.cache_path(tmp_path, other[0]), other[0]) is None
    shutil.copy(path, feats.cache_path(tmp_path, other[0]))  # another backbone's file under this one's name
    with pytest.raises(feats.FeatureCacheError, match=r"another backbone's features.*delete"):
        feats.load_cached(feats.cache_path(tmp_path, other[0]), other[0])


# ---- end to end ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backbones(synthetic, tmp_path_factory):
    """A tiny ResNet-18-B pretrained for four epochs on the generated set, and the same
    architecture randomly initialised as a weights file."""
    from pretrain.models import resnet

    runs = tmp_path_factory.mktemp("probe-runs")
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(runs / "tiny"), "--cfg-options",
               f"data.root={synthetic['imagenet']}", "schedule.epochs=4", "schedule.milestones=[3]",
               "data.workers=0", "run.deterministic=True", env=ONE_THREAD))
    torch.manual_seed(0)
    torch.save(resnet(18, "B", num_classes=10, base_channels=16).backbone_state_dict(), runs / "random-init.pth")
    return runs / "tiny", runs / "random-init.pth"


def probe(name, backbone, data, work, *extra):
    return run_cli("downstream/probe.py", name, "--backbone", str(backbone), "--data-root", str(data),
                   "--work-dir", str(work), "--workers", "0", *extra, env=ONE_THREAD)


def result(work):
    return json.loads((work / "result.json").read_text())


def cache_files(work):
    return sorted(p.name for p in (work / "features").glob("*.pt"))


def test_knn_end_to_end(backbones, synthetic, tmp_path):
    run, random_init = backbones
    work = tmp_path / "knn"
    proc = ok(probe("knn", run, synthetic["imagenet"], work))
    res = result(work)
    assert res["stage"] == "probe" and res["backbone"] == "tiny" and res["seed"] is None
    assert res["protocol"]["name"] == "knn" and res["protocol"]["k"] == 20 and res["protocol"]["temperature"] == 0.07
    assert res["protocol"]["transform"] == {"kind": "center-crop", "image_size": 56, "resize": 64,
                                            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert 0 <= res["metrics"]["top1"] <= res["metrics"]["top5"] <= 100
    assert res["cost"]["images_seen"] == 500 and res["pretrain_seed"] == 0 and res["arch"]["variant"] == "B"
    assert "knn done: top1" in proc.stdout and len(cache_files(work)) == 2

    # --resume on a finished probe does nothing; without it the work dir is refused
    before = (work / "result.json").read_bytes()
    proc = ok(probe("knn", run, synthetic["imagenet"], work, "--resume"))
    assert "nothing to do" in proc.stdout and (work / "result.json").read_bytes() == before
    proc = probe("knn", run, synthetic["imagenet"], work)
    assert proc.returncode == 2 and "--resume" in proc.stderr and (work / "result.json").read_bytes() == before

    # run again: the cached features are read, no image goes through the backbone, same numbers
    (work / "result.json").unlink()
    proc = ok(probe("knn", run, synthetic["imagenet"], work))
    assert proc.stdout.count("features read from") == 2 and "computed" not in proc.stdout
    again = result(work)
    assert again["metrics"] == res["metrics"] and again["cost"]["images_seen"] == 0
    assert all(f["cached"] for f in again["features"].values())

    # a randomly initialised backbone (a weights file) scores lower than the pretrained one
    rand = tmp_path / "knn-random"
    ok(probe("knn", random_init, synthetic["imagenet"], rand, "--pretrain-config", TINY))
    assert (rand / "backbone.pth").is_file() and result(rand)["backbone"] == "random-init"
    assert result(rand)["metrics"]["top1"] < res["metrics"]["top1"]


def test_a_changed_backbone_gets_new_features_and_a_copied_cache_is_refused(backbones, synthetic, tmp_path):
    run, random_init = backbones
    first = tmp_path / "first"
    ok(probe("knn", run, synthetic["imagenet"], first))
    # the same run with other weights (its recorded SHA-256 updated), into a copy of the first work dir
    changed = tmp_path / "changed"
    changed.mkdir()
    shutil.copy(random_init, changed / "backbone.pth")
    res = json.loads((run / "result.json").read_text())
    from trickbench.runinfo import sha256_file

    res["backbone_sha256"] = sha256_file(changed / "backbone.pth")
    (changed / "result.json").write_text(json.dumps(res))
    work = tmp_path / "work"
    shutil.copytree(first / "features", work / "features")
    proc = ok(probe("knn", changed, synthetic["imagenet"], work))
    assert proc.stdout.count("features computed") == 2
    new = sorted(set(cache_files(work)) - set(cache_files(first)))
    assert len(new) == 2 and len(cache_files(work)) == 4
    assert result(work)["metrics"] != result(first)["metrics"]

    # the first backbone's train features copied under the changed backbone's name: refused, named
    victim = work / "features" / next(n for n in new if n.startswith("knn-train-"))
    shutil.copy(first / "features" / next(n for n in cache_files(first) if n.startswith("knn-train-")), victim)
    (work / "result.json").unlink()
    proc = probe("knn", changed, synthetic["imagenet"], work)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(victim) in proc.stderr and "another backbone" in proc.stderr and "delete" in proc.stderr
    assert not (work / "result.json").exists()


def test_voc07_svm_end_to_end(backbones, synthetic, tmp_path):
    run, _ = backbones
    work = tmp_path / "voc"
    proc = ok(probe("voc07-svm", run, synthetic["voc"], work))
    res = result(work)
    assert res["stage"] == "probe" and res["protocol"]["name"] == "voc07-svm"
    assert res["protocol"]["costs"] == [0.01, 0.1, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 50.0, 100.0, 1000.0]
    assert res["protocol"]["svm"]["class_weight"] == {"1": 2, "-1": 1} and res["protocol"]["pooling"] == "2x2"
    assert res["protocol"]["transform"]["kind"] == "square" and res["protocol"]["transform"]["image_size"] == 56
    assert len(res["per_class"]) == 20 and np.isfinite(res["metrics"]["map"]) and 0 < res["metrics"]["map"] <= 100
    scored = [r for r in res["per_class"].values() if r["ap"] is not None]
    assert res["metrics"]["map"] == pytest.approx(np.mean([r["ap"] for r in scored]))
    assert res["metrics"]["map_area"] == pytest.approx(np.mean([r["ap_area"] for r in scored]))
    assert all(r["cost"] in res["protocol"]["costs"] for r in scored)
    assert res["cost"]["images_seen"] == 120 and "voc07-svm done: map" in proc.stdout
    proc = ok(probe("voc07-svm", run, synthetic["voc"], work, "--resume"))
    assert "nothing to do" in proc.stdout


def test_bad_input_exits_2_and_writes_nothing(backbones, synthetic, tmp_path):
    run, _ = backbones
    for name, data in (("knn", tmp_path / "nowhere"), ("voc07-svm", synthetic["imagenet"])):
        work = tmp_path / f"w-{name}"
        proc = probe(name, run, data, work)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert str(data) in proc.stderr and "--data-root" in proc.stderr
        assert not work.exists()
    proc = probe("knn", tmp_path / "no-backbone", synthetic["imagenet"], tmp_path / "w")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "no-backbone" in proc.stderr
    assert not (tmp_path / "w").exists()
    # a pretrain run's image size is its own: --pretrain-config is for weights files
    from downstream.runner import resolve_backbone

    assert pretrain_data(resolve_backbone(str(run)), None).image_size == 56
    with pytest.raises(ProbeError, match="--pretrain-config is for a weights file"):
        pretrain_data(resolve_backbone(str(run)), TINY)
