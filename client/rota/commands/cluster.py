"""The cluster as a user sees it: ``rota nodes``, ``quota``, ``images``."""

from __future__ import annotations

from typing import Any

import click

from rota.commands.common import (
    CONTEXT,
    State,
    complete_group,
    json_option,
    pass_state,
    priority_label,
)
from rota.output import size, status_cell, styled


def holder_cell(node: dict[str, Any]) -> str:
    """Who uses a node: "#6.2 name (owner)" for a job the user may see, "busy" for another's, "-" idle."""
    holder = node.get("holder")
    if not node.get("busy") or not holder:
        return "-"
    if holder.get("job") is None:
        return "busy"
    return f"#{holder.get('attempt')} {holder.get('name')} ({holder.get('owner')})"


@click.command(context_settings=CONTEXT)
@click.option("-g", "--group", shell_complete=complete_group, help="Only this node group.")
@click.option("--state", "states", multiple=True, help="Only nodes in this state (repeatable).")
@json_option
@pass_state
def nodes(state: State, group: str | None, states: tuple[str, ...]) -> None:
    """List the cluster's nodes: group, state, GPUs, CPU, memory, room, and the job on each.

    A busy node shows its job ("#6.2 name (owner)": job 6, attempt 2) when you may see that job
    (yours, shared with your team, or any for admins), else just "busy".

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
        ["NAME", "GROUP", "STATE", "GPUS", "GPU MODEL", "CPU", "MEMORY", "ROOM", "JOB", "REASON"],
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
                holder_cell(n),
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
            f"{g}: {sum(1 for n in ns if n.get('state') == 'ready')}/{len(ns)} ready, "
            f"{sum(1 for n in ns if n.get('busy'))} busy"
            for g, ns in sorted(by_group.items())
        )
        out.note(summary)


@click.command(context_settings=CONTEXT)
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


@click.command(context_settings=CONTEXT)
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


COMMANDS = [nodes, quota, images]
