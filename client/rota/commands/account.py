"""``rota login``, ``logout``, ``whoami`` and ``tokens``."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import click
from rich.text import Text

from rota import config
from rota.api import RotaClient
from rota.commands.common import (
    CONTEXT,
    State,
    json_option,
    parse_future,
    pass_state,
)
from rota.errors import ApiError, NetworkError, RotaError
from rota.output import styled, when


@click.command(context_settings=CONTEXT)
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
                RotaClient(server, raw, on_retry=state.on_retry) as authed,
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
                with RotaClient(server, issued["token"], on_retry=state.on_retry) as authed:
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


@click.command(context_settings=CONTEXT)
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
        with RotaClient(url, token, on_retry=state.on_retry) as api:
            try:
                token_id = stored.get("token_id") or _find_token_id(api, token)
                if token_id is not None:
                    api.token_revoke(int(token_id))
                    revoked = True
            except ApiError as exc:
                if exc.status == 403:  # e.g. a read-only token may not revoke itself
                    out.warn(
                        f"the server did not let this token revoke itself ({exc.message}); it was removed from "
                        "this machine, but revoke it in the portal or with `rota tokens revoke` using another token."
                    )
                elif exc.status != 401:  # 401: the token is already unusable, so forgetting it is enough
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


@click.command(context_settings=CONTEXT)
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


# ---- tokens --------------------------------------------------------------------------------


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def tokens(ctx: click.Context) -> None:
    """Manage your API tokens (for scripts, CI and other machines).

    \b
    Examples:
      rota tokens list
      rota tokens create ci --scope read_only --expires 30d
      rota tokens revoke 7
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


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


COMMANDS = [login, logout, whoami, tokens]
