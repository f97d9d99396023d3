"""Declarative bootstrap: a TOML or YAML file → node groups, nodes, environments, mounts, users, quotas.

Everything is applied in one transaction through the same services the API uses, so it is
validated and audited like any admin write; an error anywhere rolls back everything and names
the line of the entry at fault. Applying the same file twice changes nothing (services only
write, and audit, what differs).

It lives in ``apps/quotas``, the highest of the three layers it writes (accounts, cluster,
quotas: docs/architecture.md), so no lower app imports upward to orchestrate the others.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth.models import Group
from django.db import transaction

from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.cluster import services as cluster_services
from apps.cluster.models import Environment, NodeGroup
from apps.core.errors import ApplicationError
from apps.core.models import AuditEntry
from apps.core.priorities import parse_priority
from apps.quotas import services as quota_services
from apps.quotas.choices import QuotaKind

SECTIONS = ("node_groups", "nodes", "environments", "mounts", "users", "quotas")
GIB = 1024**3


class BootstrapError(Exception):
    """Bad input, with the file and line of the entry at fault."""


@dataclass
class BootstrapResult:
    changes: int = 0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Entry:
    section: str
    index: int
    data: dict[str, Any]
    line: int | None


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of every mapping (as ``__line__``)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _toml_lines(text: str) -> dict[str, list[int]]:
    """Line numbers of each ``[[section]]`` header, in order."""
    found: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^\s*\[\[\s*([A-Za-z_]+)\s*\]\]", line)
        if match:
            found.setdefault(match.group(1), []).append(number)
    return found


def load(path: Path) -> list[_Entry]:
    """Parse the file into entries carrying their line numbers. Raises BootstrapError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BootstrapError(f"{path}: cannot read: {exc.strerror}") from exc
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BootstrapError(f"{path}: {exc}") from exc
        lines = _toml_lines(text)
    elif suffix in {".yaml", ".yml"}:
        try:
            data = yaml.load(text, Loader=_LineLoader)  # noqa: S506  (SafeLoader subclass)
        except yaml.YAMLError as exc:
            raise BootstrapError(f"{path}: {exc}") from exc
        lines = {}
        if isinstance(data, dict):
            data.pop("__line__", None)
    else:
        raise BootstrapError(f"{path}: use a .toml, .yaml or .yml file")
    if not isinstance(data, dict):
        raise BootstrapError(f"{path}: the top level must be a table of sections ({', '.join(SECTIONS)})")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise BootstrapError(f"{path}: unknown section(s) {', '.join(unknown)}; expected {', '.join(SECTIONS)}")
    entries: list[_Entry] = []
    for section in SECTIONS:
        items = data.get(section, [])
        if not isinstance(items, list):
            raise BootstrapError(f"{path}: '{section}' must be a list of entries ([[{section}]] in TOML)")
        for index, item in enumerate(items):
            line = None
            if isinstance(item, dict):
                line = item.pop("__line__", None) or (
                    lines.get(section, [])[index] if index < len(lines.get(section, [])) else None
                )
            else:
                raise BootstrapError(f"{path}: entry {index + 1} of '{section}' must be a table")
            entries.append(_Entry(section, index, item, line))
    return entries


def _take(entry: _Entry, allowed: set[str], required: set[str]) -> dict[str, Any]:
    data = entry.data
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApplicationError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(k for k in required if data.get(k) in (None, ""))
    if missing:
        raise ApplicationError(f"missing {', '.join(missing)}")
    return data


def _int(data: dict[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApplicationError(f"{key} must be a whole number ≥ 0, got {value!r}")
    return value


def _subject(text: str) -> tuple[User | None, Group | None]:
    kind, _, name = str(text).partition(":")
    if kind == "user" and name:
        user = User.objects.filter(username=name).first()
        if user is None:
            raise ApplicationError(f"unknown user {name!r} (define it under [[users]])")
        return user, None
    if kind == "group" and name:
        return None, account_services.group_get_or_create(name=name)
    raise ApplicationError(f"subject must look like 'user:NAME' or 'group:NAME', got {text!r}")


def _apply(entry: _Entry) -> None:
    section = entry.section
    if section == "node_groups":
        d = _take(entry, {"name", "description", "pod_settings"}, {"name"})
        cluster_services.node_group_upsert(
            actor=None, name=d["name"], description=d.get("description", ""), pod_settings=d.get("pod_settings")
        )
    elif section == "nodes":
        d = _take(
            entry, {"name", "group", "gpu_count", "gpu_model", "cpu", "memory_gib", "room", "labels"}, {"name", "group"}
        )
        node_group = NodeGroup.objects.filter(name=d["group"]).first()
        if node_group is None:
            raise ApplicationError(f"unknown node group {d['group']!r} (define it under [[node_groups]])")
        labels = d.get("labels", {})
        if not isinstance(labels, dict):
            raise ApplicationError("labels must be a table of strings")
        cluster_services.node_upsert(
            actor=None,
            name=d["name"],
            group=node_group,
            gpu_count=_int(d, "gpu_count"),
            gpu_model=str(d.get("gpu_model", "")),
            cpu=_int(d, "cpu"),
            memory_bytes=_int(d, "memory_gib") * GIB,
            room=str(d.get("room", "")),
            labels={str(k): str(v) for k, v in labels.items()},
        )
    elif section == "environments":
        d = _take(
            entry,
            {"name", "image", "description", "env_vars", "interpreter", "pod_settings", "users", "groups", "rank"},
            {"name", "image"},
        )
        env = cluster_services.environment_upsert(
            actor=None,
            name=d["name"],
            image=d["image"],
            description=d.get("description", ""),
            env_vars=d.get("env_vars", {}),
            interpreter=d.get("interpreter", "python3"),
            pod_settings=d.get("pod_settings"),
        )
        rank = _int(d, "rank", 1) or 1
        for subject in [f"user:{u}" for u in d.get("users", [])] + [f"group:{g}" for g in d.get("groups", [])]:
            user, group = _subject(subject)
            quota_services.quota_set(
                actor=None, user=user, group=group, kind=QuotaKind.ENVIRONMENT, environment=env, value=rank
            )
    elif section == "mounts":
        d = _take(
            entry,
            {"name", "kind", "source", "container_path", "read_only", "action", "active", "owners", "conditions"},
            {"name", "source", "container_path"},
        )
        users: list[User] = []
        groups: list[Group] = []
        for owner in d.get("owners", ["group:public"]):
            user, group = _subject(owner)
            if user is not None:
                users.append(user)
            if group is not None:
                groups.append(group)
        cluster_services.mount_rule_upsert(
            actor=None,
            name=d["name"],
            kind=d.get("kind", "host_path"),
            source=d["source"],
            container_path=d["container_path"],
            read_only=bool(d.get("read_only", False)),
            action=d.get("action", "add"),
            active=bool(d.get("active", True)),
            owner_users=users,
            owner_groups=groups,
            conditions=d.get("conditions", {}),
        )
    elif section == "users":
        d = _take(
            entry,
            {
                "username",
                "password",
                "password_env",
                "role",
                "nickname",
                "email",
                "team",
                "groups",
                "superuser",
                "active",
            },
            {"username"},
        )
        password = d.get("password")
        if d.get("password_env"):
            password = os.environ.get(d["password_env"])
            if not password:
                raise ApplicationError(f"environment variable {d['password_env']} (password_env) is not set")
        user = User.objects.filter(username=d["username"]).first()
        if user is None:
            account_services.user_create(
                actor=None,
                username=d["username"],
                password=password,
                role=d.get("role", "internal"),
                nickname=d.get("nickname", ""),
                email=d.get("email", ""),
                team=d.get("team"),
                groups=list(d.get("groups", [])),
                is_active=bool(d.get("active", True)),
                is_superuser=bool(d.get("superuser", False)),
            )
        else:
            changes: dict[str, Any] = {
                "role": d.get("role", "internal"),
                "nickname": d.get("nickname", ""),
                "email": d.get("email", ""),
                "team": d.get("team"),
                "groups": list(d.get("groups", [])),
                "is_active": bool(d.get("active", True)),
            }
            if password and not user.check_password(password):
                changes["password"] = password
            account_services.user_update(actor=None, user=user, **changes)
            superuser = bool(d.get("superuser", False))
            if user.is_superuser != superuser:
                User.objects.filter(pk=user.pk).update(is_superuser=superuser, is_staff=superuser)
    elif section == "quotas":
        d = _take(
            entry, {"subject", "kind", "node_group", "priority", "environment", "value"}, {"subject", "kind", "value"}
        )
        user, group = _subject(d["subject"])
        quota_node_group: NodeGroup | None = None
        if d.get("node_group"):
            quota_node_group = NodeGroup.objects.filter(name=d["node_group"]).first()
            if quota_node_group is None:
                raise ApplicationError(f"unknown node group {d['node_group']!r}")
        environment = None
        if d.get("environment"):
            environment = Environment.objects.filter(name=d["environment"]).first()
            if environment is None:
                raise ApplicationError(f"unknown environment {d['environment']!r}")
        priority = None
        if d.get("priority") is not None:
            try:
                priority = int(parse_priority(d["priority"]))
            except ValueError as exc:
                raise ApplicationError(str(exc)) from exc
        quota_services.quota_set(
            actor=None,
            user=user,
            group=group,
            kind=d["kind"],
            node_group=quota_node_group,
            priority=priority,
            environment=environment,
            value=_int(d, "value"),
        )


def apply_file(path: Path) -> BootstrapResult:
    """Apply a bootstrap file atomically. Raises BootstrapError naming the line at fault."""
    entries = load(path)
    result = BootstrapResult()
    with transaction.atomic():
        account_services.ensure_admin_groups()
        first_audit = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for entry in entries:
            try:
                with transaction.atomic():
                    _apply(entry)
            except ApplicationError as exc:
                where = f"{path}:{entry.line}" if entry.line else f"{path}"
                raise BootstrapError(
                    f"{where}: {entry.section} entry {entry.index + 1}: {exc.message} — nothing was applied"
                ) from exc
            result.counts[entry.section] = result.counts.get(entry.section, 0) + 1
        result.changes = AuditEntry.objects.filter(id__gt=first_audit).count()
    return result
