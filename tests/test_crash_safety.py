"""Kills, concurrent runs, full disks and bad input: a killed run never reports stale
numbers, a resumed run ends with the files of an uninterrupted one, and every bad input
ends with exit code 2 and one line that names the file or key."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from downstream.safe_load import load_weights_only
from pretrain.models import resnet
from tests.conftest import REPO, ok, run_cli
from trickbench.worklock import lock_work_dir

TINY = str(REPO / "configs/pretrain/synthetic/resnet18_tiny.py")
DET = str(REPO / "configs/detection/faster-rcnn_fpn_voc0712_tiny.py")
SEG = str(REPO / "configs/segmentation/fcn-d8_ade20k_tiny.py")
STABLE = ("epoch", "step", "lr", "train_loss", "val_loss", "top1", "top5")  # not the timings


def tiny(root, *extra, workers=0):
    return ["--cfg-options", f"data.root={root}", "schedule.epochs=2", "schedule.milestones=[1]",
            f"data.workers={workers}", "run.deterministic=True", *extra]


def error_line(proc) -> str:
    """The one line a bad input ends with: exit 2, ``error: ...``, no traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-4000:]
    return lines[0]


def stable(lines):
    return [{k: ln[k] for k in STABLE} for ln in lines]


def jsonl(path):
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


# -- pretraining: kills and resumes ------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrain_runs(synthetic, tmp_path_factory):
    """An uninterrupted 2-epoch run (workers 0), and the first epoch of the same run with
    2 loader workers."""
    base = tmp_path_factory.mktemp("pre")
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(base / "full"), *tiny(synthetic["imagenet"])))
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(base / "half"), "--stop-after", "1",
               *tiny(synthetic["imagenet"], workers=2)))
    shutil.copytree(base / "half", base / "resumed")
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(base / "resumed"), "--resume",
               *tiny(synthetic["imagenet"], workers=2)))
    return base / "full", base / "half"


def test_loader_workers_do_not_change_the_result(pretrain_runs):
    """Each sample's augmentation derives from (seed, epoch, index): 2 workers give the
    weights of 0 workers, bit for bit."""
    full, half = pretrain_runs
    one = load_weights_only(half / "last.pth")
    assert one["epoch"] == 1
    first = jsonl(full / "metrics.jsonl")[0]
    assert stable([one["metrics"]]) == stable([first])
    # the uninterrupted run's epoch 1, resumed with 2 workers, ends on the 0-worker run's weights
    assert all(torch.equal(v, load_weights_only(full / "last.pth")["model"][k]) for k, v in
               load_weights_only(half.parent / "resumed" / "last.pth")["model"].items())


def test_kill_between_checkpoint_and_metrics_line_on_the_last_epoch(pretrain_runs, synthetic, tmp_path):
    """The state a kill leaves after the last epoch's ``last.pth`` and before its metrics
    line, ``best.pth`` and ``result.json`` (plus a torn line and an interrupted write's temp
    file): ``--resume``, with another worker count, ends with the uninterrupted run's files."""
    full, half = pretrain_runs
    work = tmp_path / "killed"
    shutil.copytree(half, work)  # epoch 1 done: last.pth, best.pth, one metrics line
    shutil.copy(full / "last.pth", work / "last.pth")  # epoch 2's commit reached the disk, nothing after it
    with open(work / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "step": 1')  # torn
    (work / ".last.pth.k1ll3d00.tmp").write_bytes(b"half a checkpoint")
    proc = ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--resume",
                      *tiny(synthetic["imagenet"], workers=2)))
    assert "removed" in proc.stdout and not list(work.glob(".*.tmp"))
    assert stable(jsonl(work / "metrics.jsonl")) == stable(jsonl(full / "metrics.jsonl"))
    want, got = json.loads((full / "result.json").read_text()), json.loads((work / "result.json").read_text())
    assert got["metrics"] == want["metrics"]
    assert got["metrics"]["top1"] == jsonl(full / "metrics.jsonl")[-1]["top1"]
    best_full, best_got = load_weights_only(full / "best.pth"), load_weights_only(work / "best.pth")
    assert best_got["epoch"] == best_full["epoch"]
    assert all(torch.equal(best_full["model"][k], best_got["model"][k]) for k in best_full["model"])
    a, b = torch.load(full / "backbone.pth", weights_only=True), torch.load(work / "backbone.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_half_line_in_the_middle_of_metrics_is_named(pretrain_runs, synthetic, tmp_path):
    full, _ = pretrain_runs
    work = tmp_path / "damaged"
    shutil.copytree(full, work)
    lines = (work / "metrics.jsonl").read_text().splitlines()
    (work / "metrics.jsonl").write_text(lines[0][:20] + "\n" + lines[1] + "\n")
    before = (work / "result.json").read_bytes()
    line = error_line(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--resume",
                              *tiny(synthetic["imagenet"])))
    assert f"{work / 'metrics.jsonl'}, line 1" in line
    assert (work / "result.json").read_bytes() == before


def test_second_run_in_the_same_work_dir_stops_at_once(synthetic, tmp_path):
    work = tmp_path / "busy"
    fd = lock_work_dir(work)
    try:
        line = error_line(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work),
                                  *tiny(synthetic["imagenet"])))
    finally:
        os.close(fd)
    assert f"{work} is in use by another run (pid {os.getpid()}" in line
    assert sorted(p.name for p in work.iterdir()) == [".lock"]


def _limit_file_size(limit: int):
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_full_disk_names_the_file(synthetic, tmp_path):
    """Writes beyond a file-size limit fail as on a full disk: the checkpoint named, exit 2,
    no temp file left."""
    work = tmp_path / "full-disk"
    proc = subprocess.run([sys.executable, "pretrain/run.py", "--config", TINY, "--work-dir", str(work),
                           *tiny(synthetic["imagenet"])], cwd=REPO, capture_output=True, text=True, timeout=600,
                          preexec_fn=_limit_file_size(200_000))
    line = error_line(proc)
    assert f"cannot write {work / 'last.pth'}" in line
    assert not list(work.glob(".*.tmp")) and not (work / "last.pth").exists()


def test_corrupt_image_read_by_a_worker_is_one_line(synthetic, tmp_path):
    root = tmp_path / "imagenet"
    shutil.copytree(synthetic["imagenet"], root)
    bad = sorted((root / "train").rglob("*.JPEG"))[3]
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    line = error_line(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(tmp_path / "w"),
                              *tiny(root, workers=2)))
    assert str(bad) in line and "corrupt" in line


# -- pretraining: settings and config files -----------------------------------------------------

@pytest.mark.parametrize("option, words", [
    ("run.log_interval=0", "run.log_interval must be >= 1"),
    ("schedule.epochs=2.5", "schedule.epochs must be an int, not 2.5"),
    ("data.image_size=0", "data.image_size must be >= 8"),
    ("optim.lr=-0.1", "optim.lr must be > 0"),
    ("data.workers=-1", "data.workers must be >= 0"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("optim.weight_decay=abc", "optim.weight_decay must be a float"),
])
def test_bad_setting_is_refused_before_anything_is_written(synthetic, tmp_path, option, words):
    work = tmp_path / "w"
    line = error_line(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work),
                              *tiny(synthetic["imagenet"], option)))
    assert words in line and not work.exists()


def test_config_with_a_syntax_error_names_file_and_line(tmp_path):
    config = tmp_path / "broken.py"
    config.write_text('_base_ = "%s"\nmodel = dict(depth=18,\nschedule = dict(epochs=3)\n' % TINY)
    line = error_line(run_cli("pretrain/run.py", "--config", str(config), "--work-dir", str(tmp_path / "w")))
    assert f"{config}, line 2" in line or f"{config}, line 3" in line


# -- downstream ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bb") / "r18.pth"
    torch.save(resnet(18, "B", num_classes=10, base_channels=16).backbone_state_dict(), path)
    return path


DET_RUN = ["train_cfg.max_epochs=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=1",
           "param_scheduler.0.end=20", "param_scheduler.1.end=2", "param_scheduler.1.milestones=[1]"]
# Segmentation loads in the main process: mmengine's replay of the data on resume then draws
# from the main process's generators, the harder case (detection keeps its 2 workers).
SEG_RUN = ["train_cfg.max_iters=40", "train_cfg.val_interval=40", "default_hooks.checkpoint.interval=20",
           "param_scheduler.0.end=40", "train_dataloader.num_workers=0"]


def _run_killed(cmd, work, marker_text):
    """Start ``cmd``, kill it (SIGKILL) as soon as its ``last_checkpoint`` names ``marker_text``."""
    proc = subprocess.Popen([sys.executable, *cmd], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = work / "last_checkpoint"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if marker.exists() and marker_text in marker.read_text():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_killed_and_resumed_downstream_run_equals_an_uninterrupted_one(task, backbone_file, synthetic, tmp_path):
    script, config, data, opts, first, final = {
        "detection": ("downstream/detect.py", DET, f"{synthetic['voc']}/", DET_RUN, "epoch_1.pth", "epoch_2.pth"),
        "segmentation": ("downstream/segment.py", SEG, str(synthetic["ade20k"]), SEG_RUN, "iter_20.pth", "iter_40.pth"),
    }[task]

    def cmd(work, *extra):
        return [script, "--backbone", str(backbone_file), "--config", config, "--data-root", data,
                "--work-dir", str(work), *extra, "--cfg-options", *opts]

    ok(run_cli(*cmd(tmp_path / "straight")))
    _run_killed(cmd(tmp_path / "killed"), tmp_path / "killed", first)
    ok(run_cli(*cmd(tmp_path / "killed", "--resume")))
    a = load_weights_only(tmp_path / "straight" / final)["state_dict"]
    b = load_weights_only(tmp_path / "killed" / final)["state_dict"]
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    ra, rb = (json.loads((tmp_path / w / "result.json").read_text()) for w in ("straight", "killed"))
    assert ra["metrics"] == rb["metrics"]


def test_downstream_resume_refuses_a_truncated_or_planted_checkpoint(backbone_file, synthetic, tmp_path):
    """``--resume`` reads mmengine's checkpoint with weights_only=True: a truncated one is
    named, and a pickle that would run code is refused without running it."""
    work = tmp_path / "det"
    work.mkdir()
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"state_dict": {}, "x": Planted()}, work / "epoch_1.pth")
    (work / "last_checkpoint").write_text(str(work / "epoch_1.pth"))
    common = ["downstream/detect.py", "--backbone", str(backbone_file), "--config", DET, "--data-root",
              f"{synthetic['voc']}/", "--work-dir", str(work), "--resume"]
    line = error_line(run_cli(*common))
    assert str(work / "epoch_1.pth") in line and "weights_only" in line and not marker.exists()

    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "meta": {"epoch": 1}}, good)
    (work / "epoch_1.pth").write_bytes(good.read_bytes()[:400])
    line = error_line(run_cli(*common))
    assert str(work / "epoch_1.pth") in line


@pytest.mark.parametrize("option, words", [
    ("auto_scale_lr.enabled=True", "did you mean auto_scale_lr.enable?"),
    ("train_cfg.max_epoch=3", "did you mean train_cfg.max_epochs?"),
    ("train_dataloader.batch_size=0", "train_dataloader.batch_size=0: it must be an integer >= 1"),
    ("train_cfg.max_epochs=2.5", "train_cfg.max_epochs=2.5: it must be an integer >= 1"),
])
def test_bad_downstream_option_is_refused_before_anything_is_written(backbone_file, synthetic, tmp_path, option,
                                                                       words):
    work = tmp_path / "det"
    line = error_line(run_cli("downstream/detect.py", "--backbone", str(backbone_file), "--config", DET,
                              "--data-root", f"{synthetic['voc']}/", "--work-dir", str(work),
                              "--cfg-options", option))
    assert words in line and not work.exists()


def test_new_key_is_added_with_a_plus(backbone_file, synthetic, tmp_path):
    """``+key=value`` adds a key the config lacks; the run gets as far as its data check."""
    from downstream.runner import parse_args, prepare, resolve_backbone
    from trickbench.mmconfig import read_config

    args = parse_args("detection", DET, ["--backbone", str(backbone_file), "--config", DET, "--work-dir",
                                         str(tmp_path / "w"), "--cfg-options", "+train_cfg.dynamic_intervals=[[1,1]]",
                                         "train_cfg.max_epochs=1"])
    cfg = prepare(read_config(DET), args, "detection", resolve_backbone(str(backbone_file)))
    assert cfg.train_cfg.dynamic_intervals == [[1, 1]] and cfg.train_cfg.max_epochs == 1


def test_downstream_config_with_a_syntax_error_names_file_and_line(backbone_file, tmp_path):
    config = tmp_path / "det.py"
    config.write_text(f'_base_ = "{DET}"\ntrain_cfg = dict(max_epochs=1\n')
    line = error_line(run_cli("downstream/detect.py", "--backbone", str(backbone_file), "--config", str(config),
                              "--work-dir", str(tmp_path / "w")))
    assert f"{config}, line 2" in line


def test_second_downstream_run_in_the_same_work_dir_stops_at_once(backbone_file, synthetic, tmp_path):
    work = tmp_path / "det"
    fd = lock_work_dir(work)
    try:
        line = error_line(run_cli("downstream/detect.py", "--backbone", str(backbone_file), "--config", DET,
                                  "--data-root", f"{synthetic['voc']}/", "--work-dir", str(work)))
    finally:
        os.close(fd)
    assert f"{work} is in use by another run" in line
