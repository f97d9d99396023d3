"""Kubernetes execution backend: one Pod per rank, one headless Service per attempt.

The design (objects, pinning, ownership, suspend and stop, list + watch, status mapping, logs,
security context, RBAC) is in docs/kubernetes.md. The modules:

* ``podspec`` — the pod spec every Rota pod shares (identity, security context, pinning, the
  admins' pod settings), pure;
* ``manifests`` — the Service, Secret and Pods of an attempt, pure;
* ``container_manifests`` — the Services, Secret and Pod of a development container's run, pure;
* ``status`` — pod and node objects as observations, pure;
* ``api`` — HTTP plumbing (JSON responses, cutting long-lived streams);
* ``informer`` — list + watch of one resource into callbacks, in a thread;
* ``logs`` — following container logs with exact resumption;
* ``watching`` — the informer and log-follower wiring both backends share (``PodWatching``);
* ``backend`` — ``KubernetesBackend``, the ``Backend`` the launcher drives.
"""

from apps.launcher.backends.kubernetes.backend import KubernetesBackend
from apps.launcher.backends.kubernetes.logs import LogCursor, LogLineSplitter, parse_log_timestamp
from apps.launcher.backends.kubernetes.manifests import (
    INIT_BOOT,
    INIT_SCRIPT,
    Manifests,
    pod_name,
    sanitize_label_key,
    sanitize_label_value,
    secret_name,
    service_name,
)
from apps.launcher.backends.kubernetes.podspec import normalize_capabilities

__all__ = [
    "INIT_BOOT",
    "INIT_SCRIPT",
    "KubernetesBackend",
    "LogCursor",
    "LogLineSplitter",
    "Manifests",
    "normalize_capabilities",
    "parse_log_timestamp",
    "pod_name",
    "sanitize_label_key",
    "sanitize_label_value",
    "secret_name",
    "service_name",
]
