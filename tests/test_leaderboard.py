import csv
import json

import pytest

from evaluation.leaderboard import main
from evaluation.table import COLUMNS, build_rows, find_results
from tests.conftest import run_cli


def write(path, **res):
    path.mkdir(parents=True, exist_ok=True)
    (path / "result.json").write_text(json.dumps(res))


def pretrain(root, name, top1, sha="a" * 64, variant="D", tricks=("cosine",)):
    write(root / name, stage="pretrain", backbone=name, metrics={"top1": top1, "top5": 99.0},
          arch={"depth": 18, "variant": variant, "base_channels": 16}, tricks=list(tricks),
          backbone_sha256=sha, finished_at="2026-01-01T00:00:00+00:00")


def downstream(root, name, stage, metrics, sha="a" * 64, finished="2026-01-02T00:00:00+00:00", sub="tiny"):
    write(root / name / stage / sub, stage=stage, backbone=name, metrics=metrics, backbone_sha256=sha,
          finished_at=finished, config_file=f"configs/{stage}/{sub}.py")


def test_rows_join_stages_by_backbone(tmp_path):
    pretrain(tmp_path, "b", 70.0, variant="B", tricks=())
    pretrain(tmp_path, "d", 75.5)
    downstream(tmp_path, "d", "detection", {"map": 40.0, "map_area": 41.0})
    downstream(tmp_path, "d", "segmentation", {"miou": 30.0, "aacc": 80.0, "macc": 35.0})
    rows = build_rows(find_results(tmp_path), tmp_path)
    assert [r["backbone"] for r in rows] == ["b", "d"]
    b, d = rows
    assert b["tricks"] == "baseline" and b["voc_map"] == "" and b["ade_miou"] == ""  # stage not run: empty
    assert (d["arch"], d["tricks"], d["top1"], d["voc_map"], d["ade_miou"], d["ade_aacc"]) == (
        "ResNet-18-D-w16", "cosine", "75.50", "40.00", "30.00", "80.00")


def test_newest_downstream_result_wins_and_stale_backbones_are_skipped(tmp_path):
    pretrain(tmp_path, "d", 75.0, sha="a" * 64)
    downstream(tmp_path, "d", "detection", {"map": 10.0}, finished="2026-01-02T00:00:00+00:00", sub="old")
    downstream(tmp_path, "d", "detection", {"map": 20.0}, finished="2026-01-03T00:00:00+00:00", sub="new")
    downstream(tmp_path, "d", "segmentation", {"miou": 5.0, "aacc": 5.0}, sha="b" * 64)  # other backbone.pth
    (row,) = build_rows(find_results(tmp_path), tmp_path)
    assert row["voc_map"] == "20.00" and row["det_config"] == "new" and row["ade_miou"] == ""


def test_csv_is_reproducible(tmp_path, capsys):
    runs = tmp_path / "runs"
    pretrain(runs, "d", 75.0)
    downstream(runs, "d", "detection", {"map": 40.0})
    assert main(["--runs", str(runs), "--out", str(tmp_path / "a.csv")]) == 0
    assert main(["--runs", str(runs), "--out", str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert list(rows[0]) == COLUMNS and rows[0]["voc_map"] == "40.00"
    out = capsys.readouterr().out
    assert "1 run(s) of 1 recipe(s)" in out and f"per recipe (mean, std, 95% interval, cost): {tmp_path / 'recipes.csv'}" in out


def test_recipes_aggregate_their_seeds(tmp_path, capsys):
    """Every seed is a row of leaderboard.csv; recipes.csv has each recipe once, with the
    seeds counted and mean, std and the 95% t interval computed from them."""
    runs = tmp_path / "runs"
    for seed, (top1, map_) in enumerate([(75.0, 40.0), (76.0, 42.0), (77.0, 41.0)]):
        write(runs / f"d-seed{seed}", stage="pretrain", backbone=f"d-seed{seed}", recipe="d", seed=seed,
              metrics={"top1": top1}, cost={"wall_time_s": 3600.0, "device": "cpu", "device_count": 2},
              finished_at="2026-01-01T00:00:00+00:00", tricks=["cosine"])
        write(runs / f"d-seed{seed}" / "det", stage="detection", backbone=f"d-seed{seed}", recipe="d", seed=0,
              metrics={"map": map_}, cost={"wall_time_s": 1800.0, "device": "cpu", "device_count": 1},
              finished_at="2026-01-01T00:00:00+00:00", config_file="det.py")
    assert main(["--runs", str(runs)]) == 0
    assert len(list(csv.DictReader(open(runs / "leaderboard.csv")))) == 3
    (row,) = csv.DictReader(open(runs / "recipes.csv"))
    half = 4.302653 * 1.0 / 3 ** 0.5  # t(0.975, 2) * s / sqrt(n), s = 1 for both metrics
    assert row["recipe"] == "d" and row["n_seeds"] == "3" and row["tricks"] == "cosine"
    assert float(row["top1_mean"]) == 76.0 and float(row["top1_std"]) == 1.0
    assert float(row["top1_ci_low"]) == pytest.approx(76.0 - half, abs=0.01)
    assert float(row["map_mean"]) == 41.0 and float(row["map_ci_high"]) == pytest.approx(41.0 + half, abs=0.01)
    assert float(row["pretrain_device_hours"]) == 2.0 and float(row["detection_device_hours"]) == 0.5
    assert "d       3      76.00 ± 1.00" in capsys.readouterr().out


def test_duplicate_backbone_ids_are_an_error(tmp_path, capsys):
    pretrain(tmp_path / "x", "same", 1.0)
    pretrain(tmp_path / "y", "same", 2.0)
    assert main(["--runs", str(tmp_path)]) == 2
    assert "share the backbone id" in capsys.readouterr().err


def test_one_protocol_per_column(tmp_path, capsys):
    """Results of the reference and the paper set-up do not compare: --det-config keeps one,
    and a column that mixes them is flagged."""
    pretrain(tmp_path, "b", 70.0, variant="B")
    pretrain(tmp_path, "d", 75.0)
    downstream(tmp_path, "b", "detection", {"map": 40.0}, sub="fpn")
    downstream(tmp_path, "d", "detection", {"map": 50.0}, sub="fpn", finished="2026-01-02T00:00:00+00:00")
    downstream(tmp_path, "d", "detection", {"map": 60.0}, sub="c4_paper", finished="2026-01-03T00:00:00+00:00")
    rows = {r["backbone"]: r for r in build_rows(find_results(tmp_path), tmp_path)}
    assert rows["d"]["voc_map"] == "60.00" and "mixes configs (c4_paper, fpn)" in capsys.readouterr().err
    rows = {r["backbone"]: r for r in build_rows(find_results(tmp_path), tmp_path, {"detection": "fpn"})}
    assert (rows["b"]["voc_map"], rows["d"]["voc_map"], rows["d"]["det_config"]) == ("40.00", "50.00", "fpn")
    assert "mixes" not in capsys.readouterr().err
    assert main(["--runs", str(tmp_path), "--det-config", "configs/detection/c4_paper.py"]) == 0
    rows = {r["backbone"]: r for r in csv.DictReader(open(tmp_path / "leaderboard.csv"))}
    assert (rows["b"]["voc_map"], rows["d"]["voc_map"]) == ("", "60.00")


BAD_RESULTS = {  # what a user found -> the result.json that shows it
    "no_metrics": dict(stage="pretrain", backbone="bad", arch={"depth": 18, "variant": "D"}),
    "arch_without_depth": dict(stage="pretrain", backbone="bad", metrics={"top1": 1.0}, arch={"variant": "D"}),
    "non_numeric_metric": dict(stage="detection", backbone="bad", metrics={"map": "40.0"}),
    "nan_metric": dict(stage="segmentation", backbone="bad", metrics={"miou": float("nan")}),
    "infinite_metric": dict(stage="pretrain", backbone="bad", metrics={"top1": float("inf")}),
}


def refused(proc, named):
    """Exit 2 and one ``error:`` line naming the file, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert str(named) in proc.stderr
    return proc.stderr


@pytest.mark.parametrize("case", [*BAD_RESULTS, "not_json"])
def test_a_malformed_result_stops_the_leaderboard(tmp_path, case):
    runs, out = tmp_path / "runs", tmp_path / "board.csv"
    pretrain(runs, "good", 75.0)
    (runs / "bad").mkdir()
    bad = runs / "bad" / "result.json"
    bad.write_text(json.dumps(BAD_RESULTS[case]) if case in BAD_RESULTS else '{"stage": "pretrain", "backb')
    out.write_bytes(b"backbone,top1\nold,1.00\n")
    err = refused(run_cli("evaluation/leaderboard.py", "--runs", str(runs), "--out", str(out)), bad)
    assert "re-run the stage that wrote it" in err and "delete it" in err
    assert out.read_bytes() == b"backbone,top1\nold,1.00\n"


def test_out_must_be_a_writable_file(tmp_path):
    runs = tmp_path / "runs"
    pretrain(runs, "good", 75.0)
    folder = tmp_path / "boards"
    folder.mkdir()
    (folder / "old.csv").write_bytes(b"kept")
    err = refused(run_cli("evaluation/leaderboard.py", "--runs", str(runs), "--out", str(folder)), folder)
    assert "is a folder" in err and (folder / "old.csv").read_bytes() == b"kept"
    inside_a_file = folder / "old.csv" / "board.csv"  # its parent is a file: the write itself fails
    err = refused(run_cli("evaluation/leaderboard.py", "--runs", str(runs), "--out", str(inside_a_file)), inside_a_file)
    assert "choose another --out" in err and (folder / "old.csv").read_bytes() == b"kept"


def test_a_result_of_another_tool_is_skipped_with_a_warning(tmp_path, capsys):
    pretrain(tmp_path, "good", 75.0)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "result.json").write_text('{"accuracy": 0.5}')
    assert main(["--runs", str(tmp_path)]) == 0
    assert f"warning: {tmp_path / 'other' / 'result.json'} is not a TrickBench result" in capsys.readouterr().err
