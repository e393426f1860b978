"""The downstream configs are OpenMMLab's reference configs, changed only where the
experiment needs it explicit."""
import argparse

import pytest
from mmengine.config import Config

from downstream import detect, segment
from downstream.runner import Backbone, DownstreamError, prepare
from tests.conftest import REPO

ARCH = dict(depth=50, style="pytorch", deep_stem=True, avg_down=True, base_channels=64, variant="D")


def flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k != "_scope_":  # added by mmengine when a config inherits across packages
                out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(node, (list, tuple)) and any(isinstance(v, dict) for v in node):
        out = {}
        for i, v in enumerate(node):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): node}


def resolved(module, config, tmp_path, **overrides):
    bb = Backbone("r50d", ARCH, tmp_path / "backbone.pth", "0" * 64, 77.0, tmp_path, "trickbench")
    args = argparse.Namespace(data_root=None, cfg_options={}, work_dir=str(tmp_path / "w"), config=config,
                              seed=0, amp=False, resume=False, **overrides)
    cfg = prepare(Config.fromfile(config), args, "x", bb)
    module.apply_backbone(cfg, bb)
    return cfg


def package_config(ref: str) -> str:
    """'mmdet::a/b.py' -> the file inside the installed package."""
    from mmengine.utils import get_installed_path

    package, path = ref.split("::")
    return f"{get_installed_path(package)}/.mim/configs/{path}"


def changed(reference: str, cfg: Config) -> set[str]:
    ref, ours = flatten(Config.fromfile(package_config(reference)).to_dict()), flatten(cfg.to_dict())
    return {k for k in set(ref) | set(ours) if ref.get(k, "<absent>") != ours.get(k, "<absent>")}


def test_detection_differs_from_mmdet_reference_only_where_intended(tmp_path):
    cfg = resolved(detect, detect.DEFAULT_CONFIG, tmp_path)
    diff = changed("mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py", cfg)
    allowed_prefixes = ("model.backbone.init_cfg", "val_evaluator", "test_evaluator", "auto_scale_lr.enable",
                        "work_dir", "launcher", "randomness", "env_cfg.dist_cfg")
    allowed = {"model.backbone.deep_stem", "model.backbone.avg_down", "model.backbone.zero_init_residual",
               "model.backbone.base_channels", "model.backbone.stem_channels", "model.backbone.pretrained"}
    unexpected = {k for k in diff if k not in allowed and not k.startswith(allowed_prefixes)}
    assert not unexpected, unexpected
    b = cfg.model.backbone
    assert (b.type, b.depth, b.frozen_stages, b.norm_eval, b.zero_init_residual) == ("ResNet", 50, 1, True, False)
    assert b.init_cfg.type == "TrickBenchPretrained" and "torchvision://" not in cfg.pretty_text
    assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
    assert [m["eval_mode"] for m in cfg.val_evaluator] == ["11points", "area"]
    assert cfg.auto_scale_lr.enable and cfg.auto_scale_lr.base_batch_size == 16


def test_segmentation_differs_from_mmseg_reference_only_where_intended(tmp_path):
    cfg = resolved(segment, segment.DEFAULT_CONFIG, tmp_path)
    diff = changed("mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py", cfg)
    allowed_prefixes = ("model.backbone.init_cfg", "auto_scale_lr", "work_dir", "launcher", "randomness",
                        "env_cfg.dist_cfg")
    allowed = {"model.pretrained", "model.backbone.type", "model.backbone.avg_down", "model.backbone.deep_stem",
               "model.backbone.zero_init_residual", "model.backbone.base_channels", "model.backbone.stem_channels",
               "model.backbone.pretrained", "model.backbone.depth",
               # one process: SyncBN -> BN
               "norm_cfg.type", "model.backbone.norm_cfg.type", "model.decode_head.norm_cfg.type",
               "model.auxiliary_head.norm_cfg.type"}
    unexpected = {k for k in diff if k not in allowed and not k.startswith(allowed_prefixes)}
    assert not unexpected, unexpected
    b = cfg.model.backbone
    assert cfg.model.pretrained is None and "open-mmlab://" not in cfg.pretty_text
    assert (b.strides, b.dilations, b.contract_dilation) == ((1, 2, 1, 1), (1, 1, 2, 4), True)
    assert b.norm_cfg.type == "BN"
    assert cfg.model.decode_head.in_channels == 2048 and cfg.model.auxiliary_head.in_channels == 1024


def test_existing_run_is_refused_without_resume(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "result.json").write_text("{}")
    with pytest.raises(DownstreamError, match="already holds"):
        resolved(detect, detect.DEFAULT_CONFIG, tmp_path)
    with pytest.raises(DownstreamError, match="no checkpoint to resume"):
        bb = Backbone("r50d", ARCH, tmp_path / "b.pth", None, None, tmp_path, "trickbench")
        args = argparse.Namespace(data_root=None, cfg_options={}, work_dir=str(tmp_path / "w"),
                                  config=detect.DEFAULT_CONFIG, seed=0, amp=False, resume=True)
        prepare(Config.fromfile(detect.DEFAULT_CONFIG), args, "detection", bb)


def test_tiny_configs_inherit_the_reference(tmp_path):
    for module, name in ((detect, "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"),
                         (segment, "configs/segmentation/fcn-d8_ade20k_tiny.py")):
        cfg = resolved(module, str(REPO / name), tmp_path)
        assert cfg.model.backbone.init_cfg.type == "TrickBenchPretrained"
        assert cfg.model.type == Config.fromfile(module.DEFAULT_CONFIG).model.type
