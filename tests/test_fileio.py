import errno
import json
import os
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import REPO
from trickbench.fileio import (WriteError, append_jsonl, atomic_write_bytes, read_json, read_jsonl,
                               remove_stale_temps)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_files_get_the_mode_open_would_give(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = atomic_write_bytes(tmp_path / "result.json", b"{}")
        append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "metrics.jsonl").stat().st_mode) == mode


# Run in a child so the file-size limit stays there; over it, write() fails with EFBIG.
UNDER_A_SIZE_LIMIT = """
import json, resource, signal, sys
from trickbench.fileio import WriteError, append_jsonl, atomic_write_bytes
from trickbench.runtime import atomic_torch_save
write = {"bytes": lambda p: atomic_write_bytes(p, b"x" * 100_000),
         "torch": lambda p: atomic_torch_save(p, {"w": __import__("torch").zeros(100_000)}),
         "jsonl": lambda p: append_jsonl(p, {"x": "y" * 100_000})}[sys.argv[2]]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
try:
    write(sys.argv[1])
except WriteError as e:
    print(json.dumps({"str": str(e), "errno": e.errno, "filename": e.filename}))
"""


@pytest.mark.parametrize("how, name", [("bytes", "result.json"), ("torch", "last.pth"), ("jsonl", "metrics.jsonl")])
def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, how, name):
    path = tmp_path / name
    path.write_bytes(b'{"epoch": 1}\n')
    proc = subprocess.run([sys.executable, "-c", UNDER_A_SIZE_LIMIT, str(path), how], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    err = json.loads(proc.stdout)
    assert err["errno"] == errno.EFBIG and err["filename"] == str(path)
    assert str(path) in err["str"] and "is left as it was" in err["str"]
    assert path.read_bytes() == b'{"epoch": 1}\n'
    assert os.listdir(tmp_path) == [name]  # no temp file left


def test_write_error_is_an_oserror():
    e = WriteError(errno.ENOSPC, "No space left on device", "/runs/r/last.pth")
    assert isinstance(e, OSError) and e.errno == errno.ENOSPC
    assert str(e).startswith("cannot write /runs/r/last.pth: No space left on device; last.pth is left as it was")
    assert "free disk space" in str(e)


def test_remove_stale_temps_removes_only_interrupted_writes(tmp_path):
    stale = [tmp_path / os.path.basename(tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=tmp_path)[1])
             for name in ("last.pth", "result.json")]
    keep = ["notes.tmp", ".hidden", "result.json", ".notes.tmp", "sub/.last.pth.abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("mine")
    (tmp_path / ".dir.abcdefgh.tmp").mkdir()  # a folder, not a temp file
    assert remove_stale_temps(tmp_path) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all((tmp_path / name).read_text() == "mine" for name in keep) and (tmp_path / ".dir.abcdefgh.tmp").is_dir()
    assert remove_stale_temps(tmp_path) == [] and remove_stale_temps(tmp_path / "not-yet") == []


def test_read_jsonl_drops_a_torn_last_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    for epoch in (1, 2, 3):
        append_jsonl(log, {"epoch": epoch, "top1": 10.0 * epoch})
    assert read_jsonl(log) == ([{"epoch": 1, "top1": 10.0}, {"epoch": 2, "top1": 20.0}, {"epoch": 3, "top1": 30.0}], False)
    with open(log, "ab") as f:
        f.write(b'{"epoch": 4, "to')  # killed during the append
    records, torn = read_jsonl(log)
    assert [r["epoch"] for r in records] == [1, 2, 3] and torn
    log.write_text("")
    assert read_jsonl(log) == ([], False)


def test_read_jsonl_refuses_a_damaged_line_before_the_last(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"epoch": 1}\n{"epoch": 2, "to\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match="line 2") as e:
        read_jsonl(log)
    assert str(log) in str(e.value) and "delete that line" in str(e.value)


def test_read_json_names_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "result.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="not valid JSON") as e:
        read_json(path)
    assert str(path) in str(e.value)
