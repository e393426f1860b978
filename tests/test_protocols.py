"""The trained transfer protocols (trickbench/protocols.py) in detect.py and segment.py:
``frozen`` leaves every backbone tensor bit for bit as pretrained (the C4 detector's res5 in
its RoI head too) while the neck and heads train, ``finetune`` does not; ``ade-linear``
trains DINOv2's linear head on the frozen backbone and reports what mmseg's IoUMetric gives
on its predictions; each result records its protocol; mismatched requests are refused.

The runs are a few iterations of the tiny configs on the generated data, from a ResNet-18-B
weights file with non-trivial BatchNorm statistics (no pretraining needed: the protocols
are about which tensors move, not how well they transfer)."""
import json
import re

import pytest
import torch

from tests.conftest import REPO, ok, run_cli
from trickbench.protocols import PROTOCOLS

FPN = str(REPO / "configs/detection/faster-rcnn_fpn_voc0712_tiny.py")
C4 = str(REPO / "configs/detection/faster-rcnn_c4_voc0712_tiny.py")
FCN = str(REPO / "configs/segmentation/fcn-d8_ade20k_tiny.py")
LINEAR = str(REPO / "configs/segmentation/linear-d8_ade20k_tiny.py")
# One epoch of 2 iterations (8 training images), a checkpoint after each iteration, 4 test images.
DET_SHORT = ["train_cfg.max_epochs=1", "train_cfg.val_interval=1", "default_hooks.checkpoint.interval=1",
             "+default_hooks.checkpoint.by_epoch=False", "param_scheduler.0.end=2", "param_scheduler.1.end=1",
             "param_scheduler.1.milestones=[1]", "+train_dataloader.dataset.dataset.datasets.0.indices=4",
             "+train_dataloader.dataset.dataset.datasets.1.indices=4", "+val_dataloader.dataset.indices=4"]
SEG_SHORT = ["train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=1",
             "param_scheduler.0.end=2", "train_dataloader.num_workers=0", "val_dataloader.num_workers=0",
             "+val_dataloader.dataset.indices=4"]
LINEAR_SHORT = ["train_cfg.max_iters=4", "train_cfg.val_interval=4", "default_hooks.checkpoint.interval=2",
                "param_scheduler.0.end=1", "param_scheduler.1.begin=1", "param_scheduler.1.end=4",
                "train_dataloader.num_workers=0", "val_dataloader.num_workers=0", "+val_dataloader.dataset.indices=8"]
KINDS = {  # script, config, data root, options
    "fpn": ("downstream/detect.py", FPN, lambda s: f"{s['voc']}/", DET_SHORT),
    "c4": ("downstream/detect.py", C4, lambda s: f"{s['voc']}/", DET_SHORT),
    "fcn": ("downstream/segment.py", FCN, lambda s: str(s["ade20k"]), SEG_SHORT),
    "linear": ("downstream/segment.py", LINEAR, lambda s: str(s["ade20k"]), LINEAR_SHORT),
}
# The C4 detector runs layer4 in its RoI head: backbone.pth's tensors under these names in the model.
C4_NAMES = {"layer4.": "roi_head.shared_head.layer4."}


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    from pretrain.models import resnet

    torch.manual_seed(0)
    state = resnet(18, "B", num_classes=10, base_channels=16).backbone_state_dict()
    g = torch.Generator().manual_seed(1)
    for name, t in state.items():  # statistics a BatchNorm in training mode would visibly move
        if name.endswith("running_mean"):
            t.uniform_(-0.1, 0.1, generator=g)
        elif name.endswith("running_var"):
            t.uniform_(0.5, 1.5, generator=g)
    path = tmp_path_factory.mktemp("bb") / "r18.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def trained(backbone_file, synthetic, tmp_path_factory):
    """``trained(kind, protocol)``: the work dir of that run, run once per module."""
    done = {}

    def get(kind: str, protocol: str):
        if (kind, protocol) not in done:
            script, config, data, short = KINDS[kind]
            work = tmp_path_factory.mktemp(f"{kind}-{protocol}") / "work"
            ok(run_cli(script, "--backbone", str(backbone_file), "--config", config, "--data-root", data(synthetic),
                       "--work-dir", str(work), "--protocol", protocol, "--cfg-options", *short))
            done[kind, protocol] = work
        return done[kind, protocol]
    return get


def checkpoints(work):
    """The run's checkpoints' state dicts, in training order."""
    from downstream.safe_load import load_weights_only

    paths = sorted(work.glob("iter_*.pth"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
    return [load_weights_only(p)["state_dict"] for p in paths]


def in_model(name: str, kind: str) -> str:
    for prefix, there in (C4_NAMES if kind == "c4" else {}).items():
        if name.startswith(prefix):
            return there + name[len(prefix):]
    return "backbone." + name


def result(work) -> dict:
    return json.loads((work / "result.json").read_text())


@pytest.mark.parametrize("kind", ["fpn", "c4", "fcn"])
def test_frozen_keeps_every_backbone_tensor_and_trains_the_rest(kind, trained, backbone_file):
    work = trained(kind, "frozen")
    pretrained = torch.load(backbone_file, weights_only=True)
    states = checkpoints(work)
    assert len(states) == 2
    final = states[-1]
    # every tensor of backbone.pth (weights, BN weight, bias, running_mean/var, num_batches_tracked), bit for bit
    moved = [k for k, v in pretrained.items() if not torch.equal(final[in_model(k, kind)], v)]
    assert not moved, moved
    frozen_names = {in_model(k, kind) for k in pretrained}
    assert any(k.startswith("roi_head.shared_head.layer4.") for k in frozen_names) == (kind == "c4")
    # the neck and heads train: every parameter of theirs changed between the two checkpoints
    heads = [k for k in final if k not in frozen_names and not k.endswith(("running_mean", "running_var",
                                                                            "num_batches_tracked"))]
    assert heads and all(not torch.equal(states[0][k], final[k]) for k in heads), \
        [k for k in heads if torch.equal(states[0][k], final[k])]
    p = result(work)["protocol"]
    assert p["name"] == "frozen" and p["trains"] == PROTOCOLS["frozen"].trains
    assert (p["frozen_stages"], p["num_stages"]) == ((3, 3) if kind == "c4" else (4, 4))
    assert p["norm_eval"] is True and p["backbone_trainable_tensors"] == 0 and p["backbone_tensors"] > 0
    assert p.get("shared_head_frozen") is (True if kind == "c4" else None)
    assert p["metric_name"] == ("miou" if kind == "fcn" else "map")


@pytest.mark.parametrize("kind", ["fpn", "c4", "fcn"])
def test_finetune_trains_the_backbone_as_its_config_says(kind, trained, backbone_file):
    """The same check with the trick off: the backbone moves, and the config is the file's."""
    work = trained(kind, "finetune")
    pretrained = torch.load(backbone_file, weights_only=True)
    final = checkpoints(work)[-1]
    moved = {k for k, v in pretrained.items() if not torch.equal(final[in_model(k, kind)], v)}
    assert "layer3.0.conv1.weight" in moved and "layer4.0.conv1.weight" in moved  # layer4: C4's RoI head
    if kind == "fcn":  # mmseg's FCN trains everything, BatchNorm statistics included
        assert "stem.0.weight" in moved or "conv1.weight" in moved
        assert "layer1.0.bn1.running_mean" in moved
    else:  # mmdet's: stem and layer1 frozen (frozen_stages=1), BN statistics kept (norm_eval)
        assert not {k for k in moved if k.startswith(("conv1.", "bn1.", "layer1."))}
        assert not {k for k in moved if k.endswith(("running_mean", "running_var"))}
    res = result(work)
    p = res["protocol"]
    assert p["name"] == "finetune" and p["backbone_trainable_tensors"] > 0
    assert p["frozen_stages"] == res["config"]["model"]["backbone"].get("frozen_stages", -1) == \
        (-1 if kind == "fcn" else 1)
    assert p.get("shared_head_frozen") is (False if kind == "c4" else None)


@pytest.mark.parametrize("kind, protocol", [("fpn", "finetune"), ("c4", "frozen"), ("fcn", "finetune"),
                                            ("linear", "ade-linear")])
def test_every_protocol_keeps_its_per_image_results(kind, protocol, trained, synthetic):
    """per_image.npz (downstream/per_image.py) beside result.json: the test images in dataset order,
    and every image counted once gives the mAP (both VOCMetrics) or mIoU the run reported."""
    import numpy as np

    from evaluation import evalset

    work = trained(kind, protocol)
    res = result(work)
    data = evalset.load(work / "per_image.npz")
    ones = np.ones(data.img_ids.size)
    if kind in ("fpn", "c4"):
        ids = (synthetic["voc"] / "VOC2007/ImageSets/Main/test.txt").read_text().split()[:4]
        assert list(data.img_ids) == ids and data.num_gts.sum() > 0
        for metric, key in (("map", "pascal_voc/mAP"), ("map_area", "pascal_voc_area/mAP")):
            assert data.metrics[key]["reported"] == res["raw_metrics"][key]
            assert evalset.metric_values(data, metric, ones) == res["metrics"][metric]
    else:
        n = 8 if kind == "linear" else 4
        ids = sorted(p.stem for p in (synthetic["ade20k"] / "images/validation").iterdir())[:n]
        assert list(data.img_ids) == ids and data.label.sum() > 0
        got = evalset.metric_values(data, "miou", ones)  # mmseg reports it rounded to 2 decimals, in float32
        assert np.float32(round(got, 2)) == np.float32(res["metrics"]["miou"])


def test_ade_linear_reports_mmseg_iou_metric_of_its_predictions(trained, backbone_file):
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmseg.apis import init_model
    from mmseg.evaluation import IoUMetric

    work = trained("linear", "ade-linear")
    res = result(work)
    states = checkpoints(work)
    final = states[-1]
    pretrained = torch.load(backbone_file, weights_only=True)
    assert all(torch.equal(final["backbone." + k], v) for k, v in pretrained.items())
    # the linear head is DINOv2's BNHead and it trained: BN statistics and affine parameters left their
    # initial values (0, 1), the classifier moved between the checkpoints
    assert set(k for k in final if k.startswith("decode_head.")) == {
        "decode_head.conv_seg.weight", "decode_head.conv_seg.bias", "decode_head.bn.weight", "decode_head.bn.bias",
        "decode_head.bn.running_mean", "decode_head.bn.running_var", "decode_head.bn.num_batches_tracked"}
    assert not any(k.startswith("auxiliary_head.") for k in final)
    assert not torch.equal(final["decode_head.bn.weight"], torch.ones_like(final["decode_head.bn.weight"]))
    assert final["decode_head.bn.bias"].abs().sum() > 0 and final["decode_head.bn.running_mean"].abs().sum() > 0
    assert not torch.equal(final["decode_head.bn.running_var"], torch.ones_like(final["decode_head.bn.running_var"]))
    assert not torch.equal(states[0]["decode_head.conv_seg.weight"], final["decode_head.conv_seg.weight"])
    assert final["decode_head.bn.num_batches_tracked"].item() == 4

    # mIoU recomputed from the run's saved config and final checkpoint by a fresh IoUMetric
    cfg = Config.fromfile(str(work / "linear-d8_ade20k_tiny.py"))
    model = init_model(cfg, None, device="cpu")
    model.load_state_dict(final, strict=True)
    model.eval()
    loader = Runner.build_dataloader(cfg.val_dataloader)
    metric = IoUMetric(iou_metrics=["mIoU"])
    metric.dataset_meta = loader.dataset.metainfo
    with torch.no_grad():
        for batch in loader:
            metric.process(batch, [s.to_dict() for s in model.test_step(batch)])
    assert len(metric.results) == len(loader.dataset) == 8
    got = metric.compute_metrics(metric.results)
    assert abs(got["mIoU"] - res["metrics"]["miou"]) < 1e-6 and abs(got["aAcc"] - res["metrics"]["aacc"]) < 1e-6

    p = res["protocol"]
    assert p["name"] == "ade-linear" and p["trains"] == PROTOCOLS["ade-linear"].trains
    assert (p["decode_head"], p["decode_head_dropout"], p["decode_head_in_index"], p["auxiliary_head"]) == \
        ("TrickBenchBNHead", 0.0, 3, None)
    assert (p["frozen_stages"], p["norm_eval"], p["backbone_trainable_tensors"]) == (4, True, 0)
    assert (p["max_iters"], p["optimizer"], p["evaluator"], p["metric_name"]) == (4, "AdamW", "IoUMetric", "miou")


def test_mismatched_protocol_requests_are_refused(backbone_file, synthetic, tmp_path):
    det = run_cli("downstream/detect.py", "--backbone", str(backbone_file), "--config", FPN,
                  "--work-dir", str(tmp_path / "det"), "--protocol", "ade-linear")
    assert det.returncode == 2
    assert "--protocol ade-linear is a segmentation protocol; detection runs finetune or frozen" in det.stderr
    seg = run_cli("downstream/segment.py", "--backbone", str(backbone_file), "--config", FCN,
                  "--data-root", str(synthetic["ade20k"]), "--work-dir", str(tmp_path / "seg"),
                  "--protocol", "ade-linear")
    assert seg.returncode == 2, seg.stderr[-3000:]
    assert f"--protocol ade-linear: config {FCN} has decode head 'FCNHead', not TrickBenchBNHead" in seg.stderr
    assert not (tmp_path / "det").exists() and not (tmp_path / "seg").exists()


def test_a_run_resumes_only_under_the_protocol_it_started_with(backbone_file, synthetic, tmp_path, trained):
    started = trained("fcn", "frozen")
    assert (started / ".trickbench-protocol").read_text() == "frozen"
    work = tmp_path / "work"   # an interrupted finetune run: a checkpoint, no result
    work.mkdir()
    (work / "iter_2.pth").write_bytes(b"")
    (work / "last_checkpoint").write_text(str(work / "iter_2.pth"))
    (work / ".trickbench-protocol").write_text("finetune")
    before = sorted((p.name, p.read_bytes()) for p in work.iterdir())
    proc = run_cli("downstream/segment.py", "--backbone", str(backbone_file), "--config", FCN, "--data-root",
                   str(synthetic["ade20k"]), "--work-dir", str(work), "--resume", "--protocol", "frozen")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"--resume: the run in {work} was started with --protocol finetune; continue it with --protocol "
            f"finetune, or run --protocol frozen in another --work-dir") in proc.stderr
    assert sorted((p.name, p.read_bytes()) for p in work.iterdir() if p.name != ".lock") == before


# -- the pieces, in-process ----------------------------------------------------------------------

def test_config_checks_name_the_config():
    from mmengine.config import Config

    from downstream.runner import DownstreamError, check_protocol

    linear = Config.fromfile(LINEAR)
    for name in ("finetune", "frozen"):
        with pytest.raises(DownstreamError, match="linear-probe config .* run it with --protocol ade-linear"):
            check_protocol(linear, name, LINEAR)
    check_protocol(linear, "ade-linear", LINEAR)
    linear.model.auxiliary_head = dict(type="FCNHead")
    with pytest.raises(DownstreamError, match=f"config {LINEAR} has an auxiliary head \\('FCNHead'\\)"):
        check_protocol(linear, "ade-linear", LINEAR)
    c4 = Config.fromfile(C4)
    c4.model.roi_head.shared_head.type = "ResLayer"  # mmdet's own: it has no frozen switch
    check_protocol(c4, "finetune", C4)
    with pytest.raises(DownstreamError, match="'ResLayer', which cannot be frozen"):
        check_protocol(c4, "frozen", C4)


def test_c4_backbone_has_three_stages_so_frozen_stages_is_three():
    """mmdet's ResNet with num_stages=3 cannot take frozen_stages=4 (it looks for a layer4 that
    runs in the RoI head instead): the runner sets frozen_stages to num_stages."""
    from mmdet.models.backbones import ResNet

    with pytest.raises(AttributeError, match="layer4"):
        ResNet(depth=18, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2,), frozen_stages=4)


def test_not_frozen_names_what_would_train():
    from mmdet.models.backbones import ResNet

    from downstream.runner import not_frozen
    from downstream.shared_head import ResLayerHead

    class Model(torch.nn.Module):
        def __init__(self, frozen_stages, shared_frozen):
            super().__init__()
            self.backbone = ResNet(depth=18, base_channels=8, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                                   out_indices=(2,), frozen_stages=frozen_stages, norm_eval=False)
            self.roi_head = torch.nn.Module()
            self.roi_head.shared_head = ResLayerHead(depth=18, base_channels=8, norm_eval=False, frozen=shared_frozen)

    assert not_frozen(Model(3, True).train()) == []
    loose = not_frozen(Model(3, False).train())
    assert "roi_head.shared_head.layer4.0.conv1.weight" in loose
    assert "roi_head.shared_head.layer4.0.bn1 (BatchNorm in training mode)" in loose
    loose = not_frozen(Model(1, True).train())
    assert "backbone.layer2.0.conv1.weight" in loose and "backbone.layer1.0.conv1.weight" not in loose


def test_linear_head_is_batchnorm_then_1x1_conv():
    from downstream.linear_head import BNHead

    head = BNHead(in_channels=16, channels=16, in_index=3, num_classes=5, norm_cfg=dict(type="BN"),
                  align_corners=False)
    assert head.dropout is None
    head.eval()
    feats = [torch.randn(2, c, 6, 6) for c in (2, 4, 8, 16)]
    assert torch.equal(head(feats), head.conv_seg(head.bn(feats[3])))
    with pytest.raises(ValueError, match="channels=8 must equal in_channels=16"):
        BNHead(in_channels=16, channels=8, in_index=3, num_classes=5, norm_cfg=dict(type="BN"))


@pytest.mark.parametrize("linear, base", [
    ("linear-d8_ade20k_tiny.py", "fcn-d8_ade20k_tiny.py"),
    ("linear-d8_fashion.py", "fcn-d8_fashion.py"),
    ("linear_r50-d8_ade20k-512x512.py", "fcn_r50-d8_4xb4-80k_ade20k-512x512.py"),
])
def test_linear_configs_keep_the_fcn_data_classes_and_loss_on_a_shorter_schedule(linear, base):
    from mmengine.config import Config

    folder = REPO / "configs/segmentation"
    lin, fcn = Config.fromfile(str(folder / linear)), Config.fromfile(str(folder / base))
    head = lin.model.decode_head
    assert (head.type, head.in_index, head.dropout_ratio, lin.model.auxiliary_head) == ("TrickBenchBNHead", 3, 0.0, None)
    assert head.num_classes == fcn.model.decode_head.num_classes
    assert head.loss_decode == fcn.model.decode_head.loss_decode
    assert (lin.model.backbone.frozen_stages, lin.model.backbone.norm_eval) == (4, True)
    assert lin.train_cfg.max_iters < fcn.train_cfg.max_iters
    assert lin.train_dataloader == fcn.train_dataloader and lin.val_dataloader == fcn.val_dataloader
    assert lin.val_evaluator == fcn.val_evaluator
    assert lin.optim_wrapper.optimizer.type == "AdamW" and lin.param_scheduler[-1].power == 1.0
