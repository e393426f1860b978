"""pretrain/run.py end to end on the generated ImageNet-layout set."""
import json
import shutil

import pytest
import torch

from pretrain.checkpoint import RESUME_MAY_CHANGE, Progress, _config_changes, _sync_metrics
from pretrain.run import finish, fit, lr_schedule, setup
from pretrain.tricks.lr_schedule import lr_at
from tests.conftest import REPO, ok, run_cli
from trickbench.pretrain_config import PretrainConfig, load_config

TINY = str(REPO / "configs/pretrain/synthetic/resnet18_tiny.py")


def tiny_opts(root, *extra):
    # Two short epochs, single-process loading: fast and deterministic.
    return ["--cfg-options", f"data.root={root}", "schedule.epochs=2", "schedule.milestones=[1]",
            "data.workers=0", "run.deterministic=True", *extra]


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("runs") / "tiny-b"
    proc = ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), *tiny_opts(synthetic["imagenet"])))
    return work, proc


def test_run_writes_every_file(trained):
    work, proc = trained
    for name in ("config.json", "metrics.jsonl", "last.pth", "best.pth", "backbone.pth", "result.json"):
        assert (work / name).is_file(), name
    lines = [json.loads(ln) for ln in (work / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    assert all(0 <= ln["top1"] <= 100 and ln["top5"] >= ln["top1"] for ln in lines)
    assert any(p.name.startswith("events.out.tfevents") for p in (work / "tb").iterdir())
    res = json.loads((work / "result.json").read_text())
    assert res["stage"] == "pretrain" and res["backbone"] == "tiny-b"
    assert res["metrics"]["top1"] == lines[-1]["top1"] and res["arch"]["variant"] == "B"
    assert res["config"]["model"]["depth"] == 18 and res["tricks"] == []
    assert res["versions"]["torch"] and res["cost"]["wall_time_s"] > 0 and res["peak_lr"] == pytest.approx(0.0125)
    assert res["recipe"] == "tiny-b" and res["seed"] == 0 and res["cost"]["device"] == "cpu"
    assert res["cost"]["images_seen"] == 2 * res["steps_per_epoch"] * 32
    assert not list(work.glob(".*.tmp")), "a temporary file was left behind"


def test_backbone_pth_is_a_plain_state_dict_without_the_head(trained):
    work, _ = trained
    sd = torch.load(work / "backbone.pth", weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    assert "conv1.weight" in sd and not any(k.startswith("fc.") for k in sd)
    full = torch.load(work / "last.pth", weights_only=True)["model"]
    assert all(torch.equal(sd[k], full[k]) for k in sd)


def test_existing_run_is_not_overwritten(trained, synthetic):
    work, _ = trained
    before = (work / "last.pth").read_bytes()
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), *tiny_opts(synthetic["imagenet"]))
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (work / "last.pth").read_bytes() == before


def test_missing_dataset_names_the_path_and_layout(tmp_path):
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w"),
                   "--cfg-options", f"data.root={tmp_path / 'nowhere'}")
    assert proc.returncode == 2
    assert str(tmp_path / "nowhere" / "train") in proc.stderr and "train/<class>/" in proc.stderr


def test_corrupt_image_names_the_file(synthetic, tmp_path):
    root = tmp_path / "imagenet"
    shutil.copytree(synthetic["imagenet"], root)
    bad = sorted((root / "train").rglob("*.JPEG"))[3]
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w"), *tiny_opts(root))
    assert proc.returncode != 0
    assert str(bad) in proc.stderr and "corrupt" in proc.stderr


def test_unknown_config_key_is_refused(tmp_path, synthetic):
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w"),
                   *tiny_opts(synthetic["imagenet"], "optim.lr_typo=1"))
    assert proc.returncode == 2 and "optim.lr_typo" in proc.stderr


def test_resumed_run_ends_with_the_same_weights(synthetic, tmp_path, trained):
    work, _ = trained
    opts = tiny_opts(synthetic["imagenet"])
    part = tmp_path / "tiny-b"
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(part), "--stop-after", "1", *opts))
    assert not (part / "result.json").exists()
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(part), "--resume", *opts))
    a = torch.load(work / "last.pth", weights_only=True)
    b = torch.load(part / "last.pth", weights_only=True)
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [json.loads(x)["epoch"] for x in (part / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_nan_loss_stops_with_the_step_tricks_and_last_checkpoint(synthetic, tmp_path):
    work = tmp_path / "bomb"
    # From epoch 2 on the step schedule multiplies the lr by 1e30: the loss blows up.
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work),
                   *tiny_opts(synthetic["imagenet"], "schedule.gamma=1e30"))
    assert proc.returncode == 2
    assert "loss is" in proc.stderr and "at iteration" in proc.stderr and "tricks: none" in proc.stderr
    assert f"Last good checkpoint: {work / 'last.pth'}" in proc.stderr
    assert torch.load(work / "last.pth", weights_only=True)["epoch"] == 1  # epoch 1 kept intact
    assert not (work / "result.json").exists()


def test_resume_with_another_config_is_refused(synthetic, tmp_path):
    work = tmp_path / "w"
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--stop-after", "1",
               *tiny_opts(synthetic["imagenet"])))
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--resume",
                   *tiny_opts(synthetic["imagenet"], "optim.lr=0.5"))
    assert proc.returncode == 2 and "another config (optim.lr: 0.0125 -> 0.5)" in proc.stderr


def test_two_process_gloo_run(synthetic, tmp_path):
    """torchrun with 2 CPU processes: DDP over gloo, the global batch split in two,
    every validation image counted exactly once."""
    work = tmp_path / "ddp"
    proc = ok(run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      "pretrain/run.py", "--config", TINY, "--work-dir", str(work),
                      *tiny_opts(synthetic["imagenet"], "schedule.epochs=1", "run.deterministic=False"),
                      env={"OMP_NUM_THREADS": "1"}))
    res = json.loads((work / "result.json").read_text())
    assert res["world_size"] == 2 and res["batch_size_per_process"] == 16 and res["global_batch_size"] == 32
    n_val = len(list((synthetic["imagenet"] / "val").rglob("*.JPEG")))
    line = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["val_images"] == n_val
    n_train = len(list((synthetic["imagenet"] / "train").rglob("*.JPEG")))
    assert res["steps_per_epoch"] == n_train // 32
    assert proc.stdout.count("done:") == 1  # rank 0 alone reports and writes


def test_all_tricks_on_with_a_teacher_beats_chance(trained, synthetic, tmp_path):
    teacher, _ = trained
    work = tmp_path / "all"
    ok(run_cli("pretrain/run.py", "--config", str(REPO / "configs/pretrain/synthetic/resnet18d_tiny_tricks.py"),
               "--work-dir", str(work), "--cfg-options", f"data.root={synthetic['imagenet']}", "data.workers=0",
               "schedule.epochs=4", "loss.mixup_alpha=0.2", "loss.mixup_off_epochs=1",
               f"loss.distill_teacher={teacher}", "loss.distill_temperature=4.0", "run.precision=bf16"))
    res = json.loads((work / "result.json").read_text())
    assert res["tricks"] == ["linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "bf16", "cosine",
                             "label_smoothing", "distill", "mixup"]
    assert res["param_groups"]["no_decay"] > 0
    assert res["metrics"]["top1"] > 20  # 10 classes: chance is 10


def test_teacher_of_the_wrong_shape_is_refused(trained, synthetic, tmp_path):
    teacher, _ = trained
    # A teacher for 7 classes cannot teach a student of 10.
    ckpt = torch.load(teacher / "last.pth", weights_only=True)
    ckpt["config"]["model"]["num_classes"] = 7
    ckpt["model"]["fc.weight"], ckpt["model"]["fc.bias"] = ckpt["model"]["fc.weight"][:7], ckpt["model"]["fc.bias"][:7]
    seven = tmp_path / "seven.pth"
    torch.save(ckpt, seven)
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w"),
                   *tiny_opts(synthetic["imagenet"], f"loss.distill_teacher={seven}"))
    assert proc.returncode == 2 and str(seven) in proc.stderr and "7 classes" in proc.stderr
    plain = tmp_path / "plain.pth"
    torch.save(torch.load(teacher / "backbone.pth", weights_only=True), plain)
    proc = run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w2"),
                   *tiny_opts(synthetic["imagenet"], f"loss.distill_teacher={plain}"))
    assert proc.returncode == 2 and str(plain) in proc.stderr and "not a TrickBench pretrain checkpoint" in proc.stderr


# -- the parts of run.py, in process --------------------------------------------------------------

def test_setup_fit_finish_in_process(synthetic, tmp_path):
    """run.py's three steps called as functions (detectron2's plain_train_net shape): fit stops
    where asked and goes on from there with the same parts; finish writes the result."""
    cfg = load_config(TINY, {"data.root": str(synthetic["imagenet"]), "schedule.epochs": 2,
                             "schedule.milestones": [1], "data.workers": 0})
    work = tmp_path / "parts"
    parts = setup(cfg, work, device="cpu")
    assert parts.progress == Progress() and parts.model is parts.ddp_model and parts.run_info["name"] == "parts"
    assert parts.schedule(0) == pytest.approx(parts.peak_lr) == pytest.approx(0.0125)
    first = fit(parts, stop_after=1)
    assert first is parts.progress and (first.epoch, first.step) == (1, parts.run_info["steps_per_epoch"])
    assert [json.loads(ln)["epoch"] for ln in (work / "metrics.jsonl").read_text().splitlines()] == [1]
    assert fit(parts).epoch == 2
    finish(work, parts.name, parts.recipe, parts.model, cfg, parts.progress, parts.run_info, parts.wall_time(), "cpu")
    res = json.loads((work / "result.json").read_text())
    assert res["metrics"]["top1"] == parts.progress.metrics["top1"] and res["backbone"] == "parts"


def test_lr_schedule_is_lr_at_with_the_runs_settings():
    cfg = PretrainConfig()
    cfg.schedule.epochs, cfg.schedule.warmup_epochs, cfg.schedule.decay = 4, 1.0, "cosine"
    schedule = lr_schedule(cfg, peak_lr=0.4, steps_per_epoch=10)
    want = [lr_at(step, peak_lr=0.4, steps_per_epoch=10, epochs=4, warmup_epochs=1.0, decay="cosine",
                  milestones=cfg.schedule.milestones, gamma=cfg.schedule.gamma) for step in range(40)]
    assert [schedule(step) for step in range(40)] == want
    assert want[0] == pytest.approx(0.04) and want[9] == pytest.approx(0.4) and want[39] < want[10]


def test_config_changes_name_every_key_but_those_a_resume_may_change():
    saved = PretrainConfig().to_dict()
    same = PretrainConfig()
    same.data.root, same.data.workers, same.run.log_interval = "elsewhere", 0, 1
    same.run.name, same.run.recipe = "r18-seed0", "r18"  # a study names its runs; one started before resumes
    same.run.compile = True                              # compiled or not, the same computation
    assert _config_changes(saved, same.to_dict()) == []
    assert RESUME_MAY_CHANGE == {"data.root", "data.workers", "run.log_interval", "run.name", "run.recipe",
                                 "run.compile"}
    other = PretrainConfig()
    other.optim.lr, other.loss.mixup_alpha, other.data.backend = 0.5, 0.2, "pil"
    assert _config_changes(saved, other.to_dict()) == ["data.backend: 'cpu' -> 'pil'", "loss.mixup_alpha: 0.0 -> 0.2",
                                                       "optim.lr: 0.1 -> 0.5"]


def test_sync_metrics_keeps_the_lines_of_the_checkpoint(tmp_path):
    """Lines after the checkpoint's epoch go, a torn last line goes, the checkpoint's own line
    is written back if a kill came before it."""
    path = tmp_path / "metrics.jsonl"
    line = {1: {"epoch": 1, "top1": 10.0}, 2: {"epoch": 2, "top1": 20.0}, 3: {"epoch": 3, "top1": 30.0}}
    path.write_text(json.dumps(line[1]) + "\n" + json.dumps(line[3]) + "\n" + '{"epoch": 4, "to')
    _sync_metrics(path, Progress(epoch=2, metrics=line[2]))
    assert [json.loads(ln) for ln in path.read_text().splitlines()] == [line[1], line[2]]
    before = path.read_bytes()
    _sync_metrics(path, Progress(epoch=2, metrics=line[2]))
    assert path.read_bytes() == before
