"""result.json files written before the trick table (issue 19) still read, and read as new ones
do: the fixtures in tests/fixtures/before-issue-19 were written by the suite's own writer at
commit 6ee777f, with that commit's report beside them (make_fixtures.py there says how).

Their tricks are derived from their recorded configs, so they equal what today's code gives
for the same configs; the report gives the same numbers as that commit's, and now also
estimates the variant and the efficient bundle, which it could not tell apart then."""
import json
import math

import pytest

from evaluation import report
from tests.conftest import REPO
from trickbench import results, tricks
from trickbench.pretrain_config import load_config

FIXTURES = REPO / "tests" / "fixtures" / "before-issue-19"
RECIPES = json.loads((FIXTURES / "recipes.json").read_text())
EFFICIENT = {"linear_scaling", "warmup", "zero_gamma", "no_bias_decay"}


def pretrain_results():
    found = results.find(FIXTURES / "runs")
    assert not found.unreadable and not found.foreign
    return [r for r in found.results if r.stage == "pretrain"]


def test_old_results_have_the_tricks_new_runs_of_their_configs_have():
    old = pretrain_results()
    assert len(old) == 2 * len(RECIPES)
    for res in old:
        config, options = RECIPES[res.recipe]
        new = load_config(REPO / config, {**options, "run.seed": res.seed})
        assert res.tricks == tuple(new.tricks())
        assert res.variant == new.model.variant
        assert res.factors == tricks.factors(new.tricks(), new.model.variant)
    by_recipe = {r.recipe: set(r.factors) for r in old}
    assert by_recipe["r18-baseline"] == set() and by_recipe["r18d-baseline"] == {"resnet_d"}
    assert by_recipe["r18b-efficient"] == EFFICIENT and by_recipe["r18d-efficient"] == EFFICIENT | {"resnet_d"}
    # what the old writer put in the files: the same on/off tricks, and no variant
    raw = json.loads((FIXTURES / "runs/r18d-efficient/seed0/result.json").read_text())
    assert raw["tricks"] == ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay"]


def numbers(obj):
    """Every number of a report.json section, by path, without the sentences."""
    if isinstance(obj, dict):
        return {k: numbers(v) for k, v in obj.items() if k != "words"}
    if isinstance(obj, list):
        return [numbers(v) for v in obj]
    return obj


def assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert report.main(["--runs", str(FIXTURES / "runs"), "--out", str(out), "--reference", "r18-baseline"]) == 0
    return json.loads((FIXTURES / "report.json").read_text()), json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("section", ["summary", "correlations", "improvement"])
def test_the_report_gives_the_same_numbers_as_before(reports, section):
    before, now = reports
    assert_same(numbers(before[section]), numbers(now[section]), section)


def test_effects_and_inversions_keep_their_estimates_and_now_rest_on_the_pooled_seed_variance(reports):
    """Issue 20: the intervals against the reference are Dunnett's and those of the rank inversions
    Tukey's (the seed variance pooled over the recipes), no longer a paired t on one degree of
    freedom; the estimates and the pairs are the same."""
    before, now = reports
    key = lambda e: (e["recipe"], e["metric"])
    old, new = {key(e): e for e in before["effects"]}, {key(e): e for e in now["effects"]}
    assert set(old) == set(new)
    pooled = [k for k in old if new[k]["method"] == "dunnett"]
    assert {m for _, m in pooled} >= {"top1", "map", "miou"}
    for k, e in old.items():
        assert math.isclose(e["diff"], new[k]["diff"], abs_tol=1e-12)
        if k in pooled:
            assert new[k]["df"] == len(now["runs"]) - len({r["recipe"] for r in now["runs"]})  # backbones - recipes
        else:  # no spread at all (every seed equal): no interval, pooled or not, and the words say why
            assert new[k]["ci_low"] is None
    pair = lambda i: (i["better"], i["worse"], i["x"], i["y"])
    old_inv, new_inv = {pair(i): i for i in before["inversions"]}, {pair(i): i for i in now["inversions"]}
    assert set(old_inv) == set(new_inv)
    for k, i in old_inv.items():
        assert math.isclose(i["dx"], new_inv[k]["dx"], abs_tol=1e-12) and new_inv[k]["method"] == "tukey"


def test_the_report_now_estimates_the_variant_and_the_efficient_bundle(reports):
    before, now = reports
    assert {t["trick"] for t in before["trick_effects"]} == {"mixup"}  # all the old report could estimate
    effects = {(t["trick"], t["metric"]): t for t in now["trick_effects"]}
    for old in before["trick_effects"]:  # mixup's effect is unchanged
        assert_same(numbers(old), numbers(effects[(old["trick"], old["metric"])]), old["trick"])
    for factor in ("resnet_d", "efficient"):
        assert effects[(factor, "miou")]["n_pairs"] == 2 and effects[(factor, "top1")]["n_pairs"] == 2
    # on the fixtures' means (REFERENCE.md §8): the mIoU gain is the efficient tricks', not the variant's
    assert effects[("efficient", "miou")]["effect"] > 8 and abs(effects[("resnet_d", "miou")]["effect"]) < 1.5
    assert effects[("efficient", "miou")]["within_noise"] is False
    assert now["trick_effects_left_out"] == []
