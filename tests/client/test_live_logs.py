"""``RotaClient.follow_logs`` over the live socket (``/ws/logs/<chain>/<rank>/``) and its fallback.

Against the live embedded platform (uvicorn serving HTTP and websockets). Each follow is checked
against the log read back by pages after the job ended: the hand-over between pages and the socket
must lose nothing and repeat nothing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from apps.accounts import services as account_services
from rota import logstream
from rota.api import RotaClient
from tests.factories import UserFactory

pytestmark = pytest.mark.slow

STEADY = textwrap.dedent(
    """
    import time
    for i in range(60):
        print(f"line {i:02d}", flush=True)
        time.sleep(0.05)
    print("done", flush=True)
    """
)


@pytest.fixture
def api(platform, cluster):
    user = UserFactory(username="live-logs")
    token = account_services.token_create(actor=user, name="live").raw
    with RotaClient(platform.url, token, retries=1, backoff=0.01) as client:
        yield client


class CountingPages:
    """Wraps ``api.logs`` to record every page fetched over HTTP."""

    def __init__(self, api: RotaClient) -> None:
        self.pages: list[dict[str, Any]] = []
        self._logs = api.logs
        api.logs = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        page = self._logs(*args, **kwargs)
        self.pages.append(page)
        return page


def whole_log(api: RotaClient, job_id: int) -> str:
    return "".join(page["data"] for page in api.follow_logs(job_id, follow=False))


def submit(api: RotaClient, workspace: Path, name: str) -> int:
    (workspace / f"{name}.py").write_text(STEADY)
    return int(
        api.submit(
            name=name, workspace=str(workspace), entrypoint=f"{name}.py", kind="python", group="training", nodes=1
        )["id"]
    )


def test_follow_receives_the_running_job_over_the_socket_and_hands_over_exactly(api, workspace):
    job_id = submit(api, workspace, "steady")
    http = CountingPages(api)

    pages = list(api.follow_logs(job_id))
    fetched = list(http.pages)

    text = "".join(p["data"] for p in pages)
    assert text == whole_log(api, job_id)
    assert [line.split("] ", 1)[1] for line in text.splitlines()] == [f"line {i:02d}" for i in range(60)] + ["done"]
    live = [p for p in pages if p.get("live")]
    assert live and all(p["eof"] is False and p["chain_id"] == job_id for p in live)
    assert sum(p["data"].count("\n") for p in live) >= 30  # most lines came live …
    # … and over HTTP only the page before the socket opened and the one after it ended, not a
    # poll every half second for the three seconds the job ran.
    assert len([p for p in fetched if p["status"] == "running"]) <= 2
    assert (pages[-1]["finished"], pages[-1]["status"]) == (True, "succeeded")
    assert pages[-1] is fetched[-1]  # the end is always confirmed by a page


@pytest.mark.parametrize("how", ["refused", "disabled"])
def test_follow_polls_when_the_socket_is_refused_or_disabled(api, workspace, monkeypatch, how):
    if how == "refused":  # as behind a proxy that does not pass websockets on: the handshake fails
        monkeypatch.setattr(logstream, "socket_url", lambda base, chain, rank: f"{base.replace('http', 'ws')}/ws/nope/")
    else:
        monkeypatch.setenv("ROTA_LIVE_LOGS", "0")
    job_id = submit(api, workspace, f"polled-{how}")

    pages = list(api.follow_logs(job_id, poll=0.1, max_poll=0.1))

    assert not [p for p in pages if p.get("live")]
    assert "".join(p["data"] for p in pages) == whole_log(api, job_id)
    assert (pages[-1]["finished"], pages[-1]["status"]) == (True, "succeeded")


def test_follow_from_a_cursor_over_the_socket_starts_exactly_there(api, workspace):
    job_id = submit(api, workspace, "cursor")
    before, cursor = "", None
    for page in api.follow_logs(job_id, live=False, poll=0.05):  # read by pages until line 05 is in
        before, cursor = before + page["data"], page["cursor"]
        if "line 05" in before:
            break
    after = list(api.follow_logs(job_id, cursor=cursor))
    assert any(p.get("live") for p in after)
    assert before + "".join(p["data"] for p in after) == whole_log(api, job_id)


def test_socket_url_keeps_the_scheme_security_and_the_path_prefix():
    assert logstream.socket_url("http://h:8000", 12, 1) == "ws://h:8000/ws/logs/12/1/"
    assert logstream.socket_url("https://rota.example.org/rota/", 3, 0) == "wss://rota.example.org/rota/ws/logs/3/0/"
    with pytest.raises(logstream.LiveLogUnavailable):
        logstream.socket_url("ftp://h", 1, 0)
