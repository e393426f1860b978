"""Shared fixtures: small generated datasets (built once per session) and runners
for the suite's own command lines."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trickbench.paths import REPO

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """The suite's cache (data-check results) in a folder of the test session, not the user's."""
    old = os.environ.get("TRICKBENCH_CACHE")
    os.environ["TRICKBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("TRICKBENCH_CACHE", None)
    else:
        os.environ["TRICKBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    from trickbench.datasets.shapes import make_all

    return make_all(tmp_path_factory.mktemp("data"), scale=0.5, seed=0)


def run_cli(*args: str, cwd: Path = REPO, timeout: float = 1200, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one of the suite's scripts as a user would, capturing its output."""
    cmd = [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> dict[str, str]:
    """A fresh single-node Slurm for this test session (tests/slurm_cluster.py), with SLURM_CONF
    set in os.environ so that the code under test and its subprocesses use it; skips, saying what
    to install, where it cannot run (no packages, not root)."""
    from tests.slurm_cluster import running_cluster, why_not

    reason = why_not()
    if reason:
        pytest.skip(reason)
    old = os.environ.get("SLURM_CONF")
    with running_cluster(tmp_path_factory.mktemp("slurm")) as env:
        os.environ["SLURM_CONF"] = env["SLURM_CONF"]
        try:
            yield env
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
