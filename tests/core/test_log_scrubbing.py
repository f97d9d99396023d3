"""Tokens in URLs never reach a log: server access logs (daphne, uvicorn, runserver) and error reports.

HAI's client sends its token as ``?token=`` on every call (``/work``'s HAI-compatible endpoints
accept it), so the request line of every access log carries it. The servers are started for real
here because daphne writes its access log straight to a stream, past Python's logging.
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.views.debug import get_exception_reporter_class

from apps.core.logging import ScrubTokensFilter, scrub

ROOT = Path(__file__).resolve().parents[2]
SECRET = "plainSecretValue0123456789"
ACCESS = "ACCESS-6162-Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"]
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "portal.asgi:application"]


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_server_access_log_never_holds_a_query_string_token(kind: str, tmp_path: Path) -> None:
    port = _free_port()
    log_path = tmp_path / "server.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "ROTA_", "DJANGO_SETTINGS"))
    }
    env.update(
        ROTA_ENV="embedded",
        ROTA_DATA_DIR=str(tmp_path / "data"),
        ROTA_TASK_RUNNER="inline",
        DJANGO_SETTINGS_MODULE="portal.settings",
        PYTHONUNBUFFERED="1",
    )
    with log_path.open("wb") as log:
        server = subprocess.Popen(_server_command(kind, port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            path = f"/healthz-missing/?nb_name=a+b&token={SECRET}&TOKEN={ACCESS}&%74oken={SECRET}x"
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
                    break
                except urllib.error.HTTPError:
                    break  # any answer: the request was served and logged
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"{kind} did not start:\n{log_path.read_text(errors='replace')}")
                    time.sleep(0.1)  # waiting for the port to open
            deadline = time.monotonic() + 10
            while "healthz-missing" not in log_path.read_text(errors="replace"):
                assert time.monotonic() < deadline, f"no access log line:\n{log_path.read_text()}"
                time.sleep(0.05)  # waiting for the server to write its access log line
        finally:
            server.terminate()
            server.wait(10)
    output = log_path.read_text(errors="replace")
    assert "healthz-missing" in output
    assert SECRET not in output
    assert "Zm9vYmFyYmF6cXV4" not in output
    assert "token=[scrubbed]" in output
    assert "nb_name=a+b" in output  # only the secrets go


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("logger_name", ["django.server", "django.channels.server", "uvicorn.access"])
def test_server_loggers_scrub_tokens_for_every_handler(logger_name: str) -> None:
    # Rota's logging configuration as a server process starts with it: an in-process test server
    # started earlier in this worker (uvicorn, access log off, level warning) reconfigured these loggers.
    logging.config.dictConfig(settings.LOGGING)
    logger = logging.getLogger(logger_name)
    collect = _Collect()
    logger.addHandler(collect)
    try:
        logger.info('"%s" %s %s', f"GET /q?token={SECRET} HTTP/1.1", 200, 5)
    finally:
        logger.removeHandler(collect)
    assert collect.lines == ['"GET /q?token=[scrubbed] HTTP/1.1" 200 5']
    # The server's own handler (the console) scrubs too, even when a server replaced the logger's filters.
    assert any(isinstance(f, ScrubTokensFilter) for handler in logger.handlers for f in handler.filters), (
        "the logger must be routed to Rota's scrubbing handler"
    )


def test_error_reports_never_hold_a_query_string_token() -> None:
    request = RequestFactory().post(f"/operating/task/stop?token={SECRET}&chain_id=abc&access_token={ACCESS}")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        text = reporter.get_traceback_text()
        html = reporter.get_traceback_html()
    for report in (text, html):
        assert SECRET not in report
        assert "Zm9vYmFyYmF6cXV4" not in report
        assert "chain_id" in report
    assert "abc" in text  # other parameters stay readable


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /q?token=abc&x=1 HTTP/1.1", "GET /q?token=[scrubbed]&x=1 HTTP/1.1"),
        ("/q?x=1&%74oken=abc", "/q?x=1&%74oken=[scrubbed]"),
        ("/q?TOKEN=abc", "/q?TOKEN=[scrubbed]"),
        ('"GET /a?access_token=abc" 200', '"GET /a?access_token=[scrubbed]" 200'),
        ("/x?nb_name=a+b&rank=0", "/x?nb_name=a+b&rank=0"),
    ],
)
def test_scrub_replaces_token_parameters_only(line: str, expected: str) -> None:
    assert scrub(line) == expected
