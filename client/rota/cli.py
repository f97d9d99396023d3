"""The ``rota`` command: a thin layer of click commands over :class:`rota.api.RotaClient`.

The commands live in :mod:`rota.commands` by subject (``account``, ``jobs``, ``logs``,
``cluster``); this module assembles them into one group. Each command parses its options, calls
the API client, and hands the answer to :class:`rota.output.Output`. Errors are
:mod:`rota.errors` exceptions, turned into a message on stderr (and a JSON error object on
stdout with ``--json``) and an exit code in one place, :meth:`RotaGroup.main`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rota import __version__
from rota.commands import account, cluster, containers, jobs, logs
from rota.commands.common import CONTEXT, State, current_state, reset_state
from rota.errors import ApiError, ExitCode, RotaError

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
        state = reset_state()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name or "rota", complete_var, standalone_mode=False, **extra)
        except RotaError as exc:
            code = report_error(state, exc)
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
    ctx.obj = current_state()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for _module in (account, jobs, logs, cluster, containers):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


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
