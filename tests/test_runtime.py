"""Every result records the CPU that made it: model, flags, torch's kernels and threads,
checked on a real run against reads of their own (/proc/cpuinfo parsed here, torch's calls)."""
import json
import os
import platform
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, ok, run_cli
from trickbench import results
from trickbench.runinfo import CPU_FLAGS, cpu_identity
from trickbench.runtime import write_result

TINY = str(REPO / "configs/pretrain/synthetic/resnet18_tiny.py")
CPUINFO = Path("/proc/cpuinfo")
needs_cpuinfo = pytest.mark.skipif(not CPUINFO.is_file(), reason="no /proc/cpuinfo (not Linux)")


def first_processor(text: str) -> dict[str, str]:
    """The first 'key : value' block of /proc/cpuinfo, parsed independently of trickbench.runinfo."""
    block = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in block.splitlines())}


@pytest.fixture(scope="module")
def tiny_result(synthetic, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("cpu") / "tiny"
    ok(run_cli("pretrain/run.py", "--config", TINY, "--work-dir", str(work), "--cfg-options",
               f"data.root={synthetic['imagenet']}", "schedule.epochs=1", "schedule.milestones=[]", "data.workers=0",
               env={"OMP_NUM_THREADS": "1"}))
    return json.loads((work / "result.json").read_text())


@needs_cpuinfo
def test_a_real_run_records_the_cpu_it_ran_on(tiny_result):
    rec = tiny_result["cpu"]
    info = first_processor(CPUINFO.read_text())
    have = set(info.get("flags", info.get("Features", "")).split())
    assert rec["model"] == (info.get("model name") or info.get("Model") or platform.processor() or None)
    assert set(rec["flags"]) == set(CPU_FLAGS) and {"avx2", "avx512f"} <= set(rec["flags"])
    assert rec["flags"] == {flag: flag in have for flag in CPU_FLAGS}
    if "cpu family" in info:
        assert rec["signature"] == f"{info['cpu family']}/{info['model']}/{info['stepping']}"
    assert rec["capability"] == torch.backends.cpu.get_cpu_capability()  # same machine, same environment
    assert rec["threads"] == 1 and rec["omp_num_threads"] == "1"        # as the run was started
    assert rec["cpus"] == len(os.sched_getaffinity(0))
    assert tiny_result["cost"]["device"] == "cpu" and tiny_result["gpus"] == []


def test_the_cpu_record_reads_back_and_old_results_without_it_still_read(tiny_result, tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "result.json").write_text(json.dumps(tiny_result))
    assert results.read(tmp_path / "new" / "result.json").extra["cpu"] == tiny_result["cpu"]
    old = {k: v for k, v in tiny_result.items() if k != "cpu"}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "result.json").write_text(json.dumps(old))
    res = results.read(tmp_path / "old" / "result.json")
    assert "cpu" not in res.extra and res.metrics == tiny_result["metrics"]
    assert len(results.find(tmp_path).results) == 2


def test_every_stage_records_the_cpu_and_the_threads_as_set(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    threads = torch.get_num_threads()
    for stage, metric in (("detection", "map"), ("segmentation", "miou")):
        path = write_result(tmp_path / stage, stage=stage, backbone="b", seed=0, metrics={metric: 1.0}, config={},
                            checkpoint=None, wall_time_s=1.0)
        rec = json.loads(path.read_text())["cpu"]
        assert rec["omp_num_threads"] == "3" and rec["threads"] == threads
        assert rec["capability"] == torch.backends.cpu.get_cpu_capability()
    monkeypatch.delenv("OMP_NUM_THREADS")
    path = write_result(tmp_path / "unset", stage="detection", backbone="b", seed=0, metrics={"map": 1.0}, config={},
                        checkpoint=None, wall_time_s=1.0)
    assert json.loads(path.read_text())["cpu"]["omp_num_threads"] is None


def test_cpu_identity_of_a_cpuinfo_file_and_without_one(tmp_path):
    two = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon A\n"
           "stepping\t: 7\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\nmodel name\t: Xeon B\nflags\t\t: avx512f\n")
    (tmp_path / "cpuinfo").write_text(two)
    rec = cpu_identity(tmp_path / "cpuinfo")
    assert rec["model"] == "Xeon A" and rec["signature"] == "6/85/7"  # the first processor's
    assert rec["flags"] == {flag: flag in ("avx2", "fma") for flag in CPU_FLAGS}
    arm = cpu_identity_of(tmp_path, "processor\t: 0\nFeatures\t: fp asimd\nCPU part\t: 0xd0c\n")
    assert arm["signature"] is None and not any(arm["flags"].values())
    missing = cpu_identity(tmp_path / "nothing")
    assert missing["flags"] is None and missing["signature"] is None


def cpu_identity_of(folder: Path, text: str) -> dict:
    (folder / "arm").write_text(text)
    return cpu_identity(folder / "arm")
