"""The configured backend and log store, one per process (``ROTA_BACKEND``: local | kubernetes).

Django is imported inside the functions: the backends themselves are plain Python, and the rank
supervisor imports them without Django.
"""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apps.launcher.backends.base import Backend
    from apps.launcher.logstore import LogStore

_lock = threading.Lock()
_backend: Backend | None = None


@lru_cache(maxsize=1)
def get_log_store() -> LogStore:
    from django.conf import settings

    from apps.launcher.logstore import LogStore

    return LogStore(settings.ROTA_LOG_ROOT, line_max_bytes=int(settings.ROTA_LAUNCHER["LOG_LINE_MAX_BYTES"]))


def get_backend() -> Backend:
    """The process-wide backend, created on first use."""
    global _backend
    with _lock:
        if _backend is None:
            _backend = _create()
        return _backend


def reset_backend() -> None:
    """Close and forget the backend (tests; settings changes)."""
    global _backend
    with _lock:
        if _backend is not None:
            _backend.close()
        _backend = None
    get_log_store.cache_clear()


def _create() -> Backend:
    from django.conf import settings

    if settings.ROTA_BACKEND == "local":
        from apps.launcher.backends.local import LocalBackend, single_tenant_warning

        logging.getLogger("apps.launcher").warning(single_tenant_warning())
        settings.ROTA_RUN_ROOT.mkdir(parents=True, exist_ok=True)
        return LocalBackend(settings.ROTA_RUN_ROOT, get_log_store())
    from kubernetes import client, config

    from apps.launcher.backends.kubernetes import KubernetesBackend

    conf: dict[str, Any] = settings.ROTA_KUBERNETES
    if conf["IN_CLUSTER"]:
        config.load_incluster_config()
    else:
        config.load_kube_config(config_file=conf["KUBECONFIG"] or None)
    from apps.launcher.log_journal import StoreLogJournal
    from apps.launcher.ownership import ownership

    configuration = client.Configuration.get_default_copy()
    # One pool for every call (informers, log streams, writes): bounded, so a burst cannot open
    # connections without limit against the API server.
    configuration.connection_pool_maxsize = int(conf["CONNECTION_POOL"])
    backend = KubernetesBackend(
        client.ApiClient(configuration),
        namespace=str(conf["NAMESPACE"]),
        image_pull_secrets=list(conf["IMAGE_PULL_SECRETS"]),
        log_journal=StoreLogJournal(get_log_store(), holds=ownership.holds),
        master_port=int(settings.ROTA_LAUNCHER["MASTER_PORT"]),
        suspend_grace_seconds=int(settings.ROTA_LAUNCHER["GRACE_SECONDS"]),
    )
    backend.start_watching()
    return backend
