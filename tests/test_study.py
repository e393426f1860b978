"""The study runner: study files and designs, the plan (dependencies, fingerprints,
invalidation), and local runs of small studies on generated data (end to end,
killed and continued, with a failing job)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, ok, run_cli
from trickbench import results, tricks
from trickbench.pretrain_config import load_config
from trickbench.study import plan as plan_mod
from trickbench.study.spec import design_sets, load_study

STUDIES = REPO / "configs" / "studies"
PRETRAIN = "configs/pretrain/synthetic/resnet18_tiny.py"
DET = "configs/detection/faster-rcnn_fpn_voc0712_tiny.py"
SEG = "configs/segmentation/fcn-d8_ade20k_tiny.py"


def write_study(folder: Path, body: str, name: str = "study.py") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def data_lines(root: Path) -> str:
    return (f'data = dict(imagenet="{root}/imagenet", voc="{root}/VOCdevkit", '
            f'ade20k="{root}/ADEChallengeData2016")\n')


# ------------------------------------------------------------------ designs and plans


@pytest.mark.parametrize("kind, expected", [
    ("cumulative", [(), ("a",), ("a", "b"), ("a", "b", "c")]),
    ("one_at_a_time", [(), ("a",), ("b",), ("c",)]),
    ("leave_one_out", [("a", "b", "c"), ("b", "c"), ("a", "c"), ("a", "b")]),
    ("factorial", [(), ("c",), ("b",), ("b", "c"), ("a",), ("a", "c"), ("a", "b"), ("a", "b", "c")]),
])
def test_design_trick_sets(kind, expected):
    assert design_sets(kind, ["a", "b", "c"]) == expected


def test_designs_make_named_recipes_with_the_tricks_options(tmp_path):
    study = load_study(write_study(tmp_path, data_lines(tmp_path) + f'''
designs = [dict(type="cumulative", name="r18d", base="{PRETRAIN}", options={{"model.variant": "D"}},
                tricks=["cosine", "label_smoothing", "mixup"]),
           dict(type="factorial", name="r18d", base="{PRETRAIN}", options={{"model.variant": "D"}},
                tricks=["cosine", "mixup"])]
trick_options = dict(mixup={{"loss.mixup_alpha": 0.4, "schedule.epochs": 20}})
'''))
    names = [r.name for r in study.recipes]
    # the cumulative chain, then the factorial's recipes that the chain does not already have
    assert names == ["r18d", "r18d+cosine", "r18d+cosine+label-smoothing", "r18d+cosine+label-smoothing+mixup",
                     "r18d+mixup", "r18d+cosine+mixup"]
    r = study.recipe("r18d+cosine+label-smoothing+mixup")
    assert r.options == {"model.variant": "D", "schedule.decay": "cosine", "loss.label_smoothing": 0.1,
                         "loss.mixup_alpha": 0.4, "schedule.epochs": 20}
    assert study.recipe("r18d").options == {"model.variant": "D"} and study.recipe("r18d").tricks == ()
    plan = plan_mod.build(study, tmp_path / "w")
    job = plan.job("pretrain/r18d+mixup/seed0")
    assert job.argv[:2] == ("pretrain/run.py", "--config") and "loss.mixup_alpha=0.4" in job.argv


@pytest.mark.parametrize("study, jobs, recipes", [
    ("paper_table3_efficient.py", 7, 2),
    ("paper_table4_efficient_breakdown.py", 22, 7),
    ("paper_table5_tweaks.py", 13, 4),
    ("paper_table6_refinements.py", 21, 8),
    ("paper_table8_9_transfer.py", 66, 9),
    ("refinements_factorial.py", 146, 17),
])
def test_the_papers_studies_print_their_plans(study, jobs, recipes):
    proc = ok(run_cli("-m", "trickbench.study", "plan", str(STUDIES / study), "--work-dir", "/nonexistent/w"))
    assert f"{recipes} recipes x seeds [0, 1, 2]; {jobs} jobs" in proc.stdout
    assert "data.imagenet" in proc.stdout  # the plan says the data is missing here, and runs nothing
    assert not Path("/nonexistent/w").exists()


def test_teachers_before_students_and_stages_in_order():
    study = load_study(STUDIES / "paper_table8_9_transfer.py")
    plan = plan_mod.build(study, "/tmp/w")
    order = [j.id for j in plan.jobs]
    for job in plan.jobs:
        for dep in job.deps:
            assert order.index(dep) < order.index(job.id), (dep, job.id)
    student = plan.job("pretrain/r50d+cosine+ls+distill+mixup/seed2")
    assert student.deps == ("pretrain/r152d-teacher-mixup/seed0",)  # the teacher is trained once, seed 0
    teacher_dir = str(plan.job("pretrain/r152d-teacher-mixup/seed0").work_dir)
    assert f"loss.distill_teacher={teacher_dir}" in student.argv
    assert plan.job("detection/faster-rcnn_r50-c4_4xb1-20e_voc0712_paper/r50d+cosine/seed1").deps == \
        ("pretrain/r50d+cosine/seed1",)
    assert not any(j.id.startswith(("detection/", "segmentation/")) and "teacher" in j.id for j in plan.jobs)
    report = plan.jobs[-1]
    assert report.id == "report" and report.after_any and len(report.deps) == len(plan.jobs) - 1
    assert plan.dependents("pretrain/r152d-teacher/seed0") == [
        "pretrain/r50d+cosine+ls+distill/seed0", "pretrain/r50d+cosine+ls+distill/seed1",
        "pretrain/r50d+cosine+ls+distill/seed2",
        *[f"{t}/{c}/r50d+cosine+ls+distill/seed{s}" for t, c in
          (("detection", "faster-rcnn_r50-c4_4xb1-20e_voc0712_paper"),
           ("segmentation", "fcn_r50-d8_4xb4-63k_ade20k-480x480_paper")) for s in (0, 1, 2)]]


def _fake_result(job, stage_metrics):
    lineage = {"study": "s", "job": job.id, "fingerprint": job.fingerprint}
    record = results.Result(stage=job.stage, backbone=f"{job.recipe}-seed{job.seed}", recipe=job.recipe,
                            seed=job.seed, metrics=stage_metrics, cost=results.Cost(1.0, "cpu", 1),
                            finished_at="2026-11-25T00:00:00+00:00", study=lineage)
    results.write(job.work_dir, record)


def test_a_changed_recipe_invalidates_its_jobs_and_what_reads_them(tmp_path):
    body = data_lines(tmp_path) + f'''
seeds = [0, 1]
recipes = [dict(name="a", config="{PRETRAIN}"), dict(name="b", config="{PRETRAIN}", options={{"schedule.epochs": 3}})]
downstream = dict(detection=["{DET}"])
'''
    (tmp_path / "VOCdevkit").mkdir()
    study_file = write_study(tmp_path, body)
    plan = plan_mod.build(load_study(study_file), tmp_path / "w")
    metrics = {"pretrain": {"top1": 50.0}, "detection": {"map": 20.0}}
    for job in plan.jobs[:-1]:
        _fake_result(job, metrics[job.stage])
    assert all(plan_mod.is_done(j) for j in plan.jobs[:-1])
    # b trains for 4 epochs now: its pretrainings and their fine-tunings are stale, a's are not
    write_study(tmp_path, body.replace('"schedule.epochs": 3', '"schedule.epochs": 4'))
    changed = plan_mod.build(load_study(study_file), tmp_path / "w")
    stale = {j.id for j in changed.jobs[:-1] if plan_mod.is_stale(j)}
    assert stale == {"pretrain/b/seed0", "pretrain/b/seed1", f"detection/{Path(DET).stem}/b/seed0",
                     f"detection/{Path(DET).stem}/b/seed1"}
    assert all(plan_mod.is_done(j) for j in changed.jobs if j.recipe == "a")
    proc = ok(run_cli("-m", "trickbench.study", "plan", str(study_file), "--work-dir", str(tmp_path / "w")))
    assert "4 job(s) will run again because their config changed" in proc.stdout
    assert "pretrain/b/seed1 [stale: its config changed since its result" in proc.stdout
    # a downstream option changes every fine-tuning and no pretraining
    write_study(tmp_path, body.replace(f'detection=["{DET}"]',
                                       f'detection=["{DET}"], options=dict(detection={{"train_cfg.max_epochs": 2}})'))
    changed = plan_mod.build(load_study(study_file), tmp_path / "w")
    assert {j.stage for j in changed.jobs[:-1] if plan_mod.is_stale(j)} == {"detection"}
    # a result that some other run wrote is not this study's
    job = plan.job("pretrain/a/seed0")
    res = results.read(job.work_dir / "result.json")
    results.write(job.work_dir, results.Result(**{**res.__dict__, "study": None, "source": None}))
    assert plan_mod.is_stale(job) == "its result was not made by this study"


def factors_of(recipe) -> tuple[str, ...]:
    """What the report will read from the recipe's runs: the tricks and variant of its resolved config."""
    cfg = load_config(recipe.config, recipe.options).to_dict()
    return tricks.factors(tricks.tricks_of(cfg), tricks.variant_of(cfg))


EFFICIENT = ("linear_scaling", "warmup", "zero_gamma", "no_bias_decay")


def test_designs_over_the_variant_and_the_efficient_bundle_make_the_sets_they_name(tmp_path):
    """The variant is a factor with one level per recipe (B the reference), and a bundle a trick:
    the recipes a design makes differ, in their configs, exactly as the design says."""
    study = load_study(write_study(tmp_path, data_lines(tmp_path) + f'''
designs = [dict(type="one_at_a_time", name="r18", base="{PRETRAIN}", tricks=["resnet_d", "cosine"]),
           dict(type="factorial", name="r18", base="{PRETRAIN}", tricks=["resnet_d", "efficient"])]
trick_options = dict(efficient={{"schedule.warmup_epochs": 1, "data.batch_size": 32}})
'''))
    assert {r.name: factors_of(r) for r in study.recipes} == {
        "r18": (), "r18+resnet-d": ("resnet_d",), "r18+cosine": ("cosine",),
        "r18+efficient": EFFICIENT, "r18+resnet-d+efficient": (*EFFICIENT, "resnet_d")}
    # the bundle sets its members, and the batch size the study gives it
    assert study.recipe("r18+efficient").options == {
        "optim.linear_scaling": True, "schedule.warmup_epochs": 1, "model.zero_gamma": True,
        "optim.no_bias_decay": True, "data.batch_size": 32}
    plan = plan_mod.build(study, tmp_path / "w")
    assert plan.warnings == ()
    job = plan.job("pretrain/r18+resnet-d/seed0")
    assert "run.name=r18+resnet-d-seed0" in job.argv and "run.recipe=r18+resnet-d" in job.argv


def test_a_trick_the_table_does_not_know_is_named_before_anything_runs(tmp_path):
    """A trick defined in the study alone changes the config, but no result can name it: the plan
    says that the report will not tell its recipes apart."""
    path = write_study(tmp_path, data_lines(tmp_path) + f'''
designs = [dict(type="one_at_a_time", name="r18", base="{PRETRAIN}", tricks=["long", "cosine"])]
trick_options = dict(long={{"schedule.epochs": 30}})
''')
    plan = plan_mod.build(load_study(path), tmp_path / "w")
    (warning,) = plan.warnings
    assert "recipes r18 and r18+long have the same tricks and variant" in warning
    assert "long are not in the trick table" in warning
    out = ok(run_cli("-m", "trickbench.study", "plan", str(path))).stdout
    assert "warning: designs[0]: recipes r18 and r18+long" in out


@pytest.mark.parametrize("body, message", [
    ('recipes = [dict(name="a", config="{p}")]\nseed = [0]', "unknown key seed (did you mean seeds?)"),
    ('designs = [dict(type="cumulative", name="a", base="{p}", tricks=["cosine", "label_smoothin"])]',
     "unknown trick 'label_smoothin' (did you mean label_smoothing?)"),
    ('designs = [dict(type="cumulativ", name="a", base="{p}", tricks=["cosine"])]',
     "is not a design (did you mean cumulative?)"),
    ('recipes = [dict(name="a", config="{p}", options={{"loss.distill_teacher": "@teachr"}}), '
     'dict(name="teacher", config="{p}")]', "reads the pretrain run of recipe 'teachr', which the study does not "
                                            "have (did you mean teacher?)"),
    ('recipes = [dict(name="a", config="{p}", options={{"loss.distill_teacher": "@b"}}), '
     'dict(name="b", config="{p}", options={{"loss.distill_teacher": "@a"}})]', "cycle: a -> b -> a"),
    ('recipes = [dict(name="a", config="{p}", options={{"schedul.epochs": 2}})]',
     "recipe a (" ),
    ('recipes = [dict(name="a", config="{p}")]\nreference = "b"', "reference 'b' is not a recipe"),
    ('recipes = [dict(name="a", config="configs/pretrain/nope.py")]', "configs/pretrain/nope.py does not exist"),
    ('recipes = [dict(name="a/b", config="{p}")]', "is not a name"),
    ('designs = [dict(type="cumulative", name="a", base="{p}", tricks=["distill"])]', "needs a teacher"),
    ('recipes = [dict(name="a", config="{p}", options={{"run.name": "x,y"}})]', "does not survive the command line"),
    ('designs = [dict(type="factorial", name="a", base="{p}", tricks=["resnet_c", "resnet_d"])]',
     "makes recipe a+resnet-c+resnet-d with two variants (resnet_c, resnet_d); a recipe has one variant"),
    ('recipes = [dict(name="a", config="{p}", seeds=[0, 0])]', "names a seed twice"),
    ('recipes = [dict(name="a", config="{p}", top1="high")]', "top1 must be a float, not 'high'"),
])
def test_bad_study_files_are_refused_naming_the_problem(tmp_path, body, message):
    path = write_study(tmp_path, data_lines(tmp_path) + body.format(p=PRETRAIN) + "\n")
    proc = run_cli("-m", "trickbench.study", "plan", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_refuses_a_missing_data_root_before_anything_runs(tmp_path):
    path = write_study(tmp_path, data_lines(tmp_path) + f'recipes = [dict(name="a", config="{PRETRAIN}")]\n')
    proc = run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "data.imagenet" in proc.stderr and "does not exist" in proc.stderr
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------ local runs


def small_study(folder: Path, data: dict[str, Path], extra: str = "") -> Path:
    """Two recipes x two seeds, detection and segmentation, each job a few seconds."""
    return write_study(folder, f'''
name = "small"
seeds = [0, 1]
data = dict(imagenet="{data['imagenet']}", voc="{data['voc']}", ade20k="{data['ade20k']}")
designs = [dict(type="cumulative", name="r18", base="{PRETRAIN}",
                options={{"schedule.epochs": 2, "schedule.milestones": [2]}}, tricks=["cosine"])]
downstream = dict(detection=["{DET}"], segmentation=["{SEG}"],
                  options=dict(detection={{"train_cfg.max_epochs": 1, "optim_wrapper.optimizer.lr": 0.005}},
                               segmentation={{"train_cfg.max_iters": 8, "train_cfg.val_interval": 8,
                                              "default_hooks.checkpoint.interval": 4}}))
reference = "r18"
{extra}''')


def study(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_cli("-m", "trickbench.study", *args, timeout=timeout)


def events(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "study" / "events.jsonl").read_text().splitlines()]


def job_metrics(work: Path) -> dict[str, dict]:
    found = results.find(work / "runs")
    assert not found.unreadable
    return {r.study["job"]: r.metrics for r in found.results}


@pytest.fixture(scope="module")
def uninterrupted(synthetic, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    path = small_study(folder, synthetic)
    proc = ok(study("run", str(path), "--work-dir", str(folder / "w"), "--jobs", "2"))
    return path, folder / "w", proc


@pytest.mark.slow
def test_a_study_runs_end_to_end_and_a_second_run_does_nothing(uninterrupted):
    path, work, proc = uninterrupted
    assert "13 jobs, 0 already done, 13 to run" in proc.stdout and "finished: 13 ran" in proc.stdout
    metrics = job_metrics(work)
    assert len(metrics) == 12 and all(m for m in metrics.values())
    for r in results.find(work / "runs").results:  # lineage: each result names its study and job
        assert r.study["study"] == "small" and r.study["fingerprint"] == json.loads(
            (r.run_dir / plan_mod.JOB_STAMP).read_text())["fingerprint"]
    report = (work / "report" / "report.md").read_text()
    assert "top-1 and mAP: Pearson r" in report and "r18+cosine vs r18" in report
    lineage = json.loads((work / "study" / "plan.json").read_text())
    assert len(lineage["jobs"]) == 13 and lineage["commit"]
    status = ok(study("status", str(path), "--work-dir", str(work))).stdout
    assert status.strip().endswith("13 done")
    again = ok(study("run", str(path), "--work-dir", str(work)))
    assert "13 jobs, 13 already done, 0 to run" in again.stdout
    assert sum(e["event"] == "started" for e in events(work)) == 13


def _wait(predicate, timeout: float = 300, what: str = "") -> None:
    t = time.time()
    while not predicate():
        if time.time() - t > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_killed_job_and_killed_launcher_continue_to_the_same_results(uninterrupted, tmp_path):
    path, reference_work, _ = uninterrupted
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--jobs", "1"]
    # one thread per job, as the reference run's two slots give each of its jobs (a job's numbers depend on
    # its thread count; the launcher divides OMP_NUM_THREADS among its slots)
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    started = lambda job: [e for e in events(work) if e["job"] == job and e["event"] == "started"] \
        if (work / "study" / "events.jsonl").exists() else []
    # SIGKILL a pretraining once its first epoch is saved
    victim = "pretrain/r18/seed0"
    _wait(lambda: (work / "runs/r18/seed0/last.pth").exists(), what="the first epoch's checkpoint")
    os.kill(started(victim)[-1]["pid"], signal.SIGKILL)
    # the launcher names it failed and skips what needs it; SIGKILL the launcher during a later job
    _wait(lambda: any(e["event"] == "failed" and e["job"] == victim for e in events(work)), what="the failure")
    later = "pretrain/r18+cosine/seed0"
    _wait(lambda: started(later), what=later)
    running_pid = started(later)[-1]["pid"]
    launcher.kill()
    launcher.wait()
    _wait(lambda: not _alive(running_pid), timeout=60, what="the job to die with its launcher")
    done_before = {e["job"] for e in events(work) if e["event"] == "done"}
    status = ok(study("status", str(path), "--work-dir", str(work))).stdout
    assert f"{victim}" in status and "failed" in status and "interrupted" in status
    # run again: continues, and does no finished job twice
    proc = ok(study("run", str(path), "--work-dir", str(work), "--jobs", "2"))
    assert f"{len(done_before)} already done" in proc.stdout
    done = [e["job"] for e in events(work) if e["event"] == "done"]
    assert all(done.count(j) == 1 for j in set(done) if j != "report")
    assert job_metrics(work) == job_metrics(reference_work)


@pytest.mark.slow
def test_a_failing_job_skips_its_dependents_and_not_the_others(synthetic, tmp_path):
    path = small_study(tmp_path, synthetic, extra='recipes = [dict(name="broken", config="{p}", '
                       'options={{"loss.distill_teacher": "/nonexistent/teacher.pth", "schedule.epochs": 1}})]\n'
                       'seeds = [0]\n'.format(p=PRETRAIN))
    proc = study("run", str(path), "--work-dir", str(tmp_path / "w"), "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED pretrain/broken/seed0 (exit 2)" in proc.stdout and "/nonexistent/teacher.pth" in proc.stdout
    assert (f"skip  2 job(s) that need pretrain/broken/seed0: detection/{Path(DET).stem}/broken/seed0, "
            f"segmentation/{Path(SEG).stem}/broken/seed0") in proc.stdout
    status = ok(study("status", str(path), "--work-dir", str(tmp_path / "w"))).stdout
    assert "skipped" in status and "needs pretrain/broken/seed0" in status
    metrics = job_metrics(tmp_path / "w")
    assert set(metrics) == {f"{s}/r18{t}/seed0" for s in ("pretrain", f"detection/{Path(DET).stem}",
                                                         f"segmentation/{Path(SEG).stem}") for t in ("", "+cosine")}
    assert (tmp_path / "w" / "report" / "report.md").exists()  # the report covers what finished


@pytest.mark.slow
def test_a_pretraining_only_study_runs_with_imagenet_alone_and_reports_both_factors(synthetic, tmp_path):
    """The paper's Tables 3-6 are ImageNet-only: such a study runs where VOC and ADE20K are not on
    disk, and its report analyses top-1: here a 2x2 of the variant and the efficient bundle,
    whose two main effects the report estimates."""
    path = write_study(tmp_path, f'''
name = "imagenet-only"
seeds = [0]
data = dict(imagenet="{synthetic['imagenet']}", voc="/nonexistent/VOCdevkit", ade20k="/nonexistent/ADE")
designs = [dict(type="factorial", name="r18", base="{PRETRAIN}", tricks=["resnet_d", "efficient"],
                options={{"schedule.epochs": 1, "schedule.milestones": [1], "data.workers": 0}})]
trick_options = dict(efficient={{"schedule.warmup_epochs": 0.5, "data.batch_size": 32}})
reference = "r18"
''')
    assert "pretraining only" in ok(study("plan", str(path), "--work-dir", str(tmp_path / "w"))).stdout
    proc = ok(study("run", str(path), "--work-dir", str(tmp_path / "w"), "--jobs", "2"))
    assert "5 jobs, 0 already done, 5 to run" in proc.stdout and "finished: 5 ran" in proc.stdout
    data = json.loads((tmp_path / "w" / "report" / "report.json").read_text())
    effects = {(t["trick"], t["metric"]): t for t in data["trick_effects"]}
    assert effects[("resnet_d", "top1")]["n_pairs"] == 2 and effects[("efficient", "top1")]["n_pairs"] == 2
    assert data["correlations"] == [] and data["inversions"] == []
    md = (tmp_path / "w" / "report" / "report.md").read_text()
    assert "trick 'resnet_d' on top-1" in md and "trick 'efficient' on top-1" in md
    assert "r18+resnet-d+efficient vs r18: top-1" in md
