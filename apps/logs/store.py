"""Per-attempt, per-rank log files: timestamped, size-capped lines, read by byte cursor, searchable.

Layout: ``{root}/{chain_id}/{attempt_id}/rank-{rank}.log``, one file per (attempt, rank), holding
stdout and stderr merged. Every line is stored as ``[YYYY-MM-DD HH:MM:SS.ffffff] content\\n``: the
28-character UTC timestamp of HAI's ``ts '[%Y-%m-%d %H:%M:%.S]'`` pipeline plus one space, so
HAI-era tools that parse the prefix keep working. Path components are validated strictly (chain id
``[0-9a-f-]``, attempt and rank non-negative integers) so no caller can reach outside ``root``.

Writing (``LogWriter``): a writer receives arbitrary byte chunks (a pipe read, a stream event) and
emits *whole* lines only. A partial line stays in memory until its newline arrives, or until
``flush()``/``close()``; a writer that flushes on a timer would otherwise split one line into two
timestamped halves. The line is stamped with the time its first byte arrived. Memory per writer is
bounded: once a pending line passes ``line_max_bytes`` the writer keeps only the first
``line_max_bytes`` bytes (cut on a UTF-8 boundary) and counts the rest, and the stored line ends
with a visible `` …[truncated N bytes]`` marker. Each batch of complete lines goes to the file in
one ``os.write`` on an ``O_APPEND`` descriptor, so a reader never sees half a line and two writers
appending to one file interleave by whole lines. While output is only accumulating in the partial
buffer (a progress bar that never prints a newline), the writer touches the file's mtime at most once
a second, so the hang watchdog (``last_write_time``) does not mistake a chatty job for a silent one.

Reading never loads a whole file: ``read`` seeks to a byte offset and reads at most ``limit``
bytes, cutting back to the last newline so a page ends on a line boundary; a negative offset reads
the tail. ``read_chain`` pages across every attempt of a chain with a cursor ``(attempt_id,
offset)`` and inserts a separator line between attempts (never stored). ``search`` streams files
line by line with constant memory.

This module is plain Python (stdlib only; Django only inside ``get_log_store``): the rank
supervisor process imports it.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol, cast

TIMESTAMP_FORMAT = "[%Y-%m-%d %H:%M:%S.%f] "
"""``strftime`` format of the line prefix (UTC)."""

TIMESTAMP_LEN = 29
"""Length of the prefix: 28 characters including the brackets, then one space."""

DEFAULT_LINE_MAX_BYTES = 4096
TRUNCATION_MARKER = " …[truncated {n} bytes]"
LINE_END_SCAN_BYTES = 1024 * 1024
"""How far back ``line_end`` looks for a newline (far more than a capped line)."""

_CHAIN_ID_RE = re.compile(r"[0-9a-f-]{1,64}")
_TIMESTAMP_RE = re.compile(r"\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\] ")
_RANK_FILE_RE = re.compile(r"rank-(\d{1,6})\.log")
_MTIME_TOUCH_INTERVAL = 1.0
_MAX_PATTERN_LEN = 1000
_MAX_PATTERN_MEMORY = 8 << 20  # RE2's compiled-program budget; a pattern needing more is refused
_DEADLINE_CHECK_LINES = 256
_FILE_MODE = 0o640
_DIR_MODE = 0o750


def format_timestamp(epoch: float) -> str:
    """The line prefix for an epoch time: ``[2024-05-01 12:00:00.123456] `` (UTC)."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime(TIMESTAMP_FORMAT)


def split_timestamp(line: str) -> tuple[str | None, str]:
    """Split a stored line into ``(timestamp_prefix, content)``; prefix is ``None`` if absent."""
    if len(line) >= TIMESTAMP_LEN and _TIMESTAMP_RE.match(line):
        return line[:TIMESTAMP_LEN], line[TIMESTAMP_LEN:]
    return None, line


def _utf8_cut(data: bytes, limit: int) -> int:
    """Largest cut ``<= limit`` that does not split a UTF-8 sequence of ``data``."""
    if limit >= len(data):
        return len(data)
    cut = limit
    # Step back over at most 3 continuation bytes (10xxxxxx) to the start of the character.
    while cut > 0 and limit - cut < 3 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    if (data[cut] & 0xC0) == 0x80:  # not valid UTF-8 anyway: cut where asked
        return limit
    return cut


def _complete_utf8_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # continuation byte: keep looking for the lead byte
        need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
        return len(data) - back if need > back else len(data)
    return len(data)


def _validate_chain_id(chain_id: str) -> str:
    if not isinstance(chain_id, str) or not _CHAIN_ID_RE.fullmatch(chain_id):
        raise ValueError(f"invalid chain id {chain_id!r}: expected 1-64 characters of [0-9a-f-]")
    return chain_id


def _validate_number(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 10**18:
        raise ValueError(f"invalid {what} {value!r}: expected a non-negative integer")
    return value


def _open_raw(path: Path) -> BinaryIO:
    """Open a log file for unbuffered reading (a hook for tests that count the bytes read)."""
    return open(path, "rb", buffering=0)  # the caller closes it


def _read_at(f: BinaryIO, start: int, n: int) -> bytes:
    """Read up to ``n`` bytes at ``start`` with one seek; loops over short reads."""
    f.seek(start)
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        block = f.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# Data returned by readers


@dataclass(frozen=True)
class LogChunk:
    """A page of one rank's log. ``offset`` is where ``data`` starts, ``next_offset`` the cursor
    to pass next time; ``size`` the file size when read; ``eof`` whether the page reached it."""

    data: str
    offset: int
    next_offset: int
    size: int
    eof: bool


@dataclass(frozen=True)
class ChainCursor:
    """Position in a chain's logs: the next byte to read is ``offset`` in ``attempt_id``'s file.

    A cursor at offset 0 of a later attempt means the separator before it was already returned."""

    attempt_id: int
    offset: int


@dataclass(frozen=True)
class ChainChunk:
    """A page of a chain's logs across attempts; ``eof`` when the last attempt's end was reached."""

    data: str
    cursor: ChainCursor
    eof: bool


@dataclass(frozen=True)
class Match:
    """One matching line: 1-based ``line_no``, byte ``offset`` of the line start (usable as a
    ``read`` offset), ``text`` the whole stored line (with its timestamp, without newline)."""

    rank: int
    line_no: int
    offset: int
    text: str


@dataclass(frozen=True)
class SearchResult:
    """``counts`` has the number of matching lines per rank searched (all of them, even past
    ``max_matches``); ``matches`` the first ``max_matches`` lines in rank order."""

    counts: dict[int, int]
    matches: list[Match] = field(default_factory=list)
    truncated: bool = False


# --------------------------------------------------------------------------------------------
# Writing


class LogWriter:
    """Appends timestamped lines to one log file. Thread-safe; use one writer per file.

    ``write_bytes`` accepts arbitrary chunks (lines may span chunks); ``write_line`` writes one
    complete line (after flushing any pending partial line); ``close`` flushes and closes."""

    def __init__(self, path: Path, line_max_bytes: int, *, clock: Callable[[], float] | None = None) -> None:
        self.path = path
        self._max = line_max_bytes
        self._clock = clock or time.time
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        self._pending = bytearray()  # at most line_max_bytes + 3 bytes of the current line
        self._dropped = 0  # bytes of the current line beyond the cap
        self._line_started: float | None = None  # arrival time of the current line's first byte
        self._last_touch = 0.0

    # -- public API --------------------------------------------------------------------------

    def write_bytes(self, data: bytes) -> None:
        """Feed raw output; complete lines are stamped and appended, the rest is held."""
        if not data:
            return
        with self._lock:
            self._check_open()
            now = self._clock()
            out = bytearray()
            start = 0
            while True:
                nl = data.find(b"\n", start)
                piece = data[start:] if nl < 0 else data[start:nl]
                if piece:
                    self._accumulate(piece, now)
                if nl < 0:
                    break
                if self._line_started is None:
                    self._line_started = now
                out += self._take_line()
                start = nl + 1
                if start >= len(data):
                    break
            if out:
                self._write(bytes(out))
            elif self._line_started is not None and now - self._last_touch >= _MTIME_TOUCH_INTERVAL:
                # Output is arriving without newlines: count it as activity for the watchdog.
                self._last_touch = now
                with contextlib.suppress(OSError):
                    os.utime(self._fd)  # type: ignore[arg-type]

    def write_line(self, text: str) -> None:
        """Write ``text`` as complete line(s): one trailing newline is dropped, embedded ones
        make several lines."""
        with self._lock:
            self._check_open()
            now = self._clock()
            out = bytearray(self._take_partial())
            for line in text.removesuffix("\n").split("\n"):
                self._accumulate(line.encode("utf-8", errors="replace"), now)
                self._line_started = now
                out += self._take_line()
            self._write(bytes(out))

    def flush(self) -> None:
        """Write a pending partial line (if any) as a complete line."""
        with self._lock:
            self._check_open()
            out = self._take_partial()
            if out:
                self._write(out)

    def close(self) -> None:
        """Flush a pending partial line and close the file. Idempotent."""
        with self._lock:
            if self._fd is None:
                return
            try:
                out = self._take_partial()
                if out:
                    self._write(out)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (called with the lock held) -----------------------------------------------

    def _check_open(self) -> None:
        if self._fd is None:
            raise ValueError(f"log writer for {self.path} is closed")

    def _accumulate(self, piece: bytes, now: float) -> None:
        if self._line_started is None:
            self._line_started = now
        room = self._max + 3 - len(self._pending)  # +3: room to finish a UTF-8 character later
        if room > 0:
            self._pending += piece[:room]
            self._dropped += max(0, len(piece) - room)
        else:
            self._dropped += len(piece)

    def _take_partial(self) -> bytes:
        if self._line_started is None:
            return b""
        return self._take_line()

    def _take_line(self) -> bytes:
        """Format the pending line (stamp, cap, marker), reset the buffer, return the bytes."""
        content = bytes(self._pending)
        if content.endswith(b"\r"):
            content = content[:-1]
        dropped = self._dropped
        if len(content) > self._max:
            cut = _utf8_cut(content, self._max)
            dropped += len(content) - cut
            content = content[:cut]
        stamp = format_timestamp(self._line_started if self._line_started is not None else self._clock())
        line = stamp.encode("ascii") + content
        if dropped:
            line += TRUNCATION_MARKER.format(n=dropped).encode("utf-8")
        self._pending.clear()
        self._dropped = 0
        self._line_started = None
        return line + b"\n"

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


# --------------------------------------------------------------------------------------------
# Source-stamped lines (streaming backends): exactly-once appends


LogStamp = tuple[int, int]
"""A source timestamp: ``(epoch seconds, nanoseconds)``; the store keeps it to the microsecond."""


@dataclass(frozen=True)
class LogPosition:
    """The newest stamp in a log and how many lines at its end carry exactly that stamp."""

    stamp: LogStamp
    count: int


def _to_micros(stamp: LogStamp) -> LogStamp:
    return stamp[0], stamp[1] - stamp[1] % 1000


def format_stamped_line(stamp: LogStamp, text: str, line_max_bytes: int) -> bytes:
    """One stored line for ``text`` stamped ``stamp``: prefix, content capped like ``LogWriter``'s
    (cut on a UTF-8 boundary, with the truncation marker), newline. Embedded newlines become spaces
    (one source line is one stored line, or exactly-once appends could not count them)."""
    content = text.replace("\n", " ").removesuffix("\r").encode("utf-8", errors="replace")
    dropped = 0
    if len(content) > line_max_bytes:
        cut = _utf8_cut(content, line_max_bytes)
        dropped = len(content) - cut
        content = content[:cut]
    moment = datetime.fromtimestamp(stamp[0], tz=UTC).replace(microsecond=stamp[1] // 1000)
    line = moment.strftime(TIMESTAMP_FORMAT).encode("ascii") + content
    if dropped:
        line += TRUNCATION_MARKER.format(n=dropped).encode("utf-8")
    return line + b"\n"


def parse_stamp(prefix: bytes) -> LogStamp | None:
    """The ``LogStamp`` of a stored line's prefix (``[YYYY-MM-DD HH:MM:SS.ffffff] ``), or ``None``."""
    try:
        moment = datetime.strptime(prefix[1:27].decode("ascii"), "%Y-%m-%d %H:%M:%S.%f")
    except (UnicodeDecodeError, ValueError):
        return None
    return calendar.timegm(moment.timetuple()), moment.microsecond * 1000


def _tail_position(fd: int) -> LogPosition | None:
    """``LogPosition`` of the file open as ``fd``, from its last ``LINE_END_SCAN_BYTES`` at most."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - LINE_END_SCAN_BYTES)
    data = os.pread(fd, size - start, start)
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line still being written (not ours)
    if start > 0 and lines:
        lines.pop(0)  # may be cut
    last: LogStamp | None = None
    count = 0
    for line in reversed(lines):
        if len(line) < TIMESTAMP_LEN or not _TIMESTAMP_RE.match(line[:TIMESTAMP_LEN].decode("ascii", "replace")):
            break
        stamp = parse_stamp(line[:TIMESTAMP_LEN])
        if stamp is None or (last is not None and stamp != last):
            break
        last = stamp
        count += 1
    return None if last is None else LogPosition(last, count)


def _after(position: LogPosition | None, lines: Iterable[tuple[LogStamp, str]]) -> Iterator[tuple[LogStamp, str]]:
    """The lines of a stamped stream that come after ``position`` (see ``LogStore.append_stamped``)."""
    catching_up = position is not None
    seen_at_last = 0
    for stamp, text in lines:
        if catching_up and position is not None:
            if stamp < position.stamp:
                continue
            if stamp == position.stamp and seen_at_last < position.count:
                seen_at_last += 1
                continue
            catching_up = False
        yield stamp, text


# --------------------------------------------------------------------------------------------
# The store


class LogStore:
    """Log files of every attempt and rank under ``root``. Plain files; safe to share between
    processes (the rank supervisors write, the portal reads)."""

    def __init__(self, root: Path, line_max_bytes: int = DEFAULT_LINE_MAX_BYTES) -> None:
        if line_max_bytes < 16:
            raise ValueError("line_max_bytes must be at least 16")
        self.root = Path(root)
        self.line_max_bytes = line_max_bytes

    # -- paths -------------------------------------------------------------------------------

    def attempt_dir(self, chain_id: str, attempt_id: int) -> Path:
        return self.root / _validate_chain_id(chain_id) / str(_validate_number(attempt_id, "attempt id"))

    def path(self, chain_id: str, attempt_id: int, rank: int) -> Path:
        """Where a rank's log lives (validated: never outside ``root``)."""
        return self.attempt_dir(chain_id, attempt_id) / f"rank-{_validate_number(rank, 'rank')}.log"

    # -- writing -----------------------------------------------------------------------------

    def writer(self, chain_id: str, attempt_id: int, rank: int) -> LogWriter:
        """A writer appending to the rank's log (created with its directories if needed)."""
        return LogWriter(self.path(chain_id, attempt_id, rank), self.line_max_bytes)

    def append_lines(self, chain_id: str, attempt_id: int, rank: int, lines: Iterable[str]) -> None:
        """Append whole lines (no trailing newline, no timestamp) from a streaming backend."""
        with self.writer(chain_id, attempt_id, rank) as w:
            for line in lines:
                w.write_line(line)

    def append_stamped(self, chain_id: str, attempt_id: int, rank: int, lines: Sequence[tuple[LogStamp, str]]) -> int:
        """Append lines stamped by their source (the kubelet's time, as ``(epoch seconds,
        nanoseconds)``, kept to the microsecond) exactly once; returns how many were new.

        Under an exclusive ``flock`` on the file, the lines already stored are skipped: those older
        than the newest stored stamp, and as many at that stamp as the file ends with. So a batch
        delivered twice (two followers of one pod during an ownership hand-over, a follower that
        reconnected with a ``sinceSeconds`` margin) is stored once, in order. The source's stamps
        must not go backwards, which holds for one container's log."""
        if not lines:
            return 0
        path = self.path(chain_id, attempt_id, rank)
        path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            position = _tail_position(fd)
            out = bytearray()
            written = 0
            for stamp, text in _after(position, [(_to_micros(stamp), text) for stamp, text in lines]):
                out += format_stamped_line(stamp, text, self.line_max_bytes)
                written += 1
            view = memoryview(bytes(out))
            while view:
                view = view[os.write(fd, view) :]
            return written
        finally:
            os.close(fd)  # also lets go of the flock

    def stamp_position(self, chain_id: str, attempt_id: int, rank: int) -> LogPosition | None:
        """Where ``append_stamped`` left the rank's log: its newest stamp and how many lines the
        file ends with at that stamp (a follower resumes from here); ``None`` if it has none."""
        try:
            fd = os.open(self.path(chain_id, attempt_id, rank), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            return _tail_position(fd)
        finally:
            os.close(fd)

    # -- metadata ----------------------------------------------------------------------------

    def ranks(self, chain_id: str, attempt_id: int) -> list[int]:
        """Ranks that have a log file for this attempt, ascending."""
        try:
            names = os.listdir(self.attempt_dir(chain_id, attempt_id))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(m.group(1)) for n in names if (m := _RANK_FILE_RE.fullmatch(n)))

    def size(self, chain_id: str, attempt_id: int, rank: int) -> int:
        """Size in bytes of the rank's log; 0 if it does not exist."""
        try:
            return self.path(chain_id, attempt_id, rank).stat().st_size
        except FileNotFoundError:
            return 0

    def line_end(self, chain_id: str, attempt_id: int, rank: int) -> int:
        """The offset just after the last complete line of the rank's log (0 if none).

        A line is appended in one ``os.write``, but a reader can still catch it half copied (the
        kernel grows the file page by page), so "the end" of a file being written is this, not its
        size. A trailing run of more than ``LINE_END_SCAN_BYTES`` without a newline (not written by
        ``LogWriter``, whose lines are capped) counts as ending at the file's size."""
        try:
            f = _open_raw(self.path(chain_id, attempt_id, rank))
        except FileNotFoundError:
            return 0
        with f:
            size = os.fstat(f.fileno()).st_size
            end, floor = size, max(0, size - LINE_END_SCAN_BYTES)
            while end > floor:
                start = max(floor, end - 65536)
                nl = _read_at(f, start, end - start).rfind(b"\n")
                if nl >= 0:
                    return start + nl + 1
                end = start
            return 0 if floor == 0 else size

    def last_write_time(self, chain_id: str, attempt_id: int) -> float | None:
        """Newest mtime across the attempt's rank logs (epoch seconds), or ``None`` if none."""
        newest: float | None = None
        for rank in self.ranks(chain_id, attempt_id):
            try:
                mtime = self.path(chain_id, attempt_id, rank).stat().st_mtime
            except FileNotFoundError:
                continue
            newest = mtime if newest is None else max(newest, mtime)
        return newest

    def open_for_download(self, chain_id: str, attempt_id: int, rank: int) -> BinaryIO:
        """The raw log file opened for binary reading (raises ``FileNotFoundError``)."""
        return open(self.path(chain_id, attempt_id, rank), "rb")  # the caller closes it

    # -- reading -----------------------------------------------------------------------------

    def read(self, chain_id: str, attempt_id: int, rank: int, offset: int = 0, limit: int = 65536) -> LogChunk:
        """At most ``limit`` bytes from byte ``offset``, ending on a line boundary when possible.

        ``offset < 0`` reads the tail: the last ``-offset`` bytes, starting at the next line
        boundary. A missing file reads as empty (size 0, eof)."""
        return self._read(self.path(chain_id, attempt_id, rank), offset, limit, allow_partial=True)

    def _read(self, path: Path, offset: int, limit: int, *, allow_partial: bool) -> LogChunk:
        if limit <= 0:
            raise ValueError("limit must be positive")
        try:
            f = _open_raw(path)
        except FileNotFoundError:
            return LogChunk(data="", offset=0, next_offset=0, size=0, eof=True)
        with f:
            size = os.fstat(f.fileno()).st_size
            if offset < 0:
                start = max(0, size + offset)
                if start == 0:
                    raw = _read_at(f, 0, min(limit, size))
                else:
                    # Read one byte before ``start`` too, to know whether it already is a line start
                    # (so up to ``limit + 1`` bytes are read; at most ``limit`` are returned).
                    window = _read_at(f, start - 1, min(limit, size - start) + 1)
                    nl = window.find(b"\n")
                    if nl < 0:  # a single line longer than the tail: show it from ``start``
                        raw = window[1:]
                    else:
                        start = start + nl
                        raw = window[nl + 1 :]
            else:
                start = min(offset, size)
                raw = _read_at(f, start, min(limit, size - start))
        end = start + len(raw)
        if raw and not raw.endswith(b"\n"):
            nl = raw.rfind(b"\n")
            if nl >= 0:
                raw = raw[: nl + 1]
            elif not allow_partial and end < size:
                raw = b""  # the caller will retry with more room
            elif end < size:
                raw = raw[: _complete_utf8_prefix(raw)] or raw  # do not split a character between pages
            end = start + len(raw)
        return LogChunk(
            data=raw.decode("utf-8", errors="replace"), offset=start, next_offset=end, size=size, eof=end >= size
        )

    def read_chain(
        self,
        chain_id: str,
        attempt_ids: Sequence[int],
        rank: int,
        cursor: ChainCursor | None = None,
        limit: int = 65536,
    ) -> ChainChunk:
        """Page through one rank's logs across a chain's attempts (``attempt_ids`` in order).

        A separator line ``──── attempt N (id X) ────`` is inserted before every attempt after
        the first. Pass the returned cursor back to continue (or to follow: at the end the cursor
        stays put until more output or a new attempt appears). ``limit`` bounds the bytes
        returned, separators included (a single over-long line may exceed it when alone)."""
        if limit <= 0:
            raise ValueError("limit must be positive")
        ids = list(attempt_ids)
        if not ids:
            return ChainChunk(data="", cursor=cursor or ChainCursor(0, 0), eof=True)
        if cursor is None:
            idx, offset = 0, 0
        else:
            try:
                idx = ids.index(cursor.attempt_id)
            except ValueError:
                raise ValueError(f"cursor attempt {cursor.attempt_id} is not one of the chain's attempts") from None
            offset = max(0, cursor.offset)
        parts: list[str] = []
        used = 0
        eof = False
        while True:
            chunk = self._read(
                self.path(chain_id, ids[idx], rank), offset, max(1, limit - used), allow_partial=used == 0
            )
            parts.append(chunk.data)
            used += chunk.next_offset - chunk.offset
            if chunk.next_offset > offset or chunk.data:
                offset = chunk.next_offset
            if not chunk.eof:
                break
            if idx == len(ids) - 1:
                eof = True
                break
            separator = f"──── attempt {idx + 2} (id {ids[idx + 1]}) ────\n"
            previous = next((p for p in reversed(parts) if p), "")
            if previous and not previous.endswith("\n"):
                separator = "\n" + separator
            cost = len(separator.encode("utf-8"))
            if used and used + cost > limit:
                break  # the cursor stays at the end of this attempt; the separator comes next time
            parts.append(separator)
            used += cost
            idx, offset = idx + 1, 0
            if used >= limit:
                break
        return ChainChunk(data="".join(parts), cursor=ChainCursor(ids[idx], offset), eof=eof)

    # -- search ------------------------------------------------------------------------------

    def search(
        self,
        chain_id: str,
        attempt_id: int,
        ranks: Sequence[int] | None,
        pattern: str,
        *,
        regex: bool = False,
        case_sensitive: bool = False,
        max_matches: int = 200,
        time_budget: float | None = None,
    ) -> SearchResult:
        """Lines of an attempt's logs matching ``pattern`` (a substring, or a regex).

        The pattern is matched against each line's content (after the timestamp) in time linear in
        the line (RE2, see ``compile_search_pattern``). Files are streamed line by line; every match
        is counted per rank, at most ``max_matches`` lines are returned. Raises ``ValueError`` for an
        empty or invalid pattern, and ``SearchTimeout`` once the search has run ``time_budget``
        seconds (huge logs), so one search cannot occupy a server worker for long."""
        compiled = compile_search_pattern(pattern, regex=regex, case_sensitive=case_sensitive)
        deadline = None if time_budget is None else time.monotonic() + time_budget
        rank_list = list(ranks) if ranks is not None else self.ranks(chain_id, attempt_id)
        examined_max = self.line_max_bytes + 64  # content cap + marker; stored lines fit within
        counts: dict[int, int] = {}
        matches: list[Match] = []
        truncated = False
        examined = 0
        for rank in rank_list:
            path = self.path(chain_id, attempt_id, rank)
            count = 0
            for line_no, offset, text in _iter_lines(path, TIMESTAMP_LEN + examined_max):
                examined += 1
                if deadline is not None and examined % _DEADLINE_CHECK_LINES == 1 and time.monotonic() > deadline:
                    raise SearchTimeout(
                        f"the search was stopped after {time_budget:g} s (at rank {rank}, line {line_no}):"
                        " use a more specific pattern, or download the log and search it locally"
                    )
                _, content = split_timestamp(text)
                if compiled.search(content) is None:
                    continue
                count += 1
                if len(matches) < max_matches:
                    matches.append(Match(rank=rank, line_no=line_no, offset=offset, text=text))
                else:
                    truncated = True
            counts[rank] = count
        return SearchResult(counts=counts, matches=matches, truncated=truncated)


def _iter_lines(path: Path, max_len: int) -> Iterator[tuple[int, int, str]]:
    """``(line_no, byte_offset, text)`` for each line, examining at most ``max_len`` bytes of it."""
    try:
        reader = open(path, "rb", buffering=65536)  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with reader:
        offset = 0
        line_no = 0
        while True:
            raw = reader.readline(max_len)
            if not raw:
                return
            line_no += 1
            line_offset = offset
            offset += len(raw)
            if not raw.endswith(b"\n"):
                # Longer than examined: skip the rest of the line without holding it.
                while True:
                    rest = reader.readline(65536)
                    offset += len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line_no, line_offset, raw.rstrip(b"\n").decode("utf-8", errors="replace")


class SearchPattern(Protocol):
    """A compiled search pattern (a ``re2`` regular expression)."""

    def search(self, text: str) -> object | None: ...


class SearchTimeout(ValueError):
    """A search ran past its time budget and was stopped (a ``ValueError``: the caller's request was
    too broad, and the message says how to narrow it)."""


def compile_search_pattern(pattern: str, *, regex: bool, case_sensitive: bool) -> SearchPattern:
    """Compile a user's search pattern, raising ``ValueError`` with a message a user can act on.

    Patterns are compiled by RE2 (``google-re2``), whose matching time is linear in the length of the
    line whatever the pattern: no pattern (``(a|a)*b``, ``(a+)+``) can make a search backtrack for
    ever and hold the interpreter. RE2 has no backreferences or lookaround; such a pattern is refused
    with RE2's own explanation. A plain (non-regex) pattern is matched literally."""
    import re2  # imported here: the rank supervisor imports this module and never searches

    if not pattern:
        raise ValueError("empty search pattern")
    if len(pattern) > _MAX_PATTERN_LEN:
        raise ValueError(f"search pattern too long (at most {_MAX_PATTERN_LEN} characters)")
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.literal = not regex
    options.max_mem = _MAX_PATTERN_MEMORY
    options.log_errors = False
    try:
        return cast(SearchPattern, re2.compile(pattern, options))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise ValueError(
            f"invalid regular expression: {reason} (the search supports RE2 syntax: no backreferences or lookaround)"
        ) from None


@lru_cache(maxsize=1)
def get_log_store() -> LogStore:
    """The process's log store under ``ROTA_LOG_ROOT`` (settings are read on first use; tests that
    change the root call ``get_log_store.cache_clear()``)."""
    from django.conf import settings

    return LogStore(settings.ROTA_LOG_ROOT, line_max_bytes=int(settings.ROTA_LAUNCHER["LOG_LINE_MAX_BYTES"]))
