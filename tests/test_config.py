import pytest

from trickbench.pretrain_config import ConfigError, PretrainConfig, from_dict, load_config
from tests.conftest import REPO


def test_defaults_are_the_paper_baseline_with_no_trick():
    cfg = PretrainConfig()
    assert cfg.tricks() == []
    assert (cfg.model.depth, cfg.model.variant, cfg.optim.lr, cfg.data.batch_size) == (50, "A", 0.1, 256)
    assert cfg.optim.nesterov and cfg.schedule.decay == "step" and cfg.schedule.milestones == [30, 60, 90]


def test_baseline_config_file_is_resnet50_a_without_tricks():
    cfg = load_config(REPO / "configs/pretrain/resnet50_baseline.py")
    assert (cfg.model.depth, cfg.model.variant) == (50, "A") and cfg.tricks() == []


def test_variant_config_is_a_small_diff_and_cfg_options_override():
    cfg = load_config(REPO / "configs/pretrain/synthetic/resnet18d_tiny_tricks.py", {"loss.mixup_alpha": 0.2})
    assert cfg.model.variant == "D" and cfg.model.depth == 18  # inherited from the tiny baseline
    assert cfg.tricks() == ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "cosine",
                            "label_smoothing", "mixup"]


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="optim.nesterof"):
        from_dict({"optim": {"nesterof": True}})
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(None, {"model.widht": 2})


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="variant"):
        from_dict({"model": {"variant": "E"}})
    with pytest.raises(ConfigError, match="precision"):
        from_dict({"run": {"precision": "fp8"}})


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(REPO / "configs/pretrain/nope.py")


# The paper's rows (Tables 3-6) as configs: each adds what its name says to its base.
PAPER_ROWS = {
    "resnet50_baseline": ("A", 256, []),
    "resnet50_bs1024+linear-scaling": ("A", 1024, ["linear_scaling"]),
    "resnet50_bs1024+warmup": ("A", 1024, ["linear_scaling", "warmup"]),
    "resnet50_bs1024+zero-gamma": ("A", 1024, ["linear_scaling", "warmup", "zero_gamma"]),
    "resnet50_bs1024+no-bias-decay": ("A", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay"]),
    "resnet50_bs1024+fp16": ("A", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"]),
    "resnet50b_efficient": ("B", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"]),
    "resnet50c_efficient": ("C", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"]),
    "resnet50d_efficient": ("D", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"]),
    "resnet50d_efficient+cosine": ("D", 1024, ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16",
                                               "cosine"]),
    "resnet50d_efficient+cosine+label-smoothing": ("D", 1024, [
        "linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16", "cosine", "label_smoothing"]),
    "resnet50d_efficient+cosine+label-smoothing+distill": ("D", 1024, [
        "linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16", "cosine", "label_smoothing", "distill"]),
    "resnet50d_efficient+cosine+label-smoothing+mixup": ("D", 1024, [
        "linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16", "cosine", "label_smoothing", "mixup"]),
    "resnet50d_efficient+cosine+label-smoothing+distill+mixup": ("D", 1024, [
        "linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16", "cosine", "label_smoothing", "distill",
        "mixup"]),
}


@pytest.mark.parametrize("name", sorted(PAPER_ROWS))
def test_paper_row_configs(name):
    variant, batch, tricks = PAPER_ROWS[name]
    cfg = load_config(REPO / "configs/pretrain" / f"{name}.py")
    assert (cfg.model.depth, cfg.model.variant, cfg.data.batch_size, cfg.tricks()) == (50, variant, batch, tricks)
    assert cfg.schedule.epochs == (200 if "mixup" in tricks else 120)


def test_every_pretrain_config_loads():
    paths = sorted((REPO / "configs/pretrain").rglob("*.py"))
    assert len(paths) >= len(PAPER_ROWS) + 2
    for path in paths:
        load_config(path)
