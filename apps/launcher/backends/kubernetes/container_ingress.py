"""The Ingress (``networking.k8s.io/v1``) of one development-container run: pure.

When ``ROTA_CONTAINER_INGRESS_HOST`` names a host of its own (e.g. ``containers.rota.example``),
each run gets an Ingress ``rota-c-<key>`` on that host routing the run's HTTP services to its
ClusterIP Service: JupyterLab at ``/containers/<user>/<name>/`` and each custom HTTP service at
``/containers/<user>/<name>/<service>/`` (the same paths as through the portal's proxy, so
JupyterLab's one ``base_url`` serves both). It is owned by the run's Service (garbage collection)
and created and deleted with the run by ``KubernetesContainerBackend``.

Authentication is delegated to Rota with ingress-nginx's external auth: every request is first
sent to ``auth-url`` (Rota's ``/containers/auth/``), which answers 200 with the run's token in an
``Authorization`` header (passed to the upstream by ``auth-response-headers``, never to the
browser) for the owner and admins, 403 for anyone else or a container not running, and 401 without
a valid ticket, in which case nginx redirects the browser to ``auth-signin`` (Rota's
``/containers/ticket/`` on the portal's host), which issues a ticket cookie for this container on
the containers host. How the two hosts fit together: docs/containers.md, "Ingress".
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.launcher.backends.container_base import ContainerSpec
from apps.launcher.backends.kubernetes.manifests import JsonDict

NGINX = "nginx.ingress.kubernetes.io"
#: Kernel and terminal websockets stay open for hours; nginx's default would cut them after 60 s.
WEBSOCKET_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class IngressConfig:
    host: str  # the containers host, a different origin from the portal's
    class_name: str  # the IngressClass (ingress-nginx)
    auth_url: str  # Rota's /containers/auth/ as the ingress controller reaches it
    signin_url: str  # Rota's /containers/ticket/ on the portal's public host


def ingress_name(key: int) -> str:
    return f"rota-c-{key}"


def build_ingress(
    spec: ContainerSpec, *, config: IngressConfig, namespace: str, labels: dict[str, str], owner_uid: str
) -> JsonDict | None:
    """The run's Ingress, or None when it has no HTTP service (every run has JupyterLab, so only
    for a malformed spec)."""
    http = [s for s in spec.services if s.protocol == "http"]
    if not http:
        return None
    base = spec.base_url if spec.base_url.endswith("/") else f"{spec.base_url}/"
    paths = []
    for service in sorted(http, key=lambda s: s.rank):
        path = base if service.name == "jupyter" else f"{base}{service.name}/"
        paths.append(
            {
                "path": path,
                "pathType": "Prefix",
                "backend": {"service": {"name": ingress_name(spec.key), "port": {"number": service.port}}},
            }
        )
    timeout = str(WEBSOCKET_TIMEOUT_SECONDS)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": ingress_name(spec.key),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Service", "name": ingress_name(spec.key), "uid": owner_uid}
            ],
            "annotations": {
                f"{NGINX}/auth-url": config.auth_url,
                f"{NGINX}/auth-signin": config.signin_url,
                f"{NGINX}/auth-response-headers": "Authorization",
                f"{NGINX}/proxy-read-timeout": timeout,
                f"{NGINX}/proxy-send-timeout": timeout,
                f"{NGINX}/proxy-body-size": "0",  # notebooks and data files are uploaded through it
            },
        },
        "spec": {
            "ingressClassName": config.class_name,
            "rules": [{"host": config.host, "http": {"paths": paths}}],
        },
    }


__all__ = ["IngressConfig", "build_ingress", "ingress_name"]
