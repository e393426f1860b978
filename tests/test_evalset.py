"""evaluation/evalset.py: the evaluation-set noise, a bootstrap over test images paired across runs.

The weighted recomputation equals mmdet's ``eval_map`` (both eval modes) and mmseg's
``IoUMetric`` on the explicitly duplicated image lists; the paired difference's sd is below the
unpaired one when runs share their errors, every run is scored on the same resamples; the hook of
downstream/per_image.py writes a file from VOCMetric / IoUMetric as mmengine drives them; a
malformed or mismatched file is one error naming it; the report shows the evaluation-set line.
(The real detection and segmentation jobs' files are checked in test_protocols.py and
test_chain.py, on the runs those files already make.)"""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from downstream import per_image
from evaluation import evalset, report
from evaluation.evalset import EvalSetError, RunImages
from trickbench import results
from trickbench.results import Cost, Result

CLASSES = ("cat", "dog", "car", "boat", "unseen")  # "unseen": no ground truth anywhere


# ---------------------------------------------------------------- synthetic test sets


def boxes(rng, n):
    xy = rng.uniform(0, 80, (n, 2))
    wh = rng.uniform(8, 40, (n, 2))
    return np.hstack([xy, xy + wh]).astype(np.float32)


def detection_results(seed=0, n_images=12, shared=None, classes=CLASSES):
    """VOCMetric's per-image results ``(ann, dets)``: ground truth with difficult boxes (ignored),
    detections near the boxes (TPs, duplicates, matches to difficult ones) and random ones (FPs),
    continuous scores. ``shared``: another call's results, whose ground truth and detections are
    kept, with a few detections' scores perturbed (a second run that shares most errors)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        if shared is not None:
            ann, dets = shared[i]
            dets = [d.copy() for d in dets]
            for d in dets:
                if len(d):
                    d[:, 4] = np.clip(d[:, 4] + rng.normal(0, 0.05, len(d)), 0.01, 1).astype(np.float32)
            out.append((ann, dets))
            continue
        n_gt, n_ign = rng.integers(0, 5), rng.integers(0, 3)
        labels = rng.integers(0, len(classes) - 1, n_gt)
        ann = dict(bboxes=boxes(rng, n_gt), labels=labels, bboxes_ignore=boxes(rng, n_ign),
                   labels_ignore=rng.integers(0, len(classes) - 1, n_ign))
        dets = []
        for c in range(len(classes)):
            near = np.vstack([ann["bboxes"][labels == c], ann["bboxes_ignore"][ann["labels_ignore"] == c]])
            near = np.repeat(near, rng.integers(1, 3, len(near)), axis=0)  # found twice: the second is an FP
            keep = near[rng.random(len(near)) < 0.8]                           # or missed
            jitter = keep + rng.normal(0, 2, keep.shape)
            rand = boxes(rng, rng.integers(0, 3))
            b = np.vstack([jitter, rand]).astype(np.float32)
            s = rng.uniform(0.05, 1, len(b)).astype(np.float32)
            dets.append(np.hstack([b, s[:, None]]).astype(np.float32))
        out.append((ann, dets))
    return out


def detection_file(tmp_path, res, name="run", reported=None, ids=None):
    """per_image.npz of ``res`` as the hook writes it (both VOCMetrics of the reference config)."""
    arrays = per_image.detection_arrays(res, [0.5], len(CLASSES))
    arrays["img_ids"] = np.array(ids if ids is not None else [f"{i:06d}" for i in range(len(res))])
    arrays["classes"] = np.array(CLASSES)
    meta = dict(format=per_image.FORMAT, task="detection", metric="VOCMetric", split="test", iteration=1,
                use_legacy_coordinate=True,
                metrics=[dict(key="pascal_voc/mAP", eval_mode="11points", iou_thrs=[0.5], reported=reported),
                         dict(key="pascal_voc_area/mAP", eval_mode="area", iou_thrs=[0.5], reported=None)])
    path = tmp_path / name / per_image.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(per_image.npz_bytes(arrays, meta))
    return path


def eval_map(res, mode):
    from mmdet.evaluation.functional import eval_map as mmdet_eval_map

    gts, dets = zip(*res)
    return mmdet_eval_map(list(dets), list(gts), iou_thr=0.5, dataset=list(CLASSES), logger="silent", nproc=1,
                          eval_mode=mode, use_legacy_coordinate=True)[0]


def resamples(n_images, k, seed):
    """k bootstrap resamples as index lists (with the order of the draw) and as multiplicities."""
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, n_images, n_images) for _ in range(k)]
    return idx, np.stack([np.bincount(i, minlength=n_images) for i in idx])


@pytest.mark.parametrize("mode", ["11points", "area"])
def test_weighted_map_is_eval_map_on_the_duplicated_images(tmp_path, mode):
    res = detection_results(seed=1)
    data = evalset.load(detection_file(tmp_path, res))
    assert data.num_gts[:, CLASSES.index("unseen")].sum() == 0 and data.tp.sum() > 0 and data.fp.sum() > 0
    assert any(len(a["labels_ignore"]) for a, _ in res)
    # every image once: the run's own number, bit for bit
    assert evalset.voc_map(data, np.ones(len(res)), mode) == eval_map(res, mode)
    idx, weights = resamples(len(res), 4, seed=2)
    got = evalset.voc_map(data, weights, mode)
    assert got.shape == (4,)
    for k, rows in enumerate(idx):
        assert got[k] == pytest.approx(eval_map([res[i] for i in rows], mode), abs=1e-6)


def test_a_class_without_ground_truth_in_a_resample_leaves_the_mean(tmp_path):
    res = detection_results(seed=3)
    data = evalset.load(detection_file(tmp_path, res))
    with_cat = [i for i in range(len(res)) if data.num_gts[i, 0] > 0]
    w = np.ones(len(res))
    w[with_cat] = 0  # no cat left: eval_map averages over the other classes with ground truth
    rows = [i for i in range(len(res)) if w[i]]
    assert evalset.voc_map(data, w, "area") == eval_map([res[i] for i in rows], "area")
    # no ground truth at all: eval_map says 0
    empty = [(dict(a, bboxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, int)), d) for a, d in res]
    data0 = evalset.load(detection_file(tmp_path, empty, "empty"))
    assert evalset.voc_map(data0, np.ones(len(res))) == eval_map(empty, "11points") == 0.0


SEG_CLASSES = ("wall", "floor", "sky", "tree", "person", "absent")  # "absent": in no label and no prediction


def segmentation_results(seed=0, n_images=10, shared=None, size=(24, 32)):
    """IoUMetric's per-image results (``intersect_and_union`` of a prediction and a label map with
    ignored pixels); ``shared``: the same label maps, the prediction changed at a few pixels."""
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        label = rng.integers(0, len(SEG_CLASSES) - 1, size)
        label[rng.random(size) < 0.1] = 255
        wrong = rng.random(size) < rng.uniform(0.1, 0.6)  # images differ in how hard they are
        pred = np.where(wrong, rng.integers(0, len(SEG_CLASSES) - 1, size), label)
        pred[pred == 255] = 0
        if shared is not None:
            label, pred = shared[i]
            pred = pred.copy()
            flip = rng.random(size) < 0.02
            pred[flip] = rng.integers(0, len(SEG_CLASSES) - 1, int(flip.sum()))
        out.append((label, pred))
    areas = [IoUMetric.intersect_and_union(torch.from_numpy(p), torch.from_numpy(lab), len(SEG_CLASSES), 255)
             for lab, p in out]
    return out, areas


def segmentation_file(tmp_path, areas, name="seg", reported=None, ids=None):
    arrays = per_image.segmentation_arrays(areas)
    arrays["img_ids"] = np.array(ids if ids is not None else [f"ADE_val_{i:08d}" for i in range(len(areas))])
    arrays["classes"] = np.array(SEG_CLASSES)
    meta = dict(format=per_image.FORMAT, task="segmentation", metric="IoUMetric", split="test", iteration=1,
                ignore_index=255, nan_to_num=None, metrics=[dict(key="mIoU", reported=reported)])
    path = tmp_path / name / per_image.FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(per_image.npz_bytes(arrays, meta))
    return path


def iou_metric(areas):
    from mmseg.evaluation import IoUMetric

    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=SEG_CLASSES)
    return metric.compute_metrics(list(areas))["mIoU"]


def test_weighted_miou_is_iou_metric_on_the_duplicated_images(tmp_path):
    _, areas = segmentation_results(seed=4)
    data = evalset.load(segmentation_file(tmp_path, areas))
    assert np.isnan(evalset.miou(data, np.ones((1, len(areas))))).sum() == 0
    # mmseg rounds mIoU to 2 decimals; the recomputation does not
    assert evalset.miou(data, np.ones(len(areas))) == pytest.approx(iou_metric(areas), abs=0.005 + 1e-9)
    idx, weights = resamples(len(areas), 5, seed=5)
    got = evalset.miou(data, weights)
    for k, rows in enumerate(idx):
        mmseg = iou_metric([areas[i] for i in rows])
        assert got[k] == pytest.approx(mmseg, abs=0.005 + 1e-9)
        assert np.float32(round(got[k], 2)) == mmseg  # mmseg's number: float32, rounded to 2 decimals


# ---------------------------------------------------------------- the bootstrap, paired


def run(recipe, path, seed=0, ft_seed=0, stage="detection", reported=None):
    return RunImages(recipe, seed, ft_seed, stage, path, evalset.load(path), reported or {})


def test_paired_difference_is_tighter_than_unpaired_when_runs_share_errors(tmp_path):
    res = detection_results(seed=5, n_images=30)
    close = detection_results(seed=6, n_images=30, shared=res)  # the same test set, a few scores moved
    runs = [run("a", detection_file(tmp_path, res, "a")), run("b", detection_file(tmp_path, close, "b"))]
    e = evalset.evalset_noise(runs, "map", reference="a", n_boot=300, seed=1)
    assert e.reason is None and e.images == 30 and len(e.runs) == 2
    (c,) = e.comparisons
    assert (c.recipe, c.other) == ("b", "a") and e.pairs[0].recipe == "a" and e.pairs[0].other == "b"
    assert 0 < c.sd < 0.5 * c.sd_unpaired
    assert c.sd_unpaired == pytest.approx(np.hypot(*[r.sd for r in e.recipes]))
    assert c.low <= c.estimate <= c.high and c.estimate == pytest.approx(e.recipes[1].value - e.recipes[0].value)
    # independent test sets for the two runs (another seed for b's resamples) give about the unpaired sd
    w_a, w_b = evalset.resample_weights(30, 300, 1), evalset.resample_weights(30, 300, 2)
    independent = np.std(evalset.metric_values(runs[1].data, "map", w_b)
                         - evalset.metric_values(runs[0].data, "map", w_a), ddof=1)
    assert independent == pytest.approx(c.sd_unpaired, rel=0.25)
    assert "test-set sd of one run" in e.words and "b - a" in e.words and "paired" in e.words


def test_every_run_is_scored_on_the_same_resamples(tmp_path):
    _, areas = segmentation_results(seed=7, n_images=15)
    path = segmentation_file(tmp_path, areas)
    same = [run("x", path, stage="segmentation"), run("y", path, stage="segmentation")]
    e = evalset.evalset_noise(same, "miou", reference="x", n_boot=200, seed=3)
    (c,) = e.comparisons
    assert c.sd == 0 and c.low == c.high == 0 and c.sd_unpaired > 0  # one model twice: nothing left to differ
    w = evalset.resample_weights(15, 200, 3)
    assert w.shape == (200, 15) and (w.sum(axis=1) == 15).all()
    for r in e.runs:
        assert r.sd == pytest.approx(np.std(evalset.miou(same[0].data, w), ddof=1), rel=1e-12)
    assert np.array_equal(w, evalset.resample_weights(15, 200, 3))  # seeded
    assert not np.array_equal(w, evalset.resample_weights(15, 200, 4))


def test_a_backbone_is_the_mean_of_its_finetunes_and_a_recipe_of_its_backbones(tmp_path):
    maps, _ = segmentation_results(seed=8, n_images=12)
    files = {k: segmentation_file(tmp_path, segmentation_results(seed=20 + k, n_images=12, shared=maps)[1], f"r{k}")
             for k in range(4)}
    # recipe a: backbone 0 with fine-tunes 0 and 1, backbone 1 with fine-tune 2; recipe b: run 3
    runs = [run("a", files[0], 0, 0, "segmentation"), run("a", files[1], 0, 1, "segmentation"),
            run("a", files[2], 1, 0, "segmentation"), run("b", files[3], 0, 0, "segmentation"),
            RunImages("b", 1, 0, "segmentation", tmp_path / "old" / per_image.FILE, None),
            RunImages("b", 0, 0, "detection", tmp_path / "det" / per_image.FILE, None)]  # another stage
    e = evalset.evalset_noise(runs, "miou", reference="b", n_boot=100, seed=0)
    w = evalset.resample_weights(12, 100, 0)
    v = {k: evalset.miou(runs[k].data, w) for k in range(4)}
    a = ((v[0] + v[1]) / 2 + v[2]) / 2
    by = {r.recipe: r for r in e.recipes}
    assert (by["a"].backbones, by["a"].runs, by["b"].backbones, by["b"].runs) == (2, 3, 1, 1)
    assert by["a"].sd == pytest.approx(np.std(a, ddof=1), rel=1e-12)
    assert e.comparisons[0].sd == pytest.approx(np.std(a - v[3], ddof=1), rel=1e-12)
    assert e.without_file == (str(tmp_path / "old" / per_image.FILE),) and e.files == 4
    assert "1 fine-tune(s) without per_image.npz left out" in e.words
    none = evalset.evalset_noise(runs[4:5], "miou")
    assert none.no_files and none.reason.startswith("no run has a per_image.npz")
    json.dumps(evalset.record(e), allow_nan=False)


# ---------------------------------------------------------------- the hook, as mmengine drives a metric


def fake_runner(tmp_path, metrics):
    return SimpleNamespace(val_evaluator=SimpleNamespace(metrics=metrics), rank=0, iter=7, work_dir=str(tmp_path))


def evaluate(hook, runner, metrics, batches):
    """What mmengine's ValLoop does: before_val_epoch, process each batch in each metric,
    BaseMetric.evaluate (collect_results, then compute_metrics), after_val_epoch."""
    hook.before_val_epoch(runner)
    for batch in batches:
        for m in metrics:
            m.process(None, batch)
    out = {}
    for m in metrics:
        out |= m.evaluate(sum(map(len, batches)))
    hook.after_val_epoch(runner, out)
    return out


def test_the_hook_writes_what_voc_metric_scored(tmp_path):
    from mmdet.evaluation import VOCMetric

    res = detection_results(seed=9, n_images=9)
    metrics = [VOCMetric(metric="mAP", eval_mode="11points"),
               VOCMetric(metric="mAP", eval_mode="area", prefix="pascal_voc_area")]
    for m in metrics:
        m.dataset_meta = dict(classes=CLASSES)
    samples = []
    for i, (ann, dets) in enumerate(res):
        labels = np.concatenate([np.full(len(d), c) for c, d in enumerate(dets)])
        det = np.vstack(dets)
        t = torch.from_numpy
        samples.append(dict(img_id=f"img{i}",
                            gt_instances=dict(labels=t(ann["labels"]), bboxes=t(ann["bboxes"])),
                            ignored_instances=dict(labels=t(ann["labels_ignore"]), bboxes=t(ann["bboxes_ignore"])),
                            pred_instances=dict(bboxes=t(det[:, :4]), scores=t(det[:, 4]), labels=t(labels))))
    hook = per_image.PerImageResults()
    runner = fake_runner(tmp_path, metrics)
    out = evaluate(hook, runner, metrics, [samples[:4], samples[4:]])
    assert metrics[0].results == []  # cleared by evaluate, as mmengine does
    data = evalset.load(tmp_path / per_image.FILE)
    assert list(data.img_ids) == [f"img{i}" for i in range(9)] and data.classes == CLASSES
    meta = json.loads(str(np.load(tmp_path / per_image.FILE, allow_pickle=False)["meta"]))
    assert (meta["task"], meta["metric"], meta["split"], meta["iteration"]) == ("detection", "VOCMetric", "test", 7)
    assert [(e["key"], e["eval_mode"], e["iou_thrs"]) for e in meta["metrics"]] == [
        ("pascal_voc/mAP", "11points", [0.5]), ("pascal_voc_area/mAP", "area", [0.5])]
    assert meta["metrics"][0]["reported"] == out["pascal_voc/mAP"]
    ones = np.ones(9)
    assert evalset.metric_values(data, "map", ones) == 100 * out["pascal_voc/mAP"]  # detect.py's number
    assert evalset.metric_values(data, "map_area", ones) == 100 * out["pascal_voc_area/mAP"]
    assert out["pascal_voc/mAP"] > 0.2
    # a second validation wraps nothing twice and rewrites the file
    evaluate(hook, runner, metrics, [samples[:5]])
    assert evalset.load(tmp_path / per_image.FILE).img_ids.size == 5


def test_the_hook_writes_what_iou_metric_scored(tmp_path):
    from mmseg.evaluation import IoUMetric

    maps, _ = segmentation_results(seed=10, n_images=6)
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=SEG_CLASSES)
    samples = [dict(img_path=f"data/images/validation/ADE_val_{i:08d}.jpg",
                    pred_sem_seg=dict(data=torch.from_numpy(p)[None]),
                    gt_sem_seg=dict(data=torch.from_numpy(lab)[None])) for i, (lab, p) in enumerate(maps)]
    out = evaluate(per_image.PerImageResults(), fake_runner(tmp_path, [metric]), [metric], [samples[:2], samples[2:]])
    data = evalset.load(tmp_path / per_image.FILE)
    assert list(data.img_ids) == [f"ADE_val_{i:08d}" for i in range(6)]
    got = evalset.metric_values(data, "miou", np.ones(6))
    assert np.float32(round(got, 2)) == out["mIoU"]


# ---------------------------------------------------------------- bad files


def test_a_malformed_file_is_one_error_naming_it(tmp_path):
    bad = tmp_path / "garbage" / per_image.FILE
    bad.parent.mkdir()
    bad.write_bytes(b"not a zip file")
    with pytest.raises(EvalSetError, match=f"^{bad}: not a readable per_image.npz .* delete it"):
        evalset.load(bad)
    res = detection_results(seed=11, n_images=4)
    good = detection_file(tmp_path, res, "good")
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for name, broken in (("det_offsets", arrays["det_offsets"][:-1]), ("det_tp", arrays["det_tp"][:, :-1]),
                         ("num_gts", None)):
        changed = {k: v for k, v in arrays.items() if k != name} | ({name: broken} if broken is not None else {})
        path = tmp_path / name / per_image.FILE
        path.parent.mkdir()
        np.savez(path, **changed)
        with pytest.raises(EvalSetError, match=f"^{path}: .*{name}.*; delete it"):
            evalset.load(path)


def test_runs_on_other_test_images_or_another_run_s_file_are_named(tmp_path):
    res = detection_results(seed=12, n_images=6)
    first = run("a", detection_file(tmp_path, res, "a"))
    other = run("b", detection_file(tmp_path, res, "b", ids=[f"{i:06d}" for i in (0, 1, 2, 3, 4, 9)]))
    with pytest.raises(EvalSetError, match=f"^{other.path}: not scored on the same test images as {first.path} "
                                           f"\\(image 5 is '000009' there and '000005' in the other\\); the runs "):
        evalset.evalset_noise([first, other], "map")
    fewer = run("b", detection_file(tmp_path, res[:5], "c"))
    with pytest.raises(EvalSetError, match="5 images there, 6 in the other"):
        evalset.evalset_noise([first, fewer], "map")
    value = evalset.metric_values(first.data, "map", np.ones(6))
    stale = RunImages("b", 0, 0, "detection", other.path.parent.parent / "a" / per_image.FILE, first.data,
                      {"map": value + 1})
    with pytest.raises(EvalSetError, match=f"gives mAP {value:.4f} but the run's result.json reports"):
        evalset.evalset_noise([first, stale], "map")


# ---------------------------------------------------------------- the report


def write_detection_study(root, files=True, damaged=None, finetunes=(0, 1)):
    """Two recipes x 2 pretraining seeds x ``finetunes``, each fine-tune with its per_image.npz
    (``files``) and a result.json that reports what the file gives."""
    from tests.test_report import write_study

    write_study(root, {"baseline": ((), 76.0, 0, 0), "better": (("cosine",), 76.5, 0, 0)}, seeds=(0, 1),
                stages=("pretrain",))
    base = detection_results(seed=13, n_images=16)
    k = 0
    for recipe in ("baseline", "better"):
        for seed in (0, 1):
            for ft in finetunes:
                k += 1
                res = detection_results(seed=100 + k, n_images=16, shared=base)
                path = detection_file(root / recipe / f"seed{seed}", res, f"det{ft}")
                data = evalset.load(path)
                metrics = {m: evalset.metric_values(data, m, np.ones(16)) for m in ("map", "map_area")}
                if not files:
                    path.unlink()
                if damaged == k:
                    path.write_bytes(b"PK\x03\x04 truncated")
                results.write(path.parent, Result(
                    stage="detection", backbone=f"{recipe}-seed{seed}", recipe=recipe, seed=ft, metrics=metrics,
                    cost=Cost(60.0, "cpu", 1), finished_at="2026-11-25T00:00:00+00:00", top1=76.0,
                    arch=dict(depth=50, variant="B", base_channels=64), backbone_sha256="ab" * 32,
                    config_file="configs/detection/det.py", pretrain_seed=seed, finetune_seed=ft))
    return root


def test_a_study_fine_tuned_once_gets_the_test_set_noise_and_why_the_seed_noise_is_not_split(tmp_path):
    runs, out = write_detection_study(tmp_path / "runs", finetunes=(0,)), tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    section = md[md.index("## Where the noise comes from"):]
    section = section[:section.find("\n## ", 1)]
    assert "- mAP: every backbone was fine-tuned once, so its fine-tune noise cannot be told" in section
    assert "- mAP: test-set sd of one run" in section and "fine-tune sd" not in section
    assert "## Seeds for the next study" not in md  # no fine-tune variance, no seed plan


def test_the_report_gives_the_test_set_noise(tmp_path):
    runs, out = write_detection_study(tmp_path / "runs"), tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    section = md[md.index("## Where the noise comes from"):]
    line = next(x for x in section.splitlines() if x.startswith("- mAP: test-set sd of one run"))
    assert "(bootstrap over the 16 test images, 1000 resamples shared by every run; root mean square over 8 runs)" \
        in line and "; of the difference better - baseline " in line and line.endswith(", paired")
    assert "  - better - baseline: " in section and "95% percentile interval" in section
    data = json.loads((out / "report.json").read_text())
    by = {e["metric"]: e for e in data["evalset_noise"]}
    assert set(by) == {"map", "map_area"} and by["map"]["images"] == 16 and by["map"]["n_boot"] == 1000
    (c,) = by["map"]["comparisons"]
    assert (c["recipe"], c["other"]) == ("better", "baseline") and c["sd"] < c["sd_unpaired"]
    effect = next(e for e in data["effects"] if e["recipe"] == "better" and e["metric"] == "map")
    assert c["estimate"] == pytest.approx(effect["diff"], abs=1e-9)  # the same difference the report tests
    assert by["map"]["sd_run"] > 0 and len(by["map"]["runs"]) == 8 and not by["map"]["without_file"]


def test_runs_without_per_image_files_say_so_in_one_line(tmp_path):
    runs, out = write_detection_study(tmp_path / "runs", files=False), tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert md.count("per_image.npz") == 1
    assert ("Test-set noise not measured: no run has a `per_image.npz` (runs from before the downstream jobs wrote "
            "one; fine-tune again to measure it).") in md
    data = json.loads((out / "report.json").read_text())
    assert all(e["files"] == 0 and e["reason"] for e in data["evalset_noise"])


def test_a_damaged_per_image_file_stops_the_report_naming_it(tmp_path, capsys):
    runs, out = write_detection_study(tmp_path / "runs", damaged=3), tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    bad = runs / "baseline" / "seed1" / "det0" / per_image.FILE
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: not a readable per_image.npz")
    assert not (out / "report.md").exists()
