"""Pod customisation an admin sets per node group and per environment (Kubernetes backend).

A GPU cluster rarely runs a job pod as Rota builds it by default: nodes with a fast interconnect
are tainted and want ``hostNetwork`` and RDMA devices, an image needs a ``runtimeClassName``,
training jobs get a ``priorityClassName``, monitoring wants annotations. These live on the
``NodeGroup`` (the hardware) and the ``Environment`` (the image) as one JSON object,
``pod_settings``, checked key by key here when it is saved, so a typo is refused with the path of
the bad value (``tolerations[0].effect: ...``) instead of becoming a pod the API server rejects
(or, worse, accepts and never schedules).

Keys (all optional; docs/kubernetes.md "Pod customisation" has examples):

* ``node_selector`` {label: value} — the pod also needs these node labels;
* ``tolerations`` [ {key, operator, value, effect, tolerationSeconds} ] — Kubernetes' own spelling;
* ``runtime_class_name``, ``priority_class_name`` — names of cluster objects (``system-*`` priority
  classes are the cluster's own and refused);
* ``annotations`` {key: value} — on every pod (not in Rota's ``rota.dev`` domain);
* ``resources`` {name: count} — extended resources requested (= limited) per rank, e.g.
  ``rdma/hca_shared_devices_a = 1``; CPU, memory and GPUs are Rota's own and refused;
* ``host_network`` true/false — the node's network (RDMA, InfiniBand): DNS stays the cluster's;
* ``memlock`` true/false — unlimited locked memory (``IPC_LOCK``), which RDMA registration needs;
* ``capabilities`` [name] — further Linux capabilities (``ALL`` is refused);
* ``env`` {NAME: value} — environment variables (e.g. ``NCCL_IB_HCA``); Rota's own variables and
  the job's win over them.

``merge`` combines a group's and an environment's settings for one job: the environment, being
the more specific, wins for single values and per key of a table; lists are joined.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _

KEYS = (
    "node_selector",
    "tolerations",
    "runtime_class_name",
    "priority_class_name",
    "annotations",
    "resources",
    "host_network",
    "memlock",
    "capabilities",
    "env",
)
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
#: Resources Rota requests itself from the node's size (apps.launcher.reconcile.pod_resources).
OWN_RESOURCES = frozenset({"cpu", "memory", "nvidia.com/gpu"})
OWN_DOMAIN = "rota.dev"

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _qualified_name_problem(key: object, *, need_prefix: bool = False) -> str | None:
    """Why ``key`` is not a Kubernetes qualified name (``[prefix/]name``), or None."""
    if not isinstance(key, str) or not key:
        return _("must be a non-empty text")
    prefix, slash, name = key.rpartition("/")
    if len(name) > 63 or not _NAME_PART.match(name):
        return _("is not a valid name: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric")
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return _("has an invalid prefix: it must be a lower-case DNS name such as example.com")
    if need_prefix and not slash:
        return _("needs a domain prefix, e.g. rdma/hca_shared_devices_a")
    return None


def _in_domain(key: str, domain: str) -> bool:
    prefix = key.rpartition("/")[0]
    return prefix == domain or prefix.endswith("." + domain)


def _string_table(value: object, path: str, problems: list[str], *, label_values: bool = False) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(_('%(path)s: must be a table of name = "value"') % {"path": path})
        return {}
    for key, item in value.items():
        if not isinstance(item, str):
            problems.append(_("%(path)s: must be a text in quotes") % {"path": f"{path}.{key}"})
        elif label_values and (len(item) > 63 or not _LABEL_VALUE.match(item)):
            problems.append(
                _("%(path)s: is not a valid label value (at most 63 letters, digits, '-', '_' or '.')")
                % {"path": f"{path}.{key}"}
            )
    return value


def _toleration_problems(index: int, item: object) -> list[str]:
    path = f"tolerations[{index}]"
    if not isinstance(item, dict):
        return [_('%(path)s: must be a table such as {key = "gpu", effect = "NoSchedule"}') % {"path": path}]
    problems = []
    unknown = sorted(set(item) - set(TOLERATION_KEYS))
    if unknown:
        problems.append(
            _("%(path)s: unknown key(s) %(keys)s; allowed: %(allowed)s")
            % {"path": path, "keys": ", ".join(unknown), "allowed": ", ".join(TOLERATION_KEYS)}
        )
    operator = item.get("operator", "Equal")
    if operator not in TOLERATION_OPERATORS:
        problems.append(
            _("%(path)s: must be one of %(allowed)s, not %(value)r")
            % {"path": f"{path}.operator", "allowed": ", ".join(TOLERATION_OPERATORS), "value": operator}
        )
    key = item.get("key", "")
    if key:
        found = _qualified_name_problem(key)
        if found:
            problems.append(f"{path}.key: {found}")
    elif operator != "Exists":
        problems.append(_("%(path)s: a toleration without a key must have operator Exists") % {"path": path})
    value = item.get("value", "")
    if not isinstance(value, str) or (len(value) > 63 or not _LABEL_VALUE.match(value)):
        problems.append(_("%(path)s: is not a valid taint value") % {"path": f"{path}.value"})
    elif value and operator == "Exists":
        problems.append(_("%(path)s: operator Exists takes no value") % {"path": path})
    effect = item.get("effect", "")
    if effect and effect not in TOLERATION_EFFECTS:
        problems.append(
            _("%(path)s: must be one of %(allowed)s, not %(value)r")
            % {"path": f"{path}.effect", "allowed": ", ".join(TOLERATION_EFFECTS), "value": effect}
        )
    if "tolerationSeconds" in item:
        seconds = item["tolerationSeconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            problems.append(
                _("%(path)s: must be a whole number of seconds ≥ 0") % {"path": f"{path}.tolerationSeconds"}
            )
        elif effect != "NoExecute":
            problems.append(_("%(path)s: tolerationSeconds needs effect NoExecute") % {"path": path})
    return problems


def _class_name_problems(key: str, value: object) -> list[str]:
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        return [_("%(path)s: must be the name of a cluster object (lower-case DNS name)") % {"path": key}]
    if key == "priority_class_name" and value.startswith("system-"):
        return [_("%(path)s: system-* priority classes belong to the cluster's own pods") % {"path": key}]
    return []


def validate(settings: object) -> list[str]:
    """Every problem with ``settings``, one message each naming the bad value's path (empty = fine)."""
    if not isinstance(settings, dict):
        return [_("pod settings must be a table (JSON object)")]
    problems: list[str] = []
    unknown = sorted(set(settings) - set(KEYS))
    if unknown:
        problems.append(
            _("unknown key(s) %(keys)s; allowed: %(allowed)s")
            % {"keys": ", ".join(unknown), "allowed": ", ".join(KEYS)}
        )
    if "node_selector" in settings:
        table = _string_table(settings["node_selector"], "node_selector", problems, label_values=True)
        for key in table:
            found = _qualified_name_problem(key)
            if found:
                problems.append(f"node_selector.{key}: {found}")
    if "tolerations" in settings:
        tolerations = settings["tolerations"]
        if not isinstance(tolerations, list):
            problems.append(_("%(path)s: must be a list") % {"path": "tolerations"})
        else:
            for index, item in enumerate(tolerations):
                problems += _toleration_problems(index, item)
    for key in ("runtime_class_name", "priority_class_name"):
        if key in settings:
            problems += _class_name_problems(key, settings[key])
    if "annotations" in settings:
        for key in _string_table(settings["annotations"], "annotations", problems):
            found = _qualified_name_problem(key)
            if found:
                problems.append(f"annotations.{key}: {found}")
            elif _in_domain(key, OWN_DOMAIN):
                problems.append(
                    _("annotations.%(key)s: the %(domain)s domain is Rota's own") % {"key": key, "domain": OWN_DOMAIN}
                )
    if "resources" in settings:
        resources = settings["resources"]
        if not isinstance(resources, dict):
            problems.append(_("%(path)s: must be a table of name = count") % {"path": "resources"})
        else:
            for key, count in resources.items():
                found = _qualified_name_problem(key, need_prefix=True)
                if found:
                    problems.append(f"resources.{key}: {found}")
                elif key in OWN_RESOURCES or _in_domain(key, "kubernetes.io"):
                    problems.append(
                        _("resources.%(key)s: Rota requests CPU, memory and GPUs itself from the node's size")
                        % {"key": key}
                    )
                if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                    problems.append(
                        _("resources.%(key)s: must be a whole number ≥ 1 (extended resources are counted)")
                        % {"key": key}
                    )
    for key in ("host_network", "memlock"):
        if key in settings and not isinstance(settings[key], bool):
            problems.append(_("%(path)s: must be true or false") % {"path": key})
    if "capabilities" in settings:
        capabilities = settings["capabilities"]
        if not isinstance(capabilities, list):
            problems.append(_("%(path)s: must be a list") % {"path": "capabilities"})
        else:
            for index, raw in enumerate(capabilities):
                cap = raw.strip().upper().removeprefix("CAP_") if isinstance(raw, str) else ""
                if not _CAPABILITY.match(cap) or cap == "ALL":
                    problems.append(
                        _("capabilities[%(index)s]: %(value)r is not a Linux capability that may be granted")
                        % {"index": index, "value": raw}
                    )
    if "env" in settings:
        for key in _string_table(settings["env"], "env", problems):
            if not _ENV_NAME.match(str(key)):
                problems.append(_("env.%(key)s: is not a valid variable name") % {"key": key})
    return problems


def capability_names(settings: dict[str, Any]) -> list[str]:
    """The capabilities ``settings`` grant, ``IPC_LOCK`` for ``memlock``: upper case, no ``CAP_``."""
    names = {str(c).strip().upper().removeprefix("CAP_") for c in settings.get("capabilities", [])}
    if settings.get("memlock"):
        names.add("IPC_LOCK")
    return sorted(names)


def merge(group: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any]:
    """One job's settings: the environment's win over the group's (see the module docstring)."""
    merged: dict[str, Any] = {}
    for key in ("node_selector", "annotations", "resources", "env"):
        table = {**group.get(key, {}), **environment.get(key, {})}
        if table:
            merged[key] = table
    for key in ("runtime_class_name", "priority_class_name", "host_network", "memlock"):
        if key in environment:
            merged[key] = environment[key]
        elif key in group:
            merged[key] = group[key]
    tolerations: list[dict[str, Any]] = []
    for item in [*group.get("tolerations", []), *environment.get("tolerations", [])]:
        if item not in tolerations:
            tolerations.append(item)
    if tolerations:
        merged["tolerations"] = tolerations
    capabilities = sorted({*group.get("capabilities", []), *environment.get("capabilities", [])})
    if capabilities:
        merged["capabilities"] = capabilities
    return merged


def validate_field(value: object) -> None:
    """Model field validator: every problem of ``validate`` as one ``ValidationError``."""
    from django.core.exceptions import ValidationError

    problems = validate(value)
    if problems:
        raise ValidationError(problems)
