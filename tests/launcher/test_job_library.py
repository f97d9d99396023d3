"""The job library outside the platform, and when the platform cannot be reached."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"

SCRIPT = """
from rota import job
job.set_whole_life_state(5)
job.report_checkpoint()
job.log_metrics(1, loss=0.5)
print("state", job.get_whole_life_state(), "suspend", job.receive_suspend_command())
"""


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PYTHONPATH": str(CLIENT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_calls_are_no_ops_outside_the_platform():
    result = run({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "state 5 suspend False"
    assert result.stderr == ""


def test_an_unreachable_platform_warns_but_does_not_kill_the_job():
    result = run({"ROTA_TASK_TOKEN": "rota_abcdefgh_" + "x" * 32, "ROTA_API_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stderr
    assert "state 5" in result.stdout
    assert "cannot reach the platform" in result.stderr and "(continuing)" in result.stderr


def test_simulated_suspend_for_rehearsal():
    result = run({"ROTA_SIMULATE_SUSPEND": "0"})
    assert result.stdout.strip() == "state 5 suspend True"


CHECKPOINT_SCRIPT = """
from rota import job
before = job.checkpoint_requested()
job.report_checkpoint()
print("asked", before, "after report", job.checkpoint_requested())
"""


def test_checkpoint_request_outside_the_platform_and_rehearsed():
    def run_script(env: dict[str, str]) -> str:
        result = subprocess.run(
            [sys.executable, "-c", CHECKPOINT_SCRIPT],
            env={"PYTHONPATH": str(CLIENT), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run_script({}) == "asked False after report False"
    # rehearsal: asked at once, answered by report_checkpoint()
    assert run_script({"ROTA_SIMULATE_CHECKPOINT_REQUEST": "0"}) == "asked True after report False"
