"""What both Kubernetes backends (job ranks, development containers) wire the same way: informers
and log followers.

``PodWatching`` is the mixin: one lock, one ``closing`` event and one ``Streams`` registry per
backend; informers made with the backend's relist interval and request timeout
(``_new_informer``), started at most once (``_begin_watching``); one ``LogFollower`` per
``(id, index)`` key (``_follow_locked``), each reading the container's log through
``_open_log`` and writing through the launcher's fenced ``LogJournal`` (``_journal_append``);
``close`` stops every stream, informer and follower. Each backend keeps what differs: which pods
it selects, what a pod means (``_pod_finished``, observations) and its own bookkeeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client

from apps.launcher.backends.base import LogJournal
from apps.launcher.backends.kubernetes.api import CONNECT_TIMEOUT, Streams
from apps.launcher.backends.kubernetes.informer import Informer
from apps.launcher.backends.kubernetes.logs import LOG_READ_TIMEOUT, LogFollower
from apps.launcher.backends.kubernetes.podspec import JsonDict
from apps.logs.store import LogStamp

log = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0


class PodWatching:
    """Informers and log followers of one backend (see the module docstring). The backend sets
    ``_core``, ``_namespace``, ``_log_journal``, ``_relist_interval`` and ``_request_timeout``,
    calls ``_init_watching()`` in its ``__init__`` and implements ``_emit_logs``/``_pod_finished``."""

    _core: client.CoreV1Api
    _namespace: str
    _log_journal: LogJournal | None
    _relist_interval: float
    _request_timeout: float

    def _init_watching(self) -> None:
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._streams = Streams(self._closing)
        self._followers: dict[tuple[int, int], LogFollower] = {}
        self._informers: list[Informer] = []

    # -- informers -------------------------------------------------------------------------------

    def _begin_watching(self) -> bool:
        """Under ``_lock``: ``True`` when the informers are still to be made; raises once closed."""
        if self._closing.is_set():
            raise RuntimeError("the backend is closed")
        return not self._informers

    def _new_informer(
        self,
        *,
        name: str,
        list_call: Callable[..., Any],
        select: Callable[[JsonDict], bool],
        on_replace: Callable[[list[JsonDict], float], None],
        on_event: Callable[[str, JsonDict], None],
    ) -> Informer:
        """An informer with the backend's timings, stopped by ``close`` (start it once all are made)."""
        informer = Informer(
            name=name,
            list_call=list_call,
            select=select,
            on_replace=on_replace,
            on_event=on_event,
            relist_interval=self._relist_interval,
            request_timeout=self._request_timeout,
            closing=self._closing,
            streams=self._streams,
        )
        self._informers.append(informer)
        return informer

    @staticmethod
    def _serving(informer: Informer | None) -> bool:
        """The informer's cache can be read instead of the API: listed once and still running."""
        return informer is not None and informer.synced.is_set() and informer.alive

    # -- log followers ---------------------------------------------------------------------------

    def _follow_locked(self, key: tuple[int, int], pod: str, container: str) -> None:
        """Under ``_lock``: follow ``container``'s log of ``pod`` as ``key`` unless already followed."""
        if (self._log_journal is None and not self._has_log_sink()) or self._closing.is_set():
            return
        if key in self._followers:
            return
        follower = LogFollower(self, key[0], key[1], pod, container=container)
        self._followers[key] = follower
        follower.start()

    def _has_log_sink(self) -> bool:
        """Whether lines have somewhere to go besides the journal (the job backend's plain sink)."""
        return False

    def _drop_followers_locked(self, ident: int) -> list[LogFollower]:
        """Under ``_lock``: forget the followers of ``ident``; cancel them after releasing the lock."""
        return [self._followers.pop(key) for key in list(self._followers) if key[0] == ident]

    def _open_log(self, pod: str, since_seconds: int | None, container: str) -> Any:
        kwargs: dict[str, Any] = {
            "container": container,
            "follow": True,
            "timestamps": True,
            "_preload_content": False,
            "_request_timeout": (CONNECT_TIMEOUT, LOG_READ_TIMEOUT),
        }
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        return self._core.read_namespaced_pod_log(pod, self._namespace, **kwargs)

    def _journal_append(self, ident: int, index: int, lines: list[tuple[LogStamp, str]]) -> bool:
        """Hand lines to the journal; ``False`` when it did not take them (refused, or failed: the
        follower then resumes from the journal's stored position)."""
        if self._log_journal is None:
            return True
        try:
            return self._log_journal.append(ident, index, lines) is not None
        except Exception:
            log.exception("log journal failed for %s %s/%s", type(self).__name__, ident, index)
            return False

    def _emit_logs(self, ident: int, index: int, lines: list[tuple[LogStamp, str]]) -> bool:
        return self._journal_append(ident, index, lines)

    def _pod_finished(self, key: tuple[int, int], name: str) -> bool:
        """Has the followed container (or its pod) ended? (a follower asks once its stream ended)"""
        raise NotImplementedError

    def active_log_streams(self) -> set[tuple[int, int]]:
        """Keys whose log follower is still running (for tests and /monitor)."""
        with self._lock:
            return {key for key, follower in self._followers.items() if not follower.done.is_set()}

    # -- shutdown --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every stream, informer and follower (each thread joined for a few seconds)."""
        self._closing.set()
        self._streams.abort_all()
        with self._lock:
            followers = list(self._followers.values())
        for follower in followers:
            follower.cancel()
        for informer in self._informers:
            informer.join(JOIN_TIMEOUT)
        for follower in followers:
            follower.join(JOIN_TIMEOUT)
