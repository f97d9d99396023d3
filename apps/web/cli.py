"""The ``rota`` command equivalent to a portal submission, shown live under the submit form.

It follows the CLI's own grammar (``client/rota/cli.py``): ``rota submit SCRIPT [ARGS]... --
[OPTIONS]``, HAI's order, so the script's own flags never clash with Rota's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from apps.core.priorities import Priority


@dataclass(frozen=True)
class CliPreview:
    command: str
    # Form fields the CLI has no option for (set them in the portal, or with the API).
    not_in_cli: list[str] = field(default_factory=list)


def guessed_kind(entrypoint: str) -> str:
    """The kind ``rota submit`` infers from the script's name."""
    lower = entrypoint.lower()
    if lower.endswith(".py"):
        return "python"
    if lower.endswith((".sh", ".bash")):
        return "bash"
    return "executable"


def cli_command(values: dict[str, Any]) -> CliPreview:
    """``rota submit …`` for ``values`` (the submit form's cleaned or partial data)."""
    entrypoint = str(values.get("entrypoint") or "").strip() or "SCRIPT"
    args: list[str] = ["rota", "submit", entrypoint, *[str(p) for p in values.get("parameters") or []]]
    options: list[str] = []
    nodes = values.get("nodes")
    if nodes and int(nodes) != 1:
        options += ["-n", str(int(nodes))]
    if values.get("group"):
        options += ["-g", str(values["group"])]
    priority = values.get("priority")
    if priority not in (None, "") and int(priority) != Priority.AUTO:
        options += ["-p", Priority(int(priority)).label]
    if values.get("environment"):
        options += ["-i", str(values["environment"])]
    for key, value in (values.get("env_vars") or {}).items():
        options += ["-e", f"{key}={value}"]
    if values.get("name"):
        options += ["--name", str(values["name"]).strip()]
    for tag in values.get("tags") or []:
        options += ["-t", str(tag)]
    if values.get("workspace"):
        options += ["--workspace", str(values["workspace"]).strip()]
    kind = values.get("kind")
    if kind and values.get("entrypoint") and kind != guessed_kind(entrypoint):
        options += ["--kind", str(kind)]
    if values.get("watchdog_seconds"):
        options += ["--watchdog", str(int(values["watchdog_seconds"]))]
    if values.get("run_estimate_seconds"):
        options += ["--estimate", str(values["run_estimate_seconds"]).replace(" ", "")]  # the CLI takes 6h too
    if values.get("shared_with_team"):
        options.append("--share")
    command = shlex.join(args + (["--", *options] if options else []))
    missing = [
        name for name in ("whole_life_state", "custom_rank", "notes") if values.get(name) not in (None, "", 0, 0.0)
    ]
    return CliPreview(command=command, not_in_cli=missing)
