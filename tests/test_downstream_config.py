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
    bb = Backbone("r50d", ARCH, tmp_path / "b.pth", None, None, tmp_path, "trickbench")

    def args(work):
        return argparse.Namespace(data_root=None, cfg_options={}, work_dir=str(work), config=detect.DEFAULT_CONFIG,
                                  seed=0, amp=False, resume=True)

    with pytest.raises(DownstreamError, match="has finished .* no checkpoint"):
        prepare(Config.fromfile(detect.DEFAULT_CONFIG), args(tmp_path / "w"), "detection", bb)
    # --resume where nothing ran yet starts the run, as mmengine's own auto-resume and pretrain/run.py do
    cfg = prepare(Config.fromfile(detect.DEFAULT_CONFIG), args(tmp_path / "fresh"), "detection", bb)
    assert not cfg.get("resume") and cfg.work_dir == str(tmp_path / "fresh")


def test_tiny_configs_inherit_the_reference(tmp_path):
    for module, name in ((detect, "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"),
                         (segment, "configs/segmentation/fcn-d8_ade20k_tiny.py")):
        cfg = resolved(module, str(REPO / name), tmp_path)
        assert cfg.model.backbone.init_cfg.type == "TrickBenchPretrained"
        assert cfg.model.type == Config.fromfile(module.DEFAULT_CONFIG).model.type


C4_PAPER = str(REPO / "configs/detection/faster-rcnn_r50-c4_4xb1-20e_voc0712_paper.py")
FCN_PAPER = str(REPO / "configs/segmentation/fcn_r50-d8_4xb4-63k_ade20k-480x480_paper.py")


def test_paper_detection_config_is_gluoncv_c4_recipe(tmp_path):
    """GluonCV's faster_rcnn_resnet50_v1b_voc + train_faster_rcnn.py, on mmdet's C4 model."""
    cfg = resolved(detect, C4_PAPER, tmp_path)
    m = cfg.model
    assert (m.backbone.num_stages, m.backbone.out_indices, m.backbone.frozen_stages) == (3, (2,), 1)
    assert not m.backbone.norm_cfg.requires_grad and not m.roi_head.shared_head.norm_cfg.requires_grad
    head = m.roi_head.shared_head
    assert (head.type, head.depth, head.avg_down, head.base_channels) == ("TrickBenchResLayer", 50, True, 64)
    assert m.backbone.init_cfg.skip == ["layer4."] and head.init_cfg.only == ["layer4."]
    assert m.backbone.init_cfg.checkpoint == head.init_cfg.checkpoint == str(tmp_path / "backbone.pth")
    assert m.rpn_head.in_channels == m.roi_head.bbox_roi_extractor.out_channels == 1024
    assert m.roi_head.bbox_head.in_channels == 2048 and m.roi_head.bbox_head.with_avg_pool
    assert m.roi_head.bbox_roi_extractor.roi_layer.output_size == 14
    assert m.rpn_head.anchor_generator.scales == [2, 4, 8, 16, 32] and m.rpn_head.anchor_generator.strides == [16]
    assert (m.train_cfg.rcnn.sampler.num, m.test_cfg.rpn.max_per_img, m.test_cfg.rcnn.nms.iou_threshold) == (128, 300, 0.3)
    assert m.data_preprocessor.bgr_to_rgb and m.data_preprocessor.std[0] > 1  # ImageNet RGB normalisation
    opt = cfg.optim_wrapper
    assert (opt.optimizer.lr, opt.optimizer.weight_decay, opt.optimizer.momentum) == (0.001, 5e-4, 0.9)
    assert opt.clip_grad == dict(type="value", clip_value=5.0)
    assert cfg.train_cfg.max_epochs == 20 and cfg.param_scheduler[0].milestones == [14]
    assert cfg.train_dataloader.batch_size == 1 and cfg.train_dataloader.dataset.times == 1
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=4)
    assert [e["eval_mode"] for e in cfg.val_evaluator] == ["11points", "area"]
    assert "open-mmlab://" not in cfg.pretty_text and "torchvision://" not in cfg.pretty_text


def test_paper_segmentation_config_differs_from_mmseg_reference_only_where_gluoncv_does(tmp_path):
    cfg = resolved(segment, FCN_PAPER, tmp_path)
    diff = changed("mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py", cfg)
    allowed_prefixes = ("model.backbone.init_cfg", "auto_scale_lr", "work_dir", "launcher", "randomness",
                        "env_cfg.dist_cfg", "train_pipeline", "test_pipeline", "train_dataloader.dataset.pipeline",
                        "val_dataloader.dataset.pipeline", "test_dataloader.dataset.pipeline", "custom_imports",
                        "model.test_cfg", "optim_wrapper.paramwise_cfg")
    allowed = {"model.pretrained", "model.backbone.type", "model.backbone.avg_down", "model.backbone.deep_stem",
               "model.backbone.zero_init_residual", "model.backbone.base_channels", "model.backbone.stem_channels",
               "model.backbone.pretrained", "model.backbone.depth",
               "norm_cfg.type", "model.backbone.norm_cfg.type", "model.decode_head.norm_cfg.type",
               "model.auxiliary_head.norm_cfg.type",
               # GluonCV's recipe
               "crop_size", "base_size", "iters", "model.data_preprocessor.size", "data_preprocessor.size",
               "model.decode_head.num_convs", "model.decode_head.concat_input",
               "model.auxiliary_head.loss_decode.loss_weight", "optim_wrapper.optimizer.weight_decay",
               "optimizer.weight_decay", "param_scheduler.0.eta_min", "param_scheduler.0.end",
               "train_cfg.max_iters", "train_cfg.val_interval"}
    unexpected = {k for k in diff if k not in allowed and not k.startswith(allowed_prefixes)}
    assert not unexpected, unexpected
    m = cfg.model
    assert (m.decode_head.num_convs, m.decode_head.concat_input, m.decode_head.channels) == (1, False, 512)
    assert m.auxiliary_head.loss_decode.loss_weight == 0.5 and m.auxiliary_head.channels == 256
    assert (m.test_cfg.mode, m.test_cfg.crop_size, m.test_cfg.stride) == ("slide", (480, 480), (320, 320))
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4 and cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.train_cfg.max_iters == cfg.param_scheduler[0].end == 63150 and cfg.param_scheduler[0].eta_min == 0
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {"decode_head": dict(lr_mult=10.0),
                                                            "auxiliary_head": dict(lr_mult=10.0)}
    steps = {t["type"]: t for t in cfg.train_dataloader.dataset.pipeline}
    assert "RandomGaussianBlur" in steps and "PhotoMetricDistortion" not in steps
    assert (steps["RandomResize"]["scale"], steps["RandomResize"]["ratio_range"]) == ((520, 520), (0.5, 2.0))
    assert steps["RandomCrop"]["crop_size"] == (480, 480) and steps["RandomCrop"]["cat_max_ratio"] == 1.0
    test_steps = {t["type"]: t for t in cfg.test_dataloader.dataset.pipeline}
    assert test_steps["Resize"]["scale"] == (520, 520) and cfg.model.data_preprocessor.size == (480, 480)
    assert cfg.train_dataloader.batch_size * 4 == cfg.auto_scale_lr.base_batch_size == 16


def test_tiny_paper_configs_inherit_the_paper_setups(tmp_path):
    common = ("model.type", "model.backbone.init_cfg.type", "optim_wrapper.optimizer.weight_decay",
              "optim_wrapper.optimizer.momentum")
    cases = (
        (detect, "configs/detection/faster-rcnn_c4_voc0712_tiny.py", C4_PAPER,
         ("model.roi_head.shared_head.type", "optim_wrapper.clip_grad.clip_value", "model.backbone.num_stages",
          "model.backbone.norm_cfg.requires_grad", "model.roi_head.shared_head.norm_cfg.requires_grad",
          "model.rpn_head.loss_bbox.beta", "model.roi_head.bbox_head.loss_bbox.beta",
          "model.roi_head.bbox_roi_extractor.roi_layer.output_size", "val_evaluator.0.eval_mode"),
         lambda c: c.train_dataloader.dataset.dataset.datasets[0].pipeline),
        (segment, "configs/segmentation/fcn-d8_ade20k_tiny_paper.py", FCN_PAPER,
         ("model.decode_head.num_convs", "model.decode_head.concat_input",
          "model.auxiliary_head.loss_decode.loss_weight", "optim_wrapper.paramwise_cfg.custom_keys.decode_head.lr_mult",
          "model.test_cfg.mode", "param_scheduler.0.eta_min", "val_evaluator.type"),
         lambda c: c.train_dataloader.dataset.pipeline),
    )
    for module, name, paper, keys, train_pipeline in cases:
        cfg, ref = resolved(module, str(REPO / name), tmp_path), resolved(module, paper, tmp_path)
        tiny, full = flatten(cfg.to_dict()), flatten(ref.to_dict())
        for key in common + keys:
            assert key in tiny and key in full and tiny[key] == full[key], (name, key)
        assert [t["type"] for t in train_pipeline(cfg)] == [t["type"] for t in train_pipeline(ref)], name
