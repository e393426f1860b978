"""Protocols in a study and its report: ``downstream.protocols`` makes the plan's jobs (finetune's
unchanged), bad protocol settings are refused before anything runs, and the report sets each
cheap protocol beside full fine-tuning: rank correlations checked against scipy on the recipe
means, not estimable below five recipes, top-k and rank changes, cost, runs.csv and the figure."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats as sps

from evaluation import report
from tests.conftest import ok, run_cli
from tests.test_study import DET, PRETRAIN, SEG, data_lines, write_study
from trickbench import protocols, results
from trickbench.results import Cost, Result
from trickbench.study import plan as plan_mod
from trickbench.study.spec import load_study

LINEAR = "configs/segmentation/linear-d8_ade20k_tiny.py"


def protocol_study(folder, protocols_line: str, extra: str = ""):
    return write_study(folder, data_lines(folder) + f'''
seeds = [0, 1]
recipes = [dict(name="a", config="{PRETRAIN}"), dict(name="b", config="{PRETRAIN}", options={{"optim.lr": 0.2}})]
downstream = dict(detection=["{DET}"], segmentation=["{SEG}"], {protocols_line})
{extra}''')


# ------------------------------------------------------------------ the plan


def test_protocols_make_their_jobs_and_leave_finetune_as_it_was(tmp_path):
    before = plan_mod.build(load_study(protocol_study(tmp_path, "")), tmp_path / "w")
    path = protocol_study(tmp_path, f'protocols=["finetune", "frozen", "linear"], ade_linear="{LINEAR}", '
                                    f'seeds=[0, 1]')
    study = load_study(path)
    assert study.protocols == ("finetune", "frozen", "knn", "voc07-svm", "ade-linear")
    plan = plan_mod.build(study, tmp_path / "w")
    ids = {j.id: j for j in plan.jobs}
    # finetune's jobs: today's commands and folders (fine-tune seeds aside), no --protocol
    ft = ids["detection/faster-rcnn_fpn_voc0712_tiny/a/seed0/ft1"]
    assert "--protocol" not in ft.argv and ft.work_dir.name == "ft1"
    frozen = ids["detection/faster-rcnn_fpn_voc0712_tiny/a/seed0/frozen/ft1"]
    assert frozen.argv[frozen.argv.index("--protocol") + 1] == "frozen"
    assert frozen.work_dir == ft.work_dir.parent / "frozen" / "ft1"
    assert frozen.fingerprint != ft.fingerprint
    assert "segmentation/fcn-d8_ade20k_tiny/b/seed1/frozen/ft0" in ids
    lin = ids["segmentation/linear-d8_ade20k_tiny/a/seed0/ade-linear/ft0"]
    assert lin.argv[lin.argv.index("--config") + 1].endswith(LINEAR)
    assert lin.argv[lin.argv.index("--protocol") + 1] == "ade-linear"
    # the deterministic probes: once per backbone, not per fine-tune seed
    probes = [j for j in plan.jobs if j.stage == "probe"]
    assert sorted(j.id for j in probes) == sorted(f"probe/{p}/{r}/seed{s}" for p in ("knn", "voc07-svm")
                                                  for r in "ab" for s in (0, 1))
    svm = ids["probe/voc07-svm/a/seed0"]
    assert svm.argv[:2] == ("downstream/probe.py", "voc07-svm") and svm.deps == ("pretrain/a/seed0",)
    assert svm.argv[svm.argv.index("--classes-from") + 1].endswith(DET)
    assert svm.work_dir == plan.work_dir / "runs" / "a" / "seed0" / "probe" / "voc07-svm"
    report_job = next(j for j in plan.jobs if j.stage == "report")
    assert {j.id for j in plan.jobs if j.stage != "report"} == set(report_job.deps)
    # without fine-tune seeds and protocols, finetune's jobs are those of a study from before protocols
    again = plan_mod.build(load_study(protocol_study(tmp_path, 'protocols=["finetune"]')), tmp_path / "w")
    assert [(j.id, j.argv, j.fingerprint) for j in again.jobs] == [(j.id, j.argv, j.fingerprint) for j in before.jobs]


def test_a_study_without_protocols_plans_what_the_code_before_protocols_planned():
    """plan.json: the jobs of fixtures/before-issue-21/study.py as the code of 0b49bf8 planned them
    (ids, commands with the repository as <repo>, folders, dependencies, fingerprints): a study
    that names no protocol keeps every finished run, and a rerun redoes nothing."""
    from trickbench.paths import REPO

    folder = REPO / "tests" / "fixtures" / "before-issue-21"
    plan = plan_mod.build(load_study(folder / "study.py"), "/data/work")
    now = [dict(id=j.id, argv=[str(a).replace(str(REPO), "<repo>") for a in j.argv],
                work_dir=str(j.work_dir).replace(str(REPO), "<repo>"), deps=list(j.deps), fingerprint=j.fingerprint)
           for j in plan.jobs]
    assert now == json.loads((folder / "plan.json").read_text())


@pytest.mark.parametrize("line, message", [
    ('protocols=["finetune", "knm"]', "unknown protocol 'knm' (did you mean knn?)"),
    ('protocols=["ade-linear"]', "protocol ade-linear needs its config: set downstream.ade_linear"),
    (f'ade_linear="{LINEAR}"', "downstream.ade_linear is set but downstream.protocols has no 'ade-linear'"),
    ('protocols=[]', "downstream.protocols must be a non-empty list"),
    ('protocols=["knn"])\nresources = dict(probe=dict(gpus=2)', "a probe (downstream/probe.py) runs in one process"),
])
def test_bad_protocol_settings_are_refused_before_anything_runs(tmp_path, line, message):
    proc = run_cli("-m", "trickbench.study", "plan", str(protocol_study(tmp_path, line)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_probe_without_its_data_is_refused_naming_the_key(tmp_path):
    path = write_study(tmp_path, f'''
recipes = [dict(name="tv", checkpoint="{tmp_path / 'w.pth'}", top1=76.1)]
data = dict(voc="{tmp_path}/VOCdevkit")
downstream = dict(detection=["{DET}"], protocols=["finetune", "knn"])
''')
    (tmp_path / "w.pth").write_bytes(b"")
    proc = run_cli("-m", "trickbench.study", "plan", str(path))
    assert proc.returncode == 2 and "protocol knn (ImageNet k-NN) reads data.imagenet, which is not set" in proc.stderr


# ------------------------------------------------------------------ the report

# recipe -> fine-tuned mAP, mIoU; the cheap protocols' numbers are built from them below
MEANS = {"r1": (70.0, 30.0), "r2": (72.0, 31.0), "r3": (74.0, 33.0), "r4": (75.0, 32.0), "r5": (77.0, 35.0),
         "r6": (78.0, 36.5)}


def write_protocol_runs(root, recipes=MEANS, seeds=(0, 1, 2)):
    """Pretraining, fine-tunes and every cheap protocol for each recipe and seed. The k-NN top-1 ranks
    r3 and r4 the other way round from fine-tuned mAP; the SVM mAP follows it."""
    rng = np.random.default_rng(1)
    for i, (recipe, (map_, miou)) in enumerate(recipes.items()):
        for seed in seeds:
            e = 0.3 * rng.standard_normal(8)
            base = dict(backbone=f"{recipe}-seed{seed}", recipe=recipe, seed=seed,
                        finished_at="2026-12-06T00:00:00+00:00", arch=dict(depth=18, variant="B", base_channels=16),
                        backbone_sha256="cd" * 32)
            run = root / recipe / f"seed{seed}"
            results.write(run, Result(stage="pretrain", metrics={"top1": 70 + i + e[0]}, cost=Cost(3600.0, "cpu", 1),
                                      **base))
            knn = 60 + i + (1.5 if recipe == "r3" else 0) + e[1]
            made = [("detection", "finetune", {"map": map_ + e[2]}, 1800.0),
                    ("detection", "frozen", {"map": map_ / 2 + e[3]}, 1200.0),
                    ("segmentation", "finetune", {"miou": miou + e[4]}, 900.0),
                    ("segmentation", "ade-linear", {"miou": miou / 3 + e[5]}, 300.0),
                    ("probe", "knn", {"top1": knn}, 60.0),
                    ("probe", "voc07-svm", {"map": 50 + 2 * i + e[6]}, 120.0)]
            for stage, protocol, metrics, wall in made:
                results.write(run / stage / protocol, Result(
                    stage=stage, metrics=metrics, cost=Cost(wall, "cpu", 1), protocol=protocols.get(protocol).record(),
                    config_file=None if stage == "probe" else f"configs/{stage}/{protocol}.py",
                    pretrain_seed=seed, finetune_seed=None if stage == "probe" else 0, **base))
    return root


def recipe_means(root, stage, protocol, metric):
    found = results.find(root).results
    out = {}
    for r in found:
        if r.stage == stage and r.protocol_name == protocol:
            out.setdefault(r.recipe, []).append(r.metrics[metric])
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def test_the_report_measures_how_each_cheap_protocol_ranks_like_fine_tuning(tmp_path):
    runs = write_protocol_runs(tmp_path / "runs")
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = {(g["task"], g["protocol"], g["method"]): g for g in data["protocol_agreement"]}
    assert set(rows) == {(t, p, m) for t, ps in (("detection", ("frozen", "voc07-svm", "knn")),
                                                ("segmentation", ("frozen", "ade-linear", "knn")))
                         for p in ps for m in ("spearman", "kendall")} - {("segmentation", "frozen", m)
                                                                           for m in ("spearman", "kendall")}
    ft = recipe_means(runs, "detection", "finetune", "map")
    knn = recipe_means(runs, "probe", "knn", "top1")
    names = sorted(ft)
    for method, fn in (("spearman", sps.spearmanr), ("kendall", sps.kendalltau)):
        g = rows[("detection", "knn", method)]
        want = fn([ft[r] for r in names], [knn[r] for r in names]).statistic
        assert g["estimate"] == pytest.approx(want, abs=1e-12)
        assert g["low"] <= g["estimate"] <= g["high"] and g["n_recipes"] == 6 and g["against"] == "finetune"
    g = rows[("detection", "knn", "spearman")]
    ranks = {r: (a, b) for r, a, b in g["ranks"]}
    order_ft = sorted(names, key=lambda r: -ft[r])
    order_knn = sorted(names, key=lambda r: -knn[r])
    assert all(ranks[r][0] == order_ft.index(r) + 1 and ranks[r][1] == order_knn.index(r) + 1 for r in names)
    assert g["top_k_shared"] == len(set(order_ft[:3]) & set(order_knn[:3]))
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Cheap protocols against full fine-tuning" in md and "![cheap protocols" in md
    assert "k-NN top-1 against fine-tuned mAP: Spearman rho" in md
    assert (tmp_path / "r" / "figures" / "protocols.png").stat().st_size > 10_000
    cost = {(c["task"], c["protocol"]): c["device_hours_per_backbone"] for c in data["protocol_cost"]}
    assert cost[("probe", "knn")] == pytest.approx(60 / 3600) and cost[("detection", "frozen")] == pytest.approx(1 / 3)
    with open(tmp_path / "r" / "runs.csv") as f:
        table = list(csv.DictReader(f))
    assert {row["protocol"] for row in table} == {"finetune", "frozen", "ade-linear", "knn", "voc07-svm"}
    knn_rows = [row for row in table if row["protocol"] == "knn"]
    assert len(knn_rows) == 18 and all(row["knn_top1"] and not row.get("top1") and not row["map"] for row in knn_rows)
    with open(tmp_path / "r" / "leaderboard.csv") as f:
        board = {row["backbone"]: row for row in csv.DictReader(f)}
    assert float(board["r3-seed0"]["knn_top1"]) == pytest.approx(
        next(r.metrics["top1"] for r in results.find(runs).results
             if r.backbone == "r3-seed0" and r.protocol_name == "knn"), abs=0.006)
    # the verdicts rest on fine-tuning alone: no effect or noise estimate is made of a cheap protocol
    assert {e["metric"] for e in data["effects"]} <= {"top1", "top5", "map", "miou"}


def test_four_recipes_are_not_enough_to_estimate_a_rank_agreement(tmp_path):
    runs = write_protocol_runs(tmp_path / "runs", recipes=dict(list(MEANS.items())[:4]), seeds=(0, 1))
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    assert data["protocol_agreement"] and all(g["estimate"] is None and g["low"] is None and g["n_recipes"] == 4
                                              for g in data["protocol_agreement"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "not estimable from 4 recipes with both (a rank correlation needs at least 5)" in md


def test_a_result_with_an_unknown_protocol_is_refused_naming_it(tmp_path):
    runs = write_protocol_runs(tmp_path / "runs", recipes=dict(list(MEANS.items())[:1]), seeds=(0,))
    path = runs / "r1" / "seed0" / "probe" / "knn" / "result.json"
    data = json.loads(path.read_text())
    data["protocol"]["name"] = "knn-fast"
    path.write_text(json.dumps(data))
    proc = run_cli("evaluation/report.py", "--runs", str(runs), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and str(path) in proc.stderr and "protocol 'knn-fast'" in proc.stderr
    assert not (tmp_path / "r" / "report.md").exists()


def test_the_protocol_table_expands_linear_and_names_what_each_freezes():
    assert protocols.expand(["linear", "finetune"]) == ("finetune", "knn", "voc07-svm", "ade-linear")
    assert "shared_head" in protocols.PROTOCOLS["frozen"].frozen
    with pytest.raises(protocols.ProtocolError, match="unknown protocol 'lin'"):
        protocols.get("lin")
    ok(run_cli("-c", "import trickbench.protocols"))


# ------------------------------------------------------------------ through the real Slurm


@pytest.mark.slow
def test_every_protocol_runs_through_slurm_and_a_second_run_has_nothing_to_do(slurm, synthetic, tmp_path):
    """Two recipes, one seed: segmentation fine-tuned and frozen, the linear head and both probes
    (the SVMs on VOC's own classes: no detection config) as Slurm jobs chained after their
    pretraining, the report after all of them; then the same study again: nothing to do."""
    from tests.test_slurm_study import wait_for
    from trickbench.study.slurm import queue

    path = write_study(tmp_path, f'''
name = "protocols"
seeds = [0]
data = dict(imagenet="{synthetic['imagenet']}", voc="{synthetic['voc']}", ade20k="{synthetic['ade20k']}")
recipes = [dict(name="r18", config="{PRETRAIN}", options={{"schedule.epochs": 1, "schedule.milestones": [1]}}),
           dict(name="r18-cos", config="{PRETRAIN}",
                options={{"schedule.epochs": 1, "schedule.milestones": [1], "schedule.decay": "cosine"}})]
downstream = dict(segmentation=["{SEG}"], protocols=["finetune", "frozen", "linear"], ade_linear="{LINEAR}",
                  options=dict(segmentation={{"train_cfg.max_iters": 4, "train_cfg.val_interval": 4,
                                              "default_hooks.checkpoint.interval": 4,
                                              "train_dataloader.num_workers": 0, "val_dataloader.num_workers": 0}}))
resources = dict(pretrain=dict(cpus=1), segmentation=dict(cpus=1), probe=dict(cpus=1), report=dict(cpus=1))
''')
    work = tmp_path / "w"
    n_jobs = 2 + 2 * 3 + 2 * 2 + 1   # pretraining; finetune, frozen, ade-linear; knn, voc07-svm; the report
    proc = ok(run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--launcher", "slurm"))
    assert f"submitted {n_jobs} jobs to Slurm" in proc.stdout
    subs = {json.loads(x)["job"]: json.loads(x)["slurm_id"]
            for x in (work / "study" / "slurm.jsonl").read_text().splitlines()}
    q = queue(subs.values())
    for job in ("probe/knn/r18/seed0", "probe/voc07-svm/r18/seed0", "segmentation/linear-d8_ade20k_tiny/r18/seed0/ade-linear",
                "segmentation/fcn-d8_ade20k_tiny/r18/seed0/frozen"):
        assert f"afterok:{subs['pretrain/r18/seed0']}" in q[subs[job]].dependency, job
    wait_for(lambda: all(queue([i]).get(i) is None or queue([i])[i].state in ("COMPLETED", "FAILED", "CANCELLED")
                         for i in subs.values()), 1500, "every job to end")
    status = ok(run_cli("-m", "trickbench.study", "status", str(path), "--work-dir", str(work))).stdout
    assert status.strip().endswith(f"{n_jobs} done"), status
    found = results.find(work / "runs").results
    assert sorted((r.stage, r.protocol_name) for r in found if r.recipe == "r18") == [
        ("pretrain", None), ("probe", "knn"), ("probe", "voc07-svm"), ("segmentation", "ade-linear"),
        ("segmentation", "finetune"), ("segmentation", "frozen")]
    frozen = next(r for r in found if r.protocol_name == "frozen")
    assert frozen.protocol["backbone_trainable_tensors"] == 0 and frozen.protocol["frozen_stages"] == 4
    data = json.loads((work / "report" / "report.json").read_text())
    assert {(g["protocol"], g["n_recipes"], g["estimate"]) for g in data["protocol_agreement"]} == \
        {("frozen", 2, None), ("ade-linear", 2, None), ("knn", 2, None)}   # two recipes: not estimable
    assert "## Cheap protocols against full fine-tuning" in (work / "report" / "report.md").read_text()
    again = ok(run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--launcher", "slurm"))
    assert f"nothing to submit: {n_jobs} jobs done, 0 in the queue" in again.stdout, again.stdout
