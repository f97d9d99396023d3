"""Following container logs: kubelet timestamps → bare lines, resumed exactly after a reconnect.

See docs/kubernetes.md, "Logs".
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from apps.launcher.backends.kubernetes.api import BACKOFF_MAX, BACKOFF_MIN, abort, describe, raise_for_status
from apps.launcher.backends.kubernetes.manifests import CONTAINER_NAME
from apps.logs.store import LogPosition, LogStamp

if TYPE_CHECKING:  # types only: watching imports this module
    from apps.launcher.backends.kubernetes.watching import PodWatching

log = logging.getLogger(__name__)

LOG_READ_TIMEOUT = 300.0  # an idle log stream is reopened (with resume) after this long
_LOG_SINCE_MARGIN = 30  # seconds of clock skew tolerated when resuming a log stream
_LOG_CHUNK = 64 * 1024
_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def parse_log_timestamp(token: str) -> tuple[int, int] | None:
    """Kubelet RFC3339Nano timestamp → ``(epoch seconds, nanoseconds)``; ``None`` if not one.

    Compared as numbers, never as strings: RFC3339Nano drops trailing zeros of the fraction.
    """
    match = _LOG_TS.match(token)
    if match is None:
        return None
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        seconds = int(dt.datetime.fromisoformat(match[1] + zone).timestamp())
    except ValueError:
        return None
    return seconds, int((match[2] or "").ljust(9, "0"))


class LogLineSplitter:
    """Turns a byte stream into complete lines (no newline, UTF-8 decoded leniently)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += chunk
        *complete, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        return [_decode_line(line) for line in complete]

    def flush(self) -> list[str]:
        """The trailing line without a newline, if any (call only when the stream is really over)."""
        if not self._buffer:
            return []
        line = _decode_line(self._buffer)
        self._buffer = bytearray()
        return [line]


def _decode_line(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace").removesuffix("\r")


class LogCursor:
    """Position of a follower in a container log, by kubelet timestamp, for exact resumption.

    ``last`` is the newest timestamp delivered and ``count_at_last`` how many delivered lines carry
    exactly that timestamp. After a reconnect (``begin_stream``) lines are skipped while they are
    older than ``last`` or are among the first ``count_at_last`` lines stamped ``last``; from the
    first new line on, everything passes (a stream's timestamps are not trusted to be monotonic
    beyond the catch-up).
    """

    def __init__(self) -> None:
        self.last: tuple[int, int] | None = None
        self.count_at_last = 0
        self._catching_up = False
        self._seen_at_last = 0

    @classmethod
    def at(cls, position: LogPosition | None) -> LogCursor:
        """A cursor resuming after a stored ``position`` (``None``: from the beginning)."""
        cursor = cls()
        if position is not None:
            cursor.last, cursor.count_at_last = position.stamp, position.count
        return cursor

    def begin_stream(self) -> None:
        self._catching_up = self.last is not None
        self._seen_at_last = 0

    def since_seconds(self, now: float) -> int | None:
        if self.last is None:
            return None
        return max(1, math.ceil(now - self.last[0]) + _LOG_SINCE_MARGIN)

    def accept(self, key: tuple[int, int] | None) -> bool:
        if key is None:  # no timestamp: cannot be placed, deliver
            return True
        if self._catching_up and self.last is not None:
            if key < self.last:
                return False
            if key == self.last and self._seen_at_last < self.count_at_last:
                self._seen_at_last += 1
                return False
            self._catching_up = False
        if key == self.last:
            self.count_at_last += 1
        else:
            self.last = key
            self.count_at_last = 1
        return True


class _Refused(Exception):
    """The journal refused a batch (this process no longer owns the cluster)."""


def _micros(key: tuple[int, int]) -> LogStamp:
    """A kubelet stamp cut to the microsecond, the precision the log store keeps."""
    return key[0], key[1] - key[1] % 1000


class LogFollower:
    """Follows one pod's container log in a thread (docs/kubernetes.md, "Logs").

    With a journal (the launcher's case) the follower only runs while the journal accepts, and
    every (re)connection resumes from the journal's stored position, so what a refused batch or a
    previous process left unwritten is fetched again and nothing is written twice."""

    def __init__(
        self, backend: PodWatching, attempt_id: int, rank: int, pod: str, container: str = CONTAINER_NAME
    ) -> None:
        self.attempt_id = attempt_id
        self.rank = rank
        self.pod = pod
        self.container = container
        self.cursor = LogCursor()
        self.delivered = 0
        self.done = threading.Event()
        self._backend = backend
        self._cancelled = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"rota-k8s-logs-{pod}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()
        resp = self._resp
        if resp is not None:
            abort(resp)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._cancelled.is_set() or self._backend._closing.is_set()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # pragma: no cover - defensive: a follower must never kill the process
            log.exception("log follower for %s crashed", self.pod)
        finally:
            self.done.set()

    def _follow(self) -> None:
        backoff = BACKOFF_MIN
        unclean_after_end = 0
        journal = self._backend._log_journal
        while not self.stopped:
            splitter = LogLineSplitter()
            clean = got_data = False
            if journal is not None:
                try:
                    accepting = journal.accepting()
                    if accepting:
                        self.cursor = LogCursor.at(journal.position(self.attempt_id, self.rank))
                except Exception:
                    log.warning("log journal unavailable for %s", self.pod, exc_info=True)
                    accepting = False
                if not accepting:
                    self._cancelled.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
            try:
                resp = self._backend._open_log(self.pod, self.cursor.since_seconds(time.time()), self.container)
                self._resp = resp
                with self._backend._streams.track(resp):
                    if self.stopped:
                        return
                    raise_for_status(resp)
                    self.cursor.begin_stream()
                    for chunk in resp.stream(amt=_LOG_CHUNK, decode_content=True):
                        if self.stopped:
                            return
                        if chunk:
                            got_data = True
                            self._deliver(splitter.feed(chunk))
                clean = True
            except ApiException as exc:
                if exc.status == 404:
                    return  # the pod is gone
                log.debug("log stream of %s failed: %s", self.pod, describe(exc))
            except _Refused:
                log.info("log of %s not written: the journal refused it; resuming from the store", self.pod)
                got_data = False
            except Exception as exc:  # network trouble: resume below
                if self.stopped:
                    return
                log.debug("log stream of %s broke: %s", self.pod, describe(exc))
            finally:
                self._resp = None
            if self.stopped:
                return
            try:
                finished = self._backend._pod_finished((self.attempt_id, self.rank), self.pod)
            except Exception:  # unknown: assume still running, retry later
                finished = False
            if finished:
                if clean:
                    try:
                        self._deliver(splitter.flush())
                        return
                    except _Refused:
                        pass  # fetched again from the stored position next time
                unclean_after_end += 1
                if unclean_after_end >= 3:
                    return
            if got_data:
                backoff = BACKOFF_MIN
            self._cancelled.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _deliver(self, raw_lines: list[str]) -> None:
        lines: list[tuple[LogStamp, str]] = []
        for raw in raw_lines:
            token, sep, text = raw.partition(" ")
            key = parse_log_timestamp(token)
            if key is None:
                # Not stamped (never with timestamps=true, but be safe): placed with the line before
                # it, so the stored log keeps non-decreasing stamps and resumption stays exact.
                text = raw
                key = self.cursor.last or (int(time.time()), 0)
            elif not sep:
                text = ""
            key = _micros(key)
            if self.cursor.accept(key):
                lines.append((key, text))
        if lines:
            if not self._backend._emit_logs(self.attempt_id, self.rank, lines):
                raise _Refused
            self.delivered += len(lines)
