"""What every ``rota`` command shares: per-invocation state, ``--json``, parameter types, completion."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from rota import config
from rota.api import RotaClient
from rota.errors import ExitCode, NotLoggedIn
from rota.output import Output

F = TypeVar("F", bound=Callable[..., Any])

PRIORITIES: dict[str, int] = {
    "EXTREME_HIGH": 50,
    "VERY_HIGH": 40,
    "HIGH": 30,
    "ABOVE_NORMAL": 20,
    "NORMAL": 10,
    "UNDER_NORMAL": 8,
    "BELOW_NORMAL": 5,
    "LOW": 0,
    "AUTO": -1,
}
PRIORITY_NAMES = {number: name for name, number in PRIORITIES.items()}
STATUSES = [
    "waiting",
    "suspended",
    "held",
    "starting",
    "running",
    "suspending",
    "stopping",
    "succeeded",
    "failed",
    "stopped",
    "canceled",
]
STATUS_GROUPS = ["pending", "active", "finished"]
ORDERINGS = ["id", "-id", "created_at", "-created_at", "name", "-name", "priority", "-priority", "status", "-status"]
KINDS = ["python", "bash", "executable"]
JOB_EXIT_CODES = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.JOB_FAILED,
    "stopped": ExitCode.JOB_STOPPED,
    "canceled": ExitCode.JOB_STOPPED,
    "suspended": ExitCode.JOB_SUSPENDED,
    "held": ExitCode.JOB_SUSPENDED,
}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# ---- per-invocation state ------------------------------------------------------------------


class State:
    """What one ``rota`` invocation knows: output mode, settings, and a lazily made API client."""

    def __init__(self) -> None:
        self.json_mode = False
        self._output: Output | None = None
        self._settings: config.Settings | None = None
        self._client: RotaClient | None = None
        self._warned = False

    @property
    def out(self) -> Output:
        """Where this invocation prints (JSON or people's output)."""
        if self._output is None or self._output.json_mode != self.json_mode:
            self._output = Output(json_mode=self.json_mode)
        return self._output

    @property
    def settings(self) -> config.Settings:
        """The effective URL and token (warnings about the config file printed once)."""
        if self._settings is None:
            self._settings = config.load()
        if not self._warned:
            self._warned = True
            for warning in self._settings.warnings:
                self.out.warn(warning)
        return self._settings

    def on_retry(self, reason: str, delay: float, retry: int, allowed: int) -> None:
        """Tell the user a request is being retried, and when."""
        self.out.note(f"Network trouble ({reason}); retrying in {delay:.1f} s ({retry}/{allowed})…")

    def client(self, *, url: str | None = None, token: str | None = None, anonymous: bool = False) -> RotaClient:
        """The API client for the configured server (``NotLoggedIn`` when there is none)."""
        if url is not None or anonymous:
            return RotaClient(url or "", None if anonymous else token, on_retry=self.on_retry)
        if self._client is None:
            settings = self.settings
            if not settings.url or not settings.token:
                raise NotLoggedIn(
                    "Not logged in. Run `rota login --url https://your-rota-server` first "
                    "(or set ROTA_URL and ROTA_TOKEN)."
                )
            self._client = RotaClient(settings.url, settings.token, on_retry=self.on_retry)
            click.get_current_context().call_on_close(self._client.close)
        return self._client


_current = State()


def reset_state() -> State:
    """A fresh state for a new invocation (tests run ``rota`` many times in one process)."""
    global _current
    _current = State()
    return _current


def current_state() -> State:
    """The state of the invocation running now."""
    return _current


pass_state = click.make_pass_decorator(State, ensure=True)


def _state(ctx: click.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = _current
    return root.obj


def _set_json(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _state(ctx).json_mode = True


def json_option(func: F) -> F:
    """``--json`` on a command: results as JSON on stdout, for scripts."""
    return click.option(
        "--json",
        "json_mode",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json,
        help="Print the result as JSON (for scripts).",
    )(func)


# ---- completion ----------------------------------------------------------------------------


def _completion_client() -> RotaClient | None:
    try:
        settings = config.load()
    except Exception:
        return None
    if not settings.url or not settings.token:
        return None
    return RotaClient(settings.url, settings.token, timeout=3.0, retries=0)


def complete_job(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Job names and ids that start with what was typed (asks the server; silent on failure)."""
    client = _completion_client()
    if client is None:
        return []
    try:
        with client:
            rows = client.experiments(page_size=50, ordering="-id").get("results", [])
    except Exception:
        return []
    items = []
    for row in rows:
        for value in (row["name"], str(row["id"])):
            if value.startswith(incomplete):
                items.append(CompletionItem(value, help=f"#{row['id']} {row['name']} ({row['status']})"))
    return items


def complete_group(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Node group names from the server (silent on failure)."""
    client = _completion_client()
    if client is None:
        return []
    try:
        with client:
            groups = client.node_groups()
    except Exception:
        return []
    return [CompletionItem(g["name"]) for g in groups if g["name"].startswith(incomplete)]


def complete_image(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Environment names from the server (silent on failure)."""
    client = _completion_client()
    if client is None:
        return []
    try:
        with client:
            envs = client.environments()
    except Exception:
        return []
    return [CompletionItem(e["name"], help=e.get("image")) for e in envs if e["name"].startswith(incomplete)]


def complete_priority(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Priority names (no server needed)."""
    return [
        CompletionItem(name, help=str(number))
        for name, number in PRIORITIES.items()
        if name.startswith(incomplete.upper())
    ]


# ---- parameter types -----------------------------------------------------------------------


class PriorityType(click.ParamType):
    """A priority by name (``HIGH``, ``high``) or number (``30``)."""

    name = "priority"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if text.lstrip("-").isdigit() and int(text) in PRIORITY_NAMES:
            return PRIORITY_NAMES[int(text)]
        if text.upper() in PRIORITIES:
            return text.upper()
        names = ", ".join(f"{name} ({number})" for name, number in PRIORITIES.items())
        raise click.BadParameter(f"{value!r} is not a priority. Use a name or number: {names}.", ctx, param)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return complete_priority(ctx, param, incomplete)


PRIORITY = PriorityType()

#: the longest run-time estimate the server accepts (30 days), and the shortest (a minute)
MAX_ESTIMATE_SECONDS = 30 * 86400
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationType(click.ParamType):
    """A duration: seconds (``5400``) or with units (``90m``, ``6h``, ``1d12h``, ``2h30m``) → whole seconds,
    between a minute and 30 days."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            seconds = value
        else:
            text = str(value).strip().lower().replace(" ", "")
            if text.isdigit():
                seconds = int(text)
            elif re.fullmatch(r"(\d+[smhd])+", text):
                seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"(\d+)([smhd])", text))
            else:
                raise click.BadParameter(
                    f"{value!r} is not a duration. Use seconds (5400) or units (90m, 6h, 2d, 1d12h).", ctx, param
                )
        if not 60 <= seconds <= MAX_ESTIMATE_SECONDS:
            raise click.BadParameter(f"{value!r}: give between 1 minute (60) and 30 days (30d).", ctx, param)
        return seconds


DURATION = DurationType()


def parse_when(value: str, param: click.Parameter | None = None, ctx: click.Context | None = None) -> str:
    """``2024-05-01``, ``2024-05-01T12:00``, or an age such as ``30m``, ``2h``, ``7d`` → ISO 8601 (UTC)."""
    text = value.strip()
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        moment = datetime.now(timezone.utc) - timedelta(**{unit: int(match.group(1))})
        return moment.replace(microsecond=0).isoformat()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a date (2024-05-01), a date and time (2024-05-01T14:30) or an age (30m, 2h, 7d).",
            param=param,
            ctx=ctx,
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(timezone.utc).isoformat()


def parse_future(value: str) -> str:
    """An expiry: a date/time, or a duration from now such as ``30d``."""
    match = re.fullmatch(r"(\d+)\s*([mhdw])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        moment = datetime.now(timezone.utc) + timedelta(**{unit: int(match.group(1))})
        return moment.replace(microsecond=0).isoformat()
    return parse_when(value)


def parse_env(values: Iterable[str]) -> dict[str, str]:
    """``-e K=V`` pairs; a bare ``-e K`` copies K from this shell's environment."""
    env: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        key = key.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE.", param_hint="'-e' / '--env'")
        if not sep:
            if key not in os.environ:
                raise click.BadParameter(
                    f"{key} is not set here; give a value with -e {key}=VALUE.", param_hint="'-e' / '--env'"
                )
            val = os.environ[key]
        env[key] = val
    return env


REASONS = {
    "user": "by its owner",
    "admin": "by an admin",
    "rank_failed": "a rank failed",
    "hung": "no output for longer than its watchdog time",
    "start_failed": "it could not be started",
    "lost": "its processes disappeared",
    "preempted": "preempted by a higher-priority job",
    "time_share": "time-shared with another user's job",
    "node_not_ready": "a node it ran on became unusable",
    "unschedulable": "its ranks could not start in time",
    "self": "it called go_suspend()",
}


def priority_label(value: Any) -> str:
    """``30`` → ``HIGH``; names pass through."""
    if isinstance(value, int):
        return PRIORITY_NAMES.get(value, str(value))
    return str(value) if value is not None else "-"


def pending_text(pending: dict[str, Any] | None) -> str:
    """A waiting job's reason in one line, with its queue position."""
    if not pending:
        return ""
    text = pending.get("message") or pending.get("code") or ""
    if pending.get("queue_position"):
        text += f" (#{pending['queue_position']} in queue)"
    return text
