"""The part of a pod every Rota pod shares, job rank or development container: pure, no API calls.

Both builders (``manifests.Manifests`` for a job's ranks, ``container_manifests.ContainerManifests``
for a container's run) make their own containers (command, environment, ports, probes) and hand
them to ``build_pod_spec``, which wraps them in the one pod spec Rota runs:

* **who it runs as** — the owner's POSIX uid (``runAsUser``, never root) and gid (``runAsGroup``,
  when an admin mapped one), on the pod and on every container, with the same hardened container
  context (no privilege escalation, not privileged, every capability dropped but the ones an admin
  granted, RuntimeDefault seccomp). No ``fsGroup``: it would make the kubelet re-own every file of
  a shared volume (a home, a dataset) at each start; ``fsGroupChangePolicy: OnRootMismatch`` does
  not help where users' gids differ (a volume whose root has another user's group is re-owned,
  recursively and made group-writable, at every start); the uid already owns the user's files;
* **who it says it is** — ``USER``/``LOGNAME``/``HOME`` (``identity_env``): the uid's account is
  on shared storage, not in the image's ``/etc/passwd``, and ``getpass.getuser()`` (torch.compile,
  …) reads these before passwd;
* **where** — pinned to the node the scheduler chose (a ``metadata.name`` node affinity);
* **what admins set** for the node group and environment (``PodOptions``): node selector,
  tolerations, ``runtimeClassName``, ``priorityClassName``, annotations (``pod_annotations``),
  extended resources such as RDMA devices (``extended_resources``, on the container that holds the
  pod's resources), ``hostNetwork`` (with the cluster's DNS kept), memlock (``IPC_LOCK``, among the
  capabilities);
* **nothing it does not need** — no service-account token, no service links, no host PID/IPC;
  the mounts the admins' rules give the user, and a memory-backed ``/dev/shm``.

docs/kubernetes.md describes each field and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from apps.launcher.backends.base import MountSpec, PodOptions

JsonDict = dict[str, Any]

SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"  # noqa: S108 - the container's shared memory, not a temp file
MOUNT_KINDS = frozenset({"host_path", "pvc", "configmap"})

_CAPABILITY = re.compile(r"^[A-Z][A-Z0-9_]*$")


def normalize_capabilities(capabilities: Sequence[str]) -> list[str]:
    """``["cap_net_admin", "SYS_PTRACE"]`` → ``["NET_ADMIN", "SYS_PTRACE"]``; invalid names raise."""
    result: set[str] = set()
    for raw in capabilities:
        cap = raw.strip().upper().removeprefix("CAP_")
        if not _CAPABILITY.match(cap) or cap == "ALL":
            raise ValueError(f"invalid or refused Linux capability: {raw!r}")
        result.add(cap)
    return sorted(result)


def identity_env(*, user: str, home: str) -> dict[str, str]:
    """``USER``, ``LOGNAME`` and ``HOME`` of the owner's processes (see the module docstring)."""
    return {"USER": user, "LOGNAME": user, "HOME": home}


def _run_as(uid: int, gid: int | None) -> JsonDict:
    return {"runAsNonRoot": True, "runAsUser": uid, **({"runAsGroup": gid} if gid is not None else {})}


def container_security_context(*, uid: int, gid: int | None, capabilities: Sequence[str]) -> JsonDict:
    """Every container's context: the owner's ids, hardened, with only the granted capabilities."""
    dropped: JsonDict = {"drop": ["ALL"]}
    granted = normalize_capabilities(capabilities)
    if granted:
        dropped["add"] = granted
    return {
        **_run_as(uid, gid),
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": dropped,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(*, uid: int, gid: int | None) -> JsonDict:
    return {**_run_as(uid, gid), "seccompProfile": {"type": "RuntimeDefault"}}


def extended_resources(options: PodOptions) -> dict[str, str]:
    """The admins' extended resources (RDMA devices…), for both requests and limits as Kubernetes
    requires; the caller sets CPU, memory and GPUs after them so they can never be replaced."""
    return {name: str(count) for name, count in sorted(options.resources.items())}


def pod_annotations(options: PodOptions, *, own_prefix: str) -> dict[str, str]:
    """The admins' annotations, any domain but Rota's own (``own_prefix`` and its subdomains): the
    stop-reason and services annotations are how a restarted launcher reads a pod."""

    def own(key: str) -> bool:
        domain = key.rpartition("/")[0]
        return bool(domain) and (domain == own_prefix or domain.endswith("." + own_prefix))

    return {k: v for k, v in sorted(options.annotations.items()) if not own(k)}


def _volume(index: int, mount: MountSpec) -> JsonDict:
    name = f"mount-{index}"
    if mount.kind == "host_path":
        return {"name": name, "hostPath": {"path": mount.source}}
    if mount.kind == "pvc":
        return {"name": name, "persistentVolumeClaim": {"claimName": mount.source, "readOnly": mount.read_only}}
    if mount.kind == "configmap":
        return {"name": name, "configMap": {"name": mount.source}}
    raise ValueError(f"unknown mount kind: {mount.kind!r}")


def volumes_and_mounts(mounts: Iterable[MountSpec]) -> tuple[list[JsonDict], list[JsonDict]]:
    """The pod's volumes and each container's ``volumeMounts``: the user's mounts, then ``/dev/shm``."""
    volumes: list[JsonDict] = []
    volume_mounts: list[JsonDict] = []
    for index, mount in enumerate(mounts):
        volume = _volume(index, mount)
        volumes.append(volume)
        volume_mounts.append({"name": volume["name"], "mountPath": mount.container_path, "readOnly": mount.read_only})
    volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
    volume_mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH, "readOnly": False})
    return volumes, volume_mounts


def validate_pod(
    *,
    uid: int,
    gid: int | None,
    options: PodOptions,
    capabilities: Sequence[str],
    mounts: Iterable[MountSpec],
    reserved_paths: Iterable[str] = (),
) -> None:
    """Raise ``ValueError`` (with the reason) for what ``build_pod_spec`` must never be given."""
    if uid < 1:
        raise ValueError("pods run as non-root: uid must be >= 1")
    if gid is not None and gid < 1:
        raise ValueError("gid must be >= 1")
    for name, count in options.resources.items():
        if "/" not in name or name == "nvidia.com/gpu" or count < 1:
            raise ValueError(f"extra resource {name}={count}: a domain-prefixed name and a count >= 1")
    normalize_capabilities(capabilities)
    paths = {SHM_PATH, *reserved_paths}
    for mount in mounts:
        if mount.kind not in MOUNT_KINDS:
            raise ValueError(f"unknown mount kind: {mount.kind!r}")
        if mount.container_path in paths:
            raise ValueError(f"two mounts at {mount.container_path}")
        paths.add(mount.container_path)


def build_pod_spec(
    *,
    node: str,
    uid: int,
    gid: int | None,
    options: PodOptions,
    containers: list[JsonDict],
    volumes: list[JsonDict],
    grace_seconds: int,
    pull_secrets: Sequence[str] = (),
    hostname: str,
    subdomain: str = "",
) -> JsonDict:
    """The ``spec`` of a Rota pod around ``containers`` (see the module docstring). The containers
    carry their own ``securityContext`` (``container_security_context``) and resources."""
    spec: JsonDict = {
        "hostname": hostname,
        **({"subdomain": subdomain} if subdomain else {}),
        "restartPolicy": "Never",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]},
                    ]
                }
            }
        },
        "terminationGracePeriodSeconds": grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # The node's network only when an admin asked for it (RDMA, InfiniBand); the pod then still
        # resolves cluster names (rank 0's MASTER_ADDR) through the cluster's DNS. Its ports are
        # then the node's: a second pod with the same port waits for the first (kube-scheduler).
        "hostNetwork": options.host_network,
        **({"dnsPolicy": "ClusterFirstWithHostNet"} if options.host_network else {}),
        "hostPID": False,
        "hostIPC": False,
        "securityContext": pod_security_context(uid=uid, gid=gid),
        "containers": containers,
        "volumes": volumes,
    }
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in pull_secrets]
    if options.node_selector:
        spec["nodeSelector"] = dict(sorted(options.node_selector.items()))
    if options.tolerations:
        spec["tolerations"] = [dict(t) for t in options.tolerations]
    if options.runtime_class_name:
        spec["runtimeClassName"] = options.runtime_class_name
    if options.priority_class_name:
        spec["priorityClassName"] = options.priority_class_name
    return spec
