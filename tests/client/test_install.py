"""``rota`` outside the test process: the real console entry point in a subprocess, following a
job live while the test acts on it, and ``pip install ./client`` into a fresh virtualenv."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apps.accounts import services as account_services
from tests.client.conftest import CLIENT_DIR
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTA_", "PYTHON", "_ROTA"))}
    env.update({"NO_COLOR": "1", "ROTA_RETRIES": "1", "ROTA_RETRY_BACKOFF": "0.01"})
    env.update(extra)
    return env


@pytest.fixture
def shell_env(platform, cluster, config_home) -> dict[str, str]:
    """The environment of a user's shell: the client on PYTHONPATH, logged in by ROTA_URL/ROTA_TOKEN."""
    user = UserFactory(username="sub-user")
    token = account_services.token_create(actor=user, name="subprocess").raw
    return clean_env(
        PYTHONPATH=str(CLIENT_DIR), XDG_CONFIG_HOME=str(config_home), ROTA_URL=platform.url, ROTA_TOKEN=token
    )


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rota", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_console_entry_point_follows_a_job_live_while_it_is_suspended_and_stopped(shell_env, workspace, tmp_path):
    (workspace / "loop.py").write_text(
        textwrap.dedent(
            """
            import time
            from rota import job
            print("attempt starts at", job.get_whole_life_state(), flush=True)
            step = job.get_whole_life_state()
            while not job.receive_suspend_command(poll=False):
                step += 1
                print("step", step, flush=True)
                time.sleep(0.05)
            job.set_whole_life_state(step)
            print("suspending", flush=True)
            job.go_suspend()
            """
        )
    )
    whoami = run(shell_env, "whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["username"] == "sub-user"

    # Hold the whole cluster so the next job waits; follow the waiting job from another process.
    submitted = run(shell_env, "submit", str(workspace / "loop.py"), "--", "-g", "training", "-n", "4", "--json")
    assert submitted.returncode == 0, submitted.stderr
    first = json.loads(submitted.stdout)["id"]
    waiting = json.loads(run(shell_env, "submit", str(workspace / "train.py"), "--", "-g", "training", "--json").stdout)
    err = tmp_path / "follow-waiting.err"
    with err.open("w") as err_file:
        follower = subprocess.Popen(
            [sys.executable, "-m", "rota", "logs", str(waiting["id"]), "-f"],
            env=shell_env,
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
        wait_until(lambda: "is waiting" in err.read_text(), message="the follower to report the wait")
        assert run(shell_env, "stop", str(waiting["id"])).returncode == 0
        assert follower.wait(timeout=30) == 2  # canceled
    assert f"Job {waiting['id']} canceled (by its owner)." in err.read_text()

    # Follow the running job live; suspending it ends the follow with exit code 3.
    wait_until(lambda: "step 5" in run(shell_env, "logs", str(first)).stdout, message="the first job's output")
    follower = subprocess.Popen(
        [sys.executable, "-m", "rota", "logs", str(first), "-f", "--tail", "1"],
        env=shell_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Suspend only once the follower is attached (it printed the tail), or a slow start could
    # find the attempt already over.
    assert select.select([follower.stdout], [], [], 60)[0], "the follower printed nothing"
    first_line = follower.stdout.readline()
    assert "] step " in first_line, first_line
    suspended = run(shell_env, "suspend", str(first), "--wait")
    assert suspended.returncode == 0, suspended.stderr
    rest, errors = follower.communicate(timeout=30)
    out = first_line + rest
    assert follower.returncode == 3, errors
    assert "] suspending\n" in out and "is held" in errors
    stopped = run(shell_env, "stop", str(first), "--wait", "--json")
    assert json.loads(stopped.stdout)["status"] == "canceled"


def test_exit_codes_of_the_real_process(shell_env, closed_port):
    assert run(shell_env, "status", "nope").returncode == 4
    assert run({**shell_env, "ROTA_TOKEN": "rota_zzzzzzzz_" + "x" * 30}, "list").returncode == 5
    unreachable = run({**shell_env, "ROTA_URL": f"http://127.0.0.1:{closed_port}"}, "list")
    assert unreachable.returncode == 6 and "Cannot reach the Rota server" in unreachable.stderr
    assert run(shell_env, "list", "--bogus").returncode == 64
    assert run(shell_env, "--help").returncode == 0


def test_pip_install_client_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    """``pip install ./client`` in a virtualenv with nothing else gives a working ``rota`` and ``rota.job``.

    Exactly what a user runs: pip builds the package (setuptools in an isolated build env) and
    installs its four dependencies from the package index pip is configured with.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "./client"],
        cwd=CLIENT_DIR.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
        check=False,
    )
    assert install.returncode == 0, install.stderr
    env = clean_env(XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    rota = venv / "bin" / "rota"
    help_text = subprocess.run(
        [str(rota), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "rota submit train.py" in help_text.stdout
    # Everything imports, the websocket client too (LiveLog raises if it is missing).
    code = "import rota, rota.job, rota.cli, rota.logstream as s; s.LiveLog('http://h', None); print(rota.__file__)"
    where = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(venv))  # the installed copy, not the source tree
    not_logged_in = subprocess.run([str(rota), "list"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert not_logged_in.returncode == 5 and "Not logged in" in not_logged_in.stderr


def test_rota_client_package_metadata() -> None:
    import tomllib

    meta = tomllib.loads((CLIENT_DIR / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "rota-client"
    assert meta["project"]["scripts"] == {"rota": "rota.cli:main"}
    assert sorted(d.split(">")[0] for d in meta["project"]["dependencies"]) == ["click", "httpx", "rich", "websockets"]
