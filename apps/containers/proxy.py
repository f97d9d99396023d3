"""The portal's reverse proxy to development containers: ``/containers/<user>/<name>/…``.

An ASGI application in front of Django (``portal/routing.py`` sends these paths here), for HTTP
and websockets alike, so JupyterLab's pages, API, kernels and terminals work through the portal:

1. **Who**: the session cookie (Channels' session middleware; the user is loaded with the
   container in one trip to the database thread). Anonymous HTTP requests are redirected to
   the sign-in page (``?next=`` the path); anonymous sockets are refused at the handshake.
2. **May they**: only the owner and platform admins. Anyone else gets 404, as for a container that
   does not exist (names are not disclosed). A container that is not running answers 503 with
   what to do.
3. **Cross-site**: sockets need an ``Origin`` of an allowed host; unsafe HTTP methods need an
   ``Origin`` (or ``Referer``) of this host. The portal's own cookies (session, CSRF) are never
   forwarded, so a user's server never sees a visitor's session.
4. **Forward**: to the run's address (``Container.endpoints``, written by the launcher) with the
   run's secret token in the ``Authorization`` header (``apps.containers.tokens``): the user never
   sees or copies it, and it is never in a URL. Responses are streamed, through one pooled client
   (kept-alive connections to the container's server).

Steps 1–2 cost a trip to the database thread (session, user, container). A page of JupyterLab
fires dozens of requests at once and polls every few seconds, so a granted answer is remembered
for ``RESOLVE_TTL`` seconds per (session cookie, container, service): a sign-out, a stop or a lost
right takes effect within that second (a stopped server no longer answers anyway). Refusals are
never remembered.

Custom HTTP services are served at ``/containers/<user>/<name>/<service>/`` (their names cannot be
one of JupyterLab's own top-level paths), everything else goes to JupyterLab, whose ``base_url``
is ``/containers/<user>/<name>/``.

Security note (docs/containers.md): a user's server is served from the portal's origin, so its
pages run scripts with the rights of whoever opens them. Only the owner and admins can open one;
an admin opening someone else's container should treat it as that user's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import validate_host

from apps.containers.choices import ContainerStatus
from apps.containers.layout import service_slots
from apps.containers.models import Container
from apps.containers.tokens import container_token

logger = logging.getLogger(__name__)

PATH_RE = re.compile(r"^/containers/(?P<user>[^/]+)/(?P<name>[a-z0-9-]+)(?P<slash>/?)(?P<rest>.*)$")
#: JupyterLab's own top-level paths: custom services may not take these names.
JUPYTER_PATHS = frozenset(
    {
        "api",
        "lab",
        "static",
        "files",
        "tree",
        "notebooks",
        "edit",
        "view",
        "terminals",
        "kernelspecs",
        "nbconvert",
        "login",
        "logout",
        "custom",
        "lsp",
        "doc",
        "metrics",
        "nbextensions",
    }
)
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def matches(path: str) -> bool:
    return PATH_RE.match(path) is not None


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    token: str
    service: str


def lookup(user: Any, owner: str, name: str, rest: str) -> tuple[int, Target | None, str]:
    """(status, target, message): 404 for anyone who may not see it, 503 when it is not running."""
    c = (
        Container.objects.filter(owner__username=owner, name=name, deleted_at__isnull=True)
        .only("id", "owner_id", "run", "status", "endpoints", "started_spec")
        .first()
    )
    if c is None or not (c.owner_id == user.pk or user.is_platform_admin):
        return 404, None, "No such container."
    if c.status != ContainerStatus.RUNNING:
        return 503, None, f"The container is {c.get_status_display().lower()}; start it from the containers page."
    first = rest.split("/", 1)[0]
    service = "jupyter"
    if first and first not in JUPYTER_PATHS:
        names = {s.name for s in service_slots(c.started_spec or {}) if s.protocol == "http"}
        if first in names:
            service = first
    address = (c.endpoints or {}).get(service)
    if not address:
        return 503, None, "The service has no address yet; try again in a moment."
    return 200, Target(address=address, token=container_token(c.pk, c.run), service=service), ""


_lookup = database_sync_to_async(lookup)


@database_sync_to_async
def _resolve_in_db(session: Any, owner: str, name: str, rest: str) -> tuple[Any, int, Target | None, str]:
    """The signed-in user of the session (Django's own rules: backend, session hash, active) and
    what they may reach, in one trip to the database thread: (user or None, status, target, message)."""
    from types import SimpleNamespace

    from django.contrib.auth import get_user

    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
    if not (user.is_authenticated and user.is_active):
        return None, 401, None, ""
    return (user, *lookup(user, owner, name, rest))


#: How long a granted (session, container, service) is remembered, in seconds.
RESOLVE_TTL = 1.0
_RESOLVED_MAX = 4096
_resolved: dict[tuple[str, str, str, str], tuple[float, Any, Target]] = {}


async def _resolve(
    session: Any, owner: str, name: str, rest: str, cookie: str | None = None
) -> tuple[Any, int, Target | None, str]:
    """``_resolve_in_db``, with granted answers remembered for ``RESOLVE_TTL`` seconds under the
    session cookie (``cookie``; without one nothing is remembered)."""
    key = (cookie or "", owner, name, rest.split("/", 1)[0])
    now = time.monotonic()
    if cookie:
        hit = _resolved.get(key)
        if hit is not None and hit[0] > now:
            return hit[1], 200, hit[2], ""
    user, status, target, message = await _resolve_in_db(session, owner, name, rest)
    if cookie and status == 200 and target is not None:
        if len(_resolved) >= _RESOLVED_MAX:
            for stale in [k for k, v in _resolved.items() if v[0] <= now] or list(_resolved):
                del _resolved[stale]
        _resolved[key] = (now + RESOLVE_TTL, user, target)
    else:
        _resolved.pop(key, None)
    return user, status, target, message


def _session_cookie(scope: dict[str, Any]) -> str | None:
    cookies = scope.get("cookies") or {}
    value = cookies.get(settings.SESSION_COOKIE_NAME)
    return str(value) if value else None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def _strip_portal_cookies(value: str) -> str:
    drop = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME}
    kept = [part.strip() for part in value.split(";") if part.strip().split("=", 1)[0] not in drop]
    return "; ".join(kept)


def _forward_headers(scope: dict[str, Any], target: Target) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for key, value in scope.get("headers", []):
        if key in HOP_BY_HOP or key in (b"authorization", b"referer", b"origin", b"x-forwarded-for"):
            continue
        if key.startswith(b"sec-websocket-"):
            continue
        text = value.decode("latin1")
        if key == b"cookie":
            text = _strip_portal_cookies(text)
            if not text:
                continue
        headers.append((key.decode("latin1"), text))
    headers.append(("authorization", f"token {target.token}"))
    if _header(scope, b"origin") is not None:
        # The server checks Origin against its own host: the portal has checked the real one.
        headers.append(("origin", f"http://{target.address}"))
    client = scope.get("client")
    if client:
        headers.append(("x-forwarded-for", str(client[0])))
    return headers


def _same_site(scope: dict[str, Any]) -> bool:
    """An unsafe request must come from a page of this site (Origin, else Referer, naming this host)."""
    host = _header(scope, b"host") or ""
    source = _header(scope, b"origin") or _header(scope, b"referer")
    if not source:
        return False
    return urlsplit(source).netloc == host


def _origin_allowed(scope: dict[str, Any]) -> bool:
    origin = _header(scope, b"origin")
    if not origin:
        return False
    host = urlsplit(origin).hostname or ""
    return validate_host(host, settings.ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"])


_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def _http() -> httpx.AsyncClient:
    """One pooled client per event loop (a server process has one)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop:
        _client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=5.0), follow_redirects=False)
        _client_loop = loop
    return _client


async def _simple(send: Any, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class ContainerProxy:
    """The ASGI application (wrapped in the session auth stack by ``portal.routing``)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(scope, receive, send)

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"]
        found = PATH_RE.match(path)
        if found is None:  # pragma: no cover - the router only sends matching paths
            await _simple(send, 404, "Not found.")
            return
        user, status, target, message = await _resolve(
            scope["session"], found["user"], found["name"], found["rest"], _session_cookie(scope)
        )
        if user is None:
            location = f"{settings.LOGIN_URL}?next={quote(path)}"
            await _simple(send, 302, "Sign in first.", [(b"location", location.encode())])
            return
        if not found["slash"]:
            await _simple(send, 302, "", [(b"location", f"{path}/".encode())])
            return
        if target is None:
            await _simple(send, status, message)
            return
        if scope["method"] not in SAFE_METHODS and not _same_site(scope):
            await _simple(send, 403, "Cross-site request refused.")
            return
        body = await _read_body(receive)
        query = scope.get("query_string", b"").decode("latin1")
        url = f"http://{target.address}{quote(path, safe='/%:@!$&()*+,;=~')}" + (f"?{query}" if query else "")
        client = _http()
        request = client.build_request(scope["method"], url, headers=_forward_headers(scope, target), content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            logger.info("container proxy: %s unreachable: %s", target.address, type(exc).__name__)
            await _simple(send, 502, "The container's server does not answer; it may be restarting.")
            return
        try:
            headers = [
                (k.lower().encode("latin1"), v.encode("latin1"))
                for k, v in response.headers.multi_items()
                if k.lower().encode("latin1") not in HOP_BY_HOP
            ]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        first = await receive()
        if first["type"] != "websocket.connect":
            return
        found = PATH_RE.match(scope["path"])
        if found is None or not _origin_allowed(scope):
            await send({"type": "websocket.close", "code": 4403})
            return
        user, status, target, _message = await _resolve(scope["session"], found["user"], found["name"], found["rest"])
        if user is None:
            await send({"type": "websocket.close", "code": 4403})
            return
        if target is None:
            await send({"type": "websocket.close", "code": 4404 if status == 404 else 4503})
            return
        query = scope.get("query_string", b"").decode("latin1")
        uri = f"ws://{target.address}{quote(scope['path'], safe='/%:@!$&()*+,;=~')}" + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in _forward_headers(scope, target) if k not in ("origin",)]
        try:
            upstream = await connect(
                uri,
                additional_headers=headers,
                origin=f"http://{target.address}",  # type: ignore[arg-type]
                subprotocols=scope.get("subprotocols") or None,
                max_size=None,
                open_timeout=10,
                ping_interval=None,
                compression=None,
            )
        except (TimeoutError, OSError, InvalidStatus) as exc:
            logger.info("container proxy: websocket to %s refused: %s", target.address, type(exc).__name__)
            await send({"type": "websocket.close", "code": 4502})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def client_to_upstream() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await upstream.send(message["bytes"])
                elif message.get("text") is not None:
                    await upstream.send(message["text"])

        async def upstream_to_client() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in upstream:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})

        tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await upstream.close()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})
