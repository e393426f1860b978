#!/usr/bin/env python
"""The deterministic probes of a frozen pretrained backbone (:mod:`trickbench.protocols`): nothing of
the backbone is trained, and a backbone's result depends on nothing but its weights and the data.

    python downstream/probe.py knn --backbone runs/r50d --data-root data/imagenet --work-dir runs/r50d/probe/knn
    python downstream/probe.py voc07-svm --backbone runs/r50d --data-root data/VOCdevkit --work-dir ...

``knn`` (Caron et al. 2021, DINO's ``eval_knn.py``): global-average-pooled, L2-normalised
last-stage features of ``DATA_ROOT/train`` and ``DATA_ROOT/val`` through the pretraining's
validation transform; each val image takes the weighted vote of its k = 20 most cosine-similar
train images, a neighbour's vote weighing exp(similarity / 0.07); ``top1`` (and ``top5``) in percent.

``voc07-svm`` (Goyal et al. 2019, "Scaling and Benchmarking Self-Supervised Visual Representation
Learning"; VISSL's ``SVMTrainer``): last-stage features average-pooled to 2x2, L2-normalised,
of VOC2007 trainval and test resized to the pretraining's square resolution; one linear SVM per
class, its cost chosen by 3-fold cross-validated AP on trainval, refit on all of trainval; ``map``:
the mean over classes of VOC07's 11-point interpolated AP on test, difficult images ignored
(``map_area``: the area under the curve, the AP VISSL itself reports).

The features are computed once per backbone and cached in ``WORK_DIR/features/``
(:mod:`downstream.features`); ``result.json`` (stage ``probe``) records the protocol and its settings.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

if __name__ == "__main__":
    gc.disable()   # until the imports are done: trickbench.runtime.imports_done
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pretrain.checkpoint import CheckpointError, pretrain_result
from pretrain.data import image_folder
from trickbench import protocols, results
from trickbench.errors import TrickBenchError
from trickbench.errors import report as report_error
from trickbench.errors import report_disk_full
from trickbench.fileio import remove_stale_temps
from trickbench.mmconfig import read_config
from trickbench.paths import REPO
from trickbench.pretrain_config import ConfigError, DataConfig, from_dict, load_config
from trickbench.runinfo import sha256_file
from trickbench.runtime import atomic_torch_save, imports_done, write_result
from trickbench.worklock import lock_work_dir

from downstream import features as feats
from downstream.runner import Backbone, resolve_backbone

DEFAULT_PRETRAIN_CONFIG = REPO / "configs/pretrain/resnet50_baseline.py"
# DINO eval_knn.py: k = 20 of its --nb_knn 10 20 100 200 (the one its paper reports), --temperature 0.07.
KNN_K, KNN_T = 20, 0.07
# VISSL's VOC07 SVM benchmark (configs/config/benchmark/linear_image_classification/voc07/
# eval_resnet_8gpu_transfer_voc07_svm.yaml, SVM section; its defaults.yaml has costs [0.1, 0.01]).
SVM_COSTS = (0.01, 0.1, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 50.0, 100.0, 1000.0)
# random_state fixes liblinear's order of coordinates, so that the probe is deterministic (VISSL leaves it unset).
SVM = dict(loss="squared_hinge", penalty="l2", dual=True, max_iter=2000, tol=1e-4, cross_val_folds=3,
           class_weight={1: 2, -1: 1}, random_state=0)


class ProbeError(TrickBenchError, ValueError):
    """Bad input to a probe; the message names the file or option and the fix."""


# ---- k-NN (DINO) ------------------------------------------------------------------------

@torch.no_grad()
def knn_classifier(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor, *,
                   num_classes: int, k: int = KNN_K, temperature: float = KNN_T,
                   chunk_size: int = 256) -> torch.Tensor:
    """DINO's ``knn_classifier`` (``eval_knn.py``; Wu et al. 2018's weighted k-NN): the class votes
    of each test feature, ``[n_test, num_classes]``. Features are L2-normalised, so the dot product is
    the cosine similarity; each of the ``k`` most similar train features votes for its label with
    weight ``exp(similarity / temperature)``. The test features go in chunks (DINO's 100 chunks of
    ``n_test // 100``, which is 0 below 100 images; a fixed size here), on the train features' device.
    With fewer than ``k`` train features, all of them vote."""
    k = min(k, train_features.shape[0])
    device = train_features.device
    train_t, train_labels = train_features.t(), train_labels.to(device)
    votes = []
    for start in range(0, test_features.shape[0], chunk_size):
        similarity = test_features[start:start + chunk_size].to(device) @ train_t
        top, index = similarity.topk(k, dim=1, largest=True, sorted=True)
        one_hot = F.one_hot(train_labels[index], num_classes).to(top.dtype)     # [chunk, k, classes]
        votes.append((one_hot * (top / temperature).exp().unsqueeze(-1)).sum(1))
    return torch.cat(votes) if votes else torch.zeros(0, num_classes, device=device)


def topk_accuracy(votes: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """``top1``, ``top5``... in percent; a tie goes to the lower class index (as an argmax does).
    A k above the number of classes is left out."""
    ranking = votes.sort(dim=1, descending=True, stable=True).indices
    correct = ranking.eq(labels.to(ranking.device).view(-1, 1))
    return {f"top{k}": 100.0 * correct[:, :k].any(1).float().mean().item() for k in ks if k <= votes.shape[1]}


# ---- VOC07 SVM (VISSL) ------------------------------------------------------------------

POSITIVE, DIFFICULT, NEGATIVE = 1, 0, -1  # VOC's per-class image labels (ImageSets/Main/<class>_<split>.txt)


def voc_split_ids(voc: Path, split: str) -> list[str]:
    path = voc / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise ProbeError(f"VOC split list {path} not found; --data-root must be the VOCdevkit folder holding "
                         f"VOC2007/ImageSets/Main/{{trainval,test}}.txt, Annotations/ and JPEGImages/")
    ids = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
    if not ids:
        raise ProbeError(f"VOC split list {path} lists no image ids; restore it from the VOC archive")
    return ids


def voc_image_labels(xml_path: Path, classes: tuple[str, ...]) -> np.ndarray:
    """One image's label per class, as VOC's per-class lists give them: 1 if a non-difficult object
    of the class is present, 0 ("difficult") if only difficult ones are, -1 otherwise."""
    try:
        root = ET.parse(xml_path).getroot()
    except FileNotFoundError:
        raise ProbeError(f"annotation {xml_path} is missing; restore it from the VOC archive") from None
    except ET.ParseError as e:
        raise ProbeError(f"annotation {xml_path} is not valid XML ({e}); restore it from the VOC archive") from None
    labels = np.full(len(classes), NEGATIVE, dtype=np.int8)
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            raise ProbeError(f"annotation {xml_path} has an object of class {name!r}, which is not one of the "
                             f"{len(classes)} classes ({', '.join(classes)}); pass --classes-from with the "
                             f"detection config of this dataset")
        difficult = (obj.findtext("difficult") or "0").strip() == "1"  # absent: not difficult, as mmdet reads it
        c = classes.index(name)
        labels[c] = max(labels[c], DIFFICULT if difficult else POSITIVE)
    return labels


def voc07_ap(scores: np.ndarray, labels: np.ndarray, mode: str = "11points") -> float:
    """VOC07's classification AP (``VOCevalcls``): images ranked by score, difficult ones (label 0)
    counting neither as true nor as false positives; precision at each rank, then the 11-point
    interpolation (mmdet's ``average_precision(..., "11points")``: the mean over recall thresholds
    0, 0.1, ..., 1 of the best precision at that recall or above). ``mode="area"``: the area under
    the interpolated curve instead, the AP VISSL's ``get_precision_recall`` reports (``calculate_ap``
    in ``vissl/utils/svm_utils/evaluate.py``). A fraction; ValueError without a positive image."""
    from mmdet.evaluation.functional import average_precision

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    keep = labels != DIFFICULT
    positive = labels[keep] == POSITIVE
    if not positive.any():
        raise ValueError("no positive image: AP is undefined")
    order = np.argsort(-scores[keep], kind="stable")
    tp = np.cumsum(positive[order])
    fp = np.cumsum(~positive[order])
    return float(average_precision(tp / positive.sum(), tp / (tp + fp), mode=mode))


def svm_targets(labels: np.ndarray) -> np.ndarray:
    """The SVM's training targets from VOC labels: positives 1, everything else -1, difficult
    images included as negatives. VISSL does this: ``extra_scripts/datasets/create_voc_data_files.py``
    maps VOC's 1/-1/0 to 1/0/-1, and ``SVMTrainer.train_cls`` (``vissl/utils/svm_utils/
    svm_trainer.py``) sets its 0 (absent) to -1, keeping -1 (difficult): both train as negatives. Only
    the test ignores difficult images (``SVMTrainer.test``: ``targets != -1``)."""
    return np.where(labels == POSITIVE, 1, -1).astype(np.int32)


def fit_svm(features: np.ndarray, targets: np.ndarray, costs=SVM_COSTS, settings: dict = SVM):
    """One class's ``LinearSVC`` with the cost of best mean 3-fold cross-validated AP on
    ``features`` (the first of equals, as VISSL's argmax over its cost list), refit on all of them.
    Returns the fitted ``GridSearchCV`` and how many fits did not converge in ``max_iter``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import LinearSVC

    svc = LinearSVC(loss=settings["loss"], penalty=settings["penalty"], dual=settings["dual"],
                    max_iter=settings["max_iter"], tol=settings["tol"], class_weight=settings["class_weight"],
                    intercept_scaling=1.0, random_state=settings["random_state"])
    search = GridSearchCV(svc, {"C": list(costs)}, cv=settings["cross_val_folds"], scoring="average_precision",
                          refit=True, error_score="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.fit(features, targets)
    return search, sum(issubclass(w.category, ConvergenceWarning) for w in caught)


def voc07_svm(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
              test_labels: np.ndarray, classes: tuple[str, ...], costs=SVM_COSTS, settings: dict = SVM) -> dict:
    """Per class: the chosen cost, its cross-validated AP, the test AP (percent; ``ap``: VOC07's
    11 points, ``ap_area``: the area under the curve, as VISSL reports it). A class with fewer
    positive (or negative) images in trainval than cross-validation folds, or without a positive
    test image, has no AP (``ap`` None, ``why``) and is left out of the mean."""
    train_features = np.asarray(train_features, dtype=np.float64)  # as VISSL's trainer reads them
    test_features = np.asarray(test_features, dtype=np.float64)
    per_class = {}
    for c, name in enumerate(classes):
        targets = svm_targets(train_labels[:, c])
        n_pos, n_test_pos = int((targets == 1).sum()), int((test_labels[:, c] == POSITIVE).sum())
        row = dict(train_positives=n_pos, test_positives=n_test_pos, ap=None)
        folds = settings["cross_val_folds"]
        if min(n_pos, len(targets) - n_pos) < folds:  # every fold of the cross-validation needs both kinds
            per_class[name] = row | {"why": f"trainval has {n_pos} positive and {len(targets) - n_pos} negative "
                                            f"images; the {folds}-fold cross-validation needs {folds} of each"}
            continue
        if n_test_pos == 0:
            per_class[name] = row | {"why": "test has no positive image"}
            continue
        search, not_converged = fit_svm(train_features, targets, costs, settings)
        scores = search.best_estimator_.decision_function(test_features)
        per_class[name] = row | dict(ap=100.0 * voc07_ap(scores, test_labels[:, c]),
                                     ap_area=100.0 * voc07_ap(scores, test_labels[:, c], mode="area"),
                                     cost=float(search.best_params_["C"]), cv_ap=100.0 * float(search.best_score_),
                                     not_converged=not_converged)
    return per_class


# ---- the data of each probe --------------------------------------------------------------

@dataclass
class Split:
    name: str
    paths: list[Path]
    names: list[str]           # what the split lists, in order (the cache key's image digest)
    labels: object             # knn: class indices (tensor); voc07-svm: [images, classes] of 1/0/-1 (array)


def knn_splits(root: Path) -> tuple[Split, Split, int]:
    """``ROOT/train`` and ``ROOT/val`` in ImageNet's layout, read as pretraining reads them (class
    indices from the sorted train folders)."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ProbeError(f"{root / split} not found; --data-root must be an ImageNet-layout folder holding "
                             f"train/<class>/<image> and val/<class>/<image> (the pretraining's data.root)")
    train = image_folder(root, "train", None)
    val = image_folder(root, "val", None, classes=train.classes)
    splits = [Split(name, [Path(p) for p, _ in ds.samples], [os.path.relpath(p, root) for p, _ in ds.samples],
                    torch.tensor(ds.targets, dtype=torch.long)) for name, ds in (("train", train), ("val", val))]
    return splits[0], splits[1], len(train.classes)


def voc_splits(root: Path, classes: tuple[str, ...]) -> tuple[Split, Split]:
    """VOC2007 trainval and test under the VOCdevkit folder ``root``, with each image's labels."""
    voc = root / "VOC2007"
    if not voc.is_dir():
        raise ProbeError(f"{voc} not found; --data-root must be the VOCdevkit folder holding VOC2007/ "
                         f"(ImageSets/Main/{{trainval,test}}.txt, Annotations/, JPEGImages/)")
    out = []
    for split in ("trainval", "test"):
        ids = voc_split_ids(voc, split)
        paths = [voc / "JPEGImages" / f"{i}.jpg" for i in ids]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise ProbeError(f"{missing[0]} (and {len(missing) - 1} more) listed in "
                             f"{voc / 'ImageSets/Main' / f'{split}.txt'} is missing; restore it from the VOC archive")
        labels = np.stack([voc_image_labels(voc / "Annotations" / f"{i}.xml", classes) for i in ids])
        out.append(Split(split, paths, ids, labels))
    return out[0], out[1]


def voc_classes(detection_config: str | None) -> tuple[str, ...]:
    """mmdet's VOC classes, or those of a detection config's ``metainfo`` (the Fashion set's 10); a
    config that sets none has VOC's, as its ``VOCDataset`` does."""
    if detection_config is None:
        from mmdet.datasets import VOCDataset

        return tuple(VOCDataset.METAINFO["classes"])
    cfg = read_config(detection_config, "detection config")
    meta = cfg.get("metainfo") or (((cfg.get("test_dataloader") or {}).get("dataset") or {}).get("metainfo")) or {}
    classes = meta.get("classes")
    if not classes:  # the config's dataset keeps its own classes, as mmdet (and detect.py) read them: VOC's
        return voc_classes(None)
    if not all(isinstance(c, str) for c in classes):
        raise ProbeError(f"--classes-from {detection_config}: metainfo.classes {classes!r} is not a list of class "
                         f"names; fix the config")
    return tuple(classes)


def pretrain_data(bb: Backbone, config_file: str | None) -> DataConfig:
    """The pretraining's data settings (image size, validation resize): a pretrain run's resolved
    config, or for a weights file ``--pretrain-config`` (default: the paper's baseline)."""
    if bb.pretrain_dir is not None:
        if config_file is not None:
            raise ProbeError(f"--pretrain-config is for a weights file; the pretrain run {bb.pretrain_dir} uses "
                             f"the config it recorded")
        res = pretrain_result(bb.pretrain_dir)
        try:
            return from_dict(res.config).data
        except ConfigError as e:
            raise ProbeError(f"{res.source}: its recorded config cannot be read ({e}); re-run the pretraining, or "
                             f"probe its backbone.pth as a weights file with --pretrain-config") from None
    return load_config(config_file or DEFAULT_PRETRAIN_CONFIG).data


# ---- the stage ---------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Probe a frozen pretrained backbone: ImageNet k-NN top-1 (DINO) or "
                                            "VOC07 linear-SVM mAP (VISSL).")
    p.add_argument("probe", choices=protocols.PROBES)
    p.add_argument("--backbone", required=True,
                   help="a pretrain run directory (result.json + backbone.pth), or a torchvision / timm / "
                        "mmpretrain ResNet weights file")
    p.add_argument("--data-root", required=True, type=Path,
                   help="knn: an ImageNet-layout folder (train/, val/); voc07-svm: a VOCdevkit folder (VOC2007/)")
    p.add_argument("--work-dir", required=True, type=Path, help="where the result and the feature cache go")
    p.add_argument("--name", help="the backbone id on the leaderboard (default: the run's, or the file's stem)")
    p.add_argument("--recipe", help="the recipe the backbone belongs to (default: the run's, or --name)")
    p.add_argument("--top1", type=float, help="ImageNet top-1 of a weights file, for the leaderboard")
    p.add_argument("--variant", choices=list("ABCD"), help="the ResNet variant of a weights file (default: read "
                                                           "from its keys)")
    p.add_argument("--pretrain-seed", type=int, help="the pretraining seed of a weights file, for the record")
    p.add_argument("--pretrain-config", help=f"a weights file's pretraining config, for its image size and validation "
                                             f"resize (default: {DEFAULT_PRETRAIN_CONFIG.relative_to(REPO)})")
    p.add_argument("--classes-from", metavar="DET_CONFIG", help="voc07-svm: the classes of this detection config's "
                                                                "metainfo (default: VOC's 20)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="data loader processes (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="a work dir with a finished result is left as it is")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1 or args.workers < 0:
        raise ProbeError(f"--batch-size {args.batch_size} / --workers {args.workers}: need >= 1 and >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ProbeError(f"--device {args.device}: no CUDA device is visible; pass --device cpu")
    if args.classes_from is not None and args.probe != "voc07-svm":
        raise ProbeError("--classes-from sets the classes of voc07-svm; the knn probe takes them from the folders")


def finished(work_dir: Path, probe: str, resume: bool) -> bool:
    """Whether the work dir already holds this probe's result (then, with --resume, nothing is left to do)."""
    path = work_dir / results.NAME
    if not path.exists():
        return False
    if not resume:
        raise ProbeError(f"{work_dir} already holds a result ({path}); pass --resume to leave it as it is, or "
                         f"choose another --work-dir (nothing was changed)")
    res = results.read(path)
    if res.stage != "probe" or res.protocol_name != probe:
        raise ProbeError(f"--resume: {path} is a {res.stage} result ({res.protocol_name}), not a {probe} probe; "
                         f"choose another --work-dir")
    return True


@dataclass
class Features:
    values: torch.Tensor       # [images, dim], pooled and L2-normalised
    file: Path                 # its cache file
    cached: bool               # read from the cache: no image of the split went through the backbone


def split_features(splits: list[Split], *, probe: str, transform: feats.Transform, pooling: str, bb: Backbone,
                   sha256: str, work_dir: Path, device: str, batch_size: int, workers: int) -> dict[str, Features]:
    """Each split's features, from the work dir's cache or computed (the backbone is built only
    then) and cached."""
    metas = {s.name: feats.cache_meta(backbone_sha256=sha256, probe=probe, split=s.name, transform=transform,
                                      pooling=pooling, images=s.names) for s in splits}
    files = {name: feats.cache_path(work_dir, meta) for name, meta in metas.items()}
    cached = {name: feats.load_cached(files[name], meta) for name, meta in metas.items()}
    model = None
    if any(v is None for v in cached.values()):
        model = feats.build_backbone(bb.arch, bb.checkpoint, sha256, device)
    out = {}
    for s in splits:
        values = cached[s.name]
        if values is None:
            values = feats.extract(model, feats.Images(s.paths, transform.build()), pooling, device, batch_size,
                                   workers)
            feats.save_cache(files[s.name], values, metas[s.name])
        out[s.name] = Features(values, files[s.name], cached[s.name] is not None)
        verb = "read from" if out[s.name].cached else "computed, cached in"
        print(f"[{bb.id}] {probe} {s.name}: {len(s.paths)} images, features {verb} {files[s.name]}", flush=True)
    return out


def knn_probe(train_features, train_labels, test_features, test_labels, num_classes: int,
              device: str) -> tuple[dict, dict, dict]:
    """The k-NN probe's metrics, its settings and the result's extra fields (none)."""
    votes = knn_classifier(train_features.to(device), train_labels, test_features.to(device),
                           num_classes=num_classes, k=KNN_K, temperature=KNN_T)
    return topk_accuracy(votes, test_labels), dict(k=KNN_K, temperature=KNN_T, num_classes=num_classes), {}


def voc07_svm_probe(train_features, train_labels, test_features, test_labels, classes: tuple[str, ...],
                    root: Path, bb_id: str) -> tuple[dict, dict, dict]:
    """The VOC07 SVM probe's metrics (the mean over the classes that have an AP), its settings and
    the result's extra field ``per_class``."""
    per_class = voc07_svm(train_features.numpy(), train_labels, test_features.numpy(), test_labels, classes)
    scored = [r for r in per_class.values() if r["ap"] is not None]
    if not scored:
        raise ProbeError(f"no class of {root / 'VOC2007'} has positive images in both trainval and test; "
                         f"check --classes-from")
    for name, r in per_class.items():
        if r["ap"] is None:
            print(f"[{bb_id}] voc07-svm: class {name!r} left out of the mean: {r['why']}", flush=True)
    metrics = {"map": float(np.mean([r["ap"] for r in scored])),
               "map_area": float(np.mean([r["ap_area"] for r in scored]))}
    settings = dict(classes=list(classes), costs=list(SVM_COSTS),
                    svm={k: ({str(c): w for c, w in v.items()} if k == "class_weight" else v) for k, v in SVM.items()},
                    difficult="training: negatives (as VISSL); test: ignored (as VOC07)")
    return metrics, settings, {"per_class": per_class}


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    check_args(args)
    bb = resolve_backbone(args.backbone, variant=args.variant, name=args.name, top1=args.top1)
    if args.recipe:
        bb.recipe = args.recipe
    work_dir = args.work_dir
    if finished(work_dir, args.probe, args.resume):
        print(f"[{bb.id}] {args.probe}: {work_dir / results.NAME} is finished; nothing to do")
        return 0
    data = pretrain_data(bb, args.pretrain_config)
    root = args.data_root
    if args.probe == "knn":
        train, test, num_classes = knn_splits(root)
        transform, pooling = feats.Transform("center-crop", data.image_size, data.val_resize), "gap"
    else:
        classes = voc_classes(args.classes_from)
        train, test = voc_splits(root, classes)
        transform, pooling = feats.Transform("square", data.image_size), "2x2"

    lock_work_dir(work_dir)  # held until the process ends; a second run into the same folder stops here
    for folder in (work_dir, work_dir / feats.CACHE_FOLDER):
        remove_stale_temps(folder)
    if finished(work_dir, args.probe, args.resume):  # finished while this one waited to start
        print(f"[{bb.id}] {args.probe}: {work_dir / results.NAME} is finished; nothing to do")
        return 0
    if bb.state is not None:  # a foreign checkpoint: keep the converted weights with the run
        bb.checkpoint = atomic_torch_save(work_dir / "backbone.pth", bb.state).resolve()
        bb.sha256 = sha256_file(bb.checkpoint)
    sha256 = sha256_file(bb.checkpoint)  # the cache's key: the weights as they are now
    if bb.sha256 and sha256 != bb.sha256:
        raise CheckpointError(f"{bb.checkpoint} changed since its pretrain run recorded it (SHA-256 differs); "
                              f"re-run the pretraining or point --backbone at the right run")
    got = split_features([train, test], probe=args.probe, transform=transform, pooling=pooling, bb=bb,
                         sha256=sha256, work_dir=work_dir, device=args.device, batch_size=args.batch_size,
                         workers=args.workers)
    settings = dict(transform=transform.record(), pooling=pooling, train_split=train.name, test_split=test.name,
                    train_images=len(train.paths), test_images=len(test.paths))
    if args.probe == "knn":
        metrics, own, extra = knn_probe(got[train.name].values, train.labels, got[test.name].values, test.labels,
                                        num_classes, args.device)
    else:
        metrics, own, extra = voc07_svm_probe(got[train.name].values, train.labels, got[test.name].values,
                                              test.labels, classes, root, bb.id)
    settings |= own
    featurised = sum(len(s.paths) for s in (train, test) if not got[s.name].cached)
    path = write_result(
        work_dir, stage="probe", backbone=bb.id, recipe=bb.recipe or bb.id, seed=None, metrics=metrics,
        config=settings | dict(data_root=str(root), device=args.device, batch_size=args.batch_size),
        checkpoint=None, wall_time_s=time.time() - t0, arch=bb.arch, top1=bb.top1, backbone_sha256=sha256,
        pretrain_dir=str(bb.pretrain_dir) if bb.pretrain_dir else None,
        pretrain_seed=bb.seed if bb.seed is not None else args.pretrain_seed,
        protocol=protocols.PROTOCOLS[args.probe].record(**settings), images_seen=featurised,
        device=None if args.device.startswith("cuda") else "cpu", backbone_source=bb.source,
        features={n: {"file": str(g.file), "cached": g.cached} for n, g in got.items()}, **extra)
    print(f"[{bb.id}] {args.probe} done: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
          + f"; result {path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except TrickBenchError as e:
        return report_error(e)
    except OSError as e:
        return report_disk_full(e, "a file", "run again: cached features are kept")


if __name__ == "__main__":
    imports_done()
    sys.exit(main())
