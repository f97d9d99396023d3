"""The log store: line format, truncation, partial lines, paging by byte cursor, tails, chains, search."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from apps.logs import store as logstore
from apps.logs.store import (
    TIMESTAMP_LEN,
    ChainCursor,
    LogChunk,
    LogStore,
    LogWriter,
    SearchTimeout,
    format_timestamp,
    split_timestamp,
)

CHAIN = "0f3a9c2e-77d1"
LINE_RE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\] (.*)$")
FIXED_EPOCH = 1714564800.25  # 2024-05-01 12:00:00.250000 UTC


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(tmp_path / "logs")


def contents(text: str) -> list[str]:
    """The content part of every stored line (asserting each has the timestamp prefix)."""
    out = []
    for line in text.splitlines():
        m = LINE_RE.match(line)
        assert m, f"line without timestamp prefix: {line!r}"
        out.append(m.group(1))
    return out


def file_text(store: LogStore, attempt: int = 1, rank: int = 0) -> str:
    return store.path(CHAIN, attempt, rank).read_text(encoding="utf-8")


def write_numbered(store: LogStore, attempt: int, rank: int, n: int, prefix: str = "line") -> None:
    store.append_lines(CHAIN, attempt, rank, [f"{prefix}-{i:03d}" for i in range(n)])


# --------------------------------------------------------------------------------------------
# Writing


def test_lines_carry_the_28_character_utc_timestamp_then_one_space(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    with LogWriter(path, 4096, clock=lambda: FIXED_EPOCH) as w:
        w.write_bytes(b"hello world\n")
        w.write_line("second")
    assert path.read_bytes() == (b"[2024-05-01 12:00:00.250000] hello world\n[2024-05-01 12:00:00.250000] second\n")
    assert format_timestamp(FIXED_EPOCH) == "[2024-05-01 12:00:00.250000] "
    assert len(format_timestamp(FIXED_EPOCH)) == TIMESTAMP_LEN == 29
    assert split_timestamp("[2024-05-01 12:00:00.250000] x y") == ("[2024-05-01 12:00:00.250000] ", "x y")
    assert split_timestamp("no stamp") == (None, "no stamp")


def test_store_writer_creates_directories_and_appends(store: LogStore) -> None:
    store.append_lines(CHAIN, 1, 0, ["a"])
    store.append_lines(CHAIN, 1, 0, ["b", "c"])
    assert store.path(CHAIN, 1, 0) == store.root / CHAIN / "1" / "rank-0.log"
    assert contents(file_text(store)) == ["a", "b", "c"]


def test_long_line_is_truncated_visibly_with_the_dropped_byte_count(tmp_path: Path) -> None:
    store = LogStore(tmp_path, line_max_bytes=16)
    store.append_lines(CHAIN, 1, 0, ["x" * 40, "short"])
    assert contents(file_text(store)) == ["x" * 16 + " …[truncated 24 bytes]", "short"]


def test_truncation_cuts_on_a_utf8_boundary(tmp_path: Path) -> None:
    store = LogStore(tmp_path, line_max_bytes=17)
    store.append_lines(CHAIN, 1, 0, ["é" * 10])  # 20 bytes; 17 would split the 9th character
    assert contents(file_text(store)) == ["é" * 8 + " …[truncated 4 bytes]"]


def test_truncation_works_when_the_long_line_arrives_in_many_chunks(tmp_path: Path) -> None:
    store = LogStore(tmp_path, line_max_bytes=16)
    with store.writer(CHAIN, 1, 0) as w:
        data = b"y" * 1000 + b"\nnext\n"
        for i in range(0, len(data), 7):
            w.write_bytes(data[i : i + 7])
    assert contents(file_text(store)) == ["y" * 16 + " …[truncated 984 bytes]", "next"]


def test_partial_lines_are_held_until_newline_and_never_split(store: LogStore) -> None:
    w = store.writer(CHAIN, 1, 0)
    w.write_bytes(b"hel")
    w.write_bytes(b"lo wor")
    assert file_text(store) == ""  # nothing visible until the line is complete
    w.write_bytes(b"ld\nnext par")
    assert contents(file_text(store)) == ["hello world"]
    w.write_bytes(b"tial")
    w.close()  # close flushes the pending partial line as one line
    assert contents(file_text(store)) == ["hello world", "next partial"]
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write_bytes(b"more\n")


def test_write_line_flushes_a_pending_partial_line_first_and_strips_cr(store: LogStore) -> None:
    with store.writer(CHAIN, 1, 0) as w:
        w.write_bytes(b"dos line\r\nprogress 50%")
        w.write_line("[rota] exited with code 3")
    assert contents(file_text(store)) == ["dos line", "progress 50%", "[rota] exited with code 3"]


def test_write_line_drops_one_trailing_newline_and_splits_embedded_ones(store: LogStore) -> None:
    store.append_lines(CHAIN, 1, 0, ["one\n", "two\nthree", ""])
    assert contents(file_text(store)) == ["one", "two", "three", ""]


def test_a_line_is_stamped_when_its_first_byte_arrives(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "x.log"
    with LogWriter(path, 4096, clock=lambda: now[0]) as w:
        w.write_bytes(b"start ")
        now[0] = 200.0
        w.write_bytes(b"end\n")
    assert path.read_text().startswith(format_timestamp(100.0) + "start end")


def test_output_without_newline_counts_as_activity_for_the_watchdog(store: LogStore) -> None:
    w = store.writer(CHAIN, 1, 0)
    path = store.path(CHAIN, 1, 0)
    os.utime(path, (1000.0, 1000.0))
    w.write_bytes(b"progress bar without newline")
    assert path.stat().st_mtime > 1_000_000
    assert path.read_bytes() == b""
    w.close()


def test_writer_is_thread_safe_and_keeps_lines_whole(store: LogStore) -> None:
    w = store.writer(CHAIN, 1, 0)

    def work(t: int) -> None:
        for j in range(300):
            w.write_bytes(f"thread-{t} line-{j}\n".encode())

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    lines = contents(file_text(store))
    assert len(lines) == 1200
    assert all(re.fullmatch(r"thread-\d line-\d+", line) for line in lines)
    for t in range(4):
        assert [x for x in lines if x.startswith(f"thread-{t} ")] == [f"thread-{t} line-{j}" for j in range(300)]


# --------------------------------------------------------------------------------------------
# Paths


@pytest.mark.parametrize("chain", ["../etc", "a/b", "ABC", "", "x" * 65, "..", "abc\n", "abc/../../x"])
def test_bad_chain_ids_are_rejected(store: LogStore, chain: str) -> None:
    with pytest.raises(ValueError, match="invalid chain id"):
        store.path(chain, 1, 0)


@pytest.mark.parametrize("attempt", [-1, "1", True, 1.0, "../1"])
def test_bad_attempt_ids_are_rejected(store: LogStore, attempt: object) -> None:
    with pytest.raises(ValueError, match="invalid attempt id"):
        store.path(CHAIN, attempt, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("rank", [-1, "0", None])
def test_bad_ranks_are_rejected(store: LogStore, rank: object) -> None:
    with pytest.raises(ValueError, match="invalid rank"):
        store.read(CHAIN, 1, rank)  # type: ignore[arg-type]


def test_every_path_stays_under_the_root(store: LogStore) -> None:
    path = store.path("deadbeef-0000", 12, 3).resolve()
    assert path.is_relative_to(store.root.resolve())


# --------------------------------------------------------------------------------------------
# Reading


def test_read_pages_end_on_line_boundaries_and_cover_the_file_exactly(store: LogStore) -> None:
    write_numbered(store, 1, 0, 100)
    whole = file_text(store)
    line_len = len(whole.splitlines()[0]) + 1  # every line has the same length here
    pages: list[LogChunk] = []
    offset = 0
    while True:
        chunk = store.read(CHAIN, 1, 0, offset=offset, limit=100)
        pages.append(chunk)
        assert chunk.offset == offset
        assert len(chunk.data.encode()) == chunk.next_offset - chunk.offset <= 100
        assert chunk.data.endswith("\n")
        assert chunk.size == len(whole)
        offset = chunk.next_offset
        if chunk.eof:
            break
    assert "".join(p.data for p in pages) == whole
    assert len(pages[0].data) == (100 // line_len) * line_len
    assert [p.eof for p in pages].count(True) == 1


def test_read_a_single_line_longer_than_the_limit_returns_part_of_it(store: LogStore) -> None:
    store.append_lines(CHAIN, 1, 0, ["z" * 200, "tail"])
    first = store.read(CHAIN, 1, 0, offset=0, limit=64)
    assert len(first.data) == 64
    assert not first.eof
    rest = store.read(CHAIN, 1, 0, offset=first.next_offset, limit=4096)
    assert first.data + rest.data == file_text(store)


def test_read_does_not_split_a_utf8_character_between_pages(store: LogStore) -> None:
    store.append_lines(CHAIN, 1, 0, ["€" * 50])  # 3 bytes each
    first = store.read(CHAIN, 1, 0, offset=0, limit=TIMESTAMP_LEN + 4)  # stamp + 1⅓ characters
    assert first.data == file_text(store)[: TIMESTAMP_LEN + 1]
    rest = store.read(CHAIN, 1, 0, offset=first.next_offset, limit=4096)
    assert "\ufffd" not in first.data + rest.data
    assert first.data + rest.data == file_text(store)


def test_negative_offset_reads_the_tail_from_the_next_line_boundary(store: LogStore) -> None:
    write_numbered(store, 1, 0, 100)
    whole = file_text(store)
    chunk = store.read(CHAIN, 1, 0, offset=-100, limit=65536)
    assert chunk.eof
    assert chunk.next_offset == chunk.size == len(whole)
    assert whole.endswith(chunk.data)
    assert len(chunk.data) <= 100
    assert chunk.data.startswith("[")  # starts at a line start
    assert chunk.offset == len(whole) - len(chunk.data)
    assert whole[chunk.offset - 1] == "\n"
    assert contents(chunk.data)[-1] == "line-099"


def test_negative_offset_exactly_on_a_line_start_keeps_that_line(store: LogStore) -> None:
    write_numbered(store, 1, 0, 10)
    whole = file_text(store)
    last_two = "".join(whole.splitlines(keepends=True)[-2:])
    chunk = store.read(CHAIN, 1, 0, offset=-len(last_two))
    assert chunk.data == last_two


def test_tail_larger_than_the_file_reads_it_all(store: LogStore) -> None:
    write_numbered(store, 1, 0, 3)
    assert store.read(CHAIN, 1, 0, offset=-10_000).data == file_text(store)


def test_line_end_is_after_the_last_whole_line_not_a_half_copied_one(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.line_end(CHAIN, 1, 0) == 0  # no file yet
    path = store.path(CHAIN, 1, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half, no newline yet")
    assert store.line_end(CHAIN, 1, 0) == 0
    whole = b"one\n" + b"x" * 70_000 + b"\n"  # the last newline is more than one read block back
    path.write_bytes(whole + b"y" * 65_000)
    assert store.line_end(CHAIN, 1, 0) == len(whole)
    path.write_bytes(whole)
    assert store.line_end(CHAIN, 1, 0) == len(whole)
    monkeypatch.setattr(logstore, "LINE_END_SCAN_BYTES", 1000)  # a foreign run past the scan: its end
    path.write_bytes(whole + b"z" * 5000)
    assert store.line_end(CHAIN, 1, 0) == len(whole) + 5000


def test_missing_file_reads_as_an_empty_chunk(store: LogStore) -> None:
    assert store.read(CHAIN, 9, 0) == LogChunk(data="", offset=0, next_offset=0, size=0, eof=True)
    assert store.read(CHAIN, 9, 0, offset=-100) == LogChunk(data="", offset=0, next_offset=0, size=0, eof=True)
    assert store.size(CHAIN, 9, 0) == 0


def test_read_rejects_a_non_positive_limit(store: LogStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.read(CHAIN, 1, 0, limit=0)


def test_read_never_loads_more_than_the_limit_of_a_big_file(store: LogStore, monkeypatch: pytest.MonkeyPatch) -> None:
    path = store.path(CHAIN, 1, 0)
    path.parent.mkdir(parents=True)
    line = format_timestamp(FIXED_EPOCH).encode() + b"x" * 70 + b"\n"  # 100 bytes
    block = line * 10_000
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(block)
    assert path.stat().st_size == 50_000_000

    requested: list[int] = []
    real_open = logstore._open_raw

    class Spy:
        def __init__(self, f: BinaryIO) -> None:
            self.f = f

        def read(self, n: int = -1) -> bytes:
            assert n is not None, "a read without a size would load the whole file"
            assert n >= 0, "a read without a size would load the whole file"
            requested.append(n)
            return self.f.read(n)

        def __getattr__(self, name: str) -> object:
            return getattr(self.f, name)

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(logstore, "_open_raw", lambda p: Spy(real_open(p)))
    for offset in (0, 25_000_050, -4096):
        requested.clear()
        chunk = store.read(CHAIN, 1, 0, offset=offset, limit=4096)
        assert sum(requested) <= 4096 + 1  # a tail also reads the byte before it (line boundary?)
        assert 0 < len(chunk.data.encode()) <= 4096
        assert chunk.data.endswith("\n")
        assert chunk.size == 50_000_000
    assert chunk.eof


# --------------------------------------------------------------------------------------------
# Chains


def sep(n: int, attempt_id: int) -> str:
    return f"──── attempt {n} (id {attempt_id}) ────\n"


@pytest.mark.parametrize("limit", [20, 64, 100, 150, 250, 100_000])
def test_read_chain_pages_across_attempts_with_one_separator_each(store: LogStore, limit: int) -> None:
    write_numbered(store, 10, 0, 5, "a")
    write_numbered(store, 11, 0, 3, "b")
    # attempt 12 produced no output at all
    write_numbered(store, 13, 0, 4, "d")
    ids = [10, 11, 12, 13]
    expected = file_text(store, 10) + sep(2, 11) + file_text(store, 11) + sep(3, 12) + sep(4, 13) + file_text(store, 13)
    cursor = None
    parts: list[str] = []
    for _ in range(1000):
        chunk = store.read_chain(CHAIN, ids, 0, cursor, limit=limit)
        parts.append(chunk.data)
        if limit >= 100:
            assert len(chunk.data.encode()) <= limit
        cursor = chunk.cursor
        if chunk.eof:
            break
    assert "".join(parts) == expected
    assert cursor == ChainCursor(13, len(file_text(store, 13).encode()))


def test_read_chain_follows_new_output_and_new_attempts(store: LogStore) -> None:
    write_numbered(store, 1, 0, 2, "a")
    first = store.read_chain(CHAIN, [1], 0, None)
    assert first.eof
    assert contents(first.data) == ["a-000", "a-001"]
    idle = store.read_chain(CHAIN, [1], 0, first.cursor)
    assert idle.data == ""
    assert idle.cursor == first.cursor
    store.append_lines(CHAIN, 1, 0, ["a-late"])
    more = store.read_chain(CHAIN, [1], 0, idle.cursor)
    assert contents(more.data) == ["a-late"]
    write_numbered(store, 2, 0, 1, "b")
    nxt = store.read_chain(CHAIN, [1, 2], 0, more.cursor)
    assert nxt.data.startswith(sep(2, 2))
    assert contents(nxt.data[len(sep(2, 2)) :]) == ["b-000"]
    assert nxt.cursor.attempt_id == 2


def test_read_chain_rejects_a_cursor_from_another_chain(store: LogStore) -> None:
    with pytest.raises(ValueError, match="not one of the chain's attempts"):
        store.read_chain(CHAIN, [1, 2], 0, ChainCursor(99, 0))


# --------------------------------------------------------------------------------------------
# Search


@pytest.fixture
def searchable(store: LogStore) -> LogStore:
    store.append_lines(CHAIN, 5, 0, ["epoch 1 loss 0.9", "ERROR: nan", "epoch 2 loss 0.5", "error again"])
    store.append_lines(CHAIN, 5, 1, ["epoch 1 loss 0.8", "all good"])
    store.append_lines(CHAIN, 5, 2, ["Error in rank 2"] * 5)
    return store


def test_search_counts_matches_per_rank_and_returns_lines(searchable: LogStore) -> None:
    result = searchable.search(CHAIN, 5, None, "error")
    assert result.counts == {0: 2, 1: 0, 2: 5}
    assert not result.truncated
    assert [(m.rank, m.line_no) for m in result.matches] == [(0, 2), (0, 4), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5)]
    first = result.matches[0]
    assert split_timestamp(first.text)[1] == "ERROR: nan"
    # the offset points at the line: reading from there starts with it
    assert searchable.read(CHAIN, 5, 0, offset=first.offset).data.startswith(first.text + "\n")


def test_search_case_sensitive(searchable: LogStore) -> None:
    result = searchable.search(CHAIN, 5, None, "ERROR", case_sensitive=True)
    assert result.counts == {0: 1, 1: 0, 2: 0}


def test_search_limits_returned_lines_but_counts_all(searchable: LogStore) -> None:
    result = searchable.search(CHAIN, 5, [0, 2], "error", max_matches=3)
    assert result.counts == {0: 2, 2: 5}
    assert len(result.matches) == 3
    assert result.truncated


def test_search_regex_matches_content_not_timestamp(searchable: LogStore) -> None:
    result = searchable.search(CHAIN, 5, None, r"^epoch \d+ loss 0\.[89]$", regex=True)
    assert result.counts == {0: 1, 1: 1, 2: 0}
    assert searchable.search(CHAIN, 5, None, r"^\[", regex=True).counts == {0: 0, 1: 0, 2: 0}


def test_search_treats_plain_patterns_literally(searchable: LogStore) -> None:
    assert searchable.search(CHAIN, 5, None, "0.9").counts == {0: 1, 1: 0, 2: 0}
    assert searchable.search(CHAIN, 5, None, "0.").counts == {0: 2, 1: 1, 2: 0}
    assert searchable.search(CHAIN, 5, None, "(").counts == {0: 0, 1: 0, 2: 0}


def test_search_bad_regex_raises_a_clear_value_error(searchable: LogStore) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        searchable.search(CHAIN, 5, None, "loss (", regex=True)
    with pytest.raises(ValueError, match="empty"):
        searchable.search(CHAIN, 5, None, "")


@pytest.mark.parametrize(
    ("pattern", "counts"),
    [("(a|a)*b", {0: 0, 1: 1}), ("(a+)+$", {0: 1, 1: 0}), ("(x*)*y", {0: 0, 1: 0}), (r"(?:\w+\s?)+$", {0: 1, 1: 1})],
)
def test_search_is_linear_time_for_patterns_that_backtrack_exponentially(tmp_path: Path, pattern, counts) -> None:
    """With a backtracking engine each of these takes 2^40 steps on 40 ``a``s and holds the
    interpreter: the search runs in a child process so that the old engine fails this test
    (by timing out) instead of freezing the suite."""
    script = (
        "import json, sys\n"
        "from apps.logs.store import LogStore\n"
        f"store = LogStore({str(tmp_path)!r})\n"
        f"store.append_lines({CHAIN!r}, 1, 0, ['a' * 40])\n"
        f"store.append_lines({CHAIN!r}, 1, 1, ['a' * 40 + 'b'])\n"
        f"print(json.dumps(store.search({CHAIN!r}, 1, None, sys.argv[1], regex=True).counts))\n"
    )
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, pattern], cwd=root, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"searching for {pattern!r} did not finish: the regex engine backtracks")
    assert done.returncode == 0, done.stderr
    assert {int(k): v for k, v in json.loads(done.stdout).items()} == counts


@pytest.mark.parametrize(
    ("pattern", "reason"), [(r"(a)\1", "invalid escape sequence"), ("(?<=a)b", "invalid perl operator")]
)
def test_search_refuses_what_re2_cannot_match_in_linear_time(searchable: LogStore, pattern, reason) -> None:
    with pytest.raises(ValueError, match=f"invalid regular expression: .*{reason}.*RE2 syntax"):
        searchable.search(CHAIN, 5, None, pattern, regex=True)


def test_search_stops_with_a_clear_error_once_past_its_time_budget(searchable: LogStore) -> None:
    with pytest.raises(SearchTimeout, match=r"stopped after 0 s \(at rank 0, line 1\): use a more specific pattern"):
        searchable.search(CHAIN, 5, None, "error", time_budget=0.0)
    assert searchable.search(CHAIN, 5, None, "error", time_budget=60.0).counts == {0: 2, 1: 0, 2: 5}


def test_search_missing_rank_counts_zero(searchable: LogStore) -> None:
    assert searchable.search(CHAIN, 5, [7], "x").counts == {7: 0}


def test_search_examines_at_most_the_capped_line_of_a_foreign_huge_line(tmp_path: Path) -> None:
    store = LogStore(tmp_path, line_max_bytes=16)
    path = store.path(CHAIN, 1, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"needle" + b"a" * 100_000 + b"needle-late\nneedle 2\n")  # written by something else
    result = store.search(CHAIN, 1, [0], "needle")
    assert result.counts == {0: 2}
    assert [m.line_no for m in result.matches] == [1, 2]
    assert result.matches[1].offset == 100_000 + len(b"needle" + b"needle-late\n")
    assert len(result.matches[0].text) < 200


# --------------------------------------------------------------------------------------------
# Metadata


def test_ranks_size_download_and_last_write_time(store: LogStore) -> None:
    assert store.ranks(CHAIN, 3) == []
    assert store.last_write_time(CHAIN, 3) is None
    for rank in (2, 0, 10):
        store.append_lines(CHAIN, 3, rank, [f"r{rank}"])
    (store.attempt_dir(CHAIN, 3) / "notes.txt").write_text("ignored")
    assert store.ranks(CHAIN, 3) == [0, 2, 10]
    assert store.size(CHAIN, 3, 2) == TIMESTAMP_LEN + 3
    with store.open_for_download(CHAIN, 3, 2) as f:
        assert f.read() == store.path(CHAIN, 3, 2).read_bytes()
    os.utime(store.path(CHAIN, 3, 0), (1000.0, 1000.0))
    os.utime(store.path(CHAIN, 3, 2), (3000.0, 3000.0))
    os.utime(store.path(CHAIN, 3, 10), (2000.0, 2000.0))
    assert store.last_write_time(CHAIN, 3) == 3000.0
    with pytest.raises(FileNotFoundError):
        store.open_for_download(CHAIN, 3, 1)
