"""Transfer measured fairly: fine-tune seeds beside pretraining seeds, hyperparameters chosen on
held-out training images (never the test split), and the study that does both, run locally (killed
and rerun) and through the real Slurm. The statistics are in test_noise.py."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from downstream import heldout
from downstream.runner import Backbone, DownstreamError, apply_protocol, prepare
from tests.conftest import REPO, ok, run_cli
from tests.test_study import DET, PRETRAIN, SEG, data_lines, events, job_metrics, study, write_study
from trickbench import results
from trickbench.mmconfig import read_config
from trickbench.study import plan as plan_mod
from trickbench.study.spec import StudyError, load_study

ARCH = dict(depth=18, style="pytorch", deep_stem=False, avg_down=False, base_channels=16, variant="B")


def voc_ids(path: Path) -> set[str]:
    return {ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()}


def trial_config(config: str, root: Path, work: Path, fraction: float = 0.2, **args):
    """``config`` prepared as the runner prepares it, then made a trial's (held-out split)."""
    bb = Backbone("bb", ARCH, work / "backbone.pth", "0" * 64, None, work, "trickbench")
    ns = argparse.Namespace(**({"data_root": f"{root}/", "cfg_options": {}, "work_dir": str(work), "config": config,
                                "seed": 0, "amp": False, "resume": False, "heldout": fraction, "sweep": {},
                                "select_from": None} | args))
    cfg = prepare(read_config(config), ns, "detection", bb)
    record, _ = apply_protocol(cfg, ns, "detection")
    return cfg, record


# ------------------------------------------------------------------ the held-out split


def test_the_heldout_split_is_inside_trainval_disjoint_from_training_and_the_same_for_every_backbone(
        synthetic, tmp_path):
    voc = synthetic["voc"]
    cfg, rec = trial_config(DET, voc, tmp_path / "a")
    again, rec2 = trial_config(DET, voc, tmp_path / "b")   # another backbone's trial: the same ids
    assert rec["fraction"] == 0.2 and rec["seed"] == heldout.SPLIT_SEED
    test_ids = voc_ids(voc / "VOC2007/ImageSets/Main/test.txt")
    n_held = n_all = 0
    for year in ("VOC2007", "VOC2012"):
        trainval = voc_ids(voc / year / "ImageSets/Main/trainval.txt")
        files = rec["files"][year]
        train, held = voc_ids(Path(files["train"])), voc_ids(Path(files["heldout"]))
        assert held and train and not held & train and held | train == trainval
        assert not held & test_ids if year == "VOC2007" else True
        assert Path(rec2["files"][year]["heldout"]).read_text() == Path(files["heldout"]).read_text()
        n_held, n_all = n_held + len(held), n_all + len(trainval)
    assert n_held == round(0.2 * n_all) == rec["heldout_images"]
    # the config the trial runs reads the split files only: no test list anywhere in it
    text = cfg.pretty_text
    assert "test.txt" not in text and text.count("-heldout.txt") >= 2 and text.count("-train.txt") == 2
    assert cfg.test_dataloader.dataset == cfg.val_dataloader.dataset
    # another fraction draws another split, still disjoint and inside trainval
    _, rec3 = trial_config(DET, voc, tmp_path / "c", fraction=0.4)
    assert rec3["heldout_images"] == round(0.4 * n_all)


def test_the_ade20k_heldout_split_reads_training_images_through_ann_file(synthetic, tmp_path):
    ade = synthetic["ade20k"]
    bb = Backbone("bb", ARCH, tmp_path / "backbone.pth", "0" * 64, None, tmp_path, "trickbench")
    ns = argparse.Namespace(data_root=f"{ade}/", cfg_options={}, work_dir=str(tmp_path / "w"), config=SEG, seed=0,
                            amp=False, resume=False, heldout=0.25, sweep={}, select_from=None)
    cfg = prepare(read_config(SEG), ns, "segmentation", bb)
    rec, _ = apply_protocol(cfg, ns, "segmentation")
    images = {p.stem for p in (ade / "images/training").glob("*.jpg")}
    (name, files), = rec["files"].items()
    train, held = voc_ids(Path(files["train"])), voc_ids(Path(files["heldout"]))
    assert held and not held & train and held | train == images and len(held) == round(0.25 * len(images))
    assert cfg.train_dataloader.dataset.ann_file == files["train"]
    val = cfg.val_dataloader.dataset
    assert val.ann_file == files["heldout"] and val.data_prefix.img_path == "images/training"
    assert "validation" not in cfg.pretty_text.split("test_dataloader")[1]


def test_no_run_picks_a_checkpoint_on_the_test_split_and_a_grid_point_needs_heldout(synthetic, tmp_path):
    with pytest.raises(DownstreamError, match="save_best='pascal_voc/mAP' picks a checkpoint on the evaluation split"):
        trial_config(DET, synthetic["voc"], tmp_path / "a", fraction=None,
                     cfg_options={"+default_hooks.checkpoint.save_best": "pascal_voc/mAP"})
    with pytest.raises(DownstreamError, match="--sweep sets a trial's grid point and needs --heldout"):
        trial_config(DET, synthetic["voc"], tmp_path / "b", fraction=None, sweep={"optim_wrapper.optimizer.lr": 0.1})
    with pytest.raises(heldout.SelectionError, match="must be in"):
        trial_config(DET, synthetic["voc"], tmp_path / "c", fraction=0.7)


def _trial(folder: Path, backbone: str, lr: float, score: float) -> Path:
    record = results.Result(
        stage="detection", backbone=backbone, recipe="r", seed=0, metrics={"map": score},
        cost=results.Cost(1.0, "cpu", 1), finished_at="2026-12-06T00:00:00+00:00", finetune_seed=0,
        heldout={"fraction": 0.2, "seed": 0, "files": {}, "values": {"optim_wrapper.optimizer.lr": lr}})
    results.write(folder, record)
    return folder


def test_the_choice_is_the_best_mean_heldout_score_over_the_backbones_given(tmp_path):
    # backbone 0 prefers lr 0.04, backbone 1 lr 0.02: the mean decides (0.02: 20.5 against 0.04: 19)
    dirs = [_trial(tmp_path / f"b{b}t{i}", f"bb{b}", lr, score)
            for b, scores in ((0, (10, 20, 30)), (1, (12, 21, 8))) for i, (lr, score) in
            enumerate(zip((0.01, 0.02, 0.04), scores))]
    sel = heldout.choose(dirs, "map")
    assert sel["chosen"] == {"optim_wrapper.optimizer.lr": 0.02}
    assert sel["mean_heldout_score"] == [11, 20.5, 19] and len(sel["trials"]) == 6
    assert heldout.choose(dirs[:3], "map")["chosen"] == {"optim_wrapper.optimizer.lr": 0.04}  # one backbone alone
    tie = [_trial(tmp_path / f"tie{i}", "bb", lr, 5.0) for i, lr in enumerate((0.01, 0.02))]
    assert heldout.choose(tie, "map")["chosen"] == {"optim_wrapper.optimizer.lr": 0.01}  # ties: the grid's first
    with pytest.raises(heldout.SelectionError, match="same number of backbones"):
        heldout.choose(dirs[:4], "map")
    final = tmp_path / "final"
    results.write(final, results.Result(stage="detection", backbone="bb", recipe="r", seed=0, metrics={"map": 1.0},
                                        cost=results.Cost(1.0, "cpu", 1), finished_at="2026-12-06T00:00:00+00:00"))
    with pytest.raises(heldout.SelectionError, match="is not a hyperparameter trial"):
        heldout.choose([final], "map")


# ------------------------------------------------------------------ the study file and the plan


FAIR = '''
recipes = [dict(name="a", config="{p}"), dict(name="b", config="{p}", options={{"optim.lr": 0.2}})]
seeds = [0, 1]
downstream = dict(detection=["{det}"], seeds=[0, 1], sweep=dict(detection={{"optim_wrapper.optimizer.lr": [0.01, 0.02]}}))
'''


def test_the_plan_runs_trials_then_every_fine_tune_seed_with_the_values_they_chose(tmp_path):
    path = write_study(tmp_path, data_lines(tmp_path) + FAIR.format(p=PRETRAIN, det=DET))
    plan = plan_mod.build(load_study(path), tmp_path / "w")
    stem = Path(DET).stem
    trials = [j for j in plan.jobs if "/trial" in j.id]
    finals = [j for j in plan.jobs if j.id.rsplit("/", 1)[-1].startswith("ft")]
    assert len(trials) == 2 * 2 * 2 and len(finals) == 2 * 2 * 2
    t = plan.job(f"detection/{stem}/a/seed1/trial1")
    assert t.argv[t.argv.index("--heldout") + 1] == "0.2" and "optim_wrapper.optimizer.lr=0.02" in t.argv
    assert t.argv[t.argv.index("--seed") + 1] == "0"   # every trial with the first fine-tune seed
    f = plan.job(f"detection/{stem}/a/seed0/ft1")
    assert f.work_dir == tmp_path / "w" / "runs/a/seed0/detection" / stem / "ft1"
    assert f.argv[f.argv.index("--seed") + 1] == "1" and "--heldout" not in f.argv
    chosen_from = f.argv[f.argv.index("--select-from") + 1:]
    assert len(chosen_from) == 4 and all("/runs/a/" in d for d in chosen_from)  # per recipe: both backbones
    assert set(f.deps) == {"pretrain/a/seed0"} | {f"detection/{stem}/a/seed{s}/trial{i}" for s in (0, 1) for i in (0, 1)}
    by_backbone = plan_mod.build(load_study(path, {"+downstream.choose": "backbone"}), tmp_path / "w")
    f = by_backbone.job(f"detection/{stem}/a/seed0/ft1")
    assert len(f.argv[f.argv.index("--select-from") + 1:]) == 2 and all("/a/seed0/" in d for d in f.deps[1:])
    # without the keys, the jobs and their fingerprints are today's
    plain = write_study(tmp_path, data_lines(tmp_path) + FAIR.format(p=PRETRAIN, det=DET).split("downstream")[0]
                        + f'downstream = dict(detection=["{DET}"])\n', "plain.py")
    ids = [j.id for j in plan_mod.build(load_study(plain), tmp_path / "w").jobs if j.stage == "detection"]
    assert ids == [f"detection/{stem}/{r}/seed{s}" for r in "ab" for s in (0, 1)]


@pytest.mark.parametrize("change, message", [
    ('sweep=dict(detection={{"optim_wrapper.optimizer.lrr": [0.01]}})',
     "downstream.sweep.detection: --cfg-options optim_wrapper.optimizer.lrr"),
    ('sweep=dict(detection={{"optim_wrapper.optimizer.lr": []}})', "must be a non-empty list of values"),
    ('heldout=0.7', "downstream.heldout 0.7 must be a fraction in (0, 0.5]"),
    ("heldout=0", "downstream.heldout 0.0 must be a fraction in (0, 0.5]"),
    ('seeds=[0, 1, 0]', "downstream.seeds [0, 1, 0] names a seed twice"),
    ('choose="best"', "downstream.choose 'best' must be 'recipe'"),
])
def test_bad_sweeps_and_seeds_are_refused_naming_the_study_file_and_the_key(tmp_path, change, message):
    body = (data_lines(tmp_path) + f'recipes = [dict(name="a", config="{PRETRAIN}")]\n'
            + f'downstream = dict(detection=["{DET}"], {change.format()})\n')
    path = write_study(tmp_path, body)
    with pytest.raises(StudyError) as e:
        plan_mod.build(load_study(path), tmp_path / "w")
    assert message in str(e.value) and str(path) in str(e.value)


def test_a_bad_sweep_exits_2_from_the_command_line(tmp_path):
    body = (data_lines(tmp_path) + f'recipes = [dict(name="a", config="{PRETRAIN}")]\n'
            + f'downstream = dict(detection=["{DET}"], sweep=dict(detection={{"optim_wrapper.optimizer.lrr": [1]}}))\n')
    proc = run_cli("-m", "trickbench.study", "plan", str(write_study(tmp_path, body)))
    assert proc.returncode == 2 and "optim_wrapper.optimizer.lrr" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ end to end


def fair_study(folder: Path, data: dict[str, Path], extra: str = "") -> Path:
    """2 recipes x 2 pretraining seeds x 2 fine-tune seeds, a 2-point lr sweep; segmentation, whose
    tiny runs are the cheapest (the VOC split files are tested above)."""
    return write_study(folder, f'''
name = "fair"
seeds = [0, 1]
data = dict(imagenet="{data['imagenet']}", voc="{data['voc']}", ade20k="{data['ade20k']}")
recipes = [dict(name="r18", config="{PRETRAIN}", options={{"schedule.epochs": 1, "schedule.milestones": [1]}}),
           dict(name="r18-cos", config="{PRETRAIN}",
                options={{"schedule.epochs": 1, "schedule.milestones": [1], "schedule.decay": "cosine"}})]
downstream = dict(segmentation=["{SEG}"], seeds=[0, 1], heldout=0.25,
                  sweep=dict(segmentation={{"optim_wrapper.optimizer.lr": [0.005, 0.01]}}),
                  options=dict(segmentation={{"train_cfg.max_iters": 4, "train_cfg.val_interval": 4,
                                              "default_hooks.checkpoint.interval": 4,
                                              "train_dataloader.num_workers": 0, "val_dataloader.num_workers": 0,
                                              "val_dataloader.dataset.pipeline.1.scale": (96, 48)}}))
reference = "r18"
resources = dict(pretrain=dict(cpus=1), segmentation=dict(cpus=1), report=dict(cpus=1))
{extra}''')


N_JOBS = 4 + 8 + 8 + 1   # pretraining, trials, fine-tunes, the report


@pytest.mark.slow
def test_a_fair_study_runs_killed_and_rerun_redoes_nothing_and_reports_its_noise(synthetic, tmp_path):
    path = fair_study(tmp_path, synthetic)
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--jobs", "2"]
    launcher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    done = lambda: [e["job"] for e in events(work) if e["event"] == "done"] \
        if (work / "study" / "events.jsonl").exists() else []
    end = time.monotonic() + 600
    while not any("/trial" in j for j in done()) and time.monotonic() < end:
        assert launcher.poll() is None, launcher.stdout.read()
        time.sleep(0.5)
    os.killpg(launcher.pid, signal.SIGKILL)   # the launcher and its running jobs, as a lost session would
    launcher.wait()
    before = set(done())
    assert any("/trial" in j for j in before)
    proc = ok(study("run", str(path), "--work-dir", str(work), "--jobs", "2", timeout=900))
    already = int(proc.stdout.split(f"{N_JOBS} jobs, ")[1].split(" already done")[0])
    assert already >= len(before)  # (a job may have finished between the last event read and the kill)
    finished = [e["job"] for e in events(work) if e["event"] == "done"]
    assert all(finished.count(j) == 1 for j in set(finished) if j != "report"), finished
    assert all(plan_mod.is_done(j) for j in plan_mod.build(load_study(path), work).jobs)

    stem = Path(SEG).stem
    fts = [r for r in results.find(work / "runs").results if r.stage == "segmentation" and not r.is_trial]
    assert sorted((r.recipe, r.pretrain_seed, r.finetune_seed) for r in fts) == \
        [(rc, p, f) for rc in ("r18", "r18-cos") for p in (0, 1) for f in (0, 1)]
    trials = [r for r in results.find(work / "runs").results if r.is_trial]
    split = lambda t: {name: {part: Path(f).read_text() for part, f in files.items()}
                       for name, files in t.heldout["files"].items()}
    assert len(trials) == 8 and all(split(t) == split(trials[0]) for t in trials)  # one split for every backbone
    for r in fts:  # every fine-tune of a recipe got the values its recipe's four trials chose
        sel = r.selection
        assert sel and len(sel["trials"]) == 4 and {t["backbone"] for t in sel["trials"]} == \
            {f"{r.recipe}-seed0", f"{r.recipe}-seed1"}
        assert r.config["optim_wrapper"]["optimizer"]["lr"] == sel["chosen"]["optim_wrapper.optimizer.lr"]
    # the trials' logs and configs name the split files, never the validation (test) images
    for t in trials:
        log = (work / "logs" / f"segmentation__{stem}__{t.recipe}__seed{t.pretrain_seed}__{t.run_dir.name}.log")
        assert "images/validation" not in log.read_text() and "images/validation" not in json.dumps(t.config)
        assert "-heldout.txt" in json.dumps(t.config["val_dataloader"])

    out = work / "report"
    data = json.loads((out / "report.json").read_text())
    (vc,) = [v for v in data["variance_components"] if v["metric"] == "miou"]
    assert (vc["recipes"], vc["pretrain_seeds"], vc["finetune_seeds"], vc["df_f"], vc["df_p"]) == (2, 2, 2, 4, 2)
    (c,) = [c for c in data["comparisons"] if c["metric"] == "miou"]
    assert c["method"] == "dunnett" and c["df"] == 2 and c["recipe"] == "r18-cos"
    assert [p["metric"] for p in data["seed_plan"]] == ["miou"] and data["seed_plan"][0]["effect"] == 1.0
    md = (out / "report.md").read_text()
    for words in ("## Where the noise comes from", "## Chosen hyperparameters", "## Seeds for the next study",
                  "chosen on held-out training images", "ADE20K mIoU: mmseg's IoUMetric"):
        assert words in md
    rows = (out / "runs.csv").read_text().splitlines()
    assert rows[0].startswith("recipe,pretrain_seed,task,config,protocol,finetune_seed,optim_wrapper.optimizer.lr,miou")
    assert len(rows) == 1 + 8


@pytest.mark.slow
def test_a_fair_study_submits_to_slurm_chained_trials_before_fine_tunes(slurm, synthetic, tmp_path):
    from tests.test_slurm_study import wait_for
    from trickbench.study.slurm import queue

    path = fair_study(tmp_path, synthetic)
    work = tmp_path / "w"
    proc = ok(run_cli("-m", "trickbench.study", "run", str(path), "--work-dir", str(work), "--launcher", "slurm"))
    assert f"submitted {N_JOBS} jobs to Slurm" in proc.stdout
    subs = {json.loads(x)["job"]: json.loads(x)["slurm_id"]
            for x in (work / "study" / "slurm.jsonl").read_text().splitlines()}
    stem = Path(SEG).stem
    q = queue(subs.values())
    ft = q[subs[f"segmentation/{stem}/r18/seed0/ft1"]].dependency
    for s in (0, 1):
        for i in (0, 1):
            assert f"{subs[f'segmentation/{stem}/r18/seed{s}/trial{i}']}" in ft
    wait_for(lambda: all(queue([i]).get(i) is None or queue([i])[i].state in ("COMPLETED", "FAILED", "CANCELLED")
                         for i in subs.values()), 1500, "every job to end")
    status = ok(run_cli("-m", "trickbench.study", "status", str(path), "--work-dir", str(work))).stdout
    assert status.strip().endswith(f"{N_JOBS} done"), status
    assert len(job_metrics(work)) == N_JOBS - 1
    data = json.loads((work / "report" / "report.json").read_text())
    assert any(v["metric"] == "miou" and v["df_f"] == 4 for v in data["variance_components"])


# ------------------------------------------------------------------ the table


def _record(folder: Path, **fields) -> None:
    base = dict(stage="detection", backbone="r-seed0", recipe="r", seed=0, metrics={"map": 10.0},
                cost=results.Cost(3600.0, "cpu", 1), finished_at="2026-12-06T00:00:00+00:00",
                config_file="configs/detection/tiny.py")
    results.write(folder, results.Result(**(base | fields)))


def test_a_backbone_s_fine_tunes_are_averaged_its_trials_are_not_reported_and_runs_csv_lists_each(tmp_path):
    from evaluation.table import find_results, join, runs_csv, tabulate

    _record(tmp_path / "pre", stage="pretrain", metrics={"top1": 70.0}, config_file=None)
    for ft, score in ((0, 10.0), (1, 14.0), (2, 12.0)):
        _record(tmp_path / f"ft{ft}", seed=ft, pretrain_seed=0, finetune_seed=ft, metrics={"map": score},
                selection={"chosen": {"optim_wrapper.optimizer.lr": 0.02}, "grid": [], "trials": []})
    _record(tmp_path / "trial", seed=0, pretrain_seed=0, finetune_seed=0, metrics={"map": 99.0},
            heldout={"fraction": 0.2, "values": {"optim_wrapper.optimizer.lr": 0.04}})
    _record(tmp_path / "other-config", seed=5, finetune_seed=5, metrics={"map": 50.0},
            config_file="configs/detection/older.py", finished_at="2026-12-01T00:00:00+00:00")
    table = tabulate(join(find_results(tmp_path)), tmp_path)
    (run,) = table.runs
    assert run.metrics["map"] == pytest.approx(12.0) and table.rows[0]["det_finetunes"] == "3"
    rows = runs_csv(table.finetunes).splitlines()
    assert rows[0] == "recipe,pretrain_seed,task,config,protocol,finetune_seed,optim_wrapper.optimizer.lr,map," \
                      "device_hours,device"
    assert rows[1:] == [f"r,0,detection,tiny,finetune,{ft},0.02,{m},1.33333,cpu" for ft, m in
                        ((0, "10.00"), (1, "14.00"), (2, "12.00"))]   # 1 h each + a third of the 1 h trial
    assert table.cost["r"].detection_device_hours == (4.0,) and table.plan_costs()["detection_trials"] == 1
