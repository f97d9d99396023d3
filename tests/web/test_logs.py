"""The log viewer's pages: forwards from a byte offset, backwards to one, the tail of any attempt;
one page at a time, never the whole file."""

from __future__ import annotations

import pytest

from apps.experiments import lifecycle
from apps.experiments import services as experiment_services
from apps.experiments.choices import WorkerStatus
from apps.logs import store as logstore
from apps.logs.store import get_log_store


@pytest.fixture
def store(settings, tmp_path):
    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    get_log_store.cache_clear()
    yield get_log_store()
    get_log_store.cache_clear()


@pytest.fixture
def job(cluster, submit, user, store):
    chain = submit(user, name="logged", nodes=2)
    chain.refresh_from_db()
    store.append_lines(str(chain.pk), chain.latest_attempt_id, 0, [f"line {i:03d}" for i in range(100)])
    store.append_lines(str(chain.pk), chain.latest_attempt_id, 1, ["rank one says hi"])
    return chain


def read(page, chain, **params):
    response = page.get(f"/experiments/{chain.pk}/logs/read/", params)
    return response.status_code, response.json()


def lines(data: str) -> list[str]:
    return [logstore.split_timestamp(line)[1] for line in data.splitlines()]


def test_tail_then_backwards_to_the_start(job, page):
    status, tail = read(page, job, mode="tail", limit=400)
    assert status == 200 and tail["eof"] and not tail["bof"]
    assert lines(tail["data"])[-1] == "line 099"
    start = tail["start"]
    seen = lines(tail["data"])
    while start > 0:
        _, page_before = read(page, job, mode="backward", offset=start, limit=400)
        assert page_before["end"] <= start
        seen = lines(page_before["data"]) + seen
        start = page_before["start"]
    assert seen == [f"line {i:03d}" for i in range(100)]


def test_forward_pages_line_up_exactly(job, page):
    offset, seen = 0, []
    while True:
        _, chunk = read(page, job, offset=offset, limit=300)
        assert chunk["start"] == offset
        seen += lines(chunk["data"])
        offset = chunk["end"]
        if chunk["eof"]:
            break
    assert seen == [f"line {i:03d}" for i in range(100)]


def test_a_page_never_reads_more_than_its_limit(job, page, monkeypatch):
    read_sizes = []
    real = logstore._read_at

    def counting(f, start, n):
        data = real(f, start, n)
        read_sizes.append(len(data))
        return data

    monkeypatch.setattr(logstore, "_read_at", counting)
    read(page, job, mode="tail", limit=256)
    read(page, job, mode="backward", offset=2000, limit=256)
    read(page, job, offset=100, limit=256)
    assert read_sizes and max(read_sizes) <= 257


def test_every_rank_and_attempt_can_be_read(job, page, user, store):
    _, other = read(page, job, rank=1, mode="tail")
    assert lines(other["data"]) == ["rank one says hi"]
    first = job.latest_attempt_id
    experiment_services.experiment_stop(actor=user, chain=job)
    lifecycle.attempt_mark_finished(attempt_id=first, status=WorkerStatus.STOPPED)
    experiment_services.experiment_resume(actor=user, chain=job)
    job.refresh_from_db()
    store.append_lines(str(job.pk), job.latest_attempt_id, 0, ["second attempt"])
    _, latest = read(page, job, mode="tail")
    assert latest["attempt_ids"] == [first, job.latest_attempt_id] and latest["attempt_number"] == 2
    assert lines(latest["data"]) == ["second attempt"]
    _, older = read(page, job, mode="tail", attempt=first, limit=200)
    assert lines(older["data"])[-1] == "line 099" and older["attempt_number"] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"rank": "2"},
        {"rank": "x"},
        {"mode": "sideways"},
        {"limit": "0"},
        {"limit": str(2 * 1024 * 1024)},
        {"offset": "-1"},
    ],
)
def test_bad_parameters_are_400_with_a_message(job, page, params):
    status, body = read(page, job, **params)
    assert status == 400 and body["error"]


def test_an_attempt_of_another_job_is_404(job, page, submit, user):
    other = submit(user, name="other")
    other.refresh_from_db()
    status, body = read(page, job, attempt=other.latest_attempt_id)
    assert status == 404 and body["error"] == "No such attempt of this job."


def test_a_job_without_output_reads_empty(cluster, submit, user, page, store):
    chain = submit(user, name="quiet")
    status, body = read(page, chain, mode="tail")
    assert status == 200 and body["data"] == "" and body["eof"] and body["size"] == 0
