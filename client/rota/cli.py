"""The ``rota`` command: a thin layer of click commands over :class:`rota.api.RotaClient`.

Each command parses its options, calls the API client, and hands the answer to
:class:`rota.output.Output`. Errors are :mod:`rota.errors` exceptions, turned into a message on
stderr (and a JSON error object on stdout with ``--json``) and an exit code in one place,
:meth:`RotaGroup.main`.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.text import Text

from rota import __version__, config
from rota.api import SUSPENDED_STATUSES, TERMINAL_STATUSES, RotaClient
from rota.errors import EXIT_CODE_TABLE, ApiError, ExitCode, NetworkError, NotLoggedIn, RotaError
from rota.output import Output, duration, size, status_cell, styled, when, when_short

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
        if self._output is None or self._output.json_mode != self.json_mode:
            self._output = Output(json_mode=self.json_mode)
        return self._output

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load()
        if not self._warned:
            self._warned = True
            for warning in self._settings.warnings:
                self.out.warn(warning)
        return self._settings

    def _on_retry(self, reason: str, delay: float, retry: int, allowed: int) -> None:
        self.out.note(f"Network trouble ({reason}); retrying in {delay:.1f} s ({retry}/{allowed})…")

    def client(self, *, url: str | None = None, token: str | None = None, anonymous: bool = False) -> RotaClient:
        """The API client for the configured server (``NotLoggedIn`` when there is none)."""
        if url is not None or anonymous:
            return RotaClient(url or "", None if anonymous else token, on_retry=self._on_retry)
        if self._client is None:
            settings = self.settings
            if not settings.url or not settings.token:
                raise NotLoggedIn(
                    "Not logged in. Run `rota login --url https://your-rota-server` first "
                    "(or set ROTA_URL and ROTA_TOKEN)."
                )
            self._client = RotaClient(settings.url, settings.token, on_retry=self._on_retry)
            click.get_current_context().call_on_close(self._client.close)
        return self._client


_current = State()
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


# ---- the group -----------------------------------------------------------------------------

COMMAND_ORDER = [
    "login",
    "logout",
    "whoami",
    "submit",
    "list",
    "status",
    "logs",
    "stop",
    "suspend",
    "resume",
    "tag",
    "star",
    "priority",
    "nodes",
    "quota",
    "images",
    "tokens",
    "completion",
]


class RotaGroup(click.Group):
    """The top-level group: commands in a useful order, and one place that turns errors into exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(set(self.commands) - set(known))

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        global _current
        _current = State()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name or "rota", complete_var, standalone_mode=False, **extra)
        except RotaError as exc:
            code = report_error(_current, exc)
        except click.UsageError as exc:
            exc.show()
            code = ExitCode.USAGE
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except (click.Abort, KeyboardInterrupt, EOFError):
            click.echo("\nInterrupted.", err=True)
            code = ExitCode.INTERRUPTED
        sys.exit(int(code) if isinstance(code, int) else 0)


def report_error(state: State, exc: RotaError) -> int:
    """Print an error the way a person and a script both understand it; return its exit code."""
    out = state.out
    if state.json_mode:
        out.json(exc.as_json())
    out.error(exc.message)
    if isinstance(exc, ApiError):
        for field_name, messages in exc.fields.items():
            for message in messages:
                if message not in exc.message:
                    out.note(f"  {field_name}: {message}")
        if exc.status == 401:
            out.hint("Log in again with `rota login` (or set ROTA_TOKEN to a valid token).")
    return int(exc.exit_code)


@click.group(
    "rota",
    cls=RotaGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    epilog="Each command has its own help with examples: rota COMMAND --help. "
    "Exit codes are listed in `rota logs --help`.",
)
@click.version_option(__version__, "-V", "--version", prog_name="rota")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Rota: run training jobs on a time-shared GPU cluster.

    \b
    First steps:
      rota login --url https://rota.example.org     (asks for your user name and password)
      rota quota                                    (node groups and priorities you may use)
      rota submit train.py --lr 3e-4 -- -n 2 -g training -p HIGH
      rota logs train -f                            (follow rank 0 until the job ends)
      rota stop train

    Arguments right after the script go to the script; platform options (-n nodes, -g group,
    -p priority, -i image, -e NAME=VALUE, --name, -f) go after `--`, as with HAI's hai-cli.
    JOB is a job's id or its name. Every command takes --json for scripts.

    ROTA_URL and ROTA_TOKEN override the server and token stored by `rota login`
    (in $XDG_CONFIG_HOME/rota/config.json). HAI users: `rota python|bash|exec FILE ARGS -- OPTIONS`
    work as before.
    """
    ctx.obj = _current
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# ---- account -------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("--url", help="The Rota server, e.g. https://rota.example.org (default: the last one used).")
@click.option("-u", "--username", help="Your user name (asked for when missing).")
@click.option(
    "--token",
    "token_value",
    metavar="TOKEN",
    help="Log in with an API token instead of a password; `-` reads it from stdin.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin (for scripts).")
@click.option("--name", "token_name", help="Name of the token created for this machine.")
@json_option
@pass_state
def login(
    state: State,
    url: str | None,
    username: str | None,
    token_value: str | None,
    password_stdin: bool,
    token_name: str | None,
) -> None:
    """Log in to a Rota server and remember it.

    Asks for your user name and password and stores the server's address and a new API token in
    $XDG_CONFIG_HOME/rota/config.json (~/.config/rota/config.json), readable only by you.

    \b
    Examples:
      rota login --url https://rota.example.org
      rota login --url http://127.0.0.1:8000 -u alice
      rota login --url https://rota.example.org --token rota_abcd1234_...
      echo "$ROTA_PASSWORD" | rota login -u ci-bot --password-stdin
    """
    out = state.out
    stored = config.read_file()
    server = config.normalize_url(url or os.environ.get("ROTA_URL") or stored.get("url") or "")
    if not server:
        server = config.normalize_url(click.prompt("Rota server URL", default=config.DEFAULT_URL, err=True))
    api = state.client(url=server, anonymous=True)
    with api:
        if token_value is not None:
            raw = sys.stdin.readline().strip() if token_value == "-" else token_value.strip()  # noqa: S105
            if not raw:
                raise click.BadParameter("the token is empty.", param_hint="'--token'")
            with (
                out.progress(f"Checking the token with {server}…"),
                RotaClient(server, raw, on_retry=state._on_retry) as authed,
            ):
                me = authed.me()
            issued: dict[str, Any] = {"token": raw, "id": None, "name": None}
            source = "token"
        else:
            user = username or click.prompt("User name", err=True)
            if password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = click.prompt("Password", hide_input=True, err=True)
            name = token_name or f"rota cli on {socket.gethostname()}"[:100]
            with out.progress(f"Logging in to {server}…"):
                issued = api.login(user, password, name=name)
                with RotaClient(server, issued["token"], on_retry=state._on_retry) as authed:
                    me = authed.me()
            source = "password"
    previous = stored if stored.get("token") and stored.get("url") == server else None
    path = config.save_login(
        url=server, token=issued["token"], username=me.get("username"), token_id=issued.get("id"), source=source
    )
    if previous and previous.get("token_source") == "password" and previous.get("token_id"):
        _revoke_quietly(server, previous["token"], int(previous["token_id"]))
    if state.json_mode:
        out.json({"url": server, "user": me, "token_id": issued.get("id"), "config": str(path)})
        return
    out.line(Text.assemble("Logged in to ", (server, "bold"), " as ", (me.get("username", "?"), "bold"), "."))
    out.note(f"Token saved in {path} (readable only by you).")
    if os.environ.get("ROTA_TOKEN"):
        out.warn("ROTA_TOKEN is set in your environment and overrides the saved token.")


def _revoke_quietly(url: str, token: str, token_id: int) -> None:
    """Revoke the token a previous `rota login` created (best effort: it may be gone already)."""
    try:
        with RotaClient(url, token, retries=0, timeout=5.0) as old:
            old.token_revoke(token_id)
    except RotaError:
        pass


@cli.command(context_settings=CONTEXT)
@click.option("--local", "local_only", is_flag=True, help="Only forget the token here; do not revoke it.")
@json_option
@pass_state
def logout(state: State, local_only: bool) -> None:
    """Revoke the saved token and remove it from this machine.

    The server address is kept, so the next `rota login` offers it.

    \b
    Examples:
      rota logout
      rota logout --local        (the server is gone: just forget the token)
    """
    out = state.out
    stored = config.read_file()
    token = stored.get("token")
    if not token:
        if state.json_mode:
            out.json({"logged_out": False, "revoked": False})
        else:
            out.line("Not logged in: no saved token.")
        if os.environ.get("ROTA_TOKEN"):
            out.hint("ROTA_TOKEN is set in your environment: unset it, or revoke it with `rota tokens revoke`.")
        return
    revoked = False
    if not local_only:
        url = config.normalize_url(stored.get("url") or "")
        with RotaClient(url, token, on_retry=state._on_retry) as api:
            try:
                token_id = stored.get("token_id") or _find_token_id(api, token)
                if token_id is not None:
                    api.token_revoke(int(token_id))
                    revoked = True
            except ApiError as exc:
                if exc.status != 401:  # 401: the token is already unusable, so forgetting it is enough
                    raise
            except NetworkError as exc:
                exc.message += " The token was kept; run `rota logout --local` to forget it without revoking it."
                raise
    config.forget_token()
    if state.json_mode:
        out.json({"logged_out": True, "revoked": revoked})
        return
    out.line("Logged out: the token was revoked and removed." if revoked else "Logged out: the token was removed.")
    if os.environ.get("ROTA_TOKEN"):
        out.warn("ROTA_TOKEN is still set in your environment.")


def _find_token_id(api: RotaClient, token: str) -> int | None:
    prefix = config.token_prefix(token)
    for row in api.tokens():
        if prefix and row.get("prefix") == prefix:
            return int(row["id"])
    return None


@cli.command(context_settings=CONTEXT)
@json_option
@pass_state
def whoami(state: State) -> None:
    """Show who you are logged in as, on which server, and with what token scope.

    \b
    Examples:
      rota whoami
      rota whoami --json | jq -r .username
    """
    settings = state.settings
    me = state.client().me()
    out = state.out
    if state.json_mode:
        out.json(me | {"url": settings.url, "token_source": settings.token_source})
        return
    source = {"env": "from ROTA_TOKEN", "file": f"from {settings.path}"}.get(settings.token_source or "", "")
    out.fields(
        [
            ("User", styled(me.get("username"), "bold")),
            ("Name", me.get("nickname") or "-"),
            ("Email", me.get("email") or "-"),
            ("Role", me.get("role") or "-"),
            ("Team", me.get("team") or "-"),
            ("Groups", ", ".join(me.get("groups") or []) or "-"),
            ("Admin", "yes" if me.get("is_admin") else "no"),
            ("Server", f"{settings.url}" + (" (from ROTA_URL)" if settings.url_source == "env" else "")),
            ("Token", f"scope {me.get('token_scope') or '?'} {source}".strip()),
        ]
    )


# ---- submit --------------------------------------------------------------------------------


class SubmitCommand(click.Command):
    """Parses ``SCRIPT [ARGS...] -- [OPTIONS]`` (HAI's order) as well as ``[OPTIONS] SCRIPT [ARGS...]``.

    Everything after the script belongs to the script, so the script's own ``--flags`` never
    clash with Rota's; a ``--`` after the script's arguments starts Rota's options.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        if "--" in args:
            cut = args.index("--")
            before, after = args[:cut], args[cut + 1 :]
            # Platform options, then the script and its arguments (or options on both sides of it).
            args = [*after, "--", *before] if before and not before[0].startswith("-") else after + before
        return super().parse_args(ctx, args)


def detect_kind(script: str, explicit: str | None) -> str:
    """python for ``*.py``, bash for ``*.sh``, executable for anything else that can be run."""
    if explicit:
        return explicit
    lower = script.lower()
    if lower.endswith(".py"):
        return "python"
    if lower.endswith((".sh", ".bash")):
        return "bash"
    path = Path(script).expanduser()
    if path.is_file() and not os.access(path, os.X_OK):
        try:
            first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        except OSError:
            first = ""
        if first.startswith("#!") and "python" in first:
            return "python"
        if first.startswith("#!") and ("bash" in first or first.rstrip().endswith("/sh")):
            return "bash"
        raise click.UsageError(
            f"Cannot tell how to run {script}: give --kind python|bash|executable (or make it executable)."
        )
    return "executable"


def locate(script: str, kind: str, workspace: str | None) -> tuple[str, str]:
    """The workspace (an absolute directory) and the entrypoint inside it.

    Without ``--workspace`` the workspace is the script's directory; a bare program name
    (``nvidia-smi``) runs in the current directory and is looked up on the cluster's PATH.
    """
    if workspace:
        ws = os.path.abspath(os.path.expanduser(workspace))
        target = os.path.expanduser(script)
        if os.path.isabs(target):
            rel = os.path.relpath(target, ws)
            return ws, (target if rel.startswith("..") else rel)
        return ws, target
    path = os.path.abspath(os.path.expanduser(script))
    if os.path.isfile(path):
        return os.path.dirname(path), os.path.basename(path)
    if kind == "executable" and "/" not in script:
        return os.getcwd(), script
    raise click.UsageError(
        f"No such file: {script}. (Give --workspace DIR when the script exists only on the cluster.)"
    )


def default_group(state: State, api: RotaClient) -> str:
    """``$ROTA_GROUP``, else the one node group you have quota in, else the only node group."""
    if os.environ.get("ROTA_GROUP"):
        return os.environ["ROTA_GROUP"]
    quota = api.quota()
    groups = sorted({row["group"] for row in quota.get("node", []) if row.get("quota", 0) > 0})
    if len(groups) == 1:
        return groups[0]
    if not groups:
        groups = sorted(g["name"] for g in api.node_groups())
        if len(groups) == 1:
            return groups[0]
    known = ", ".join(groups) or "none"
    raise click.UsageError(f"Choose a node group with -g/--group (yours: {known}).")


def submit_options(func: F) -> F:
    """The options of ``submit`` and its HAI-style twins ``python``, ``bash``, ``exec``."""
    options = [
        click.argument("script", metavar="SCRIPT"),
        click.argument("script_args", metavar="[ARGS]...", nargs=-1, type=click.UNPROCESSED),
        click.option("-n", "--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Nodes (ranks)."),
        click.option(
            "-g",
            "--group",
            metavar="GROUP",
            shell_complete=complete_group,
            help="Node group (default: $ROTA_GROUP, or the one group you have quota in).",
        ),
        click.option(
            "-p",
            "--priority",
            type=PRIORITY,
            help="Priority: a name (LOW … EXTREME_HIGH, AUTO) or its number. Default AUTO: "
            "the highest level you still have quota for.",
        ),
        click.option(
            "-i",
            "--image",
            "--environment",
            "image",
            metavar="IMAGE",
            shell_complete=complete_image,
            help="Environment (image) to run in (default: yours; see `rota images`).",
        ),
        click.option(
            "-e",
            "--env",
            "env",
            metavar="NAME=VALUE",
            multiple=True,
            help="Environment variable for the job (repeatable); `-e NAME` copies it from this shell.",
        ),
        click.option("--name", help="Job name (default: the script's name, made unique).", metavar="NAME"),
        click.option("-t", "--tag", "tags", multiple=True, metavar="TAG", help="Tag the job (repeatable)."),
        click.option(
            "--workspace",
            metavar="DIR",
            help="Working directory on the cluster (default: the script's directory).",
        ),
        click.option(
            "--watchdog",
            type=click.IntRange(min=60),
            metavar="SECONDS",
            help="Stop the job as hung after this long without output (at least 60).",
        ),
        click.option("--share", is_flag=True, help="Let your team see the job."),
        click.option(
            "-f", "--follow", is_flag=True, help="Then follow its log until it ends (exit code as `logs -f`)."
        ),
        click.option("-r", "--rank", type=click.IntRange(min=0), default=0, help="Rank to follow with -f."),
        click.option("--dry-run", is_flag=True, help="Print what would be submitted, and submit nothing."),
    ]
    func = json_option(func)
    for option in reversed(options):
        func = option(func)
    return func


def do_submit(state: State, fixed_kind: str | None, **o: Any) -> None:
    """Submit one job from the parsed options (shared by ``submit``, ``python``, ``bash``, ``exec``)."""
    out = state.out
    kind = detect_kind(o["script"], fixed_kind or o.get("kind"))
    workspace, entrypoint = locate(o["script"], kind, o["workspace"])
    env = parse_env(o["env"])
    body: dict[str, Any] = {
        "name": o["name"],
        "workspace": workspace,
        "entrypoint": entrypoint,
        "kind": kind,
        "parameters": list(o["script_args"]),
        "env_vars": env,
        "group": o["group"],
        "nodes": o["nodes"],
        "priority": o["priority"],
        "environment": o["image"],
        "tags": list(o["tags"]),
        "watchdog_seconds": o["watchdog"],
        "shared_with_team": o["share"] or None,
    }
    base_name = o["name"] or (Path(entrypoint).stem or "job")
    if o["dry_run"]:
        body["name"] = base_name
        if state.json_mode:
            out.json({k: v for k, v in body.items() if v is not None})
        else:
            out.note("Dry run: nothing was submitted. The request would be:")
            for key, value in body.items():
                if value is not None:
                    out.line(f"  {key}: {value}")
        return
    api = state.client()
    if not body["group"]:
        body["group"] = default_group(state, api)
    with out.progress("Submitting…"):
        job = _submit_with_unique_name(api, body, base_name, explicit=bool(o["name"]))
    if state.json_mode and not o["follow"]:
        out.json(job)
        return
    key = job["id"]
    if state.json_mode:
        out.json_line(job)
    else:
        nodes = f"{job.get('nodes')} node{'s' if job.get('nodes') != 1 else ''}"
        out.line(
            Text.assemble(
                "Submitted job ",
                (str(key), "bold"),
                f" ({job.get('name')}): {nodes} in {job.get('group')}, priority {job.get('priority_name')}, "
                f"environment {job.get('environment')}.",
            )
        )
        out.hint(f"  follow its log: rota logs {key} -f")
        out.hint(f"  see its status: rota status {key}")
        out.hint(f"  stop it:        rota stop {key}")
        if job.get("url"):
            out.hint(f"  in the portal:  {job['url']}")
        if out.terminal and not o["follow"]:
            first_look(state, api, key)
    if o["follow"]:
        code = follow_job(state, api, key, rank=o["rank"], tail_lines=None, cursor=None, through_suspend=False)
        click.get_current_context().exit(code)


def first_look(state: State, api: RotaClient, key: int, seconds: float = 2.0) -> None:
    """On a terminal, wait briefly for the scheduler's verdict and say it: running where, or why not."""
    out = state.out
    deadline = time.monotonic() + seconds
    detail: dict[str, Any] = {}
    with out.progress("Waiting for the scheduler…"):
        while time.monotonic() < deadline:
            detail = api.experiment(key)
            if detail.get("status") != "waiting" or detail.get("pending"):
                break
            time.sleep(0.25)
    status = detail.get("status")
    pending = detail.get("pending")
    if pending and pending.get("infeasible"):
        out.warn(f"job {key} cannot start as submitted: {pending.get('message')}")
    elif pending:
        out.note(f"Job {key} is waiting: {pending_text(pending)}")
    elif status in {"starting", "running"}:
        ranks = ((detail.get("attempts") or [{}])[-1]).get("ranks") or []
        where = ", ".join(str(r.get("node")) for r in ranks)
        out.note(f"Job {key} is {status}" + (f" on {where}." if where else "."))


def _submit_with_unique_name(api: RotaClient, body: dict[str, Any], base: str, *, explicit: bool) -> dict[str, Any]:
    """Submit; when the default name is taken by an unfinished job, try ``name-2``, ``name-3`` …"""
    for n in range(1, 100):
        body["name"] = base if n == 1 else f"{base}-{n}"
        try:
            return api.submit(**body)
        except ApiError as exc:
            if explicit or exc.status != 409 or "name" not in exc.fields:
                raise
    raise ApiError(f"Too many unfinished jobs named {base}-N: give --name.", status=409, code="conflict")


SUBMIT_HELP = """Submit SCRIPT to run on the cluster.

SCRIPT's directory is the job's working directory (its workspace); it must be visible to the
cluster at the same path. Arguments after SCRIPT go to the script; Rota's options go after `--`
(or before SCRIPT). A *.py runs with Python, a *.sh with bash, anything else as an executable
(--kind overrides). Prints the job's id and how to watch it.

\b
Examples:
  rota submit train.py
  rota submit train.py --epochs 10 --lr 3e-4 -- -n 2 -g training -p HIGH
  rota submit train.py -- -n 4 -i pytorch-2.4 -e NCCL_DEBUG=INFO -e WANDB_API_KEY --name big-run
  rota submit run.sh data/ -- -p LOW -f          (submit, then follow its log)
  rota submit ./bin/bench -- -g training --kind executable
  rota submit -n 2 -g training train.py --epochs 10
"""


@cli.command(cls=SubmitCommand, help=SUBMIT_HELP, context_settings={**CONTEXT, "allow_interspersed_args": False})
@submit_options
@click.option("-k", "--kind", type=click.Choice(KINDS), help="How to run SCRIPT (default: from its name).")
@pass_state
def submit(state: State, **options: Any) -> None:
    do_submit(state, None, **options)


def _hai_alias(name: str, kind: str, what: str) -> None:
    @cli.command(
        name,
        cls=SubmitCommand,
        hidden=True,
        context_settings={**CONTEXT, "allow_interspersed_args": False},
        help=f"Submit {what} (HAI style; the same as `rota submit --kind {kind}`).\n\n"
        f"\b\nExamples:\n  rota {name} FILE ARGS... -- -n 2 -g training -p HIGH",
    )
    @submit_options
    @pass_state
    def alias(state: State, **options: Any) -> None:
        do_submit(state, kind, **options)


_hai_alias("python", "python", "a Python script")
_hai_alias("bash", "bash", "a bash script")
_hai_alias("exec", "executable", "an executable")


# ---- list and status -----------------------------------------------------------------------


def priority_label(value: Any) -> str:
    if isinstance(value, int):
        return PRIORITY_NAMES.get(value, str(value))
    return str(value) if value is not None else "-"


def pending_text(pending: dict[str, Any] | None) -> str:
    if not pending:
        return ""
    text = pending.get("message") or pending.get("code") or ""
    if pending.get("queue_position"):
        text += f" (#{pending['queue_position']} in queue)"
    return text


@cli.command("list", context_settings=CONTEXT)
@click.option(
    "-s",
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES + STATUS_GROUPS, case_sensitive=False),
    help="Only jobs in this status, or group of statuses: pending, active, finished (repeatable).",
)
@click.option("--name", help="Name contains this.")
@click.option("-t", "--tag", "tags", multiple=True, help="Has this tag (repeatable: all must match).")
@click.option("--starred", is_flag=True, help="Only starred jobs.")
@click.option("-g", "--group", shell_complete=complete_group, help="Only this node group.")
@click.option("-p", "--priority", type=PRIORITY, help="Only this priority.")
@click.option("--owner", help="Only jobs of this user (jobs shared with you, or all for admins).")
@click.option(
    "--since", callback=lambda c, p, v: parse_when(v, p, c) if v else None, help="Created since (2024-05-01, 2h, 7d)."
)
@click.option("--until", callback=lambda c, p, v: parse_when(v, p, c) if v else None, help="Created before.")
@click.option("--sort", type=click.Choice(ORDERINGS), default="-id", show_default=True, help="Order.")
@click.option("--page", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--page-size", type=click.IntRange(1, 200), default=25, show_default=True)
@click.option("--all", "all_pages", is_flag=True, help="Every page, not just one.")
@click.option("-q", "--quiet", is_flag=True, help="Print only job ids, one per line.")
@json_option
@pass_state
def list_(
    state: State,
    statuses: tuple[str, ...],
    name: str | None,
    tags: tuple[str, ...],
    starred: bool,
    group: str | None,
    priority: str | None,
    owner: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    page: int,
    page_size: int,
    all_pages: bool,
    quiet: bool,
) -> None:
    """List your jobs (and jobs shared with you), newest first.

    \b
    Examples:
      rota list
      rota list -s active                     (starting, running, suspending, stopping)
      rota list -s pending -g training        (waiting, suspended, held)
      rota list -t baseline -t lr-sweep --since 7d
      rota list --page 2 --page-size 50
      rota list -s running -q | xargs rota stop
    """
    api = state.client()
    filters: dict[str, Any] = {
        "status": [s.lower() for s in statuses] or None,
        "name": name,
        "tag": ",".join(tags) or None,
        "starred": True if starred else None,
        "group": group,
        "priority": priority,
        "owner": owner,
        "created_after": since,
        "created_before": until,
        "ordering": sort,
        "page_size": page_size,
    }
    out = state.out
    if all_pages:
        with out.progress("Fetching jobs…"):
            rows = list(api.pages("experiments/", **filters))
        count, first = len(rows), 1
        has_next = False
    else:
        body = api.experiments(page=page, **filters)
        rows, count = body.get("results", []), body.get("count", 0)
        first = (page - 1) * page_size + 1
        has_next = bool(body.get("next"))
    if state.json_mode:
        out.json({"count": count, "page": None if all_pages else page, "page_size": page_size, "results": rows})
        return
    if quiet:
        for row in rows:
            out.line(str(row["id"]))
        return
    owners = {row.get("owner") for row in rows}
    show_owner = len(owners) > 1 or bool(owner)
    headers = ["ID", "NAME", *(["OWNER"] if show_owner else []), "STATUS", "NODES", "GROUP", "PRIORITY", "CREATED"]
    headers += ["TAGS", "INFO"]
    table_rows = []
    for row in rows:
        info = pending_text(row.get("pending")) if row.get("status") in {"waiting", "suspended", "held"} else ""
        if row.get("restart_count"):
            info = (f"attempt {row['restart_count'] + 1}; " + info).rstrip("; ")
        star = "★ " if row.get("starred") else ""
        table_rows.append(
            [
                str(row["id"]),
                star + str(row["name"]),
                *([row.get("owner")] if show_owner else []),
                status_cell(row.get("status")),
                str(row.get("nodes")),
                row.get("group"),
                priority_label(row.get("priority")),
                when_short(row.get("created_at")),
                ",".join(row.get("tags") or []),
                info,
            ]
        )
    out.table(headers, table_rows, right=["ID", "NODES"], clip=["INFO"], empty="No jobs match.")
    if rows and not all_pages:
        last = first + len(rows) - 1
        out.note(f"Jobs {first}–{last} of {count}." + (f" Next page: rota list --page {page + 1}" if has_next else ""))


@cli.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@json_option
@pass_state
def status(state: State, job: str) -> None:
    """Show a job: its state, attempts, ranks and nodes, and why it waits.

    For a waiting job it says why (quota, priority, no free nodes …), its place in the queue and
    which jobs hold the nodes it needs.

    \b
    Examples:
      rota status 42
      rota status train
      rota status train --json | jq '.attempts[-1].ranks'
    """
    detail = state.client().experiment(job)
    out = state.out
    if state.json_mode:
        out.json(detail)
        return
    print_detail(out, detail)


def print_detail(out: Output, d: dict[str, Any]) -> None:
    """A job's detail, as ``rota status`` shows it."""
    title = Text.assemble(("Job ", "bold"), (str(d["id"]), "bold"), "  ", (str(d["name"]), "bold"), "  ")
    title.append_text(status_cell(d.get("status")))
    out.line(title)
    effective = d.get("effective_priority")
    prio = d.get("priority_name") or priority_label(d.get("priority"))
    if effective is not None and PRIORITY_NAMES.get(effective) not in (None, prio):
        prio += f" (running as {priority_label(effective)})"
    command = " ".join(shlex.quote(p) for p in [d.get("entrypoint") or "", *(d.get("parameters") or [])])
    attempts = d.get("attempts") or []
    pairs: list[tuple[str, Any]] = [
        ("Owner", d.get("owner")),
        ("Group", f"{d.get('group')}, {d.get('nodes')} node{'s' if d.get('nodes') != 1 else ''}"),
        ("Priority", prio),
        ("Environment", d.get("environment") or "-"),
        ("Run", f"{d.get('kind')}: {command}"),
        ("Workspace", d.get("workspace")),
    ]
    if d.get("env_vars"):
        pairs.append(("Env", " ".join(f"{k}={shlex.quote(str(v))}" for k, v in d["env_vars"].items())))
    if d.get("tags") or d.get("starred"):
        pairs.append(("Tags", ("★ " if d.get("starred") else "") + ", ".join(d.get("tags") or [])))
    pairs += [
        ("Created", when(d.get("created_at"))),
        ("Started", when(d.get("started_at"))),
        ("Finished", when(d.get("finished_at"))),
        (
            "Runtime",
            f"{duration(d.get('runtime_seconds'))} over {len(attempts)} attempt{'s' if len(attempts) != 1 else ''}",
        ),
    ]
    if d.get("whole_life_state"):
        pairs.append(("Whole-life state", d["whole_life_state"]))
    pending = d.get("pending")
    if pending:
        text = styled(pending.get("message") or "", "yellow")
        text.append(f"  [{pending.get('code')}]", style="dim")
        pairs.append(("Waiting" if not pending.get("infeasible") else "Cannot run", text))
        if pending.get("queue_position"):
            pairs.append(("Queue position", pending["queue_position"]))
        holders = pending.get("holders") or []
        if holders:
            pairs.append(
                (
                    "Held up by",
                    "; ".join(
                        f"job {h.get('chain_id') or '?'} of {h.get('user')} ({h.get('nodes')} nodes, "
                        f"{priority_label(h.get('priority'))})"
                        for h in holders
                    ),
                )
            )
    if d.get("held"):
        pairs.append(("Held", "suspended by a person: `rota resume` starts it again"))
    out.fields(pairs)
    if attempts:
        out.line()
        rows = []
        for a in attempts:
            reason = a.get("failure_message") or a.get("stop_reason") or a.get("suspend_reason") or ""
            reason = REASONS.get(reason, reason) if reason != "completed" else ""
            rows.append(
                [
                    str(int(a.get("index") or 0) + 1),
                    str(a.get("id")),
                    status_cell(a.get("worker_status")),
                    when(a.get("started_at")),
                    when(a.get("finished_at")),
                    duration(a.get("runtime_seconds")),
                    "-" if a.get("exit_code") is None else str(a.get("exit_code")),
                    reason,
                ]
            )
        out.table(
            ["ATTEMPT", "ID", "STATUS", "STARTED", "FINISHED", "RUNTIME", "EXIT", "REASON"],
            rows,
            title="Attempts",
            right=["ATTEMPT", "ID", "EXIT"],
        )
        ranks = attempts[-1].get("ranks") or []
        if ranks:
            out.line()
            out.table(
                ["RANK", "NODE", "STATUS", "EXIT", "GPUS", "MESSAGE"],
                [
                    [
                        str(r.get("rank")),
                        r.get("node"),
                        status_cell(r.get("status")),
                        "-" if r.get("exit_code") is None else str(r.get("exit_code")),
                        ",".join(str(g) for g in r.get("gpus") or []) or "-",
                        r.get("message") or "",
                    ]
                    for r in ranks
                ],
                title=f"Ranks of attempt {int(attempts[-1].get('index') or 0) + 1}",
                right=["RANK", "EXIT"],
            )


# ---- logs ----------------------------------------------------------------------------------

MAX_TAIL = 1024 * 1024


def tail_page(api: RotaClient, key: str, rank: int, lines: int) -> tuple[str, dict[str, Any]]:
    """The last ``lines`` lines of the latest attempt, and the page (whose cursor continues from there)."""
    nbytes = max(4096, lines * 200)
    while True:
        page = api.logs(key, rank=rank, tail=min(nbytes, MAX_TAIL))
        data = page.get("data") or ""
        got = data.splitlines(keepends=True)
        if len(got) > lines or len(data.encode("utf-8")) < nbytes or nbytes >= MAX_TAIL:
            return ("".join(got[-lines:]) if lines else ""), page
        nbytes *= 4


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


def _job_end_message(api: RotaClient, key: str, status: str) -> str:
    """A one-line summary of how the job ended (why it failed, with the failing rank's exit code)."""
    try:
        detail = api.experiment(key)
    except RotaError:
        return f"Job {key} {status}."
    attempt = (detail.get("attempts") or [{}])[-1]
    bits = []
    if attempt.get("failure_message"):
        bits.append(str(attempt["failure_message"]))
    else:
        if attempt.get("exit_code") not in (None, 0):
            bits.append(f"exit code {attempt['exit_code']}")
        failed = [r for r in attempt.get("ranks") or [] if r.get("status") == "failed"]
        if failed:
            bits.append("rank " + ", ".join(str(r.get("rank")) for r in failed))
        reason = attempt.get("stop_reason") if status in {"stopped", "canceled"} else attempt.get("suspend_reason")
        if reason and status != "succeeded":
            bits.append(REASONS.get(str(reason), str(reason)))
    suffix = f" ({'; '.join(bits)})" if bits else ""
    if status == "held":
        return f"Job {detail['id']} is held (suspended){suffix}; `rota resume {detail['id']}` starts it again."
    if status == "suspended":
        return f"Job {detail['id']} was suspended{suffix} and waits to resume."
    return f"Job {detail['id']} {status}{suffix}."


def follow_job(
    state: State,
    api: RotaClient,
    key: str | int,
    *,
    rank: int,
    tail_lines: int | None,
    cursor: str | None,
    through_suspend: bool,
    follow: bool = True,
) -> int:
    """Print a rank's log (and follow it); return the exit code for how the job ended."""
    out = state.out
    key = str(key)
    if tail_lines is not None and cursor is None:
        text, page = tail_page(api, key, rank, tail_lines)
        cursor = page.get("cursor")
        if state.json_mode:
            out.json_line(page | {"data": text})
        else:
            out.raw(text)
        if not follow:
            return ExitCode.OK
        if page.get("finished"):
            out.note(_job_end_message(api, key, page.get("status", "")))
            return JOB_EXIT_CODES.get(page.get("status", ""), ExitCode.OK)

    def stop(page: dict[str, Any]) -> bool:
        return not through_suspend and page.get("status") in SUSPENDED_STATUSES

    last_status: str | None = None
    page: dict[str, Any] = {}
    try:
        for page in api.follow_logs(key, rank=rank, cursor=cursor, follow=follow, stop=stop, limit=MAX_TAIL // 4):
            cursor = page.get("cursor") or cursor
            if state.json_mode:
                out.json_line(page)
            elif page.get("data"):
                out.raw(page["data"])
            status = page.get("status")
            if follow and status != last_status and not state.json_mode and status not in TERMINAL_STATUSES:
                if status in {"waiting", "suspended", "held"} and page.get("eof"):
                    note = f"[rota] job {page.get('chain_id', key)} is {status}"
                    try:
                        pending = pending_text(api.experiment(key).get("pending"))
                    except RotaError:
                        pending = ""
                    out.note(note + (f": {pending}" if pending else "") + ("" if status == "held" else "; waiting…"))
                elif last_status is not None:
                    out.note(f"[rota] job {page.get('chain_id', key)} is {status}")
            last_status = status
    except NetworkError as exc:
        if follow and cursor:
            exc.message += f"\nContinue with: rota logs {key} -r {rank} -f --cursor {cursor}"
        raise
    except KeyboardInterrupt:
        out.note(f"\nStopped following. The job goes on; `rota stop {key}` stops it.")
        return ExitCode.INTERRUPTED
    if not follow:
        return ExitCode.OK
    status = page.get("status") or ""
    code = JOB_EXIT_CODES.get(status, ExitCode.OK)
    if page.get("finished") or status in SUSPENDED_STATUSES:
        out.note(_job_end_message(api, key, status))
    return code


def _exit_code_help() -> str:
    lines = ["\b", "Exit codes:"]
    lines += [f"  {code:<4} {text}" for code, text in EXIT_CODE_TABLE]
    return "\n".join(lines)


LOGS_HELP = f"""Print a job's log (rank 0 unless -r), from the start across every attempt.

With -f it keeps printing new output live until the job ends, and the exit code tells how it
ended. A job that is suspended ends the follow with exit code 3 (add --through-suspend to wait
for it to resume); a job still waiting to start is waited for.

\b
Examples:
  rota logs 42
  rota logs train -f
  rota logs train -r 1 --tail 100 -f
  rota logs train -f --json | jq -r .data
  rota logs train -f; echo "the job ended with $?"

{_exit_code_help()}
"""


@cli.command(help=LOGS_HELP, context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.option("-r", "--rank", type=click.IntRange(min=0), default=0, show_default=True, help="Which rank's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the job ends.")
@click.option("--tail", "tail_lines", type=click.IntRange(min=0), metavar="N", help="Start with the last N lines.")
@click.option("--through-suspend", is_flag=True, help="With -f: keep following when the job is suspended.")
@click.option("--cursor", metavar="ATTEMPT:OFFSET", help="Continue from this position (printed on errors).")
@json_option
@pass_state
def logs(
    state: State, job: str, rank: int, follow: bool, tail_lines: int | None, through_suspend: bool, cursor: str | None
) -> None:
    api = state.client()
    code = follow_job(
        state, api, job, rank=rank, tail_lines=tail_lines, cursor=cursor, through_suspend=through_suspend, follow=follow
    )
    click.get_current_context().exit(int(code))


# ---- actions -------------------------------------------------------------------------------

SETTLED = {
    "stop": lambda s: s in TERMINAL_STATUSES,
    "suspend": lambda s: s in {"held", "suspended", *TERMINAL_STATUSES},
    "resume": lambda s: s in {"running", *TERMINAL_STATUSES},
}
DONE_WORD = {"stop": "stopped", "suspend": "suspended (held)", "resume": "running again"}


def run_action(state: State, action: str, jobs: Sequence[str], wait: bool, timeout: float) -> None:
    """``stop``/``suspend``/``resume`` each job; with ``wait``, until it has settled."""
    api = state.client()
    out = state.out
    results: list[dict[str, Any]] = []
    first_error: RotaError | None = None
    for job in jobs:
        try:
            detail = api.action(job, action)
            if wait and not SETTLED[action](detail.get("status")):
                detail = wait_for(state, api, str(detail["id"]), SETTLED[action], f"{action}", timeout)
        except ApiError as exc:
            if len(jobs) == 1:
                raise
            out.error(f"{job}: {exc.message}")
            first_error = first_error or exc
            continue
        results.append(detail)
        if not state.json_mode:
            line = Text.assemble(f"Job {detail['id']} ({detail['name']}): ")
            line.append_text(status_cell(detail.get("status")))
            out.line(line)
    if state.json_mode:
        out.json(results[0] if len(jobs) == 1 else results)
    if first_error is not None:
        raise click.exceptions.Exit(int(first_error.exit_code))


def wait_for(
    state: State, api: RotaClient, key: str, done: Callable[[str], bool], verb: str, timeout: float
) -> dict[str, Any]:
    """Poll a job until ``done(status)``, with a spinner; give up (with an error) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    with state.out.progress(f"Waiting for job {key} to {verb}…") as spinner:
        while True:
            detail = api.experiment(key)
            if done(detail.get("status")):
                return detail
            spinner.update(f"Waiting for job {key} to {verb}… ({detail.get('status')})")
            if time.monotonic() > deadline:
                raise RotaError(f"Job {key} is still {detail.get('status')} after {timeout:.0f} s.")
            time.sleep(0.3)


def _action_command(action: str, summary: str, details: str, examples: str) -> None:
    @cli.command(action, context_settings=CONTEXT, help=f"{summary}\n\n{details}\n\n\b\nExamples:\n{examples}")
    @click.argument("jobs", metavar="JOB...", nargs=-1, required=True, shell_complete=complete_job)
    @click.option("-w", "--wait", is_flag=True, help=f"Wait until the job is {DONE_WORD[action]}.")
    @click.option("--timeout", type=float, default=300.0, show_default=True, help="Give up waiting after SECONDS.")
    @json_option
    @pass_state
    def command(state: State, jobs: tuple[str, ...], wait: bool, timeout: float) -> None:
        run_action(state, action, jobs, wait, timeout)


_action_command(
    "stop",
    "Stop jobs.",
    "A waiting job is canceled at once; a running one gets SIGTERM, then SIGKILL after the grace period.",
    "  rota stop 42\n  rota stop train --wait\n  rota stop 41 42 43",
)
_action_command(
    "suspend",
    "Suspend jobs: they checkpoint, free their nodes, and wait (held) until resumed.",
    "The job's processes get the suspend notice (SIGTERM; rota.job.receive_suspend_command() turns True) and "
    "have the grace period to save a checkpoint.",
    "  rota suspend train\n  rota suspend train --wait",
)
_action_command(
    "resume",
    "Resume held jobs (or start a new attempt of a stopped or failed one).",
    "The job is queued again and starts when its quota and free nodes allow; its whole-life state is kept.",
    "  rota resume train\n  rota resume train --wait",
)


@cli.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.argument("tags", nargs=-1, required=True, metavar="TAG...")
@click.option("-d", "--remove", is_flag=True, help="Remove the tags instead.")
@json_option
@pass_state
def tag(state: State, job: str, tags: tuple[str, ...], remove: bool) -> None:
    """Tag a job (or remove tags with -d). Tags are letters, digits, `_ . : -`.

    \b
    Examples:
      rota tag train baseline
      rota tag 42 lr-sweep v2
      rota tag 42 v2 --remove
    """
    api = state.client()
    detail: dict[str, Any] = {}
    for name in tags:
        detail = api.untag(job, name) if remove else api.tag(job, name)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}) tags: {', '.join(detail.get('tags') or []) or '(none)'}")


@cli.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.option("-d", "--remove", is_flag=True, help="Unstar it instead.")
@json_option
@pass_state
def star(state: State, job: str, remove: bool) -> None:
    """Star a job (starred jobs: `rota list --starred`).

    \b
    Examples:
      rota star train
      rota star train --remove
    """
    detail = state.client().star(job, not remove)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}) is {'starred' if detail.get('starred') else 'not starred'}.")


@cli.command(context_settings=CONTEXT)
@click.argument("job", shell_complete=complete_job)
@click.argument("level", type=PRIORITY, required=False)
@click.option("--rank", "custom_rank", type=float, help="Order among your own jobs of equal priority (lower first).")
@json_option
@pass_state
def priority(state: State, job: str, level: str | None, custom_rank: float | None) -> None:
    """Change a job's priority (and/or its rank among your jobs).

    \b
    Examples:
      rota priority train HIGH
      rota priority 42 10
      rota priority 42 --rank 1
    """
    if level is None and custom_rank is None:
        raise click.UsageError("Give a priority, --rank, or both.")
    detail = state.client().set_priority(job, priority=level, custom_rank=custom_rank)
    if state.json_mode:
        state.out.json(detail)
        return
    state.out.line(f"Job {detail['id']} ({detail['name']}): priority {priority_label(detail.get('priority'))}.")


# ---- cluster -------------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.option("-g", "--group", shell_complete=complete_group, help="Only this node group.")
@click.option("--state", "states", multiple=True, help="Only nodes in this state (repeatable).")
@json_option
@pass_state
def nodes(state: State, group: str | None, states: tuple[str, ...]) -> None:
    """List the cluster's nodes: group, state, GPUs, CPU, memory and room.

    \b
    Examples:
      rota nodes
      rota nodes -g training
      rota nodes --json | jq -r '.[] | select(.state == "ready") | .name'
    """
    api = state.client()
    with state.out.progress("Fetching nodes…"):
        rows = api.nodes(group=group, state=list(states) or None)
    out = state.out
    if state.json_mode:
        out.json(rows)
        return
    out.table(
        ["NAME", "GROUP", "STATE", "GPUS", "GPU MODEL", "CPU", "MEMORY", "ROOM", "REASON"],
        [
            [
                n.get("name"),
                n.get("group"),
                status_cell(n.get("state")),
                str(n.get("gpu_count")),
                n.get("gpu_model") or "-",
                str(n.get("cpu") or "-"),
                size(n.get("memory_bytes")),
                n.get("room") or "-",
                n.get("state_reason") or "",
            ]
            for n in rows
        ],
        right=["GPUS", "CPU", "MEMORY"],
        empty="No nodes match.",
    )
    if rows:
        by_group: dict[str, list[dict[str, Any]]] = {}
        for n in rows:
            by_group.setdefault(n.get("group") or "-", []).append(n)
        summary = "; ".join(
            f"{g}: {sum(1 for n in ns if n.get('state') == 'ready')}/{len(ns)} ready"
            for g, ns in sorted(by_group.items())
        )
        out.note(summary)


@cli.command(context_settings=CONTEXT)
@json_option
@pass_state
def quota(state: State) -> None:
    """Show your quota: nodes you may hold per node group and priority, and what you use now.

    AUTO jobs run at the highest priority that still has quota left.

    \b
    Examples:
      rota quota
      rota quota --json | jq '.node[] | select(.group == "training")'
    """
    body = state.client().quota()
    out = state.out
    if state.json_mode:
        out.json(body)
        return
    rows = []
    for row in body.get("node", []):
        used, total = int(row.get("used") or 0), int(row.get("quota") or 0)
        width = 10
        filled = 0 if total <= 0 else min(width, round(width * used / total))
        bar = styled("█" * filled, "red" if used >= total and total else "green")
        bar.append("░" * (width - filled), style="dim")
        rows.append(
            [
                row.get("group"),
                row.get("priority_name") or priority_label(row.get("priority")),
                f"{used}/{total}",
                *([bar] if out.terminal else []),
                "-" if row.get("limit") is None else str(row.get("limit")),
            ]
        )
    out.table(
        ["GROUP", "PRIORITY", "USED/QUOTA", *([""] if out.terminal else []), "LIMIT"],
        rows,
        title="Nodes",
        right=["USED/QUOTA", "LIMIT"],
        empty="You have no node quota yet: ask an admin.",
    )
    jupyter = body.get("jupyter") or []
    if jupyter:
        out.line()
        out.table(
            ["GROUP", "CONTAINERS", "CPU", "MEMORY"],
            [
                [j.get("group"), str(j.get("containers")), str(j.get("cpu")), f"{j.get('memory_gib')} GiB"]
                for j in jupyter
            ],
            title="Dev containers",
            right=["CONTAINERS", "CPU", "MEMORY"],
        )
    envs = body.get("environments") or []
    default = body.get("default_environment")
    out.line()
    out.fields([("Environments", ", ".join(envs) or "-"), ("Default", default or "-")])


@cli.command(context_settings=CONTEXT)
@json_option
@pass_state
def images(state: State) -> None:
    """List the environments (images) you may run jobs in; use one with `submit -i NAME`.

    \b
    Examples:
      rota images
    """
    rows = state.client().environments()
    out = state.out
    if state.json_mode:
        out.json(rows)
        return
    out.table(
        ["NAME", "IMAGE", "DESCRIPTION"],
        [
            [("* " if i == 0 else "  ") + str(e.get("name")), e.get("image"), e.get("description") or ""]
            for i, e in enumerate(rows)
        ],
        empty="No environments: ask an admin for one.",
    )
    if rows:
        out.note("* your default")


# ---- tokens --------------------------------------------------------------------------------


@cli.group(context_settings=CONTEXT)
def tokens() -> None:
    """Manage your API tokens (for scripts, CI and other machines).

    \b
    Examples:
      rota tokens list
      rota tokens create ci --scope read_only --expires 30d
      rota tokens revoke 7
    """


@tokens.command("list", context_settings=CONTEXT)
@click.option("-a", "--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@json_option
@pass_state
def tokens_list(state: State, include_revoked: bool) -> None:
    """List your tokens; * marks the one this command uses.

    \b
    Examples:
      rota tokens list
      rota tokens list --all
    """
    api = state.client()
    rows = api.tokens(include_revoked=include_revoked)
    out = state.out
    if state.json_mode:
        out.json(rows)
        return
    current = config.token_prefix(state.settings.token or "")
    out.table(
        ["ID", "NAME", "PREFIX", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
        [
            [
                ("* " if t.get("prefix") == current else "  ") + str(t.get("id")),
                t.get("name"),
                t.get("prefix"),
                t.get("scope"),
                when(t.get("created_at")),
                when(t.get("expires_at")),
                when(t.get("last_used_at")),
                when(t.get("revoked_at")),
            ]
            for t in rows
        ],
        right=["ID"],
        empty="No tokens.",
    )


@tokens.command("create", context_settings=CONTEXT)
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["all", "except_jupyter", "read_only"]),
    default="all",
    show_default=True,
    help="What the token may do.",
)
@click.option("--expires", metavar="WHEN", help="Expiry: a date (2025-01-31) or a duration (30d, 12h).")
@json_option
@pass_state
def tokens_create(state: State, name: str, scope: str, expires: str | None) -> None:
    """Create a token. Its secret is shown only this once.

    \b
    Examples:
      rota tokens create laptop
      rota tokens create ci --scope read_only --expires 30d
      ROTA_TOKEN=$(rota tokens create ci --json | jq -r .token)
    """
    expires_at = parse_future(expires) if expires else None
    issued = state.client().token_create(name, scope=scope, expires_at=expires_at)
    out = state.out
    if state.json_mode:
        out.json(issued)
        return
    out.line(issued["token"])
    out.note(
        f"Token {issued.get('id')} ({issued.get('name')}, scope {issued.get('scope')}"
        + (f", expires {when(issued.get('expires_at'))}" if issued.get("expires_at") else "")
        + "). Copy it now: it is not shown again."
    )


@tokens.command("revoke", context_settings=CONTEXT)
@click.argument("token_ids", metavar="ID...", nargs=-1, required=True)
@json_option
@pass_state
def tokens_revoke(state: State, token_ids: tuple[str, ...]) -> None:
    """Revoke tokens by id (or by prefix, as `rota tokens list` shows them).

    \b
    Examples:
      rota tokens revoke 7
      rota tokens revoke 7 8 k3v9x2aa
    """
    api = state.client()
    known: list[dict[str, Any]] | None = None
    revoked: list[int] = []
    current = config.token_prefix(state.settings.token or "")
    hit_current = False
    for ident in token_ids:
        if ident.isdigit():
            token_id = int(ident)
        else:
            known = known if known is not None else api.tokens()
            match = [t for t in known if t.get("prefix") == ident]
            if not match:
                raise ApiError(f"No active token with prefix {ident!r}.", status=404, code="not_found")
            token_id = int(match[0]["id"])
        if current and not hit_current:
            known = known if known is not None else api.tokens(include_revoked=True)
            hit_current = any(t.get("id") == token_id and t.get("prefix") == current for t in known)
        api.token_revoke(token_id)
        revoked.append(token_id)
    out = state.out
    if hit_current and state.settings.token_source == "file":  # noqa: S105
        config.forget_token()
    if state.json_mode:
        out.json({"revoked": revoked})
        return
    out.line("Revoked " + ", ".join(f"token {i}" for i in revoked) + ".")
    if hit_current:
        out.warn("That was the token this command uses: log in again with `rota login`.")


# ---- completion ----------------------------------------------------------------------------


@cli.command(context_settings=CONTEXT)
@click.argument("shell", required=False, type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str | None) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Completes commands, options, and (from the server) job names, node groups and images.

    \b
    Examples:
      eval "$(rota completion bash)"                        (in ~/.bashrc)
      eval "$(rota completion zsh)"                         (in ~/.zshrc)
      rota completion fish > ~/.config/fish/completions/rota.fish
    """
    from click.shell_completion import get_completion_class

    shell = shell or Path(os.environ.get("SHELL", "bash")).name
    cls = get_completion_class(shell)
    if cls is None:
        raise click.UsageError(f"No completion for {shell!r}: choose bash, zsh or fish.")
    click.echo(cls(cli, {}, "rota", "_ROTA_COMPLETE").source())


def main() -> None:
    """Console entry point (``rota``)."""
    cli.main(prog_name="rota")


if __name__ == "__main__":  # pragma: no cover
    main()
