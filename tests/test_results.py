"""result.json through its one owner, trickbench.results: written, read back, read from
the layout written before the record existed, and refused (named) when malformed."""
import json
from pathlib import Path

import pytest

from trickbench.pretrain_config import PretrainConfig
from pretrain.run import run_ids
from trickbench import results
from trickbench.results import Cost, Result, ResultError


def record(**changes) -> Result:
    values = dict(stage="detection", backbone="d-cosine-seed1", recipe="d-cosine", seed=1,
                  metrics={"map": 71.5, "map_area": 73.0}, cost=Cost(7200.0, "NVIDIA H100", 4, 16551 * 12),
                  finished_at="2026-11-25T03:00:00+00:00", arch=dict(depth=50, variant="D", base_channels=64),
                  tricks=("cosine",), top1=77.9, config_file="configs/detection/x.py", extra={"iterations": 99})
    return Result(**(values | changes))


def test_write_then_read_is_the_same_record(tmp_path):
    written = record()
    path = results.write(tmp_path, written)
    back = results.read(path)
    assert back == written and back.source == path and back.run_dir == tmp_path
    data = json.loads(path.read_text())
    assert data["iterations"] == 99 and data["recipe"] == "d-cosine" and data["seed"] == 1
    assert data["cost"]["device_hours"] == pytest.approx(8.0) and data["cost"]["images_per_s"] == pytest.approx(27.585)
    assert back.config_name == "x"


def test_a_file_written_before_the_record_still_reads(tmp_path):
    """The flat layout of the earlier writer: no recipe, seed or cost."""
    old = {"stage": "pretrain", "backbone": "r18-baseline", "metrics": {"top1": 61.0, "top5": 90.0},
           "config": {"run": {"seed": 3}}, "checkpoint": "/x/backbone.pth", "wall_time_s": 1800.0,
           "finished_at": "2026-01-01T00:00:00+00:00", "versions": {"torch": "2.11.0"}, "git_commit": "abc",
           "host": "h", "command": [], "cuda": None, "gpus": ["NVIDIA A100"], "world_size": 8,
           "arch": {"depth": 18, "variant": "B", "base_channels": 16}, "tricks": [], "peak_lr": 0.1}
    (tmp_path / "result.json").write_text(json.dumps(old))
    res = results.read(tmp_path / "result.json")
    assert (res.recipe, res.seed, res.backbone) == ("r18-baseline", 3, "r18-baseline")
    assert res.cost == Cost(1800.0, "NVIDIA A100", 8, None) and res.cost.device_hours == pytest.approx(4.0)
    assert res.extra["peak_lr"] == 0.1 and res.extra["versions"] == {"torch": "2.11.0"}


@pytest.mark.parametrize("damage, words", [
    (lambda d: d.pop("metrics"), "no metrics"),
    (lambda d: d["metrics"].update(map=float("nan")), "metric 'map' is nan"),
    (lambda d: d["metrics"].update(map="high"), "metric 'map' is 'high'"),
    (lambda d: d["arch"].pop("depth"), "lacks an integer depth"),
    (lambda d: d.update(seed="one"), "seed 'one' is not an integer"),
    (lambda d: d.update(stage="training"), "stage 'training'"),
    (lambda d: d["cost"].pop("device"), "lacks wall_time_s, device or device_count"),
])
def test_a_malformed_record_is_named(tmp_path, damage, words):
    data = results.to_dict(record())
    damage(data)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match=words) as e:
        results.read(path)
    assert str(path) in str(e.value)


def test_find_returns_what_it_could_not_read_and_never_drops_it(tmp_path):
    results.write(tmp_path / "a", record())
    results.write(tmp_path / "b", record(backbone="d-cosine-seed2", seed=2))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "result.json").write_text('{"stage": "detection", "backb')
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "result.json").write_text('{"accuracy": 0.5}')
    found = results.find(tmp_path)
    assert [r.seed for r in found.results] == [1, 2]
    assert [p for p, _ in found.unreadable] == [tmp_path / "c" / "result.json"]
    assert "not valid JSON" in found.unreadable[0][1]
    assert found.foreign == [tmp_path / "d" / "result.json"]


def test_write_refuses_an_invalid_record_and_leaves_the_old_file(tmp_path):
    path = results.write(tmp_path, record())
    before = path.read_bytes()
    with pytest.raises(ResultError):
        results.write(tmp_path, record(metrics={"map": float("inf")}))
    assert path.read_bytes() == before


@pytest.mark.parametrize("work, ids", [
    ("runs/d-cosine/seed0", ("d-cosine-seed0", "d-cosine")),
    ("runs/baseline/seed0", ("baseline-seed0", "baseline")),
    ("runs/r18-baseline", ("r18-baseline", "r18-baseline")),
])
def test_backbone_ids_stay_unique_per_seed(work, ids):
    assert run_ids(Path(work), PretrainConfig()) == ids


def test_named_runs_keep_their_names():
    cfg = PretrainConfig()
    cfg.run.name, cfg.run.recipe = "mine", "family"
    assert run_ids(Path("runs/x/seed0"), cfg) == ("mine", "family")
