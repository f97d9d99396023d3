"""How containers read on pages and in the API: messages per reader language, the SSH command."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from apps.containers.models import Container


def ssh_command(c: Container) -> str | None:
    """``ssh -p <port> <user>@<host>`` once the container's SSH service has a port on the nodes
    (a NodePort on Kubernetes); None before that, or when SSH is off."""
    if not c.ssh or not c.ssh_node_port:
        return None
    host = settings.ROTA_CONTAINERS.get("SSH_HOST") or urlsplit(settings.ROTA_PUBLIC_URL).hostname or "localhost"
    return f"ssh -p {c.ssh_node_port} {c.owner.username}@{host}"


def status_message(c: Container) -> str:
    """The stored message in the reader's language (the fixed ones are in the catalogue)."""
    return _(c.status_message) if c.status_message else ""
