"""Fixtures for the ``rota`` CLI tests: an isolated config dir, and a runner that invokes the CLI
in-process (click's ``CliRunner``) with a chosen environment."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))  # the client is a separate package; tests use it from the tree

from click.testing import CliRunner, Result  # noqa: E402

from rota.cli import cli  # noqa: E402


class Rota:
    """Runs ``rota ARGS`` in-process with a fixed environment; asserts the exit code."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None, expect: int | None = 0
    ) -> Result:
        result = self.runner.invoke(cli, list(args), input=input, env={**self.env, **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        if expect is not None:
            assert result.exit_code == expect, (
                f"rota {' '.join(args)} exited {result.exit_code}, expected {expect}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            )
        return result

    def json(self, *args: str, expect: int | None = 0, **kwargs: Any) -> Any:
        """Run with ``--json`` and parse stdout."""
        result = self(*args, "--json", expect=expect, **kwargs)
        return json.loads(result.stdout)


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    """An empty XDG config dir for this test (the user's real config is never touched)."""
    home = tmp_path / "xdg-config"
    home.mkdir()
    return home


@pytest.fixture
def base_env(config_home: Path) -> dict[str, str | None]:
    """No server, no token, quick retries; variables that would leak from the caller unset."""
    return {
        "XDG_CONFIG_HOME": str(config_home),
        "ROTA_CONFIG": None,
        "ROTA_URL": None,
        "ROTA_TOKEN": None,
        "ROTA_GROUP": None,
        "ROTA_RETRIES": "2",
        "ROTA_RETRY_BACKOFF": "0.01",
        "NO_COLOR": "1",
    }


@pytest.fixture
def rota(base_env: dict[str, str | None]) -> Rota:
    return Rota(base_env)


@pytest.fixture
def closed_port() -> int:
    """A localhost port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
