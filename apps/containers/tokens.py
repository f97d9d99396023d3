"""The secret each run of a container's JupyterLab (and HTTP services) is started with.

Derived, not stored: ``HMAC(SECRET_KEY, container id, run)``. The launcher gives it to the
container's server; the portal's proxy adds it to every request it forwards, so the user never
sees or copies it, and it changes at every (re)start. Never logged, never put in a URL.
"""

from __future__ import annotations

from django.utils.crypto import salted_hmac


def container_token(container_id: int, run: int) -> str:
    return salted_hmac("rota.containers.token", f"{container_id}:{run}", algorithm="sha256").hexdigest()
