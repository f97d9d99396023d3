"""The configured backend, one per process (``ROTA_BACKEND``: local | kubernetes).

Django, the backends and what they need are imported inside the functions: the backends themselves
are plain Python, and the rank supervisor imports this package (through ``backends.base``) without
Django; the Kubernetes client is loaded only where that backend runs; ``ownership`` and the
backend modules import this package (so importing them here at the top would be a cycle).
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.logs.store import LogStore, get_log_store

if TYPE_CHECKING:  # types only: both modules import this package
    from apps.launcher.backends.base import Backend
    from apps.launcher.backends.container_base import ContainerBackend

_lock = threading.Lock()
_backend: Backend | None = None


def get_backend() -> Backend:
    """The process-wide backend, created on first use."""
    global _backend
    with _lock:
        if _backend is None:
            _backend = _create()
        return _backend


def reset_backend() -> None:
    """Close and forget the backends (tests; settings changes)."""
    global _backend, _container_backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None
        if _container_backend is not None:
            _container_backend.close()
        _container_backend = None
    get_log_store.cache_clear()
    get_container_log_store.cache_clear()


_container_backend: ContainerBackend | None = None


@lru_cache(maxsize=1)
def get_container_log_store() -> LogStore:
    """Where container services' output goes: ``<log root>/containers/<container id>/<run key>/``."""
    from django.conf import settings

    return LogStore(
        settings.ROTA_LOG_ROOT / "containers", line_max_bytes=int(settings.ROTA_LAUNCHER["LOG_LINE_MAX_BYTES"])
    )


def get_container_backend() -> ContainerBackend:
    """The process-wide backend of development containers (same ``ROTA_BACKEND`` as jobs)."""
    global _container_backend
    with _lock:
        if _container_backend is None:
            _container_backend = _create_container_backend()
        return _container_backend


def _create_container_backend() -> ContainerBackend:
    from django.conf import settings

    if settings.ROTA_BACKEND == "local":
        from apps.launcher.backends.container_local import LocalContainerBackend  # the backend chosen (docstring)

        conf: dict[str, Any] = settings.ROTA_CONTAINERS
        run_root = Path(conf["RUN_ROOT"])
        run_root.mkdir(parents=True, exist_ok=True)
        return LocalContainerBackend(
            run_root,
            get_container_log_store(),
            ssh_listen=str(conf["SSH_LISTEN"]),
            stop_grace_seconds=float(conf["STOP_GRACE_SECONDS"]),
        )
    # the Kubernetes client, Django's models (journal) and ownership (imports this package): docstring
    from apps.launcher.backends.container_kubernetes import KubernetesContainerBackend
    from apps.launcher.log_journal import StoreLogJournal
    from apps.launcher.ownership import ownership

    kube: dict[str, Any] = settings.ROTA_KUBERNETES
    backend = KubernetesContainerBackend(
        _kube_api_client(),
        namespace=str(kube["NAMESPACE"]),
        image_pull_secrets=list(kube["IMAGE_PULL_SECRETS"]),
        # Stored like the local backend's: <log root>/containers/<container id>/<run key>/rank-<service>.
        log_journal=StoreLogJournal(
            get_container_log_store(), holds=ownership.holds, chain_of=lambda key: str(key // 1_000_000)
        ),
        default_image=str(settings.ROTA_CONTAINERS["IMAGE"]),
        stop_grace_seconds=int(settings.ROTA_CONTAINERS["STOP_GRACE_SECONDS"]),
        ingress=_ingress_config(),
        gpu_metrics=_gpu_metrics(),
    )
    backend.start_watching()
    return backend


def _gpu_metrics() -> Any:
    """Prometheus (DCGM exporter) for containers' GPU utilisation, or None when not configured."""
    from django.conf import settings

    from apps.launcher.backends.kubernetes.gpu_metrics import PrometheusGpuMetrics  # the Kubernetes client (docstring)

    conf: dict[str, Any] = settings.ROTA_CONTAINERS
    if not conf["GPU_METRICS_URL"]:
        return None
    return PrometheusGpuMetrics(str(conf["GPU_METRICS_URL"]), query=str(conf["GPU_UTIL_QUERY"]))


def _ingress_config() -> Any:
    """The containers' Ingress settings, or None when no containers host is configured."""
    from django.conf import settings

    from apps.launcher.backends.kubernetes.container_ingress import IngressConfig  # imports this package

    conf: dict[str, Any] = settings.ROTA_CONTAINERS
    if not conf["INGRESS_HOST"]:
        return None
    return IngressConfig(
        host=str(conf["INGRESS_HOST"]),
        class_name=str(conf["INGRESS_CLASS"]),
        auth_url=str(conf["INGRESS_AUTH_URL"]),
        signin_url=f"{settings.ROTA_PUBLIC_URL.rstrip('/')}/containers/ticket/",
    )


@lru_cache(maxsize=1)
def _kube_api_client() -> Any:
    """One ``ApiClient`` (one bounded connection pool) for the job and the container backends."""
    from django.conf import settings
    from kubernetes import client, config

    conf: dict[str, Any] = settings.ROTA_KUBERNETES
    if conf["IN_CLUSTER"]:
        config.load_incluster_config()
    else:
        config.load_kube_config(config_file=conf["KUBECONFIG"] or None)
    configuration = client.Configuration.get_default_copy()
    # One pool for every call (informers, log streams, writes): bounded, so a burst cannot open
    # connections without limit against the API server.
    configuration.connection_pool_maxsize = int(conf["CONNECTION_POOL"])
    return client.ApiClient(configuration)


def _create() -> Backend:
    from django.conf import settings

    if settings.ROTA_BACKEND == "local":
        # Django's settings (posix) and the backend chosen, which imports this package (docstring)
        from apps.accounts.posix import unmapped_owners_refused
        from apps.launcher.backends.local import LocalBackend, single_tenant_warning

        logging.getLogger("apps.launcher").warning(single_tenant_warning(refuse_unmapped=unmapped_owners_refused()))
        settings.ROTA_RUN_ROOT.mkdir(parents=True, exist_ok=True)
        return LocalBackend(settings.ROTA_RUN_ROOT, get_log_store())
    # the Kubernetes client, Django's models (journal) and ownership (imports this package): docstring
    from apps.launcher.backends.kubernetes import KubernetesBackend
    from apps.launcher.log_journal import StoreLogJournal
    from apps.launcher.ownership import ownership

    conf: dict[str, Any] = settings.ROTA_KUBERNETES
    backend = KubernetesBackend(
        _kube_api_client(),
        namespace=str(conf["NAMESPACE"]),
        image_pull_secrets=list(conf["IMAGE_PULL_SECRETS"]),
        log_journal=StoreLogJournal(get_log_store(), holds=ownership.holds),
        master_port=int(settings.ROTA_LAUNCHER["MASTER_PORT"]),
        suspend_grace_seconds=int(settings.ROTA_LAUNCHER["GRACE_SECONDS"]),
    )
    backend.start_watching()
    return backend
