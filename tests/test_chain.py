"""The whole chain on tiny generated data, through the command lines a user runs:
pretrain -> Faster R-CNN on VOC -> FCN on ADE20K -> leaderboard."""
import csv
import json

import pytest
import torch

from tests.conftest import REPO, ok, run_cli

pytestmark = pytest.mark.slow

DET = str(REPO / "configs/detection/faster-rcnn_fpn_voc0712_tiny.py")
SEG = str(REPO / "configs/segmentation/fcn-d8_ade20k_tiny.py")
DET_PAPER = str(REPO / "configs/detection/faster-rcnn_c4_voc0712_tiny.py")
SEG_PAPER = str(REPO / "configs/segmentation/fcn-d8_ade20k_tiny_paper.py")
# Shorter than the demo's schedules: enough to move every metric, quick enough for CI.
DET_SHORT = ["train_cfg.max_epochs=3", "train_cfg.val_interval=3", "default_hooks.checkpoint.interval=3",
             "param_scheduler.1.end=3", "param_scheduler.1.milestones=[2]"]
SEG_SHORT = ["train_cfg.max_iters=120", "train_cfg.val_interval=120", "default_hooks.checkpoint.interval=120",
             "param_scheduler.0.end=120"]


@pytest.fixture(scope="module")
def chain(synthetic, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    bb = runs / "r18d"
    ok(run_cli("pretrain/run.py", "--config", str(REPO / "configs/pretrain/synthetic/resnet18d_tiny_tricks.py"),
               "--work-dir", str(bb), "--cfg-options", f"data.root={synthetic['imagenet']}", "schedule.epochs=6"))
    det = ok(run_cli("downstream/detect.py", "--backbone", str(bb), "--config", DET,
                     "--data-root", f"{synthetic['voc']}/", "--cfg-options", *DET_SHORT))
    seg = ok(run_cli("downstream/segment.py", "--backbone", str(bb), "--config", SEG,
                     "--data-root", str(synthetic["ade20k"]), "--cfg-options", *SEG_SHORT))
    # The same schedules from a randomly initialised backbone of the same architecture,
    # given as a foreign weights file: the transfer sanity check.
    from pretrain.models import resnet

    torch.manual_seed(0)
    random_file = runs / "random-init.pth"
    torch.save(resnet(18, "D", num_classes=10, base_channels=16).backbone_state_dict(), random_file)
    for script, config, data, short in (("downstream/detect.py", DET, f"{synthetic['voc']}/", DET_SHORT),
                                        ("downstream/segment.py", SEG, str(synthetic["ade20k"]), SEG_SHORT)):
        task = "detection" if "detect" in script else "segmentation"
        ok(run_cli(script, "--backbone", str(random_file), "--name", "random-init", "--config", config,
                   "--data-root", data, "--work-dir", str(runs / "random-init" / task), "--cfg-options", *short))
    board = ok(run_cli("evaluation/leaderboard.py", "--runs", str(runs)))
    return runs, bb, det, seg, board


def result(path):
    return json.loads((path / "result.json").read_text())


def test_every_stage_writes_its_result(chain):
    runs, bb, *_ = chain
    pre = result(bb)
    det = result(bb / "detection" / "faster-rcnn_fpn_voc0712_tiny")
    seg = result(bb / "segmentation" / "fcn-d8_ade20k_tiny")
    assert (pre["stage"], det["stage"], seg["stage"]) == ("pretrain", "detection", "segmentation")
    assert det["backbone"] == seg["backbone"] == pre["backbone"] == "r18d"
    assert det["backbone_sha256"] == seg["backbone_sha256"] == pre["backbone_sha256"]
    assert det["iterations"] > 0 and det["cost"]["images_seen"] == det["iterations"] * 4
    assert det["recipe"] == seg["recipe"] == pre["recipe"] == "r18d" and det["cost"]["device_count"] == 1
    assert det["config"]["model"]["backbone"]["init_cfg"]["type"] == "TrickBenchPretrained"
    assert det["config"]["model"]["backbone"]["avg_down"] is True  # ResNet-D arrived as ResNet-D
    assert seg["config"]["model"]["pretrained"] is None and seg["config"]["model"]["backbone"]["deep_stem"] is True


def test_metrics_move_above_chance(chain):
    runs, bb, *_ = chain
    assert result(bb)["metrics"]["top1"] > 30  # 10 classes: chance is 10
    assert result(bb / "detection" / "faster-rcnn_fpn_voc0712_tiny")["metrics"]["map"] > 5  # chance is ~0
    seg = result(bb / "segmentation" / "fcn-d8_ade20k_tiny")["metrics"]
    assert seg["miou"] > 15 and seg["aacc"] > 40  # one constant class: mIoU ~4, aAcc ~30


def test_backbone_weights_arrived(chain):
    runs, bb, *_ = chain
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from downstream.detect import apply_backbone
    from downstream.runner import resolve_backbone
    from mmdet.registry import MODELS

    init_default_scope("mmdet")
    cfg = Config.fromfile(DET)
    apply_backbone(cfg, resolve_backbone(str(bb)))
    model = MODELS.build(cfg.model)
    model.init_weights()
    saved = torch.load(bb / "backbone.pth", weights_only=True)
    got = model.backbone.state_dict()
    assert set(got) == set(saved) and all(torch.equal(got[k], saved[k]) for k in saved)


def test_pretrained_backbone_transfers_better_than_random_init(chain):
    runs, bb, *_ = chain
    pre_det = result(bb / "detection" / "faster-rcnn_fpn_voc0712_tiny")["metrics"]["map"]
    pre_seg = result(bb / "segmentation" / "fcn-d8_ade20k_tiny")["metrics"]["miou"]
    rnd_det = result(runs / "random-init" / "detection")
    rnd_seg = result(runs / "random-init" / "segmentation")
    assert rnd_det["backbone_source"].startswith("torchvision/timm/mmdet")
    assert rnd_det["iterations"] == result(bb / "detection" / "faster-rcnn_fpn_voc0712_tiny")["iterations"]
    assert pre_det > rnd_det["metrics"]["map"] + 5
    assert pre_seg > rnd_seg["metrics"]["miou"] + 5


def test_leaderboard_has_the_rows(chain):
    runs, bb, det, seg, board = chain
    rows = {r["backbone"]: r for r in csv.DictReader(open(runs / "leaderboard.csv"))}
    assert sorted(rows) == ["r18d", "random-init"]
    row = rows["r18d"]
    assert row["arch"] == "ResNet-18-D-w16"
    assert all(float(row[c]) > 0 for c in ("top1", "top5", "voc_map", "ade_miou", "ade_aacc"))
    assert rows["random-init"]["top1"] == "" and rows["random-init"]["arch"] == "ResNet-18-D-w16"
    assert rows["random-init"]["voc_map"] != "" and rows["random-init"]["ade_miou"] != ""
    assert "r18d" in board.stdout


def test_per_image_results_give_each_job_s_number_and_the_test_set_noise(chain):
    """Each job's per_image.npz (downstream/per_image.py): every test image counted once gives the
    job's mAP (both VOCMetrics, bit for bit) and mIoU (as mmseg rounds it), and the bootstrap
    over the test images (evaluation/evalset.py) runs on the real files, r18d paired with random-init."""
    import numpy as np

    from evaluation import evalset

    runs, bb, *_ = chain
    works = {("r18d", "detection"): bb / "detection" / "faster-rcnn_fpn_voc0712_tiny",
             ("r18d", "segmentation"): bb / "segmentation" / "fcn-d8_ade20k_tiny",
             ("random-init", "detection"): runs / "random-init" / "detection",
             ("random-init", "segmentation"): runs / "random-init" / "segmentation"}
    found = []
    for (name, stage), work in works.items():
        res, data = result(work), evalset.load(work / "per_image.npz")
        ones = np.ones(data.img_ids.size)
        if stage == "detection":
            assert data.scores.size > 0 and data.tp.sum() > 0 and data.num_gts.sum() > 0
            for metric in ("map", "map_area"):
                assert evalset.metric_values(data, metric, ones) == res["metrics"][metric]
        else:
            got = evalset.metric_values(data, "miou", ones)
            assert np.float32(round(got, 2)) == np.float32(res["metrics"]["miou"])
        found.append(evalset.RunImages(name, 0, 0, stage, work / "per_image.npz", data, res["metrics"]))
    for metric in ("map", "miou"):
        e = evalset.evalset_noise(found, metric, reference="random-init", n_boot=200)
        assert e.reason is None and len(e.runs) == 2 and all(r.sd > 0 for r in e.runs)
        (c,) = e.comparisons
        assert c.recipe == "r18d" and c.estimate > 5 and c.low <= c.estimate <= c.high and c.sd > 0


def test_detection_refuses_to_overwrite_its_run(chain, synthetic):
    runs, bb, *_ = chain
    proc = run_cli("downstream/detect.py", "--backbone", str(bb), "--config", DET, "--data-root", f"{synthetic['voc']}/")
    assert proc.returncode == 2 and "already holds" in proc.stderr


def test_backbone_of_the_wrong_variant_is_refused(chain, synthetic, tmp_path):
    runs, bb, *_ = chain
    fake = tmp_path / "fake"
    fake.mkdir()
    res = result(bb)
    res["arch"] = dict(res["arch"], variant="B", deep_stem=False, avg_down=False)  # claims B, holds D weights
    res["backbone_sha256"] = None
    (fake / "result.json").write_text(json.dumps(res))
    (fake / "backbone.pth").write_bytes((bb / "backbone.pth").read_bytes())
    proc = run_cli("downstream/detect.py", "--backbone", str(fake), "--config", DET,
                   "--data-root", f"{synthetic['voc']}/", "--work-dir", str(tmp_path / "w"))
    assert proc.returncode == 2
    assert str(fake / "backbone.pth") in proc.stderr and "missing keys" in proc.stderr


def test_resume_continues_a_downstream_run(chain, synthetic, tmp_path):
    """--resume reads mmengine's own checkpoint (which weights_only=True refuses) from the
    run's work dir and carries on from its iteration."""
    runs, bb, *_ = chain
    work = tmp_path / "seg"
    common = ["downstream/segment.py", "--backbone", str(bb), "--config", SEG, "--data-root",
              str(synthetic["ade20k"]), "--work-dir", str(work), "--cfg-options", "param_scheduler.0.end=40",
              "default_hooks.checkpoint.interval=20"]
    ok(run_cli(*common, "train_cfg.max_iters=20", "train_cfg.val_interval=20"))
    assert result(work)["iterations"] == 20
    proc = ok(run_cli(*common[:1], "--resume", *common[1:], "train_cfg.max_iters=40", "train_cfg.val_interval=40"))
    assert "resumed" in proc.stdout + proc.stderr
    assert result(work)["iterations"] == 40
    assert (work / "iter_40.pth").is_file()


def test_paper_setups_train_and_evaluate(chain, synthetic, tmp_path):
    """The paper's C4 Faster R-CNN and GluonCV's FCN recipe, through the same command lines
    and schedules as the reference configs above: the layer4 weights reach the RoI head,
    and both end above chance."""
    runs, bb, *_ = chain
    ok(run_cli("downstream/detect.py", "--backbone", str(bb), "--config", DET_PAPER, "--data-root",
               f"{synthetic['voc']}/", "--work-dir", str(tmp_path / "det"), "--cfg-options", *DET_SHORT))
    ok(run_cli("downstream/segment.py", "--backbone", str(bb), "--config", SEG_PAPER, "--data-root",
               str(synthetic["ade20k"]), "--work-dir", str(tmp_path / "seg"), "--cfg-options", *SEG_SHORT))
    det, seg = result(tmp_path / "det"), result(tmp_path / "seg")
    head = det["config"]["model"]["roi_head"]["shared_head"]
    assert head["type"] == "TrickBenchResLayer" and head["avg_down"] is True
    assert head["init_cfg"]["only"] == ["layer4."] and det["config"]["model"]["backbone"]["num_stages"] == 3
    assert det["config_file"] == DET_PAPER and det["backbone_sha256"] == result(bb)["backbone_sha256"]
    assert det["metrics"]["map"] > 5  # chance is ~0
    assert seg["metrics"]["miou"] > 15 and seg["iterations"] == 120  # one constant class: mIoU ~4
