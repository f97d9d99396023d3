"""Liveness and readiness for probes: ``/healthz`` and ``/readyz``.

Answered by ``HealthMiddleware``, first in ``MIDDLEWARE``, before anything reads the Host header or
redirects to HTTPS: the kubelet probes a pod by its IP over plain HTTP, and a probe that got
``400 DisallowedHost`` (or a redirect) would keep every web pod out of its Service.

* ``/healthz``: the process serves requests. No dependencies: a database outage must not make
  Kubernetes restart every web pod.
* ``/readyz``: the database answers and, in production, Redis (channels, cache, task broker). The
  JSON body also reports the age of the last scheduling and reconcile passes (the worker's
  heartbeat, recorded by ``record_pass``); ``/readyz?full=1`` fails when they are older than
  ``ROTA_READY_MAX_PASS_AGE_SECONDS`` too (for the worker's own probe and for alerting: web pods
  stay ready while the worker restarts).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

PASS_KEY = "rota:health:pass:{name}"  # noqa: S105 - a cache key, not a secret
PASS_NAMES = ("scheduler", "launcher")


PASS_DURATION_KEY = "rota:health:pass-seconds:{name}"  # noqa: S105 - a cache key


def record_pass(name: str, seconds: float | None = None) -> None:
    """Note that a ``name`` pass (``scheduler`` | ``launcher``) just completed, and how long it took
    (shared cache: the worker writes, every web replica's ``/metrics`` reads)."""
    with contextlib.suppress(Exception):  # health bookkeeping must never break a pass
        cache.set(PASS_KEY.format(name=name), time.time(), timeout=None)
        if seconds is not None:
            cache.set(PASS_DURATION_KEY.format(name=name), float(seconds), timeout=None)


def last_pass_seconds(name: str) -> float | None:
    """How long the last ``name`` pass took (seconds), if one was recorded."""
    try:
        value = cache.get(PASS_DURATION_KEY.format(name=name))
    except Exception:
        return None
    return float(value) if isinstance(value, int | float) else None


def last_pass_at(name: str) -> float | None:
    try:
        value = cache.get(PASS_KEY.format(name=name))
    except Exception:
        return None
    return float(value) if isinstance(value, int | float) else None


def check_database() -> str:
    """ "" when the database answers, else why not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return ""


_redis_clients: dict[str, Any] = {}


def check_redis() -> str:
    """ "" when Redis answers (or none is configured: the embedded profile), else why not."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return ""
    try:
        client = _redis_clients.get(url)
        if client is None:
            client = _redis_clients[url] = redis.Redis.from_url(
                url, socket_timeout=2, socket_connect_timeout=2, protocol=2
            )
        try:
            client.ping()
        except redis.ConnectionError:  # a pooled connection from before a Redis restart: once more
            client.connection_pool.disconnect()
            client.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return ""


def readiness(*, full: bool, now: float | None = None) -> tuple[bool, dict[str, Any]]:
    """Run the checks: ``(ready, report)``."""
    now = time.time() if now is None else now
    max_age = float(settings.ROTA_READY_MAX_PASS_AGE_SECONDS)
    checks: dict[str, Any] = {}
    for name, check in (("database", check_database), ("redis", check_redis)):
        error = check()
        checks[name] = {"ok": not error, **({"error": error} if error else {})}
    for name in PASS_NAMES:
        at = last_pass_at(name)
        age = None if at is None else round(max(0.0, now - at), 3)
        checks[f"{name}_pass"] = {"ok": age is not None and age <= max_age, "age_seconds": age}
    required = ["database", "redis"] + ([f"{n}_pass" for n in PASS_NAMES] if full else [])
    ready = all(checks[name]["ok"] for name in required)
    return ready, {"status": "ready" if ready else "unready", "checks": checks}


class HealthMiddleware:
    """Answers ``/healthz`` and ``/readyz`` (GET or HEAD) whatever the Host header and scheme."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path not in ("/healthz", "/readyz") or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        if path == "/healthz":
            response: HttpResponse = JsonResponse({"status": "ok"})
        else:
            ready, report = readiness(full=request.GET.get("full") in {"1", "true", "yes"})
            response = JsonResponse(report, status=200 if ready else 503)
        response["Cache-Control"] = "no-store"
        return response
