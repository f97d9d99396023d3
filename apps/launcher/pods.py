"""What a Rota pod takes from the database, for a job's rank and a development container alike.

Two rules, one place, so jobs and containers cannot drift apart:

* **who the pod runs as** (``run_as``, ``pod_home``): the POSIX account an admin mapped for the
  owner (``apps.accounts.posix``), else ``FALLBACK_UID_BASE`` + the user's id (non-root, but an
  account no shared storage knows: docs/operations.md says to map POSIX ids before using shared
  storage), with ``$HOME`` at ``ROTA_K8S_HOME`` when it is set;
* **what admins set** (``pod_customisation``): the node group's and the environment's
  ``pod_settings`` merged (``apps.cluster.pod_settings.merge``: the environment wins), as the
  backends take them — ``PodOptions``, the capabilities (memlock = ``IPC_LOCK``) and the default
  variables (the pod settings', then the environment's own).

Both are read at each start: an admin's change applies to the next attempt or run, never to pods
already running. The pod spec itself is ``apps.launcher.backends.kubernetes.podspec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.accounts.models import User
from apps.accounts.posix import posix_account
from apps.cluster import pod_settings
from apps.cluster.models import Environment, NodeGroup
from apps.launcher.backends.base import PodOptions

FALLBACK_UID_BASE = 10000


@dataclass(frozen=True)
class RunAs:
    """The ids the owner's processes run as."""

    uid: int
    gid: int | None  # None: the uid's own primary group (the image's, on Kubernetes)
    mapped: bool  # a real POSIX account (an admin's mapping, or this host's account)


def run_as(owner: User, *, host_lookup: bool) -> RunAs:
    """The owner's account (``host_lookup``: also this machine's account of the same name, for the
    local backend), else the non-root fallback uid with the image's group."""
    account = posix_account(owner, host_lookup=host_lookup)
    if account is None:
        return RunAs(uid=FALLBACK_UID_BASE + owner.pk, gid=None, mapped=False)
    return RunAs(uid=account.uid, gid=account.gid, mapped=True)


def pod_home(username: str, *, default: str) -> str:
    """``$HOME`` in the owner's pods: ``ROTA_K8S_HOME`` (``{user}`` = the user name), else ``default``."""
    template = str(settings.ROTA_KUBERNETES["HOME"] or "")
    return template.format(user=username) if template else default


@dataclass(frozen=True)
class PodCustomisation:
    """The admins' settings for one pod, merged and in the backends' terms."""

    options: PodOptions
    capabilities: tuple[str, ...]  # upper case, no CAP_; IPC_LOCK for memlock
    env: dict[str, str]  # default variables: the job's (or Rota's) own win over them


def pod_options(custom: dict[str, Any]) -> PodOptions:
    """Merged, validated pod settings (``apps.cluster.pod_settings.merge``) as the backend takes them."""
    return PodOptions(
        node_selector=dict(custom.get("node_selector", {})),
        tolerations=tuple(dict(t) for t in custom.get("tolerations", [])),
        runtime_class_name=str(custom.get("runtime_class_name", "")),
        priority_class_name=str(custom.get("priority_class_name", "")),
        annotations=dict(custom.get("annotations", {})),
        resources={str(k): int(v) for k, v in custom.get("resources", {}).items()},
        host_network=bool(custom.get("host_network", False)),
    )


def pod_customisation(*, node_group: NodeGroup, environment: Environment | None) -> PodCustomisation:
    """The group's and the environment's ``pod_settings`` merged (the environment wins)."""
    custom = pod_settings.merge(node_group.pod_settings, environment.pod_settings if environment else {})
    env = {**custom.get("env", {}), **(environment.env_vars if environment else {})}
    return PodCustomisation(
        options=pod_options(custom),
        capabilities=tuple(pod_settings.capability_names(custom)),
        env={str(k): str(v) for k, v in env.items()},
    )
