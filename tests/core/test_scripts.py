"""scripts/run installs only what running the server needs; scripts/test adds the test tools."""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
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


def test_the_suite_runs_on_both_profiles_and_the_browser_tests_on_the_embedded_one_only():
    script = (ROOT / "scripts" / "test").read_text().splitlines()
    runs = [shlex.split(line) for line in script if line.strip().startswith("run_pytest ")]
    assert runs == [["run_pytest", "embedded", "$@"], ["run_pytest", "production", "-m", "not browser", "$@"]]
    # Whatever drives the browser carries the marker the production run leaves out.
    drivers = [
        p for p in (ROOT / "tests").rglob("test_*.py") if re.search(r"\b(browser_page|chromium)\b", p.read_text())
    ]
    assert drivers
    assert [p.name for p in drivers if "pytest.mark.browser" not in p.read_text()] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_run_script(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "ROTA_BACKEND", "SECRET_KEY"}}
    env.update(ROTA_ENV="embedded", PORT=str(port), ROTA_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _lines_until(proc: subprocess.Popen[bytes], marker: str, timeout: float) -> list[str]:
    """Lines of the script's output up to the one holding ``marker`` (or its end). Unbuffered reads:
    a buffered reader could hold the marker's line while ``select`` waits for more."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and marker.encode() not in data:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break  # the script ended
        data += chunk
    return data.decode(errors="replace").splitlines(keepends=True)


def test_run_says_where_rota_runs_only_once_the_server_answers_and_refuses_a_port_in_use(tmp_path):
    """One test, not two: both runs collect static files into the checkout's one STATIC_ROOT."""
    port = _free_port()
    proc = _start_run_script(tmp_path, port)
    try:
        lines = _lines_until(proc, "Rota is running at", timeout=180)
        assert any(f"Rota is running at http://127.0.0.1:{port}/" in line for line in lines), "".join(lines)
        # At the moment the banner is printed, the server answers.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as response:
            assert response.status == 200
    finally:
        _stop(proc)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        proc = _start_run_script(tmp_path, port)
        try:
            lines = _lines_until(proc, "FAILED", timeout=180)
            assert proc.wait(30) == 1
        finally:
            _stop(proc)
    output = "".join(lines)
    assert f"FAILED: the server did not start on port {port}" in output
    assert "Rota is running at" not in output
