"""List + watch of one resource into callbacks, in a thread (see docs/kubernetes.md, "Observation")."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from apps.launcher.backends.kubernetes.api import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    CONNECT_TIMEOUT,
    Gone,
    Streams,
    describe,
    raise_for_status,
    read_json,
)
from apps.launcher.backends.kubernetes.manifests import JsonDict

log = logging.getLogger(__name__)

_WATCH_TIMEOUT_MAX = 300  # seconds; a watch never stays open longer than this (server side)


class Informer:
    """List + watch of one resource into callbacks, in a thread (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        list_call: Callable[..., Any],
        select: Callable[[JsonDict], bool],
        on_replace: Callable[[list[JsonDict], float], None],
        on_event: Callable[[str, JsonDict], None],
        relist_interval: float,
        request_timeout: float,
        closing: threading.Event,
        streams: Streams,
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._select = select
        self._on_replace = on_replace
        self._on_event = on_event
        self._relist_interval = relist_interval
        self._request_timeout = request_timeout
        self._closing = closing
        self._streams = streams
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rota-k8s-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        gone_streak = 0
        while not self._closing.is_set():
            try:
                resource_version = self._relist()
                deadline = time.monotonic() + self._relist_interval
                while not self._closing.is_set() and time.monotonic() < deadline:
                    resource_version, events = self._watch(resource_version, deadline)
                    if events:
                        backoff, gone_streak = BACKOFF_MIN, 0
                    else:  # an empty watch: do not hammer a server that ends streams at once
                        self._closing.wait(min(backoff, max(0.0, deadline - time.monotonic())))
                        backoff = min(backoff * 2, BACKOFF_MAX)
            except Gone:
                gone_streak += 1
                log.info("%s: watch expired (410 Gone), relisting", self.name)
                if gone_streak > 1:
                    self._closing.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:  # the informer must survive anything
                if self._closing.is_set():
                    break
                log.warning("%s: list/watch failed (%s), retrying in %.1fs", self.name, describe(exc), backoff)
                self._closing.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _relist(self) -> str:
        started = time.monotonic()
        data = read_json(
            self._list_call(_preload_content=False, _request_timeout=(CONNECT_TIMEOUT, self._request_timeout))
        )
        items = [item for item in data.get("items") or [] if self._select(item)]
        self._on_replace(items, started)
        self.synced.set()
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, resource_version: str, deadline: float) -> tuple[str, int]:
        remaining = max(0.05, deadline - time.monotonic())
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "timeout_seconds": max(1, min(_WATCH_TIMEOUT_MAX, math.ceil(remaining))),
            "_preload_content": False,
            "_request_timeout": (CONNECT_TIMEOUT, remaining),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            resp = self._list_call(**kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise Gone from exc
            raise
        events = 0
        with self._streams.track(resp):
            try:
                raise_for_status(resp)
            except ApiException as exc:
                if exc.status == 410:
                    raise Gone from exc
                raise
            try:
                for line in _iter_lines(resp):
                    if self._closing.is_set():
                        break
                    event = _parse_event(line)
                    if event is None:
                        continue
                    kind, obj = event
                    if kind == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            raise Gone
                        raise ApiException(status=code, reason=str(obj.get("reason") or "watch error"))
                    if kind in ("ADDED", "MODIFIED", "DELETED") and self._select(obj):
                        self._on_event(kind, obj)
                    new_version = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_version:
                        resource_version = str(new_version)
                    events += 1
                    if time.monotonic() >= deadline:
                        break
            except urllib3.exceptions.ReadTimeoutError:
                pass  # idle until the relist deadline: a normal end
            except (urllib3.exceptions.ProtocolError, OSError):
                if not self._closing.is_set():
                    raise
        return resource_version, events


def _iter_lines(resp: Any) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in resp.stream(amt=None, decode_content=True):
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            if line.strip():
                yield bytes(line)
    if buffer.strip():
        yield bytes(buffer)


def _parse_event(line: bytes) -> tuple[str, JsonDict] | None:
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("ignoring a watch line that is not JSON")
        return None
    if not isinstance(event, dict):
        return None
    obj = event.get("object")
    return str(event.get("type") or ""), obj if isinstance(obj, dict) else {}
