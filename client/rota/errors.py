"""Exit codes of the ``rota`` command and the errors the API client raises.

Every error carries the exit code the command ends with, so scripts can tell a job that failed
from a server that refused a request, a bad token or a network outage:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     success; for ``logs -f`` / ``submit --follow``: the job succeeded
1     the job failed (``logs -f`` / ``submit --follow``)
2     the job was stopped or canceled (``logs -f`` / ``submit --follow``)
3     the job was suspended or is held (``logs -f`` / ``submit --follow``)
8     the job can never start as it is (``logs -f`` / ``submit --follow``): too big for its
      group or above its quota at its priority; stop it or resubmit with changes
4     the server refused the request (invalid input, not found, conflict, no permission)
5     not logged in, or the token is unknown, revoked or expired
6     the server could not be reached (after retries) or timed out
7     the server failed (HTTP 5xx) or answered something that is not the Rota API
64    wrong usage of the command (unknown option, missing argument, bad value)
130   interrupted (Ctrl-C)
====  ==========================================================================
"""

from __future__ import annotations

import enum
from typing import Any


class ExitCode(enum.IntEnum):
    """Exit codes of ``rota`` (see the module docstring and ``rota logs --help``)."""

    OK = 0
    JOB_FAILED = 1
    JOB_STOPPED = 2
    JOB_SUSPENDED = 3
    REFUSED = 4
    AUTH = 5
    NETWORK = 6
    SERVER = 7
    JOB_INFEASIBLE = 8
    USAGE = 64
    INTERRUPTED = 130


EXIT_CODE_TABLE: list[tuple[int, str]] = [
    (ExitCode.OK, "success (for a followed job: it succeeded)"),
    (ExitCode.JOB_FAILED, "the job failed"),
    (ExitCode.JOB_STOPPED, "the job was stopped or canceled"),
    (ExitCode.JOB_SUSPENDED, "the job was suspended or is held"),
    (ExitCode.REFUSED, "the server refused the request (its message is printed)"),
    (ExitCode.AUTH, "not logged in, or the token is unknown, revoked or expired"),
    (ExitCode.NETWORK, "the server could not be reached, even after retries"),
    (ExitCode.SERVER, "server error (HTTP 5xx) or not a Rota server"),
    (ExitCode.JOB_INFEASIBLE, "the job can never start as it is (it waits above its quota or group size)"),
    (ExitCode.USAGE, "wrong usage: unknown option, missing or bad argument"),
    (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
]


class RotaError(Exception):
    """Base of every error ``rota`` reports: a message for people and an exit code for scripts."""

    exit_code: int = ExitCode.REFUSED
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict[str, Any]:
        """The error in the server's shape, for ``--json`` output."""
        return {"error": {"code": self.code, "message": self.message, "fields": {}}}


class NotLoggedIn(RotaError):
    """No server URL or token is configured."""

    exit_code = ExitCode.AUTH
    code = "not_logged_in"


class ApiError(RotaError):
    """The server answered with an error: its ``{"error": {code, message, fields}}`` body."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "error",
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.extra = extra or {}
        if status == 401:
            self.exit_code = ExitCode.AUTH
        elif status >= 500:
            self.exit_code = ExitCode.SERVER
        else:
            self.exit_code = ExitCode.REFUSED

    def as_json(self) -> dict[str, Any]:
        return {
            "error": {"code": self.code, "message": self.message, "fields": self.fields, "status": self.status}
            | self.extra
        }


class NotRotaServer(RotaError):
    """The URL answered, but not like the Rota API (wrong URL, a proxy page, HTML)."""

    exit_code = ExitCode.SERVER
    code = "not_rota"


class NetworkError(RotaError):
    """The server could not be reached, or stopped answering, even after retries."""

    exit_code = ExitCode.NETWORK
    code = "network"
