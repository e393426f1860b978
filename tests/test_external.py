"""Backbones the suite did not train, in the files their own libraries write.

torchvision, timm and mmpretrain build the models and save them as they save
them (torchvision's state dicts, timm's Hub files and ``CheckpointSaver``
checkpoints, mmpretrain's mmengine training checkpoints and the files its
``publish_model`` tool makes of them). Each file goes through the ``--backbone
FILE`` path into the detector's backbone, and the four stage outputs there must
equal the source model's own features, bit for bit.
"""
from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import pytest
import torch

from downstream.external import infer_arch, load_external
from downstream.runner import resolve_backbone
from pretrain.checkpoint import CheckpointError
from pretrain.models import resnet
from tests.conftest import ok, run_cli
from tests.test_backbone_transfer import build_downstream

DET = "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def nontrivial(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights from a fixed seed, and BN statistics and affines far from their
    defaults, so that a BN loaded into the wrong place, or not at all, shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(1234)
    model.eval()  # OpenMMLab's ResNet.train() returns None
    return model


# -- the sources: (file written by the library, the library's own four stage outputs) ----------

def torchvision_model(depth: int):
    import torchvision

    torch.manual_seed(depth)
    return nontrivial(getattr(torchvision.models, f"resnet{depth}")(weights=None, num_classes=10))


def torchvision_features(model):
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = {f"layer{i}": str(i) for i in range(1, 5)}
    return list(create_feature_extractor(model, return_nodes=nodes)(X).values())


def torchvision_hub_file(depth, tmp_path):
    """torchvision's published weights are plain state dicts (``resnet50-0676ba61.pth``)."""
    model = torchvision_model(depth)
    torch.save(model.state_dict(), tmp_path / f"resnet{depth}.pth")
    return tmp_path / f"resnet{depth}.pth", torchvision_features(model)


def torchvision_reference_checkpoint(depth, tmp_path):
    """What torchvision's ``references/classification/train.py`` saves each epoch: the model
    under ``model``, with the optimizer, the scheduler and the run's argparse Namespace."""
    model = torchvision_model(depth)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
    args = argparse.Namespace(model=f"resnet{depth}", lr=0.1, epochs=90, label_smoothing=0.0, weights=None)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
                "epoch": 89, "args": args}, tmp_path / "checkpoint.pth")
    return tmp_path / "checkpoint.pth", torchvision_features(model)


def timm_model(name: str):
    import timm

    torch.manual_seed(len(name))
    return nontrivial(timm.create_model(name, pretrained=False, num_classes=10))


def timm_features(model):
    return model.forward_intermediates(X, indices=[1, 2, 3, 4], intermediates_only=True)


def timm_hub_files(name, tmp_path, filename):
    """``timm.models.save_for_hf``: what ``push_to_hf_hub`` uploads (``model.safetensors``
    and ``pytorch_model.bin``)."""
    from timm.models import save_for_hf

    model = timm_model(name)
    save_for_hf(model, tmp_path / name, safe_serialization="both")
    return tmp_path / name / filename, timm_features(model)


def timm_train_checkpoint(name, tmp_path):
    """timm's ``train.py`` checkpoints, written by its ``CheckpointSaver`` (with the
    optimizer, the argparse Namespace and an EMA copy)."""
    from timm.utils import CheckpointSaver, ModelEmaV3

    model = timm_model(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    args = argparse.Namespace(model=name, lr=0.1, smoothing=0.1, mixup=0.2)
    saver = CheckpointSaver(model, opt, args=args, model_ema=ModelEmaV3(model), checkpoint_dir=str(tmp_path),
                            recovery_dir=str(tmp_path), max_history=1)
    saver.save_checkpoint(epoch=0, metric=42.0)
    return tmp_path / "model_best.pth.tar", timm_features(model)


def mmpretrain_model(backbone: str, depth: int):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    torch.manual_seed(depth)
    channels = 512 * (4 if depth >= 50 else 1)
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        return nontrivial(MODELS.build(dict(
            type="ImageClassifier", backbone=dict(type=backbone, depth=depth, out_indices=(0, 1, 2, 3)),
            neck=dict(type="GlobalAveragePooling"),
            head=dict(type="LinearClsHead", num_classes=10, in_channels=channels))))


def mmpretrain_features(model):
    return list(model.extract_feat(X, stage="backbone"))


def mmpretrain_train_checkpoint(model, tmp_path):
    """One epoch of mmengine's Runner on an mmpretrain classifier; its CheckpointHook
    writes ``epoch_1.pth`` (state_dict, meta, message_hub, optimizer, param_schedulers)."""
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import Runner
    from mmpretrain.structures import DataSample

    data = [dict(inputs=torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8),
                 data_samples=DataSample().set_gt_label(i % 10)) for i in range(4)]
    runner = Runner(
        model=model, work_dir=str(tmp_path / "mmpretrain"), default_scope="mmpretrain",
        train_dataloader=torch.utils.data.DataLoader(data, batch_size=2, collate_fn=pseudo_collate),
        train_cfg=dict(by_epoch=True, max_epochs=1), optim_wrapper=dict(optimizer=dict(type="SGD", lr=1e-3)),
        param_scheduler=dict(type="MultiStepLR", milestones=[1]),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook")))
    runner.train()
    return tmp_path / "mmpretrain" / "epoch_1.pth"


def mmpretrain_published(backbone, depth, tmp_path):
    """A training checkpoint through mmpretrain's own ``tools/model_converters/publish_model.py``
    (what its model zoo serves: ``meta`` and ``state_dict``)."""
    import mmpretrain

    from downstream.safe_load import SAFE_GLOBALS

    model = mmpretrain_model(backbone, depth)
    trained = mmpretrain_train_checkpoint(model, tmp_path)
    tool = importlib.util.spec_from_file_location(
        "publish_model", f"{mmpretrain.__path__[0]}/.mim/tools/model_converters/publish_model.py")
    publish = importlib.util.module_from_spec(tool)
    tool.loader.exec_module(publish)
    with torch.serialization.safe_globals(SAFE_GLOBALS):  # the tool's torch.load, under torch >= 2.6
        publish.process_checkpoint(str(trained), str(tmp_path / "published.pth"),
                                   argparse.Namespace(no_ema=False, dataset_type="ImageNet"))
    (published,) = tmp_path.glob("published_*.pth")
    return published, trained, mmpretrain_features(model.eval())  # as trained and saved, BN statistics in use


def mmpretrain_zoo_file(backbone, depth, tmp_path):
    """The model-zoo layout written directly, as mmengine's ``save_checkpoint`` does."""
    from mmengine.runner.checkpoint import save_checkpoint

    model = mmpretrain_model(backbone, depth)
    save_checkpoint({"meta": {"mmpretrain_version": "1.2.0", "dataset_meta": {}}, "state_dict": model.state_dict()},
                    str(tmp_path / f"{backbone}.pth"))
    return tmp_path / f"{backbone}.pth", mmpretrain_features(model)


SOURCES = {
    "torchvision-resnet18": (lambda p: torchvision_hub_file(18, p), 18, "B"),
    "torchvision-resnet50": (lambda p: torchvision_hub_file(50, p), 50, "B"),
    "torchvision-reference-resnet50": (lambda p: torchvision_reference_checkpoint(50, p), 50, "B"),
    "timm-resnet50.bin": (lambda p: timm_hub_files("resnet50", p, "pytorch_model.bin"), 50, "B"),
    "timm-resnet50d.safetensors": (lambda p: timm_hub_files("resnet50d", p, "model.safetensors"), 50, "D"),
    "timm-resnet18d.safetensors": (lambda p: timm_hub_files("resnet18d", p, "model.safetensors"), 18, "D"),
    "timm-resnet50d-train": (lambda p: timm_train_checkpoint("resnet50d", p), 50, "D"),
    "mmpretrain-ResNet": (lambda p: mmpretrain_zoo_file("ResNet", 50, p), 50, "B"),
    "mmpretrain-ResNetV1c": (lambda p: mmpretrain_zoo_file("ResNetV1c", 50, p), 50, "C"),
    "mmpretrain-ResNetV1d": (lambda p: mmpretrain_zoo_file("ResNetV1d", 50, p), 50, "D"),
}


def detector_features(path, tmp_path, variant=None):
    """The file through ``--backbone FILE`` (conversion, architecture, strict init) into
    the detector's backbone; its four stage outputs."""
    bb = resolve_backbone(str(path), variant=variant)
    model = build_downstream(DET, bb.state, bb.arch, tmp_path / "backbone.pth")
    with torch.no_grad():
        return bb, list(model.backbone(X))


def assert_same_features(ours, theirs):
    assert len(ours) == len(theirs) == 4
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"stage {i + 1}: {tuple(a.shape)} vs {tuple(b.shape)}"
        assert torch.equal(a, b), f"stage {i + 1}: max difference {(a - b).abs().max().item()}"


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_library_files_give_the_source_features(tmp_path, source):
    make, depth, variant = SOURCES[source]
    path, expected = make(tmp_path)
    with torch.no_grad():
        expected = [t.detach() for t in expected]
    bb, got = detector_features(path, tmp_path)
    assert (bb.arch["depth"], bb.arch["variant"], bb.arch["base_channels"]) == (depth, variant, 64)
    assert_same_features(got, expected)


def test_mmpretrain_training_checkpoint_and_its_published_file(tmp_path):
    """A real mmengine training checkpoint (message hub, optimizer, schedulers) and the file
    mmpretrain's publish tool makes of it both load, with weights_only=True."""
    published, trained, expected = mmpretrain_published("ResNetV1d", 18, tmp_path)
    from downstream.safe_load import load_weights_only

    with pytest.raises(Exception, match="HistoryBuffer"):  # what plain weights_only=True makes of it
        torch.load(trained, weights_only=True)
    assert {"message_hub", "optimizer", "param_schedulers", "meta"} <= set(load_weights_only(trained))
    assert {"message_hub", "optimizer"}.isdisjoint(load_weights_only(published))
    for path in (trained, published):
        bb, got = detector_features(path, tmp_path)
        assert bb.arch["variant"] == "D" and bb.source.startswith("mmpretrain")
        assert_same_features(got, [t.detach() for t in expected])


def test_mmpretrain_v1d_was_wrong_before_the_remaps(tmp_path):
    """Without the stem and layer1 remaps, the file converts to something else: the keys
    mmpretrain writes are not mmdet's (so the test above can fail)."""
    path, _ = mmpretrain_zoo_file("ResNetV1d", 50, tmp_path)
    keys = torch.load(path, weights_only=True)["state_dict"]
    assert "backbone.stem.0.conv.weight" in keys and "backbone.layer1.0.downsample.0.weight" in keys
    state = load_external(path).state
    assert "stem.0.weight" in state and "stem.7.running_var" in state and "layer1.0.downsample.2.weight" in state


def test_variant_a_is_taken_on_request(tmp_path):
    """A and B have the same weights; ``--variant A`` builds the caffe-style stride."""
    path, _ = torchvision_hub_file(18, tmp_path)
    assert load_external(path, "A").arch["style"] == "caffe"
    assert load_external(path).arch["style"] == "pytorch"


def test_state_dict_without_bn_counters_loads_and_says_so(tmp_path, capsys):
    """Files saved before PyTorch 0.4.1 have no ``num_batches_tracked``: they load (counters
    0, as torch fills them), the features are the source model's, and the log says so."""
    model = torchvision_model(50)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert len(old) == len(model.state_dict()) - 53
    torch.save(old, tmp_path / "resnet50-old.pth")
    bb, got = detector_features(tmp_path / "resnet50-old.pth", tmp_path)
    assert_same_features(got, torchvision_features(model))
    out = capsys.readouterr().out
    assert "resnet50-old.pth has no BatchNorm counters" in out and "set 53 of them to 0" in out
    counters = [k for k in bb.state if k.endswith("num_batches_tracked")]
    assert len(counters) == 53 and all(bb.state[k].item() == 0 for k in counters)


def test_bn_counters_missing_in_only_some_bns_are_refused(tmp_path):
    state = torchvision_model(18).state_dict()
    del state["layer2.0.bn1.num_batches_tracked"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing keys: layer2.0.bn1.num_batches_tracked"):
        load_external(tmp_path / "partial.pth")


def test_variant_that_contradicts_the_keys_is_refused(tmp_path):
    path, _ = torchvision_hub_file(18, tmp_path)
    with pytest.raises(CheckpointError, match="--variant D does not fit"):
        load_external(path, "D")


class Foreign:
    """Stands for any pickled object a weights file should not carry."""


def test_non_tensor_pickle_is_refused_with_weights_only(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "obj": Foreign()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_external(tmp_path / "evil.pth")


def test_unknown_layout_and_depth_are_refused(tmp_path):
    torch.save({"encoder.weight": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="no ResNet keys"):
        load_external(tmp_path / "x.pth")
    sd = resnet(18, "B", num_classes=10, base_channels=16).backbone_state_dict()
    sd = {k: v for k, v in sd.items() if not k.startswith("layer4.1.")}
    with pytest.raises(CheckpointError, match="match no ResNet depth"):
        infer_arch(sd)


def test_avg_down_without_deep_stem_is_refused_by_name(tmp_path):
    """mmpretrain's ``ResNet(avg_down=True)`` is no paper variant: a clear error, no traceback."""
    from mmengine.runner.checkpoint import save_checkpoint

    from mmpretrain.models import ResNet

    save_checkpoint({"state_dict": {f"backbone.{k}": v for k, v in ResNet(depth=18, avg_down=True).state_dict().items()}},
                    str(tmp_path / "avgdown.pth"))
    with pytest.raises(CheckpointError, match=r"avgdown\.pth.*no paper\s+variant"):
        load_external(tmp_path / "avgdown.pth")


def test_damaged_files_name_themselves_on_the_command_line(tmp_path, synthetic):
    """Through ``detect.py``: one ``error:`` line naming the file, exit 2, no traceback, for a
    truncated file, a non-ResNet and a ResNet with a layer missing."""
    path, _ = torchvision_hub_file(18, tmp_path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:5000])
    no_layer = tmp_path / "no-layer3.pth"
    torch.save({k: v for k, v in torch.load(path, weights_only=True).items() if not k.startswith("layer3.")}, no_layer)
    broken_st = tmp_path / "broken.safetensors"
    broken_st.write_bytes(b"\x00" * 40)
    for bad in (truncated, no_layer, broken_st):
        proc = run_cli("downstream/detect.py", "--backbone", str(bad), "--config", DET,
                       "--data-root", f"{synthetic['voc']}/", "--work-dir", str(tmp_path / "run"))
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error:")
        assert str(bad) in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_mmpretrain_file_fine_tunes_through_detect(tmp_path, synthetic):
    """A narrow mmpretrain ResNetV1d, published by its own tool, fine-tunes through
    ``detect.py --backbone FILE``; the weights it trained from are the file's."""
    from mmpretrain.models import ResNetV1d

    from downstream.external import to_openmmlab

    from mmengine.runner.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = nontrivial(ResNetV1d(depth=18, base_channels=16, stem_channels=16))
    save_checkpoint({"meta": {}, "state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()}},
                    str(tmp_path / "v1d.pth"))
    proc = ok(run_cli("downstream/detect.py", "--backbone", str(tmp_path / "v1d.pth"), "--name", "mmpretrain-v1d",
                      "--top1", "50", "--config", DET, "--data-root", f"{synthetic['voc']}/",
                      "--work-dir", str(tmp_path / "det"), "--cfg-options", "train_cfg.max_epochs=1"))
    assert "[mmpretrain-v1d] detection done" in proc.stdout
    result = json.loads((tmp_path / "det" / "result.json").read_text())
    assert result["arch"]["variant"] == "D" and result["backbone_source"].startswith("mmpretrain")
    kept = torch.load(tmp_path / "det" / "backbone.pth", weights_only=True)
    converted, _ = to_openmmlab({f"backbone.{k}": v for k, v in net.state_dict().items()}, "v1d")
    assert set(kept) == set(converted) and all(torch.equal(kept[k], converted[k]) for k in kept)


class Planted:
    """A pickle that runs code when loaded without weights_only (here: writes a file)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class ReachesFurther:
    """``getattr`` on an allowed class, for something other than a HistoryBuffer statistic."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (getattr, (HistoryBuffer, "__subclasses__"))


def test_allow_list_admits_data_only(tmp_path):
    """The safe loader takes what the libraries' checkpoints hold and refuses code: a
    planted callable is not run, and the stand-in ``getattr`` reaches only the four
    HistoryBuffer statistics."""
    from mmengine.logging import HistoryBuffer

    from downstream.safe_load import load_weights_only

    buf = HistoryBuffer()
    buf.update(1.5)
    arrays = {"f8": np.arange(6.0).reshape(2, 3), "u4": np.arange(4, dtype=np.uint32), "big": np.arange(3, dtype=">i4"),
              "F": np.asfortranarray(np.arange(6).reshape(2, 3)), "s": np.float64(2.5), "b": np.bool_(True)}
    torch.save({"args": argparse.Namespace(lr=0.1), "hub": buf, "method": HistoryBuffer.mean, "rng": np.random.get_state(),
                **arrays}, tmp_path / "ok.pth")
    back = load_weights_only(tmp_path / "ok.pth")
    assert back["args"].lr == 0.1 and back["hub"].mean() == 1.5 and back["method"] is HistoryBuffer.mean
    for k, v in arrays.items():
        assert type(back[k]) is type(v) and back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    np.random.set_state(back["rng"])  # a numpy generator state, as the resume hook saves it

    # numpy's own dtype/_reconstruct would take a state that makes raw bytes into object pointers
    torch.save({"x": np.array(["a", 1], dtype=object)}, tmp_path / "objects.pth")
    torch.save({"x": np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])}, tmp_path / "struct.pth")
    for bad in ("objects.pth", "struct.pth"):
        with pytest.raises(Exception, match="plain numeric"):
            load_weights_only(tmp_path / bad)

    marker = tmp_path / "marker"
    torch.save({"state_dict": {}, "x": Planted(marker)}, tmp_path / "planted.pth")
    torch.save({"x": ReachesFurther()}, tmp_path / "further.pth")
    for bad in ("planted.pth", "further.pth"):
        with pytest.raises(Exception):
            load_weights_only(tmp_path / bad)
    assert not marker.exists()
