"""The layering, checked on the import graph (import-linter, on grimp's graph of every import
statement, function-level ones included): imports go down, the bottom package imports no stage,
the analysis no torch, and no folder has an import cycle between its files. The contracts are
in pyproject.toml; the second test shows that they catch what they are for."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from trickbench.paths import REPO


def lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    lint = Path(sys.executable).parent / "lint-imports"  # import-linter's command, installed with it
    return subprocess.run([str(lint), str(config), "--no-cache"],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def contracts_text() -> str:
    text = (REPO / "pyproject.toml").read_text()
    return text[text.index("[tool.importlinter]"):]


def test_the_code_keeps_its_layering():
    proc = lint_imports(REPO, REPO / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(" KEPT") == contracts_text().count("[[tool.importlinter.contracts]]") == 5


def test_the_contracts_catch_an_upward_import_a_torch_import_and_a_cycle(tmp_path):
    files = {
        # an upward import hidden in a function
        "trickbench/__init__.py": "",
        "trickbench/plan.py": "def config():\n    from pretrain import config\n    return config\n",
        # a cycle between two files of one folder
        "trickbench/a.py": "from trickbench import b\n",
        "trickbench/b.py": "def f():\n    from trickbench import a\n",
        "pretrain/__init__.py": "",
        "pretrain/config.py": "",
        "downstream/__init__.py": "",
        # torch reached through the bottom package
        "evaluation/__init__.py": "",
        "evaluation/report.py": "from trickbench import io\n",
        "trickbench/io.py": "def save(x):\n    import torch\n    torch.save(x, 'x')\n",
    }
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(body))
    (tmp_path / "pyproject.toml").write_text(contracts_text())
    proc = lint_imports(tmp_path, tmp_path / "pyproject.toml")
    out = " ".join(proc.stdout.split())
    assert proc.returncode == 1, out
    assert "The bottom package (contracts, study runner, datasets) imports no stage and not the analysis BROKEN" in out
    assert "trickbench.plan -> pretrain.config" in out
    assert "The analysis imports no torch, no OpenMMLab model library and no stage BROKEN" in out
    assert "No import cycle between the files of any folder BROKEN" in out
    assert "Imports go down: the stages above the bottom package, the downstream stage above pretraining BROKEN" in out
