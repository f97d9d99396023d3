"""Development containers: ``rota containers list|create|start|stop|restart|delete|open|logs|ssh``."""

from __future__ import annotations

import time
import webbrowser
from typing import Any
from urllib.parse import quote

import click

from rota.commands.common import CONTEXT, State, complete_group, json_option, pass_state
from rota.errors import RotaError
from rota.output import status_cell, when_short


def _path(name: str) -> str:
    return f"containers/{quote(name, safe='')}/"


def _quota_text(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        q = r.get("quota") or {}
        parts.append(
            f"{r.get('group')}: {r.get('containers')}/{q.get('containers')} containers, "
            f"{r.get('cpu')}/{q.get('cpu')} CPUs, {r.get('memory_gib')}/{q.get('memory_gib')} GiB"
            + (f", {r.get('gpus')}/{q.get('gpus')} GPUs" if q.get("gpus") else "")
        )
    return "; ".join(parts)


def _show(state: State, body: dict[str, Any], verb: str) -> None:
    if state.json_mode:
        state.out.json(body)
        return
    message = f" ({body['status_message']})" if body.get("status_message") else ""
    state.out.line(f"{verb} {body.get('name')}: {body.get('status')}{message}")


@click.group(context_settings=CONTEXT)
def containers() -> None:
    """Development containers: a named, long-lived JupyterLab environment on the cluster.

    \b
    Examples:
      rota containers create lab -g jupyter_cpu --cpu 2 --memory 8
      rota containers open lab          (JupyterLab in your browser, through the portal)
      rota containers logs lab -s jupyter -f
      rota containers stop lab
    """


@containers.command("list", context_settings=CONTEXT)
@click.option("--all", "all_users", is_flag=True, help="Admins: every user's containers.")
@json_option
@pass_state
def list_(state: State, all_users: bool) -> None:
    """List your containers, and your container quota used/total per node group.

    \b
    Examples:
      rota containers list
      rota containers list --json | jq -r '.[] | select(.status == "running") | .name'
    """
    api = state.client()
    rows = api.get("containers/", all="1" if all_users else None)
    if state.json_mode:
        state.out.json(rows)
        return
    state.out.table(
        ["NAME", "OWNER", "GROUP", "STATUS", "CPU", "MEM", "GPU", "NODE", "STARTED", "MESSAGE"],
        [
            [
                r.get("name"),
                r.get("owner"),
                r.get("node_group"),
                status_cell(r.get("status")),
                str(r.get("cpu")),
                f"{r.get('memory_gib')}G",
                str(r.get("gpus")),
                r.get("node") or "-",
                when_short(r.get("started_at")) if r.get("status") == "running" else "-",
                r.get("status_message") or ("idle: keep it in the portal" if r.get("idle_warned") else ""),
            ]
            for r in rows
        ],
        right=["CPU", "MEM", "GPU"],
        clip=["MESSAGE"],
        empty="No containers yet: rota containers create NAME -g GROUP",
    )
    quota = api.get("containers/quota/")
    if quota:
        state.out.note("Quota: " + _quota_text(quota))


@containers.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("-g", "--group", required=True, shell_complete=complete_group, help="Node group, e.g. jupyter_cpu.")
@click.option("-i", "--image", "environment", help="Environment (rota images lists them).")
@click.option("--cpu", type=int, default=1, show_default=True, help="CPU cores.")
@click.option("--memory", "memory_gib", type=int, default=4, show_default=True, help="Memory in GiB.")
@click.option("--gpus", type=int, default=0, show_default=True)
@click.option("--ssh", is_flag=True, help="Run an SSH server too.")
@click.option("--startup", "startup_file", type=click.File("r"), help="A start-up script run at every start.")
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME:PORT[:tcp]=COMMAND",
    help="A custom service (repeatable), e.g. 'board:6006=tensorboard --logdir runs --port 6006'.",
)
@click.option("--no-start", is_flag=True, help="Create it stopped.")
@json_option
@pass_state
def create(
    state: State,
    name: str,
    group: str,
    environment: str | None,
    cpu: int,
    memory_gib: int,
    gpus: int,
    ssh: bool,
    startup_file: Any,
    services: tuple[str, ...],
    no_start: bool,
) -> None:
    """Create a container (started at once unless --no-start).

    \b
    Examples:
      rota containers create lab -g jupyter_cpu --cpu 2 --memory 8
      rota containers create gpu-lab -g jupyter_gpu --gpus 1 --ssh --startup setup.sh
      rota containers create board -g jupyter_cpu --service 'tb:6006=tensorboard --logdir runs --port 6006'
    """
    parsed = []
    for spec in services:
        head, sep, command = spec.partition("=")
        bits = head.split(":")
        if not sep or len(bits) not in (2, 3) or not bits[1].isdigit():
            raise click.BadParameter(f"{spec!r}: use NAME:PORT[:tcp]=COMMAND", param_hint="--service")
        parsed.append(
            {
                "name": bits[0],
                "port": int(bits[1]),
                "protocol": bits[2] if len(bits) == 3 else "http",
                "command": command,
            }
        )
    body = {
        "name": name,
        "node_group": group,
        "environment": environment,
        "cpu": cpu,
        "memory_gib": memory_gib,
        "gpus": gpus,
        "ssh": ssh,
        "startup_script": startup_file.read() if startup_file else "",
        "services": parsed,
        "start": not no_start,
    }
    if environment is None:
        del body["environment"]
    _show(state, state.client().post("containers/", body), "Created")


def _action(verb: str, done: str, help_text: str) -> click.Command:
    @click.command(
        verb,
        context_settings=CONTEXT,
        help=f"{help_text}\n\n\b\nExamples:\n  rota containers {verb} lab\n  rota containers {verb} lab --json",
    )
    @click.argument("name")
    @json_option
    @pass_state
    def command(state: State, name: str) -> None:
        _show(state, state.client().post(_path(name) + f"{verb}/"), done)

    return command


containers.add_command(_action("start", "Starting", "Start a container (queued for a node; quota checked)."))
containers.add_command(_action("stop", "Stopping", "Stop a container; its node share is freed."))
containers.add_command(_action("restart", "Restarting", "Restart a container (edits since its start apply)."))
containers.add_command(_action("keep", "Keeping", "Keep an idle container: answers the idle warning."))


@containers.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask.")
@json_option
@pass_state
def delete(state: State, name: str, yes: bool) -> None:
    """Delete a container (its logs stay).

    \b
    Examples:
      rota containers delete lab
      rota containers delete lab --yes
    """
    if not yes and not state.json_mode:
        click.confirm(f"Delete container {name}?", abort=True)
    state.client().delete(_path(name))
    if state.json_mode:
        state.out.json({"deleted": name})
    else:
        state.out.line(f"Deleted {name}.")


@containers.command("open", context_settings=CONTEXT)
@click.argument("name")
@click.option("--print", "print_only", is_flag=True, help="Print the address instead of opening a browser.")
@json_option
@pass_state
def open_(state: State, name: str, print_only: bool) -> None:
    """Open JupyterLab in your browser (through the portal: sign in there; no token to copy).

    \b
    Examples:
      rota containers open lab
      rota containers open lab --print
    """
    body = state.client().get(_path(name))
    url = body["url"]
    if state.json_mode:
        state.out.json({"url": url, "status": body.get("status")})
        return
    if body.get("status") != "running":
        state.out.warn(f"{name} is {body.get('status')}: start it first (rota containers start {name}).")
    if print_only or not webbrowser.open(url):
        state.out.line(url)


@containers.command(context_settings=CONTEXT)
@click.argument("name")
@json_option
@pass_state
def ssh(state: State, name: str) -> None:
    """Print the SSH command of a container (created with --ssh).

    \b
    Examples:
      rota containers ssh lab
      $(rota containers ssh lab)
    """
    body = state.client().get(_path(name))
    command = body.get("ssh_command")
    if state.json_mode:
        state.out.json({"ssh_command": command})
        return
    if not command:
        raise RotaError(
            f"{name} has no SSH port: create it with --ssh; the port is assigned when it runs on a Kubernetes cluster."
        )
    state.out.line(command)


@containers.command(context_settings=CONTEXT)
@click.argument("name")
@click.option("-s", "--service", default="jupyter", show_default=True, help="Which service's log.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@json_option
@pass_state
def logs(state: State, name: str, service: str, follow: bool) -> None:
    """Print a service's log of the container's current run.

    \b
    Examples:
      rota containers logs lab
      rota containers logs lab -s startup
      rota containers logs lab -s jupyter -f
    """
    api = state.client()
    offset = 0
    while True:
        chunk = api.get(_path(name) + "logs/", service=service, offset=offset, limit=1 << 20)
        if state.json_mode:
            state.out.json(chunk)
            return
        state.out.raw(chunk.get("data") or "")
        offset = int(chunk.get("next_offset") or offset)
        if not follow:
            return
        if chunk.get("eof"):
            time.sleep(1.0)  # polling the log API between pages; a socket is the jobs' way, not yet containers'


COMMANDS = [containers]
