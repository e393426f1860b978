"""What a job does before its first iteration and after its last, that is not the work:
config text formatted with yapf, garbage collections over the imported modules."""
import copy
import gc
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import REPO, ok, run_cli
from trickbench.mmconfig import read_config

DET = REPO / "configs/detection/faster-rcnn_fpn_fashion.py"
SEG = REPO / "configs/segmentation/fcn-d8_fashion.py"


@pytest.fixture
def yapf_calls(monkeypatch):
    """How often mmengine formats a config text with yapf."""
    import mmengine.config.config as mmconfig

    calls = []
    real = mmconfig.FormatCode
    monkeypatch.setattr(mmconfig, "FormatCode", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("path", [DET, SEG])
def test_config_text_is_not_formatted_and_reads_back_the_same(path, yapf_calls, tmp_path):
    cfg = read_config(path)
    text = cfg.pretty_text
    copy.deepcopy(cfg).dump(tmp_path / "dumped.py")      # what Runner does with it: a deep copy, dumped
    assert yapf_calls == []
    assert Config.fromstring(text, ".py").to_dict() == cfg.to_dict()
    assert read_config(tmp_path / "dumped.py").to_dict() == cfg.to_dict()


def test_mmengine_alone_formats_it(yapf_calls):
    """The off state: fromfile's own flag does not reach a plain config (mmengine 0.10.7)."""
    Config.fromfile(str(DET), format_python_code=False).pretty_text
    assert len(yapf_calls) == 1


def test_imports_done_freezes_the_imports_and_turns_collection_back_on():
    code = ("import gc; gc.disable(); import torch; from trickbench.runtime import imports_done; "
            "assert gc.get_freeze_count() == 0; imports_done(); "
            "print(gc.isenabled(), gc.get_freeze_count() > 10000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.split() == ["True", "True"]


def test_imported_entry_scripts_leave_the_collector_alone():
    import downstream.detect  # noqa: F401
    import downstream.segment  # noqa: F401
    import pretrain.run  # noqa: F401

    assert gc.isenabled()


@pytest.mark.parametrize("script", ["downstream/detect.py", "downstream/segment.py", "pretrain/run.py"])
def test_entry_scripts_start_and_stop_as_programs(script):
    """Run as programs, they turn the collector off for their imports and on again (--help
    parses the arguments after that and exits 0)."""
    assert "usage:" in ok(run_cli(script, "--help")).stdout
