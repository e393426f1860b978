"""Evaluation-set noise: how far a study's numbers would move had other images made up the test
split, for the same trained models.

A downstream metric has three sources of noise: the pretraining seed and the fine-tune seed
(:mod:`evaluation.noise`), and the finite test set. The third is estimated here by Efron's
bootstrap over the test images: B resamples of the N images with replacement, each a vector of
multiplicities (:func:`resample_weights`), the metric recomputed on each. Every run is scored on
the same resamples, so a difference between two recipes is paired: what the backbones share
(the images that are hard or easy for every detector) cancels, and the sd of the difference is
smaller than that of either number.

* :func:`load`: a run's ``per_image.npz`` (written by ``downstream/per_image.py``) as
  :class:`DetectionImages` or :class:`SegmentationImages`; a malformed file is an
  :class:`EvalSetError` naming it.
* :func:`voc_map` and :func:`miou`: the metric of a weighted test set (weight = how many times an
  image is in the resample), equal to mmdet's ``eval_map`` and mmseg's ``IoUMetric`` on the list
  with every image repeated that many times; vectorised over resamples, O(detections) per
  resample (each class's detections are sorted by score once; a resample is a weighted cumsum
  over its TPs and a sparse product over its FPs).
* :func:`evalset_noise`: per run, recipe and comparison of recipes, the bootstrap sd, with the
  paired differences' percentile intervals (an :class:`EvalSetNoise`).

Numbers only, from arrays: no torch, no OpenMMLab import; :func:`load` is the one reader of files.
"""
from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from evaluation.noise import name
from trickbench.errors import TrickBenchError
from trickbench.results import PER_IMAGE_FILE as FILE
from trickbench.results import PER_IMAGE_FORMAT as FORMAT

N_BOOT = 1000
SEED = 0
CONFIDENCE = 0.95
# The suite's metric -> its key in mmengine's metrics, as downstream/detect.py and segment.py read them
KEYS = {"map": "pascal_voc/mAP", "map_area": "pascal_voc_area/mAP", "miou": "mIoU"}
TASK = {"map": "detection", "map_area": "detection", "miou": "segmentation"}
EPS = np.finfo(np.float32).eps               # eval_map's floor under a denominator
ELEVEN = np.arange(0, 1 + 1e-3, 0.1)         # average_precision's 11 recall thresholds, bit for bit
# |recomputed - reported| above which a file is not the run's: mAP is recomputed bit for bit, mIoU
# is reported as mmseg rounds it (2 decimals).
AGREE = {"map": 1e-6, "map_area": 1e-6, "miou": 0.006}
FIX = "delete it (the report then leaves the run out) or re-run the job that wrote it"


class EvalSetError(TrickBenchError, ValueError):
    """A per_image.npz that cannot be used: unreadable, malformed, or not on the study's test images."""


# ---------------------------------------------------------------- the per-image data


@dataclass(frozen=True, eq=False)
class DetectionImages:
    """VOCMetric's per-image data (see downstream/per_image.py): N images, C classes, D detections
    stored image-major then class, T IoU thresholds."""
    path: Path | None
    img_ids: np.ndarray        # (N,) str
    classes: tuple[str, ...]
    num_gts: np.ndarray        # (N, C) non-difficult ground-truth boxes
    offsets: np.ndarray        # (N C + 1,): detections of image i, class c at offsets[iC+c]:offsets[iC+c+1]
    scores: np.ndarray         # (D,) float32, as VOCMetric holds them
    tp: np.ndarray             # (T, D) 0/1: tpfp_default's flags (a match to a difficult box is neither)
    fp: np.ndarray             # (T, D)
    iou_thrs: np.ndarray       # (T,)
    metrics: dict[str, dict]   # key (pascal_voc/mAP ...) -> eval_mode, iou_thrs, reported value

    @functools.cached_property
    def curves(self) -> list[list[tuple[np.ndarray, sparse.csr_matrix]]]:
        """Per IoU threshold and class, the precision-recall curve's ingredients that do not depend
        on the weights, in eval_map's order (the class's detections stacked image by image, sorted
        by ``np.argsort(-score)``): the image of each TP, and a sparse (TPs x images) count of the
        FPs that come after the previous TP and before this one. Only the TP points matter: recall
        changes only there, and an FP point's precision is below that of the TP point before it,
        so it never sets the precision envelope; a detection matched to a difficult box is neither."""
        n_img, n_cls = self.num_gts.shape
        counts = np.diff(self.offsets)
        image = np.repeat(np.repeat(np.arange(n_img), n_cls), counts)
        cls = np.repeat(np.tile(np.arange(n_cls), n_img), counts)
        out: list[list[tuple[np.ndarray, sparse.csr_matrix]]] = [[] for _ in self.iou_thrs]
        for c in range(n_cls):
            idx = np.flatnonzero(cls == c)
            idx = idx[np.argsort(-self.scores[idx])]
            img = image[idx]
            for t in range(self.iou_thrs.size):
                tp, fp = self.tp[t, idx].astype(bool), self.fp[t, idx].astype(bool)
                before = np.cumsum(tp)  # the TPs before each FP (an FP is not one)
                n_tp = int(before[-1]) if before.size else 0
                keep = fp & (before < n_tp)  # FPs after the last TP are on no TP's count
                fps = sparse.csr_matrix((np.ones(int(keep.sum()), np.float32), (before[keep], img[keep])),
                                        shape=(n_tp, n_img))
                out[t].append((img[tp], fps))
        return out


@dataclass(frozen=True, eq=False)
class SegmentationImages:
    """IoUMetric's per-image areas, (N, C) each."""
    path: Path | None
    img_ids: np.ndarray
    classes: tuple[str, ...]
    intersect: np.ndarray
    union: np.ndarray
    pred_label: np.ndarray
    label: np.ndarray
    nan_to_num: float | None
    metrics: dict[str, dict]   # key (mIoU) -> reported value


PerImage = DetectionImages | SegmentationImages


def _need(arrays: Mapping[str, np.ndarray], key: str, ndim: int, problem: list[str]) -> np.ndarray | None:
    a = arrays.get(key)
    if a is None:
        problem.append(f"no array {key!r}")
    elif a.ndim != ndim:
        problem.append(f"{key!r} has {a.ndim} dimensions, not {ndim}")
    else:
        return a
    return None


def load(path: str | Path) -> PerImage:
    """A ``per_image.npz`` read with ``allow_pickle=False`` and checked: the arrays its task needs,
    their shapes agreeing; otherwise an :class:`EvalSetError` that names the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta"]))
        if not isinstance(meta, dict):
            raise ValueError("meta is not a JSON object")
    except Exception as e:  # np.load raises OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError...
        raise EvalSetError(f"{path}: not a readable {FILE} ({type(e).__name__}: {e}); {FIX}") from None
    if meta.get("format") != FORMAT:
        raise EvalSetError(f"{path}: format {meta.get('format')!r}, this code reads format {FORMAT}; {FIX}")
    problem: list[str] = []
    ids, classes = _need(arrays, "img_ids", 1, problem), _need(arrays, "classes", 1, problem)
    entries = {e.get("key"): e for e in meta.get("metrics", []) if isinstance(e, dict)}
    task = meta.get("task")
    if task == "detection":
        gts = _need(arrays, "num_gts", 2, problem)
        offsets, scores = _need(arrays, "det_offsets", 1, problem), _need(arrays, "det_score", 1, problem)
        tp, fp = _need(arrays, "det_tp", 2, problem), _need(arrays, "det_fp", 2, problem)
        thrs = _need(arrays, "iou_thrs", 1, problem)
        if not problem:
            n, c, d = ids.size, classes.size, scores.size
            if gts.shape != (n, c):
                problem.append(f"num_gts is {gts.shape}, not (images, classes) = {(n, c)}")
            elif offsets.shape != (n * c + 1,) or offsets[0] != 0 or offsets[-1] != d or np.any(np.diff(offsets) < 0):
                problem.append(f"det_offsets does not index the {d} detections of {n} images x {c} classes")
            elif tp.shape != (thrs.size, d) or fp.shape != tp.shape:
                problem.append(f"det_tp / det_fp are {tp.shape} / {fp.shape}, not (thresholds, detections) = "
                               f"{(thrs.size, d)}")
            elif np.any(tp > 1) or np.any(fp > 1) or np.any(tp.astype(int) + fp > 1) or np.any(gts < 0):
                problem.append("flags that are not 0/1, or a detection both TP and FP, or a negative box count")
            elif any(not set(e.get("iou_thrs", [])) <= set(thrs.tolist()) for e in entries.values()):
                problem.append("a metric's iou_thrs are not among the file's")
        if not problem:
            return DetectionImages(path, ids.astype(str), tuple(classes.astype(str).tolist()), gts.astype(np.int64),
                                   offsets.astype(np.int64), scores.astype(np.float32), tp.astype(np.uint8),
                                   fp.astype(np.uint8), thrs.astype(np.float64), entries)
    elif task == "segmentation":
        areas = [_need(arrays, k, 2, problem) for k in ("area_intersect", "area_union", "area_pred_label",
                                                         "area_label")]
        if not problem:
            shape = (ids.size, classes.size)
            if any(a.shape != shape for a in areas):
                problem.append(f"the areas are not (images, classes) = {shape}")
            elif any(not np.all(np.isfinite(a)) or np.any(a < 0) for a in areas) or np.any(areas[0] > areas[1]):
                problem.append("areas that are negative, not finite, or an intersection above its union")
        if not problem:
            return SegmentationImages(path, ids.astype(str), tuple(classes.astype(str).tolist()),
                                      *(a.astype(np.float64) for a in areas), meta.get("nan_to_num"), entries)
    else:
        problem.append(f"task {task!r}, not detection or segmentation")
    raise EvalSetError(f"{path}: {'; '.join(problem)}; {FIX}")


# ---------------------------------------------------------------- the metric of a weighted test set


def _weights(weights, n_images: int) -> tuple[np.ndarray, bool]:
    """(B, N) float multiplicities, and whether one vector was given."""
    w = np.asarray(weights, dtype=np.float64)
    one = w.ndim == 1
    w = np.atleast_2d(w)
    if w.ndim != 2 or w.shape[1] != n_images:
        raise ValueError(f"weights of shape {np.shape(weights)} for {n_images} images")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and >= 0 (how many times each image counts)")
    return w, one


def _average_precision(recall: np.ndarray, precision: np.ndarray, mode: str) -> np.ndarray:
    """mmdet's ``average_precision`` of each column of (n, B) curves whose recall does not
    decrease down a column (the TP points of a curve: the others change neither result).

    ``area``: the precision envelope (the maximum at this and every later point) times each
    recall step, mrec/mpre padded with 0 and 1 as mmdet does. ``11points``: at each threshold of
    ``ELEVEN``, the largest precision where recall >= threshold, a suffix of the curve (0 if none):
    the suffix starts after the points below the threshold, counted per column from each point's
    number of thresholds at or below its recall."""
    n, b = recall.shape
    envelope = np.maximum.accumulate(precision[::-1], axis=0)[::-1].astype(np.float64)
    if mode == "area":
        steps = np.diff(recall, axis=0, prepend=0.0)
        return (steps * envelope).sum(axis=0).astype(np.float32)  # mmdet's ap array is float32
    if mode == "11points":
        reached = np.searchsorted(ELEVEN, recall, side="right")  # thresholds t with t <= recall
        per = np.bincount((reached + (ELEVEN.size + 1) * np.arange(b)).ravel(), minlength=(ELEVEN.size + 1) * b)
        below = np.cumsum(per.reshape(b, ELEVEN.size + 1), axis=1)[:, :ELEVEN.size]  # points with recall < t
        best = np.vstack([envelope, np.zeros((1, b))]).astype(np.float32)[below, np.arange(b)[:, None]]
        ap = np.zeros(b, np.float32)
        for k in range(ELEVEN.size):  # mmdet adds the 11 precisions in float32, in order, then divides
            ap += best[:, k]
        return ap / np.float32(ELEVEN.size)
    raise ValueError(f"eval_mode {mode!r}: 'area' or '11points'")


def class_aps(data: DetectionImages, weights, eval_mode: str, thr: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B, C) average precision of each class at ``data.iou_thrs[thr]`` and (B, C) weighted
    ground-truth counts, as eval_map computes them on the weighted list: at each TP, recall =
    weighted TPs so far / max(weighted ground truth, eps) (float64), precision = TPs / max(TPs +
    FPs, eps) (float32, as mmdet; the counts are whole numbers, exact in float32 below 2^24).
    O(detections) per resample: a cumsum over the TPs and a sparse product over the FPs."""
    w, _ = _weights(weights, data.img_ids.size)
    wt = np.ascontiguousarray(w.T, dtype=np.float32)  # (N, B): a TP's or FP's row of weights is contiguous
    gts = w @ data.num_gts.astype(np.float64)
    aps = np.zeros((w.shape[0], len(data.classes)))
    for c, (tp_image, fps) in enumerate(data.curves[thr]):
        if tp_image.size == 0:
            continue  # no TP: AP 0, as mmdet's curve of zeros gives
        ctp = np.cumsum(wt[tp_image], axis=0)   # (TPs, B)
        cfp = np.cumsum(fps @ wt, axis=0)
        recall = ctp / np.maximum(gts[:, c], EPS)
        precision = ctp / np.maximum(ctp + cfp, EPS)
        aps[:, c] = _average_precision(recall, precision, eval_mode)
    return aps, gts


def voc_map(data: DetectionImages, weights, eval_mode: str = "11points", iou_thrs: Sequence[float] | None = None):
    """VOCMetric's mAP (in [0, 1]) of the test set weighted by ``weights`` ((N,) or (B, N)
    multiplicities): per IoU threshold, the mean AP over the classes with ground truth in the
    weighted set (0 when none has: eval_map), then the mean over thresholds (VOCMetric).

    Equal to ``eval_map`` on the image list with image i repeated ``weights[i]`` times: a repeated
    detection becomes a block of tied copies with one flag; within a TP block precision only grows
    and within an FP block recall does not move, so the points inside a block never raise the
    precision envelope and the curve's AP is the weighted one's. The arithmetic is mmdet's
    (precision and each class's AP in float32); with one weighting the mean over classes is too
    (float32), so every image once gives the run's own number; over many resamples the mean is
    taken in float64. Ties in score between different detections are ordered by numpy's argsort
    on the stored order (mmdet's, on the undoubled list)."""
    w, one = _weights(weights, data.img_ids.size)
    thrs = data.iou_thrs.tolist() if iou_thrs is None else [float(t) for t in iou_thrs]
    means = []
    for t in thrs:
        aps, gts = class_aps(data, w, eval_mode, data.iou_thrs.tolist().index(t))
        has = gts > 0
        if one:  # one weighting, e.g. the run's own: eval_map's float32 mean, bit for bit
            kept = aps[0, has[0]].astype(np.float32)
            means.append(np.array([kept.mean().item() if kept.size else 0.0]))
            continue
        count = has.sum(axis=1)
        means.append(np.where(count > 0, np.where(has, aps, 0.0).sum(axis=1) / np.maximum(count, 1), 0.0))
    out = sum(means) / len(means)  # VOCMetric: the mean over its IoU thresholds
    return float(out[0]) if one else out


def miou(data: SegmentationImages, weights):
    """IoUMetric's mIoU (percent, unrounded) of the weighted test set: per class, the weighted sum of
    intersections over the weighted sum of unions; the nanmean over classes (a class with no pixel in
    prediction or label is NaN and left out, or ``nan_to_num`` where the metric sets it)."""
    w, one = _weights(weights, data.img_ids.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = (w @ data.intersect) / (w @ data.union)
    if data.nan_to_num is not None:
        iou = np.nan_to_num(iou, nan=data.nan_to_num)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any labelled class: NaN
        out = 100 * np.nanmean(iou, axis=1)
    return float(out[0]) if one else out


def why_not(data: PerImage, metric: str) -> str | None:
    """Why ``data`` cannot give ``metric`` (None: it can)."""
    if metric not in KEYS:
        return f"unknown metric {metric!r} (known: {', '.join(KEYS)})"
    kind = DetectionImages if TASK[metric] == "detection" else SegmentationImages
    if not isinstance(data, kind):
        return f"{data.path} holds {type(data).__name__}, not {TASK[metric]} data"
    if KEYS[metric] not in data.metrics:
        return f"its config has no {KEYS[metric]} metric"
    return None


def metric_values(data: PerImage, metric: str, weights) -> np.ndarray | float:
    """``metric`` in the suite's units (percent) on the weighted test set: ``map`` (the VOCMetric
    whose key is pascal_voc/mAP, its eval_mode and thresholds), ``map_area`` (pascal_voc_area/mAP),
    ``miou``."""
    reason = why_not(data, metric)
    if reason is not None:
        raise ValueError(reason)
    if metric == "miou":
        return miou(data, weights)
    entry = data.metrics[KEYS[metric]]
    return 100 * voc_map(data, weights, entry.get("eval_mode", "11points"), entry.get("iou_thrs"))


def resample_weights(n_images: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_images) multiplicities of ``n_boot`` bootstrap resamples of the images:
    ``np.random.default_rng(seed).integers(0, n_images, (n_boot, n_images))`` counted per row."""
    if n_images < 1 or n_boot < 2:
        raise ValueError(f"needs 1+ images and 2+ resamples, got {n_images} and {n_boot}")
    idx = np.random.default_rng(seed).integers(0, n_images, size=(n_boot, n_images))
    flat = (idx + n_images * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n_images).reshape(n_boot, n_images)


# ---------------------------------------------------------------- the noise of a study


@dataclass(frozen=True)
class RunImages:
    """One fine-tune of a study: where it sits (recipe, pretraining seed, fine-tune seed, stage), its
    ``per_image.npz`` (``data`` None: it has none) and what its result.json reported (percent)."""
    recipe: str
    seed: int
    ft_seed: int
    stage: str                 # detection or segmentation
    path: Path
    data: PerImage | None
    reported: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunNoise:
    recipe: str
    seed: int
    ft_seed: int
    path: str
    value: float               # the metric recomputed from the file (every image once)
    sd: float                  # bootstrap sd over the test images


@dataclass(frozen=True)
class RecipeNoise:
    recipe: str
    backbones: int
    runs: int
    value: float               # mean over backbones of the mean over each backbone's fine-tunes
    sd: float                  # bootstrap sd of that mean


@dataclass(frozen=True)
class DifferenceNoise:
    recipe: str
    other: str
    estimate: float            # recipe mean - other's, recomputed from the files
    sd: float                  # bootstrap sd of the difference, the same resamples for both (paired)
    sd_unpaired: float         # sqrt(sd_recipe^2 + sd_other^2): what independent test sets would give
    low: float                 # percentile interval of the paired bootstrap differences
    high: float
    confidence: float

    @property
    def words(self) -> str:
        return (f"{self.recipe} - {self.other}: {_signed(self.estimate)}, test-set sd {self.sd:.2f} paired "
                f"({_pct(self.confidence)} percentile interval [{_signed(self.low)}, {_signed(self.high)}]; "
                f"{self.sd_unpaired:.2f} if the two were scored on independent test sets)")


@dataclass(frozen=True)
class EvalSetNoise:
    """The evaluation-set noise of one metric of a study: the sd, over bootstrap resamples of the
    test images, of each run's number, of each recipe's mean and of each difference of recipe
    means (the same resamples for every run). It measures how much the numbers depend on which
    images happen to be in the test split, the trained models held fixed; the seeds' noise is
    :mod:`evaluation.noise`'s."""
    metric: str
    images: int                # N, the test images every run was scored on
    n_boot: int
    seed: int
    confidence: float
    reference: str | None
    runs: tuple[RunNoise, ...] = ()
    recipes: tuple[RecipeNoise, ...] = ()
    comparisons: tuple[DifferenceNoise, ...] = ()   # each recipe - the reference
    pairs: tuple[DifferenceNoise, ...] = ()         # every pair a - b, a before b by name
    without_file: tuple[str, ...] = ()              # fine-tunes left out: no per_image.npz for this metric
    files: int = 0                                  # fine-tunes of the stage with a per_image.npz
    reason: str | None = None                       # why nothing was estimated

    @property
    def no_files(self) -> bool:
        """No run had a per_image.npz (runs from before the jobs wrote one)."""
        return self.files == 0 and bool(self.without_file)

    @property
    def sd_run(self) -> float | None:
        """The sd of one run: the root mean square of the runs' sds."""
        return math.sqrt(sum(r.sd ** 2 for r in self.runs) / len(self.runs)) if self.runs else None

    @property
    def words(self) -> str:
        head = f"{name(self.metric)}: "
        if self.reason is not None:
            return head + f"evaluation-set noise not estimated: {self.reason}"
        text = (head + f"test-set sd of one run {self.sd_run:.2f} (bootstrap over the {self.images} test images, "
                f"{self.n_boot} resamples shared by every run; root mean square over {len(self.runs)} runs)")
        sds = [r.sd for r in self.recipes]
        text += f"; of a recipe's mean {min(sds):.2f}" + (f" to {max(sds):.2f}" if max(sds) > min(sds) else "")
        if self.comparisons:
            text += "; of the difference " + ", ".join(f"{c.recipe} - {c.other} {c.sd:.2f}" for c in self.comparisons)
            text += ", paired"
        if self.without_file:
            text += f"; {len(self.without_file)} fine-tune(s) without {FILE} left out"
        return text

    @property
    def lines(self) -> list[str]:
        """The comparisons with the reference, one a line."""
        return [c.words for c in self.comparisons]


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1))


def _check_same_images(first: RunImages, run: RunImages) -> None:
    a, b = first.data, run.data
    if a.img_ids.shape != b.img_ids.shape or not np.array_equal(a.img_ids, b.img_ids):
        where = next((i for i, (x, y) in enumerate(zip(a.img_ids, b.img_ids)) if x != y), None)
        detail = (f"image {where} is {str(b.img_ids[where])!r} there and {str(a.img_ids[where])!r} in the other"
                  if where is not None else f"{b.img_ids.size} images there, {a.img_ids.size} in the other")
        raise EvalSetError(f"{run.path}: not scored on the same test images as {first.path} ({detail}); the runs "
                           f"of a study are compared on one test split: re-run it on the study's data, or leave it "
                           f"out of --runs")
    if a.classes != b.classes:
        raise EvalSetError(f"{run.path}: its classes ({', '.join(b.classes)}) are not those of {first.path} "
                           f"({', '.join(a.classes)}); re-run it with the study's config, or leave it out of --runs")


def _pair(means: Mapping[str, tuple[np.ndarray, float]], a: str, b: str, confidence: float) -> DifferenceNoise:
    """Recipe ``a`` minus ``b``; ``means``: recipe -> (its mean on each resample, on the test set as it is)."""
    (va, pa), (vb, pb) = means[a], means[b]
    diff = va - vb
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diff, [alpha, 1 - alpha])
    return DifferenceNoise(a, b, pa - pb, _sd(diff), math.sqrt(_sd(va) ** 2 + _sd(vb) ** 2), float(low),
                           float(high), confidence)


def evalset_noise(runs: Sequence[RunImages], metric: str, reference: str | None = None, n_boot: int = N_BOOT,
                  seed: int = SEED, confidence: float = CONFIDENCE) -> EvalSetNoise:
    """The evaluation-set noise of ``metric`` over ``runs`` (the fine-tunes of a study).

    Estimates, for these fixed trained models, the noise that comes from which images happen to
    be in the test split: the N test images are resampled with replacement ``n_boot`` times
    (``seed``; :func:`resample_weights`), the same resamples for every run, and each run's metric
    is recomputed on each resample (:func:`metric_values`). A backbone's value is the mean of its
    fine-tunes', a recipe's the mean of its backbones' (as the report averages them). Given: the
    bootstrap sd of each run, of each recipe's mean, and of each difference of recipe means (each
    recipe minus ``reference``, and every pair), paired under the shared resamples, with its
    percentile interval at ``confidence``; also the sd the difference would have on independent
    test sets (the two sds combined), to show what pairing removes. It does not include the
    seeds' noise, nor say how the recipes would compare on another distribution of images.

    Only the runs of the metric's stage count; those without a file (``data`` None) are left out
    and listed. Files on other test images or
    classes than the first run's, or whose recomputed metric (every image once) differs from what
    the run reported, are an :class:`EvalSetError` naming the file."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    runs = [r for r in runs if r.stage == TASK.get(metric)]
    usable = [r.data is not None and why_not(r.data, metric) is None for r in runs]
    used = [r for r, ok in zip(runs, usable) if ok]
    without = tuple(str(r.path) for r, ok in zip(runs, usable) if not ok)
    base = dict(metric=metric, n_boot=n_boot, seed=seed, confidence=confidence, reference=reference,
                without_file=without, files=sum(r.data is not None for r in runs))
    if not used:
        reason = (f"no run has a {FILE} (runs from before it was written: fine-tune again to measure it)"
                  if all(r.data is None for r in runs) else
                  f"no run's {FILE} holds it ({why_not(next(r.data for r in runs if r.data is not None), metric)})")
        return EvalSetNoise(images=0, **base, reason=reason)
    first = used[0]
    for run in used[1:]:
        _check_same_images(first, run)
    n = first.data.img_ids.size
    ones = np.ones(n)
    point = np.array([metric_values(r.data, metric, ones) for r in used])
    for r, v in zip(used, point):
        got = r.reported.get(metric)
        if got is not None and not abs(v - got) <= AGREE[metric]:
            raise EvalSetError(f"{r.path}: gives {name(metric)} {v:.4f} but the run's result.json reports {got:.4f}: "
                               f"the file is not from the run's last evaluation; {FIX}")
    w = resample_weights(n, n_boot, seed)
    boot = np.stack([metric_values(r.data, metric, w) for r in used])  # (runs, B)
    if not np.isfinite(boot).all():
        return EvalSetNoise(images=n, **base, reason="a resample has no labelled pixel of any class (NaN): too few "
                                                      "test images")
    backbones: dict[tuple[str, int], list[int]] = {}
    for i, r in enumerate(used):
        backbones.setdefault((r.recipe, r.seed), []).append(i)
    by_recipe: dict[str, list[list[int]]] = {}
    for (recipe, _), rows in sorted(backbones.items()):
        by_recipe.setdefault(recipe, []).append(rows)
    # recipe -> (its mean on each resample, its mean on the test set as it is)
    means = {rec: (np.mean([boot[rows].mean(axis=0) for rows in bbs], axis=0),
                   float(np.mean([point[rows].mean() for rows in bbs])))
             for rec, bbs in by_recipe.items()}
    recipes = tuple(RecipeNoise(rec, len(by_recipe[rec]), sum(map(len, by_recipe[rec])), p, _sd(b))
                    for rec, (b, p) in means.items())
    names = list(means)
    comparisons = tuple(_pair(means, rec, reference, confidence) for rec in names
                        if reference in means and rec != reference)
    pairs = tuple(_pair(means, a, b, confidence) for i, a in enumerate(names) for b in names[i + 1:])
    run_noise = tuple(RunNoise(r.recipe, r.seed, r.ft_seed, str(r.path), float(p), _sd(b))
                      for r, p, b in zip(used, point, boot))
    return EvalSetNoise(images=n, **base, runs=run_noise, recipes=recipes, comparisons=comparisons, pairs=pairs)


def record(e: EvalSetNoise) -> dict:
    """What a report writes (JSON-ready): the fields, the sd of one run, the words."""
    return asdict(e) | {"sd_run": e.sd_run, "words": e.words, "lines": e.lines}
