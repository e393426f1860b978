"""evaluation/report.py on result.json files written for the test: it names the real and
the within-noise inversions and effects the files hold, estimates the main effect of each
trick, variant and bundle, reports runs that were only pretrained, is byte-identical when run
twice, and refuses bad input without leaving a partial report."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from evaluation import report
from trickbench import results
from trickbench.results import Cost, Result
from trickbench.tricks import settings

# recipe -> (factors, top-1, mAP, mIoU) means; each run adds its own noise (sd 0.1). The factor
# resnet_d is the recipe's variant (D, else B); the others are its tricks.
STUDY = {
    "baseline": ((), 76.0, 77.5, 37.0),
    "b-warmup": (("warmup",), 76.05, 77.55, 37.05),            # within noise of the baseline everywhere
    "d": (("resnet_d",), 77.2, 78.3, 38.95),
    "d-cosine": (("resnet_d", "cosine"), 77.25, 78.35, 38.9),  # vs d: inverted on mIoU, within noise
    "d-cosine-ls": (("resnet_d", "cosine", "label_smoothing"), 78.3, 80.7, 37.6),  # vs d-cosine: a real inversion
}


def write_study(root, study=STUDY, seeds=(0, 1, 2), stages=("pretrain", "detection", "segmentation")):
    rng = np.random.default_rng(0)
    for recipe, (factors, top1, map_, miou) in study.items():
        variant = "D" if "resnet_d" in factors else "B"
        tricks = tuple(t for t in factors if t != "resnet_d")
        for seed in seeds:
            e = dict(zip(("top1", "map", "miou"), 0.1 * rng.standard_normal(3)))
            t1 = top1 + e["top1"]
            backbone = f"{recipe}-seed{seed}"
            base = dict(backbone=backbone, recipe=recipe, seed=seed, finished_at="2026-11-25T00:00:00+00:00",
                        arch=dict(depth=50, variant=variant, base_channels=64), backbone_sha256="ab" * 32)
            if "pretrain" in stages:
                results.write(root / recipe / f"seed{seed}", Result(
                    stage="pretrain", metrics={"top1": t1, "top5": 93.0 + e["top1"]}, tricks=tricks,
                    cost=Cost(3600.0, "cpu", 2, 1000 * 3600), **base))
            if "detection" in stages:
                results.write(root / recipe / f"seed{seed}" / "detection", Result(
                    stage="detection", metrics={"map": map_ + e["map"], "map_area": map_ + 2 + e["map"]}, top1=t1,
                    cost=Cost(1800.0, "cpu", 1), config_file="configs/detection/det.py", **base))
            if "segmentation" in stages:
                results.write(root / recipe / f"seed{seed}" / "segmentation", Result(
                    stage="segmentation", metrics={"miou": miou + e["miou"], "aacc": 78.0 + e["miou"],
                                                   "macc": 50.0 + e["miou"]},
                    top1=t1, cost=Cost(900.0, "cpu", 1), config_file="configs/segmentation/seg.py", **base))
    return root


@pytest.fixture
def study(tmp_path):
    return write_study(tmp_path / "runs")


def test_report_names_real_and_within_noise_findings(study, tmp_path, capsys):
    out = tmp_path / "report"
    assert report.main(["--runs", str(study), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "reference recipe: **baseline**" in md
    data = json.loads((out / "report.json").read_text())
    real = sorted((i["better"], i["worse"], i["y"]) for i in data["inversions"] if i["real"])
    assert real == [("d-cosine-ls", "d", "miou"), ("d-cosine-ls", "d-cosine", "miou")]
    assert "d-cosine-ls beats d-cosine on top-1" in md and "a real inversion" in md
    noisy = [i for i in data["inversions"] if {i["better"], i["worse"]} == {"d", "d-cosine"}]
    assert noisy and all(i["real"] is False for i in noisy) and "within noise on" in md
    effect = {(e["recipe"], e["metric"]): e for e in data["effects"]}
    assert effect[("b-warmup", "map")]["within_noise"] is True and effect[("b-warmup", "miou")]["within_noise"] is True
    assert effect[("d", "map")]["within_noise"] is False and effect[("d", "map")]["diff"] == pytest.approx(0.8, abs=0.3)
    assert "b-warmup vs baseline: mAP" in md and ", within noise (Dunnett vs the reference (scipy.stats.dunnett), 95% family-wise, 3 vs 3 backbones, seed variance pooled over the recipes, 10 df" in md
    assert "Pearson r" in md and "Holm" in md
    assert data["summary"]["d"]["map"]["n"] == 3
    rows = (out / "recipes.csv").read_text().splitlines()
    assert rows[0].startswith("recipe,arch,tricks,n_seeds,top1_mean") and len(rows) == 1 + len(STUDY)
    assert len((out / "leaderboard.csv").read_text().splitlines()) == 1 + 3 * len(STUDY)  # every seed kept
    for fig in ("top1_vs_map", "top1_vs_miou", "forest", "bump"):
        assert f"figures/{fig}.png" in md
        with Image.open(out / "figures" / f"{fig}.png") as im:
            assert im.size[0] > 300 and len(set(im.convert("L").getdata())) > 10
    assert "Pearson r" in capsys.readouterr().out


def test_same_runs_give_the_same_bytes(study, tmp_path):
    out = tmp_path / "report"
    names = ["report.md", "report.json", "recipes.csv", "leaderboard.csv", "figures/forest.svg", "figures/bump.png"]
    assert report.main(["--runs", str(study), "--out", str(out)]) == 0
    first = {n: (out / n).read_bytes() for n in names}
    assert report.main(["--runs", str(study), "--out", str(out)]) == 0
    assert {n: (out / n).read_bytes() for n in names} == first
    assert not list(out.glob(".report.*"))


def test_reference_can_be_named(study, tmp_path):
    out = tmp_path / "report"
    assert report.main(["--runs", str(study), "--out", str(out), "--reference", "d"]) == 0
    assert "## Effects against d" in (out / "report.md").read_text()


def test_one_seed_says_intervals_cannot_be_estimated(tmp_path):
    runs = write_study(tmp_path / "runs", seeds=(0,))
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Every recipe has one seed" in md and "cannot be estimated" in md


def test_missing_stages_leave_gaps(tmp_path):
    runs = write_study(tmp_path / "runs", stages=("pretrain", "detection"))
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "miou" not in data["metrics"] and {c["y"] for c in data["correlations"]} == {"map"}


def _refused(capsys, out, *words):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert all(w in err for w in words), err
    assert not out.exists() or not list(out.iterdir()), "a partial report was left"


def test_unknown_reference_is_refused(study, tmp_path, capsys):
    out = tmp_path / "report"
    assert report.main(["--runs", str(study), "--out", str(out), "--reference", "resnet-z"]) == 2
    _refused(capsys, out, "resnet-z", "baseline", "d-cosine-ls")


def test_a_downstream_config_without_results_is_refused(tmp_path, capsys):
    """Runs that were only pretrained report (below), but a config asked for and absent is an error."""
    runs = write_study(tmp_path / "runs", stages=("pretrain",))
    out = tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out), "--det-config", "det"]) == 2
    _refused(capsys, out, "no detection or segmentation result", str(runs), "--det-config")


def test_downstream_results_none_of_which_joins_are_refused(tmp_path, capsys):
    """Detection results that all fine-tuned an older backbone.pth: not 'only pretrained'."""
    runs = write_study(tmp_path / "runs", stages=("pretrain",), seeds=(0, 1))
    results.write(runs / "d" / "seed0" / "detection", Result(
        stage="detection", backbone="d-seed0", recipe="d", seed=0, metrics={"map": 40.0}, cost=Cost(1.0, "cpu", 1),
        finished_at="2026-11-25T00:00:00+00:00", backbone_sha256="cd" * 32, config_file="det.py"))
    out = tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fine-tuned an older backbone.pth" in err
    assert f"error: no detection or segmentation result under {runs}" in err
    assert not out.exists() or not list(out.iterdir())


def test_runs_that_were_only_pretrained_report_the_imagenet_part(tmp_path, capsys):
    runs = write_study(tmp_path / "runs", stages=("pretrain",))
    out = tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    why = f"No detection or segmentation results under `{runs}`: these runs were only pretrained, so "
    assert md.count(why) == 2  # the correlations and the rank inversions, one line each
    assert "## Effects against baseline" in md and "**ImageNet top-1**" in md and "**ImageNet top-5**" in md
    assert "d vs baseline: top-1 +" in md and "P(d > baseline)" in md
    assert "| recipe | tricks | seeds | ImageNet top-1 | ImageNet top-5 |" in md
    assert "trick 'resnet_d' on top-1" in md and "trick 'label_smoothing' on top-1" in md
    assert "| recipe | arch | pretraining device-hours | pretraining images/s |" in md
    assert "mAP" not in md and "mIoU" not in md and "detection device-hours" not in md
    data = json.loads((out / "report.json").read_text())
    assert data["correlations"] == [] and data["inversions"] == [] and data["metrics"] == ["top1", "top5"]
    assert set(data["left_out"]) == {"correlations", "inversions"} and all(why in v for v in data["left_out"].values())
    assert {t["trick"] for t in data["trick_effects"]} == {"warmup", "resnet_d", "cosine", "label_smoothing"}
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["forest.png", "forest.svg"]
    assert "figures/forest.png" in md and "top1_vs" not in md and "bump" not in md
    assert capsys.readouterr().out.startswith("report: ")


def test_malformed_result_is_named_and_the_old_report_kept(study, tmp_path, capsys):
    out = tmp_path / "report"
    assert report.main(["--runs", str(study), "--out", str(out)]) == 0
    before = (out / "report.md").read_bytes()
    bad = study / "d" / "seed1" / "detection" / "result.json"
    data = json.loads(bad.read_text())
    data["metrics"]["map"] = "n/a"
    bad.write_text(json.dumps(data))
    capsys.readouterr()
    assert report.main(["--runs", str(study), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a finite number" in err
    assert (out / "report.md").read_bytes() == before


def test_two_backbones_with_one_recipe_and_seed_are_refused(study, tmp_path, capsys):
    extra = study / "copy"
    results.write(extra, Result(stage="pretrain", backbone="other", recipe="d", seed=1, metrics={"top1": 70.0},
                                cost=Cost(1.0, "cpu", 1), finished_at="2026-11-25T00:00:00+00:00"))
    out = tmp_path / "report"
    assert report.main(["--runs", str(study), "--out", str(out)]) == 2
    _refused(capsys, out, "seed 1 of recipe 'd'", "other")


def test_recipes_that_share_their_tricks_still_report(tmp_path):
    """Recipes that differ in what the trick table does not name (depth, settings) share one,
    empty, set of tricks and variant: the report is written, and says which recipes the trick
    effects leave out."""
    study = {"a": ((), 75.3, 77.0, 36.0), "b": ((), 76.1, 77.5, 37.0), "d": ((), 77.2, 78.3, 38.9),
             "d-cosine": (("cosine",), 77.9, 79.2, 39.3)}
    runs = write_study(tmp_path / "runs", study=study)
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Left out of the trick effects" in md and "a, b, d" in md


def test_out_that_is_a_file_is_one_error_line(study, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("x")
    assert report.main(["--runs", str(study), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write the report into --out {out}") and "Traceback" not in err
    assert out.read_text() == "x"


# ---------------------------------------------------------------- variants and bundles

def pretrain_config(variant, tricks):
    """A resolved pretraining config (as a dict) with ``variant`` and ``tricks`` on, the rest off."""
    config = {"model": {"variant": variant, "zero_gamma": False},
              "optim": {"linear_scaling": False, "no_bias_decay": False},
              "schedule": {"warmup_epochs": 0, "decay": "step"}, "loss": {"label_smoothing": 0.0, "mixup_alpha": 0.0},
              "run": {"precision": "fp32"}, "data": {"batch_size": 256}}
    for trick in tricks:
        for key, value in settings(trick).items():
            section, name = key.split(".")
            config[section][name] = value
    return config


def write_factor_study(root, study, seeds=(0, 1, 2), detection=False, by_config=True):
    """recipe -> (variant, tricks, top-1 mean); a seed's shift is shared by every recipe."""
    rng = np.random.default_rng(1)
    for recipe, (variant, tricks, top1) in study.items():
        for seed in seeds:
            t1 = top1 + 0.2 * seed + 0.05 * rng.standard_normal()
            base = dict(backbone=f"{recipe}-seed{seed}", recipe=recipe, seed=seed,
                        finished_at="2026-11-25T00:00:00+00:00", cost=Cost(60.0, "cpu", 1))
            described = (dict(config=pretrain_config(variant, tricks)) if by_config else
                         dict(tricks=tricks, arch=dict(depth=18, variant=variant, base_channels=16)))
            results.write(root / recipe / f"seed{seed}", Result(stage="pretrain", metrics={"top1": t1}, **base,
                                                                **described))
            if detection:
                results.write(root / recipe / f"seed{seed}" / "det", Result(
                    stage="detection", metrics={"map": t1 - 30}, config_file="det.py", **base))
    return root


def trick_effects(out):
    data = json.loads((out / "report.json").read_text())
    return data, {(t["trick"], t["metric"]): t for t in data["trick_effects"]}


def test_variant_by_efficient_gives_both_main_effects(tmp_path):
    """A 2x2 of variant (B, D) and the efficient bundle: resnet_d over 2 pairs, efficient over 2
    pairs (by all four of its tricks at once), and none of its members alone."""
    eff = ("efficient",)
    study = {"b": ("B", (), 70.0), "d": ("D", (), 71.0),
             "b-efficient": ("B", eff, 70.5), "d-efficient": ("D", eff, 71.5)}
    runs = write_factor_study(tmp_path / "runs", study, detection=True)
    out = tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    data, te = trick_effects(out)
    assert {t for t, _ in te} == {"resnet_d", "efficient"} and data["trick_effects_left_out"] == []
    d, e = te[("resnet_d", "top1")], te[("efficient", "top1")]
    assert (d["n_pairs"], e["n_pairs"]) == (2, 2)
    assert set(d["pairs"].split("; ")) == {"d vs b", "d-efficient vs b-efficient"}
    assert set(e["pairs"].split("; ")) == {"b-efficient vs b", "d-efficient vs d"}
    assert d["effect"] == pytest.approx(1.0, abs=0.15) and e["effect"] == pytest.approx(0.5, abs=0.15)
    assert te[("efficient", "map")]["n_pairs"] == 2
    md = (out / "report.md").read_text()
    assert "reference recipe: **b**" in md and "trick 'efficient' on top-1: +0.5" in md
    assert "`efficient` = linear_scaling + warmup + zero_gamma + no_bias_decay" in md
    assert "| d | resnet_d | 3 |" in md  # the report's table shows the factors: tricks and variant
    assert "| d-efficient | linear_scaling+warmup+zero_gamma+no_bias_decay+resnet_d | 3 |" in md
    rows = {r["recipe"]: r["tricks"] for r in csv.DictReader(open(out / "leaderboard.csv"))}
    assert rows["d"] == "baseline" and rows["d-efficient"] == "linear_scaling+warmup+zero_gamma+no_bias_decay"


def test_one_at_a_time_over_the_variant_and_cosine(tmp_path):
    """Recipes B, D and B + cosine (tricks given as lists, the variant in arch): resnet_d and
    cosine each from one pair; D is no longer in one set with B."""
    study = {"b": ("B", (), 70.0), "d": ("D", (), 71.0), "b-cosine": ("B", ("cosine",), 70.3)}
    runs = write_factor_study(tmp_path / "runs", study, by_config=False)
    out = tmp_path / "report"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    data, te = trick_effects(out)
    assert {t for t, _ in te} == {"resnet_d", "cosine"} and data["trick_effects_left_out"] == []
    assert (te[("resnet_d", "top1")]["pairs"], te[("cosine", "top1")]["pairs"]) == ("d vs b", "b-cosine vs b")
    assert te[("resnet_d", "top1")]["effect"] == pytest.approx(1.0, abs=0.15)
    rows = {r["recipe"]: r["tricks"] for r in csv.DictReader(open(out / "recipes.csv"))}
    assert rows == {"b": "baseline", "d": "baseline", "b-cosine": "cosine"}  # on/off tricks, as before
