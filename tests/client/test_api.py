"""``rota.api.RotaClient`` against scripted HTTP answers: error shapes, retries with backoff, and
what is never retried (a POST whose connection broke after it was sent)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from rota.api import RotaClient
from rota.errors import ApiError, ExitCode, NetworkError, NotRotaServer


def scripted(*answers: Any) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that answers requests in order: a Response, or an exception to raise."""
    queue = list(answers)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


def client(transport: httpx.MockTransport, retries: list[tuple[str, int]] | None = None) -> RotaClient:
    def on_retry(reason: str, delay: float, retry: int, allowed: int) -> None:
        assert 0 < delay < 0.1
        if retries is not None:
            retries.append((reason, retry))

    return RotaClient("http://rota.test", "tok", retries=3, backoff=0.001, transport=transport, on_retry=on_retry)


def refused(request_url: str = "http://rota.test/api/v1/me/") -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused", request=httpx.Request("GET", request_url))


def test_requests_carry_the_token_and_decode_json() -> None:
    transport, seen = scripted(httpx.Response(200, json={"username": "u"}))
    assert client(transport).me() == {"username": "u"}
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert seen[0].url == "http://rota.test/api/v1/me/"
    assert seen[0].headers["user-agent"].startswith("rota-client/")


def test_server_errors_keep_the_servers_message_code_and_fields() -> None:
    body = {"error": {"code": "invalid", "message": "name: too long", "fields": {"name": ["too long"]}}}
    transport, _ = scripted(httpx.Response(400, json=body))
    with pytest.raises(ApiError) as caught:
        client(transport).submit(name="x" * 300)
    error = caught.value
    assert (error.status, error.code, error.message, error.fields) == (
        400,
        "invalid",
        "name: too long",
        body["error"]["fields"],
    )
    assert error.exit_code == ExitCode.REFUSED


def test_401_is_an_auth_error_and_5xx_a_server_error() -> None:
    transport, _ = scripted(
        httpx.Response(401, json={"error": {"code": "authentication_failed", "message": "This token was revoked."}}),
        httpx.Response(500, text="<html>oops</html>"),
    )
    api = client(transport)
    with pytest.raises(ApiError) as auth:
        api.me()
    assert auth.value.exit_code == ExitCode.AUTH and auth.value.message == "This token was revoked."
    with pytest.raises(ApiError) as server:
        api.quota()
    assert server.value.exit_code == ExitCode.SERVER and "HTTP 500" in server.value.message


def test_a_non_rota_answer_is_reported_as_such() -> None:
    transport, _ = scripted(httpx.Response(404, text="<html>Not Found</html>"), httpx.Response(200, text="<html/>"))
    api = client(transport)
    with pytest.raises(NotRotaServer, match="has no Rota API"):
        api.me()
    with pytest.raises(NotRotaServer, match="not JSON"):
        api.me()


def test_connection_failures_are_retried_with_backoff_then_succeed() -> None:
    retries: list[tuple[str, int]] = []
    transport, seen = scripted(refused(), refused(), httpx.Response(200, json={"ok": True}))
    assert client(transport, retries).get("me/") == {"ok": True}
    assert retries == [("connection refused", 1), ("connection refused", 2)]
    assert len(seen) == 3


def test_gets_are_retried_on_503_and_timeouts_but_give_up_after_the_allowed_retries() -> None:
    retries: list[tuple[str, int]] = []
    request = httpx.Request("GET", "http://rota.test/api/v1/quota/")
    transport, seen = scripted(httpx.Response(503), httpx.ReadTimeout("slow", request=request), refused(), refused())
    with pytest.raises(NetworkError) as caught:
        client(transport, retries).quota()
    assert (
        "Cannot reach the Rota server at http://rota.test (connection refused; tried 4 times)" in caught.value.message
    )
    assert [r for r, _ in retries] == ["HTTP 503", "the server did not answer in time", "connection refused"]
    assert caught.value.exit_code == ExitCode.NETWORK and len(seen) == 4


def test_a_post_is_retried_only_when_it_never_reached_the_server() -> None:
    transport, seen = scripted(refused(), httpx.Response(201, json={"id": 1}))
    assert client(transport).submit(name="a") == {"id": 1}
    assert len(seen) == 2 and json.loads(seen[1].content) == {"name": "a"}

    request = httpx.Request("POST", "http://rota.test/api/v1/experiments/")
    transport, seen = scripted(httpx.ReadTimeout("slow", request=request), httpx.Response(201, json={"id": 2}))
    with pytest.raises(NetworkError, match="may or may not have been carried out"):
        client(transport).submit(name="b")
    assert len(seen) == 1  # never sent twice

    transport, seen = scripted(httpx.Response(503, json={"error": {"code": "busy", "message": "Try later."}}))
    with pytest.raises(ApiError, match=r"Try later\."):
        client(transport).submit(name="c")
    assert len(seen) == 1


def test_follow_logs_polls_with_the_cursor_until_finished() -> None:
    pages = [
        {"data": "a\n", "cursor": "1:2", "eof": True, "finished": False, "status": "running"},
        {"data": "b\n", "cursor": "1:4", "eof": False, "finished": False, "status": "running"},
        {"data": "c\n", "cursor": "1:6", "eof": True, "finished": True, "status": "succeeded"},
    ]
    transport, seen = scripted(*[httpx.Response(200, json=p) for p in pages])
    got = list(client(transport).follow_logs("my job", rank=1, poll=0.001))
    assert "".join(p["data"] for p in got) == "a\nb\nc\n"
    assert [r.url.params.get("cursor") for r in seen] == [None, "1:2", "1:4"]
    assert {r.url.params["rank"] for r in seen} == {"1"}
    assert seen[0].url.raw_path.startswith(b"/api/v1/experiments/my%20job/logs/?")
