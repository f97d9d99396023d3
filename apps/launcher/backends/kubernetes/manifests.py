"""Kubernetes objects of one attempt, built from a ``LaunchSpec``: pure, no API calls.

The pod spec around a rank's container (identity, security context, pinning, the admins' pod
settings) is ``podspec.build_pod_spec``, the one development containers' pods use too.

What each object looks like and why (names, labels, pinning, resources, security context) is in
docs/kubernetes.md.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from apps.launcher.backends.base import EntrypointKind, LaunchSpec, RankSpec
from apps.launcher.backends.kubernetes.podspec import (
    JsonDict,
    build_pod_spec,
    container_security_context,
    extended_resources,
    identity_env,
    pod_annotations,
    validate_pod,
    volumes_and_mounts,
)

CONTAINER_NAME = "job"
DEFAULT_SECRET_ENV_PATTERN = r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY"  # noqa: S105 - a pattern of names

_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_LABEL_BAD = re.compile(r"[^a-z0-9-]+")
_SECRET_KEY_BAD = re.compile(r"[^-._A-Za-z0-9]+")
_RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")

#: PID 1 of every job container. PID 1 gets no default signal handling from the kernel, so a
#: Python or a bash that is PID 1 ignores SIGTERM, and a bash entrypoint never passes it on to its
#: Python: the suspend notice would be lost and the rank killed at the end of the grace. This bash
#: runs the job as its own process group (``set -m``; dash cannot without a tty), forwards
#: TERM/INT/HUP to that whole group, reaps it and exits with its status (a ``wait`` interrupted by
#: a signal is repeated while the job lives). After a forwarded signal it also waits for the rest
#: of the group: a bash entrypoint dies of the TERM at once while its Python is still writing the
#: checkpoint, and PID 1 exiting would kill that Python with the container (the kubelet's SIGKILL
#: at the end of the grace still bounds the wait). A job that ends on its own is not waited for
#: beyond its main process, so a forgotten background process cannot keep a finished pod alive.
#: ``INIT_BOOT`` (POSIX sh) runs it under bash, or ``exec``s the job directly in an image without
#: bash.
INIT_SCRIPT = (
    "set -m; "
    '"$@" & child=$!; set +m; signalled=0; '
    "trap 'signalled=1; kill -TERM -- -$child 2>/dev/null' TERM; "
    "trap 'signalled=1; kill -INT -- -$child 2>/dev/null' INT; "
    "trap 'signalled=1; kill -HUP -- -$child 2>/dev/null' HUP; "
    "while :; do "
    'wait "$child"; status=$?; '
    'kill -0 "$child" 2>/dev/null || break; '
    "done; "
    'if [ "$signalled" = 1 ]; then '
    'while kill -0 -- -"$child" 2>/dev/null; do sleep 0.1 & wait $!; done; '
    "fi; "
    'exit "$status"'
)
INIT_BOOT = 'command -v bash >/dev/null 2>&1 && exec bash -c "$0" rota-init "$@"; exec "$@"'


def service_name(attempt_id: int) -> str:
    return f"rota-{attempt_id}"


def pod_name(attempt_id: int, rank: int) -> str:
    return f"rota-{attempt_id}-{rank}"


def secret_name(attempt_id: int) -> str:
    return f"rota-{attempt_id}-env"


def sanitize_label_value(value: str) -> str:
    """Coerce any string into a valid label value (<= 63 chars, alphanumeric at both ends)."""
    return _LABEL_VALUE_BAD.sub("-", value)[:63].strip("-._")


def sanitize_label_key(key: str) -> str | None:
    """Coerce ``[prefix/]name`` into a valid label key; ``None`` when nothing valid is left."""
    prefix, slash, name = key.rpartition("/")
    name = sanitize_label_value(name)
    if not name:
        return None
    if not slash:
        return name
    parts = [_DNS_LABEL_BAD.sub("-", part.lower()).strip("-")[:63] for part in prefix.split(".")]
    prefix = ".".join(part for part in parts if part)[:253].strip(".-")
    return f"{prefix}/{name}" if prefix else name


def cpu_quantity(cpu: float) -> str:
    millis = round(cpu * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


class Manifests:
    """Builds the Service, Secret and Pods of an attempt in one namespace (see docs/kubernetes.md)."""

    def __init__(
        self,
        *,
        namespace: str,
        image_pull_secrets: Sequence[str] = (),
        master_port: int = 29500,
        owner_label_prefix: str = "rota.dev",
        termination_grace_seconds: int = 60,
        secret_env_pattern: str | None = DEFAULT_SECRET_ENV_PATTERN,
    ) -> None:
        self._namespace = namespace
        self._pull_secrets = tuple(image_pull_secrets)
        self._master_port = master_port
        self._prefix = owner_label_prefix
        self._suspend_grace = termination_grace_seconds
        self._secret_env = re.compile(secret_env_pattern, re.IGNORECASE) if secret_env_pattern else None
        self.label_attempt = f"{owner_label_prefix}/attempt"
        self.label_chain = f"{owner_label_prefix}/chain"
        self.label_rank = f"{owner_label_prefix}/rank"
        self.label_user = f"{owner_label_prefix}/user"
        self.annotation_stop_reason = f"{owner_label_prefix}/stop-reason"

    def master_addr(self, attempt_id: int) -> str:
        return f"{pod_name(attempt_id, 0)}.{service_name(attempt_id)}.{self._namespace}.svc"

    def attempt_labels(self, spec: LaunchSpec) -> dict[str, str]:
        return {
            self.label_attempt: str(spec.attempt_id),
            self.label_chain: sanitize_label_value(spec.chain_id),
            self.label_user: sanitize_label_value(spec.user),
        }

    def pod_labels(self, spec: LaunchSpec, rank: int) -> dict[str, str]:
        labels: dict[str, str] = {}
        for key, value in spec.labels.items():
            clean = sanitize_label_key(key)
            if clean is None or self._reserved_label(clean):
                continue
            labels[clean] = sanitize_label_value(value)
        labels.update(self.attempt_labels(spec))
        labels[self.label_rank] = str(rank)
        return dict(sorted(labels.items()))

    def _own_domain(self, key: str) -> bool:
        domain = key.rpartition("/")[0]
        return bool(domain) and (domain == self._prefix or domain.endswith("." + self._prefix))

    def _reserved_label(self, key: str) -> bool:
        domain = key.rpartition("/")[0]
        if not domain:
            return False
        if self._own_domain(key):
            return True
        return any(domain == d or domain.endswith("." + d) for d in _RESERVED_LABEL_DOMAINS)

    def build_service(self, spec: LaunchSpec) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service_name(spec.attempt_id),
                "namespace": self._namespace,
                "labels": self.attempt_labels(spec),
            },
            "spec": {
                "clusterIP": "None",
                "selector": {self.label_attempt: str(spec.attempt_id)},
                "publishNotReadyAddresses": True,
                "ports": [
                    {"name": "master", "port": self._master_port, "targetPort": self._master_port, "protocol": "TCP"}
                ],
            },
        }

    def _owner_reference(self, attempt_id: int, owner_uid: str) -> JsonDict:
        return {"apiVersion": "v1", "kind": "Service", "name": service_name(attempt_id), "uid": owner_uid}

    def _is_secret_env(self, name: str) -> bool:
        return self._secret_env is not None and self._secret_env.search(name) is not None

    def rank_env(self, spec: LaunchSpec, rank: RankSpec) -> dict[str, str]:
        """The environment of one rank, as values (before splitting secrets out)."""
        values = dict(rank.env)
        values.pop("NVIDIA_VISIBLE_DEVICES", None)
        if spec.gpus_per_rank > 0:
            values.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            values["NVIDIA_VISIBLE_DEVICES"] = "void"
        values["MASTER_ADDR"] = self.master_addr(spec.attempt_id)
        values["MASTER_PORT"] = str(self._master_port)
        values.update(identity_env(user=spec.user, home=spec.home or spec.workspace))
        return values

    @staticmethod
    def _secret_key(rank: int, env_name: str) -> str:
        return f"{rank}.{_SECRET_KEY_BAD.sub('_', env_name)}"

    def build_secret(self, spec: LaunchSpec, owner_uid: str) -> JsonDict | None:
        data: dict[str, str] = {}
        for rank in spec.ranks:
            for env_name, value in self.rank_env(spec, rank).items():
                if self._is_secret_env(env_name):
                    data[self._secret_key(rank.rank, env_name)] = base64.b64encode(value.encode()).decode()
        if not data:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name(spec.attempt_id),
                "namespace": self._namespace,
                "labels": self.attempt_labels(spec),
                "ownerReferences": [self._owner_reference(spec.attempt_id, owner_uid)],
            },
            "type": "Opaque",
            "immutable": True,
            "data": dict(sorted(data.items())),
        }

    def _env_list(self, spec: LaunchSpec, rank: RankSpec) -> list[JsonDict]:
        env: list[JsonDict] = []
        for env_name, value in sorted(self.rank_env(spec, rank).items()):
            if self._is_secret_env(env_name):
                ref = {"name": secret_name(spec.attempt_id), "key": self._secret_key(rank.rank, env_name)}
                env.append({"name": env_name, "valueFrom": {"secretKeyRef": ref}})
            else:
                env.append({"name": env_name, "value": value})
        return env

    @staticmethod
    def command(spec: LaunchSpec) -> list[str]:
        """The container's command: the job under ``INIT_SCRIPT`` (signals reach every process)."""
        return ["/bin/sh", "-c", INIT_BOOT, INIT_SCRIPT, *Manifests.job_argv(spec)]

    @staticmethod
    def job_argv(spec: LaunchSpec) -> list[str]:
        if spec.kind == EntrypointKind.PYTHON:
            return [spec.interpreter, "-u", spec.entrypoint, *spec.parameters]
        if spec.kind == EntrypointKind.BASH:
            return ["bash", spec.entrypoint, *spec.parameters]
        if spec.kind == EntrypointKind.EXECUTABLE:
            return [spec.entrypoint, *spec.parameters]
        raise ValueError(f"unknown entrypoint kind: {spec.kind!r}")

    @staticmethod
    def _resources(spec: LaunchSpec) -> JsonDict:
        # Extended resources an admin added (RDMA devices...) first: ours (CPU, memory, GPUs) are
        # set after, so they cannot be replaced.
        requests = extended_resources(spec.pod)
        limits = dict(requests)
        if spec.cpu > 0:
            requests["cpu"] = cpu_quantity(spec.cpu)
        if spec.memory_bytes > 0:
            requests["memory"] = limits["memory"] = str(spec.memory_bytes)
        if spec.gpus_per_rank > 0:
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(spec.gpus_per_rank)
        resources: JsonDict = {}
        if requests:
            resources["requests"] = requests
        if limits:
            resources["limits"] = limits
        return resources

    def build_pod(self, spec: LaunchSpec, rank: RankSpec, owner_uid: str) -> JsonDict:
        """One rank's pod: its ``job`` container under the init process, in the shared pod spec
        (``podspec.build_pod_spec``: identity, security context, pinning, the admins' settings)."""
        self.validate(spec)
        name = pod_name(spec.attempt_id, rank.rank)
        volumes, mounts = volumes_and_mounts(spec.mounts)
        container: JsonDict = {
            "name": CONTAINER_NAME,
            "image": spec.image,
            "command": self.command(spec),
            "workingDir": spec.workspace,
            "env": self._env_list(spec, rank),
            "resources": self._resources(spec),
            "volumeMounts": mounts,
            "securityContext": container_security_context(uid=spec.uid, gid=spec.gid, capabilities=spec.capabilities),
        }
        pod_spec = build_pod_spec(
            node=rank.node,
            uid=spec.uid,
            gid=spec.gid,
            options=spec.pod,
            containers=[container],
            volumes=volumes,
            grace_seconds=self._suspend_grace,
            pull_secrets=self._pull_secrets,
            hostname=name,
            subdomain=service_name(spec.attempt_id),
        )
        metadata: JsonDict = {
            "name": name,
            "namespace": self._namespace,
            "labels": self.pod_labels(spec, rank.rank),
            "ownerReferences": [self._owner_reference(spec.attempt_id, owner_uid)],
        }
        annotations = pod_annotations(spec.pod, own_prefix=self._prefix)
        if annotations:
            metadata["annotations"] = annotations
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}

    @staticmethod
    def validate(spec: LaunchSpec) -> None:
        validate_pod(uid=spec.uid, gid=spec.gid, options=spec.pod, capabilities=spec.capabilities, mounts=spec.mounts)
        if not spec.ranks:
            raise ValueError("an attempt needs at least one rank")
        ranks = [rank.rank for rank in spec.ranks]
        if len(set(ranks)) != len(ranks) or min(ranks) < 0:
            raise ValueError("ranks must be distinct and >= 0")
        if not spec.image:
            raise ValueError("the kubernetes backend needs an image")
        if spec.gpus_per_rank < 0 or spec.cpu < 0 or spec.memory_bytes < 0:
            raise ValueError("resources must be >= 0")
