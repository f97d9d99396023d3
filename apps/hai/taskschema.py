"""HAI's TaskSchema v2 (the JSON body of ``/operating/task/create``) → ``experiment_submit`` arguments.

Only the translation lives here; every rule about what may be submitted is the service's. What
Rota has no counterpart for is refused with a message saying so, except ``py_venv``, which HAI's
client adds on its own from ``HF_ENV_NAME`` and which is ignored (see docs/hai-compat.md).
"""

from __future__ import annotations

import shlex
from typing import Any

from django.utils.translation import gettext as _

from apps.experiments.choices import EntrypointKind
from apps.hai.envelope import HaiError

MAX_NAME = 511  # HAI's nb_name limit (Rota's own, shorter, is checked by the service)
MAX_WATCHDOG = 30 * 86400  # as the job runtime API's watchdog
IGNORED_OPTIONS = frozenset({"py_venv", "mount_code", "record_git_revision"})
UNSUPPORTED_OPTIONS = {
    "profile": "haiprof profiling",
    "sidecar": "sidecar containers",
    "override_node_resource": "per-task CPU/memory overrides (a rank gets its whole node)",
    "assigned_nodes": "choosing nodes by hand (the scheduler places jobs)",
    "timeout": "a run-time limit (use options.watchdog_time for hung jobs)",
}


def _unquote(text: str) -> str:
    """The client shell-quotes each value (``"'x y'"``); Rota passes values to the job unquoted."""
    try:
        return " ".join(shlex.split(text))
    except ValueError as exc:
        raise HaiError(_("Cannot read %(text)r: %(error)s.") % {"text": text, "error": exc}) from None


def submit_arguments(schema: Any) -> dict[str, Any]:
    """Keyword arguments for ``experiment_submit`` (without ``user``), or ``HaiError`` saying what is wrong."""
    if not isinstance(schema, dict):
        raise HaiError(_("The body must be a TaskSchema v2 JSON object."))
    if schema.get("version") != 2:
        raise HaiError(_("Only TaskSchema version 2 is supported (got version %(v)r).") % {"v": schema.get("version")})
    name = schema.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HaiError(_("The task needs a name."))
    if len(name) > MAX_NAME:
        raise HaiError(_("The task name is longer than %(n)d characters.") % {"n": MAX_NAME})
    task_type = schema.get("task_type", "training")
    if task_type != "training":
        raise HaiError(_("Rota runs training tasks only (task_type %(t)r is not supported).") % {"t": task_type})
    spec = schema.get("spec") or {}
    resource = schema.get("resource") or {}
    options = schema.get("options") or {}
    if not isinstance(spec, dict) or not isinstance(resource, dict) or not isinstance(options, dict):
        raise HaiError(_("spec, resource and options must be JSON objects."))
    if schema.get("services"):
        raise HaiError(_("Rota does not run services inside training tasks (remove `services`)."))
    if spec.get("git_remote_repo"):
        raise HaiError(_("Rota does not check out git repositories (remove spec.git_remote_repo)."))
    if resource.get("is_spot"):
        raise HaiError(_("Rota has no spot tasks (remove resource.is_spot)."))
    for key, what in UNSUPPORTED_OPTIONS.items():
        if options.get(key) not in (None, {}, [], ""):
            raise HaiError(_("Rota does not support %(what)s (remove options.%(key)s).") % {"what": what, "key": key})

    node_count = resource.get("node_count", 1)
    if isinstance(node_count, bool) or not isinstance(node_count, int):
        raise HaiError(_("Say how many nodes the task needs: -n N (resource.node_count must be a number)."))
    image = resource.get("image") or "default"
    if not isinstance(image, str):
        raise HaiError(_("resource.image must be a string."))
    if "/" in image:
        raise HaiError(
            _("Rota has no user-loaded images; use one of `hai-cli images list` (got %(i)r).") % {"i": image}
        )
    group = resource.get("group") or "default"
    entrypoint = spec.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise HaiError(_("spec.entrypoint is required: the script to run."))
    parameters = spec.get("parameters") or ""
    if not isinstance(parameters, str):
        raise HaiError(_("spec.parameters must be a string."))
    environments = spec.get("environments") or {}
    if not isinstance(environments, dict):
        raise HaiError(_("spec.environments must be a mapping of NAME to value."))
    if spec.get("entrypoint_executable"):
        kind = EntrypointKind.EXECUTABLE
    elif entrypoint.strip().endswith(".sh"):
        kind = EntrypointKind.BASH
    else:
        kind = EntrypointKind.PYTHON
    tags = options.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    arguments: dict[str, Any] = {
        "name": name,
        "workspace": str(spec.get("workspace") or ""),
        "entrypoint": entrypoint,
        "kind": kind,
        "parameters": _split(parameters),
        "env_vars": {str(k): _unquote(str(v)) for k, v in environments.items()},
        "group": str(group),
        "nodes": node_count,
        "priority": schema.get("priority", -1),
        "environment": None if image == "default" else image,
        "tags": tags,
        "whole_life_state": options.get("whole_life_state", 0) or 0,
        "shared_with_team": bool(options.get("shared_in_group", False)),
    }
    if options.get("watchdog_time") not in (None, 0, ""):
        watchdog = options["watchdog_time"]
        if isinstance(watchdog, bool) or not isinstance(watchdog, int) or not 60 <= watchdog <= MAX_WATCHDOG:
            raise HaiError(_("options.watchdog_time must be whole seconds between 60 and %(n)d.") % {"n": MAX_WATCHDOG})
        arguments["watchdog_seconds"] = watchdog
    state = arguments["whole_life_state"]
    if isinstance(state, bool) or not isinstance(state, int) or not -(2**63) <= state < 2**63:
        raise HaiError(_("options.whole_life_state must be a whole number that fits in 64 bits."))
    priority = arguments["priority"]
    if isinstance(priority, int) and not -(2**31) <= priority < 2**31:
        raise HaiError(_("Unknown priority %(p)r.") % {"p": priority})
    return arguments


def _split(parameters: str) -> list[str]:
    try:
        return shlex.split(parameters)
    except ValueError as exc:
        raise HaiError(_("Cannot split spec.parameters %(p)r: %(e)s.") % {"p": parameters, "e": exc}) from None
