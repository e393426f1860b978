"""The demo study and the noise study behind it (configs/studies/demo.py, fashion_noise.py):
the noise study's plan measures what the README says it measures and reuses the demo's jobs,
and a scaled-down run of the demo study on generated Fashion-MNIST files goes end to end to
its report."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from mmengine.config import Config

from tests.conftest import REPO, ok, run_cli
from tests.test_fashion import sets, small_idx  # noqa: F401  (session fixtures: small Fashion-MNIST sets)
from trickbench import results
from trickbench.study import plan as plan_mod
from trickbench.study.spec import load_study

STUDIES = REPO / "configs" / "studies"


def _finetunes(plan) -> dict[tuple[str, str], list[int]]:
    """(task, backbone job) -> the fine-tune seeds of its fine-tuning jobs."""
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for job in plan.jobs:
        task = job.id.split("/")[0]
        if task in ("detection", "segmentation") and "--protocol" not in job.argv:
            out[(task, job.deps[0])].append(int(job.argv[job.argv.index("--seed") + 1]))
    return out


def test_the_noise_study_measures_fine_tune_noise_with_15_df_and_reuses_the_demos_jobs(tmp_path):
    noise = plan_mod.build(load_study(STUDIES / "fashion_noise.py"), tmp_path / "w")
    demo = plan_mod.build(load_study(STUDIES / "demo.py"), tmp_path / "w")
    stages = Counter(j.id.split("/")[0] for j in noise.jobs)
    assert stages == {"pretrain": 6, "detection": 24, "segmentation": 24, "report": 1}
    finetunes = _finetunes(noise)
    assert len(finetunes) == 12 and all(sorted(s) == [0, 1, 2, 3] for s in finetunes.values())
    for task in ("detection", "segmentation"):  # pooled within-backbone degrees of freedom
        assert sum(len(s) - 1 for (t, _), s in finetunes.items() if t == task) == 18
    # the same work dir: every fine-tune and pretraining job of the demo is one of the noise study's
    shared = {j.id: j.fingerprint for j in demo.jobs if j.id.split("/")[0] in ("pretrain", "detection", "segmentation")
              and "--protocol" not in j.argv}
    assert len(shared) == 4 + 4 + 4
    mine = {j.id: j.fingerprint for j in noise.jobs}
    assert {k: mine.get(k) for k in shared} == shared


def test_the_demo_compares_two_recipes_fine_tuned_once_per_task_with_two_cheap_probes(tmp_path):
    demo = load_study(STUDIES / "demo.py")
    assert [r.name for r in demo.recipes] == ["r18-baseline", "r18d-efficient"] and demo.reference == "r18-baseline"
    plan = plan_mod.build(demo, tmp_path / "w")
    finetunes = _finetunes(plan)  # per task: one fine-tune per backbone, fine-tune seed 0 (the noise study's ft0)
    assert sorted((task, tuple(s)) for (task, _), s in finetunes.items()) == [("detection", (0,))] * 4 + [
        ("segmentation", (0,))] * 4
    assert all(j.work_dir.name == "ft0" for j in plan.jobs if j.stage in ("detection", "segmentation"))
    protocols = Counter(j.argv[j.argv.index("--protocol") + 1] if "--protocol" in j.argv else j.id.split("/")[0]
                        for j in plan.jobs if j.id.split("/")[0] in ("probe", "segmentation"))
    assert protocols == {"probe": 8, "segmentation": 4}


@pytest.mark.slow
def test_the_demo_study_scaled_down_runs_to_its_report(sets, tmp_path):  # noqa: F811
    """The demo's own study file (its recipes, seeds, protocols and configs) on small generated
    Fashion-MNIST sets, every schedule cut to a few iterations."""
    demo = Config.fromfile(str(STUDIES / "demo.py"))
    short = {"schedule.epochs": 1, "schedule.milestones": [1], "schedule.warmup_epochs": 0, "data.batch_size": 16,
             "data.image_size": 28, "data.val_resize": 28}
    recipes = [dict(r, options={**r.get("options", {}), **short}) for r in demo.recipes]
    study = tmp_path / "demo_small.py"
    study.write_text(
        f'_base_ = "{STUDIES / "demo.py"}"\n'
        f'data = dict(imagenet="{sets["imagenet"]}", voc="{sets["voc"]}", ade20k="{sets["ade20k"]}")\n'
        f"recipes = {recipes!r}\n"
        "downstream = dict(options=dict(\n"
        "    detection={'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, 'train_dataloader.batch_size': 4,\n"
        "               'optim_wrapper.optimizer.lr': 0.005},\n"
        "    segmentation={'train_cfg.max_iters': 3, 'train_cfg.val_interval': 3}))\n")
    work = tmp_path / "w"
    proc = ok(run_cli("-m", "trickbench.study", "run", str(study), "--work-dir", str(work), "--jobs", "2",
                      env={"OMP_NUM_THREADS": "1"}))
    assert "finished: 21 ran, 0 were done, 0 failed" in proc.stdout
    found = results.find(work / "runs")
    assert not found.unreadable
    stages = Counter((r.stage, r.protocol_name) for r in found.results)
    assert stages == {("pretrain", None): 4, ("detection", "finetune"): 4, ("segmentation", "finetune"): 4,
                      ("probe", "knn"): 4, ("probe", "voc07-svm"): 4}
    report = (work / "report" / "report.md").read_text()
    # the named comparison, the test set's noise, why the seed noise is not split, the cheap protocols
    assert "r18d-efficient vs r18-baseline: mIoU" in report
    noise = report[report.index("## Where the noise comes from"):]
    assert "mAP: every backbone was fine-tuned once" in noise and "mIoU: every backbone was fine-tuned once" in noise
    assert "test-set sd of one run" in noise
    assert "k-NN" in report and "SVM" in report
    assert "## The question" in report
    assert json.loads((work / "report" / "report.json").read_text())


def test_fine_tune_seeds_per_task_and_bad_ones_refused(tmp_path):
    base = (f'_base_ = "{STUDIES / "_fashion_base.py"}"\n'
            'recipes = [dict(name="r18-baseline", config="configs/pretrain/fashion/resnet18_baseline.py"),\n'
            '           dict(name="r18d-efficient", config="configs/pretrain/fashion/resnet18d_efficient.py")]\n'
            'seeds = [0, 1]\n')
    study = tmp_path / "s.py"
    study.write_text(base + "downstream = dict(seeds=dict(detection=[3, 4]))\n")
    s = load_study(study)
    assert s.seeds_of("detection") == (3, 4) and s.seeds_of("segmentation") is None
    plan = plan_mod.build(s, tmp_path / "w")
    seg = [j for j in plan.jobs if j.stage == "segmentation"]
    assert len(seg) == 4 and all("/ft" not in j.id for j in seg)  # one fine-tune per backbone, as without seeds
    assert sorted({j.argv[j.argv.index("--seed") + 1] for j in plan.jobs if j.stage == "detection"}) == ["3", "4"]
    study.write_text(base + "downstream = dict(seeds=dict(detektion=[0]))\n")
    proc = run_cli("-m", "trickbench.study", "plan", str(study))
    assert proc.returncode == 2 and "downstream.seeds.detektion" in proc.stderr and "detection" in proc.stderr
    study.write_text(base + "downstream = dict(seeds=dict(detection=[0, 0]))\n")
    proc = run_cli("-m", "trickbench.study", "plan", str(study))
    assert proc.returncode == 2 and "downstream.seeds.detection" in proc.stderr
