"""scripts/run installs only what running the server needs; scripts/test adds the test tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/bin/sh
# Stands in for .venv/bin/python: records how pip was asked to install, installs nothing.
echo "$*" >> "$(dirname "$0")/../../pip.log"
"""


def venv_sandbox(tmp_path: Path) -> Path:
    """A copy of the repository's requirement files and _venv.sh, with a .venv whose python records calls."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    for name in ("requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def source_venv(root: Path, *args: str) -> list[str]:
    """Source _venv.sh with ``args`` in ``root``; the pip install commands it ran (log lines so far)."""
    subprocess.run(
        ["bash", "-c", 'source scripts/_venv.sh "$@"', "_venv", *args], cwd=root, check=True, capture_output=True
    )
    log = root / "pip.log"
    return [line for line in log.read_text().splitlines() if " -r " in line] if log.exists() else []


def test_run_installs_the_runtime_requirements_and_test_adds_the_dev_tools(tmp_path):
    root = venv_sandbox(tmp_path)
    assert source_venv(root, "runtime") == ["-m pip install --quiet --disable-pip-version-check -r requirements.txt"]
    assert len(source_venv(root, "runtime")) == 1  # unchanged: nothing installed again
    assert source_venv(root, "dev")[1:] == [
        "-m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt"
    ]
    assert len(source_venv(root, "runtime")) == 2  # dev brought runtime up to date


def test_the_scripts_ask_for_their_own_requirement_sets():
    assert 'source "$(dirname "$0")/_venv.sh" runtime' in (ROOT / "scripts" / "run").read_text()
    assert 'source "$(dirname "$0")/_venv.sh" dev' in (ROOT / "scripts" / "test").read_text()
