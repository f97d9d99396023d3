"""How containers read on pages and in the API: messages per reader language, where to open them,
the SSH command."""

from __future__ import annotations

import os
import pwd
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from apps.containers.models import Container


def ssh_command(c: Container) -> str | None:
    """``ssh -p <port> <login>@<host>`` while the container's SSH service has a port: a NodePort on
    Kubernetes (kept until the container is deleted), a port of the machine for the run's own sshd
    locally (``ssh_login``); None before that, or when SSH is off."""
    if not c.ssh or not c.ssh_node_port:
        return None
    host = settings.ROTA_CONTAINERS.get("SSH_HOST") or urlsplit(settings.ROTA_PUBLIC_URL).hostname or "localhost"
    return f"ssh -p {c.ssh_node_port} {ssh_login(c)}@{host}"


def ssh_login(c: Container) -> str:
    """The account to log in as. Kubernetes: the owner's user name. Locally, the account the
    container's processes (and its sshd) run as: the owner's POSIX account when the server runs as
    root and an admin mapped one, else the server's own account (a non-root sshd can log in
    nobody else; as root with ``ROTA_LOCAL_UNMAPPED_OWNERS=run-as-server`` that is root)."""
    if settings.ROTA_BACKEND == "kubernetes":
        return c.owner.username
    try:
        if os.geteuid() == 0 and c.owner.posix_uid is not None:
            return pwd.getpwuid(c.owner.posix_uid).pw_name
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no account on this machine: its number is all there is
        return str(c.owner.posix_uid if os.geteuid() == 0 and c.owner.posix_uid is not None else os.geteuid())


def status_message(c: Container) -> str:
    """The stored message in the reader's language (the fixed ones are in the catalogue)."""
    return _(c.status_message) if c.status_message else ""


def open_base(c: Container, *, absolute: bool = False) -> str:
    """Where the container's HTTP services are opened (JupyterLab at ``…lab``, a custom service at
    ``…<service>/``): the containers host when the Kubernetes backend has an Ingress
    (``ROTA_CONTAINER_INGRESS_HOST``), else the portal's proxy (a path, or a full URL if
    ``absolute``)."""
    path = f"/containers/{c.owner.username}/{c.name}/"
    host = settings.ROTA_CONTAINERS.get("INGRESS_HOST")
    if host and settings.ROTA_BACKEND == "kubernetes":
        scheme = urlsplit(settings.ROTA_PUBLIC_URL).scheme or "https"
        return f"{scheme}://{host}{path}"
    return f"{settings.ROTA_PUBLIC_URL.rstrip('/')}{path}" if absolute else path
