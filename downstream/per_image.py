"""``per_image.npz``: what each test image contributed to a job's mAP or mIoU, kept next to
``result.json`` so that the analysis can resample the test split (the evaluation-set noise,
:mod:`evaluation.evalset`).

:class:`PerImageResults` is a hook. Before each validation it wraps ``process`` and
``compute_metrics`` of the evaluator's first VOCMetric (mmdet) or IoUMetric (mmseg): ``process``
tags each image's result with its id, and ``compute_metrics`` (which mmengine's
``BaseMetric.evaluate`` calls on rank 0 with every rank's results gathered, in dataset order)
takes the tags off, calls the metric's own code and keeps the per-image data; after the
validation, rank 0 writes the file atomically with the metric values the run reported.

Detection (VOCMetric, ``use_legacy_coordinate=True`` as VOCMetric passes to ``eval_map``): per
image and class, the detections' scores and their TP/FP flags from mmdet's own
``tpfp_default`` at each IoU threshold of the evaluator's VOCMetrics, difficult boxes
(``ignored_instances``) passed as mmdet passes them (a detection matched to one is neither TP nor
FP), and the number of non-difficult ground-truth boxes. Flat arrays, image-major then class,
with ``det_offsets`` (``N * C + 1``): the detections of image i and class c are
``det_offsets[i * C + c]:det_offsets[i * C + c + 1]``, in VOCMetric's order.

Segmentation (IoUMetric): per image, ``area_intersect``, ``area_union``, ``area_pred_label``
and ``area_label`` per class, as ``IoUMetric.intersect_and_union`` gives them.

``meta`` (a JSON string) says which metric the file belongs to: ``task``, ``metric``, ``split``,
the iteration, and per reported number its key in mmengine's metrics (``pascal_voc/mAP``,
``pascal_voc_area/mAP``, ``mIoU``), its ``eval_mode`` and ``iou_thrs`` (detection) and the value
the run reported. No pickled objects: ``np.load(path, allow_pickle=False)`` reads it.

Not written for hyperparameter trials (they score held-out training images; the runner does not
register the hook for them), nor for a VOCMetric with ``scale_ranges`` or ``metric='recall'``.
"""
from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook

from trickbench.fileio import atomic_write_bytes
from trickbench.results import PER_IMAGE_FILE as FILE
from trickbench.results import PER_IMAGE_FORMAT as FORMAT


def image_id(sample: dict) -> str:
    """An image's id: mmdet's ``img_id`` (the VOC file stem), else its file's stem (mmseg)."""
    if sample.get("img_id") is not None:
        return str(sample["img_id"])
    return Path(str(sample.get("img_path", ""))).stem


def _is(metric, name: str) -> bool:
    """``metric`` is (a subclass of) mmdet's or mmseg's metric ``name``; by name, so that a
    segmentation job never imports mmdet nor a detection job mmseg."""
    return any(cls.__name__ == name for cls in type(metric).__mro__)


def voc_metrics(metrics) -> list:
    """The evaluator's VOCMetrics that score mAP over all box sizes (those per_image.npz can redo)."""
    return [m for m in metrics if _is(m, "VOCMetric") and m.metric == "mAP" and m.scale_ranges is None]


def iou_metrics(metrics) -> list:
    return [m for m in metrics if _is(m, "IoUMetric") and not m.format_only]


def metric_key(metric, name: str) -> str:
    """The key mmengine reports a metric's number under (``prefix/name``)."""
    return f"{metric.prefix}/{name}" if metric.prefix else name


def detection_arrays(results: list, iou_thrs: list[float], num_classes: int) -> dict[str, np.ndarray]:
    """VOCMetric's per-image results (``(ann, dets)``, dets one ``(k, 5)`` array per class) as flat
    arrays: ``num_gts`` (N, C), ``det_offsets`` (N C + 1), ``det_score`` (D,), ``det_tp`` and
    ``det_fp`` (T, D) at each threshold of ``iou_thrs``, from ``tpfp_default`` exactly as
    ``eval_map`` calls it (``get_cls_results``: the class's boxes and its ignored boxes)."""
    from mmdet.evaluation.functional.mean_ap import tpfp_default

    n = len(results)
    num_gts = np.zeros((n, num_classes), dtype=np.int64)
    counts = np.zeros(n * num_classes, dtype=np.int64)
    scores, tps, fps = [], [], []
    for i, (ann, dets) in enumerate(results):
        for c in range(num_classes):
            det = dets[c]
            gts = ann["bboxes"][ann["labels"] == c, :]
            if ann.get("labels_ignore", None) is not None:
                ignored = ann["bboxes_ignore"][ann["labels_ignore"] == c, :]
            else:
                ignored = np.empty((0, 4), dtype=np.float32)
            num_gts[i, c] = gts.shape[0]
            counts[i * num_classes + c] = det.shape[0]
            if det.shape[0]:
                flags = [tpfp_default(det, gts, ignored, thr, None, True) for thr in iou_thrs]
                scores.append(det[:, -1].astype(np.float32))
                tps.append(np.stack([f[0][0] for f in flags]))
                fps.append(np.stack([f[1][0] for f in flags]))
    t = len(iou_thrs)
    return dict(
        num_gts=num_gts,
        det_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        det_score=np.concatenate(scores) if scores else np.zeros(0, np.float32),
        det_tp=(np.concatenate(tps, axis=1) if tps else np.zeros((t, 0))).astype(np.uint8),
        det_fp=(np.concatenate(fps, axis=1) if fps else np.zeros((t, 0))).astype(np.uint8),
        iou_thrs=np.asarray(iou_thrs, dtype=np.float64))


def segmentation_arrays(results: list) -> dict[str, np.ndarray]:
    """IoUMetric's per-image ``(area_intersect, area_union, area_pred_label, area_label)`` as four
    (N, C) arrays."""
    names = ("area_intersect", "area_union", "area_pred_label", "area_label")
    return {name: np.stack([np.asarray(r[k], dtype=np.float64) for r in results])
            for k, name in enumerate(names)}


def npz_bytes(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return buf.getvalue()


class _Tap:
    """One metric's ``process`` and ``compute_metrics``, wrapped: ``process`` tags each image's
    result with its id; ``compute_metrics`` (rank 0, every rank's results gathered in dataset
    order) takes the tags off, runs the metric's own code and hands the per-image arrays of the
    results (``arrays(results)``) and ``meta`` to ``hook.pending``."""

    def __init__(self, metric, arrays, meta: dict, hook: "PerImageResults"):
        self.metric, self.arrays, self.meta, self.hook = metric, arrays, meta, hook
        self.original_process, self.original_compute = metric.process, metric.compute_metrics

    def process(self, data_batch, data_samples) -> None:
        results = self.metric.results
        start = len(results)
        self.original_process(data_batch, data_samples)
        if len(results) - start == len(data_samples):  # one result per image, as VOCMetric and IoUMetric add
            for k, sample in enumerate(data_samples):
                results[start + k] = (results[start + k], image_id(sample))

    def compute_metrics(self, results: list) -> dict:
        tagged = bool(results) and all(isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], str)
                                       for r in results)
        plain = [r[0] for r in results] if tagged else list(results)
        out = self.original_compute(plain)
        self.hook.pending = None
        if tagged:
            try:
                data = self.arrays(plain)
            except Exception as e:  # never lose a finished run to the per-image extra
                print(f"warning: {FILE} not written: {type(e).__name__}: {e}", flush=True)
            else:
                data["img_ids"] = np.array([r[1] for r in results])
                data["classes"] = np.array([str(c) for c in self.metric.dataset_meta["classes"]])
                self.hook.pending = (data, dict(self.meta))
        return out


class PerImageResults(Hook):
    """Keeps the test split's per-image evaluation data and writes ``per_image.npz`` into the
    work dir after each validation (the last one is the run's: result.json reports it)."""
    priority = "NORMAL"

    def __init__(self):
        self.pending: tuple[dict, dict] | None = None  # rank 0: arrays and meta of the latest evaluation

    def before_val_epoch(self, runner) -> None:
        self._wrap(runner, runner.val_evaluator)

    def before_test_epoch(self, runner) -> None:
        self._wrap(runner, runner.test_evaluator)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, metrics)

    def _wrap(self, runner, evaluator) -> None:
        metrics = list(evaluator.metrics)
        vocs, ious = voc_metrics(metrics), iou_metrics(metrics)
        if vocs:
            thrs = sorted({float(t) for m in vocs for t in m.iou_thrs})
            entries = [dict(key=metric_key(m, "mAP"), eval_mode=m.eval_mode, iou_thrs=[float(t) for t in m.iou_thrs])
                       for m in vocs]
            arrays = functools.partial(detection_arrays, iou_thrs=thrs,
                                       num_classes=len(vocs[0].dataset_meta["classes"]))
            self._tag(vocs[0], arrays, dict(task="detection", metric="VOCMetric", use_legacy_coordinate=True,
                                            metrics=entries))
        elif ious:
            m = ious[0]
            self._tag(m, segmentation_arrays,
                      dict(task="segmentation", metric="IoUMetric", ignore_index=m.ignore_index,
                           nan_to_num=m.nan_to_num, metrics=[dict(key=metric_key(m, "mIoU"))]))

    def _tag(self, metric, arrays, meta: dict) -> None:
        if not isinstance(getattr(metric.compute_metrics, "__self__", None), _Tap):  # once per metric
            tap = _Tap(metric, arrays, meta, self)
            metric.process, metric.compute_metrics = tap.process, tap.compute_metrics

    def _write(self, runner, metrics) -> None:
        if self.pending is None or runner.rank != 0:
            return
        arrays, meta = self.pending
        self.pending = None
        reported = dict(metrics or {})
        meta = meta | dict(format=FORMAT, split="test", iteration=int(runner.iter), metrics=[
            e | {"reported": float(reported[e["key"]]) if e["key"] in reported else None} for e in meta["metrics"]])
        atomic_write_bytes(Path(runner.work_dir) / FILE, npz_bytes(arrays, meta))
