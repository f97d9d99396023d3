"""The Meilisearch backend, checked at the HTTP level under the official client.

No Meilisearch server can be installed here, so a tiny local HTTP server stands in for one: it
records every request the ``meilisearch`` client makes (method, path, query, JSON body) and answers
as Meilisearch's documented API does (``202`` with a task summary for writes, a search result for
``/search``). The tests assert the exact documents, settings and queries sent. With
``MEILISEARCH_URL`` set in the environment, ``test_live_server_round_trip`` also runs against it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from discussion import services
from discussion.search import SearchRequest, SearchSort, get_backend
from discussion.search.meili import POST, PRE, SETTINGS, MeiliBackend
from discussion.tasks import search_index_post

INDEX = "rota_forum_posts"


class FakeMeili:
    """Records requests; ``search_result`` is what ``POST /indexes/<uid>/search`` answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.search_result: dict[str, Any] = {"hits": [], "totalHits": 0, "page": 1, "hitsPerPage": 20}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                        "body": json.loads(raw) if raw else None,
                        "auth": self.headers.get("Authorization"),
                    }
                )
                if parts.path.endswith("/search"):
                    status, answer = 200, fake.search_result
                else:
                    status = 202
                    answer = {
                        "taskUid": len(fake.requests),
                        "indexUid": INDEX,
                        "status": "enqueued",
                        "type": "documentAdditionOrUpdate",
                        "enqueuedAt": "2026-12-03T08:00:00.000000Z",
                    }
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def calls(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests]


@pytest.fixture
def meili(settings) -> Iterator[FakeMeili]:
    fake = FakeMeili()
    fake.thread.start()
    settings.MEILISEARCH_URL = fake.url
    settings.MEILISEARCH_API_KEY = "test-master-key"
    settings.MEILISEARCH_INDEX = INDEX
    yield fake
    fake.server.shutdown()
    fake.server.server_close()
    fake.thread.join(5)


def test_a_write_enqueues_one_post_update_after_commit(
    meili, make_post, make_reply, task_log, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post = make_post()
        make_reply(post)
    assert task_log.calls == ["discussion.tasks.search_index_post"] * 2
    assert meili.requests == []  # nothing is sent from inside the request


def test_the_task_sends_exactly_that_posts_document(meili, make_post, make_reply, author):
    post = make_post(title="NCCL 超时", body="ranks hang", tags="nccl pytorch")
    make_reply(post, body="try NCCL_DEBUG=INFO")
    meili.requests.clear()
    search_index_post(post.pk)
    post.refresh_from_db()
    assert meili.requests == [
        {
            "method": "POST",
            "path": f"/indexes/{INDEX}/documents",
            "query": {"primaryKey": "id"},
            "auth": "Bearer test-master-key",
            "body": [
                {
                    "id": post.pk,
                    "title": "NCCL 超时",
                    "body": "ranks hang",
                    "replies": ["try NCCL_DEBUG=INFO"],
                    "tags": ["nccl", "pytorch"],
                    "category": "jobs",
                    "author_id": author.pk,
                    "hidden": False,
                    "pinned": False,
                    "created_at": int(post.created_at.timestamp()),
                    "last_activity_at": int(post.last_activity_at.timestamp()),
                }
            ],
        }
    ]


def test_a_deleted_post_is_removed_from_the_index(meili, make_post, author):
    post = make_post()
    services.post_delete(actor=author, post=post)
    meili.requests.clear()
    search_index_post(post.pk)
    assert meili.calls() == [("DELETE", f"/indexes/{INDEX}/documents/{post.pk}")]


def test_search_sends_the_query_filters_and_sort_and_escapes_the_highlights(meili, reader, moderator):
    meili.search_result = {
        "hits": [
            {
                "id": 7,
                "_formatted": {
                    "id": "7",
                    "title": f"<b>{PRE}NCCL{POST}</b> hang",
                    "body": f"…all ranks <img src=x onerror=alert(1)> {PRE}nccl{POST}…",
                    "replies": ["no hit here"],
                },
            }
        ],
        "totalHits": 41,
        "page": 2,
        "hitsPerPage": 20,
    }
    backend = get_backend()
    assert isinstance(backend, MeiliBackend)
    page = backend.search(
        SearchRequest(text="nccl", user=reader, tag="NCCL", category="jobs", sort=SearchSort.NEWEST, page=2)
    )
    assert meili.requests[-1]["path"] == f"/indexes/{INDEX}/search"
    assert meili.requests[-1]["body"] == {
        "q": "nccl",
        "filter": [["hidden = false", f"author_id = {reader.pk}"], 'category = "jobs"', 'tags = "nccl"'],
        "page": 2,
        "hitsPerPage": 20,
        "attributesToRetrieve": ["id"],
        "attributesToHighlight": ["title"],
        "attributesToCrop": ["body", "replies"],
        "cropLength": 30,
        "highlightPreTag": PRE,
        "highlightPostTag": POST,
        "sort": ["created_at:desc"],
    }
    assert (page.total, page.pages) == (41, 3)
    [hit] = page.hits
    assert hit.post_id == 7
    assert hit.title == "&lt;b&gt;<mark>NCCL</mark>&lt;/b&gt; hang"
    assert hit.snippet == "…all ranks &lt;img src=x onerror=alert(1)&gt; <mark>nccl</mark>…"

    backend.search(SearchRequest(text='a "quoted" tag', user=moderator, tag='x"y'))
    body = meili.requests[-1]["body"]
    assert body["filter"] == ['tags = "x\\"y"'] and "sort" not in body  # moderators see hidden posts


def test_reindex_applies_settings_and_sends_every_post_in_batches(meili, make_post, author, monkeypatch):
    from django.core.management import call_command

    from discussion.search import meili as meili_module

    monkeypatch.setattr(meili_module, "BATCH", 2)
    posts = [make_post(title=f"p{i}") for i in range(3)]
    services.post_delete(actor=author, post=posts[1])
    meili.requests.clear()
    call_command("forum_reindex", stdout=__import__("io").StringIO())
    assert meili.calls() == [
        ("PATCH", f"/indexes/{INDEX}/settings"),
        ("DELETE", f"/indexes/{INDEX}/documents"),
        ("POST", f"/indexes/{INDEX}/documents"),
    ]
    assert meili.requests[0]["body"] == SETTINGS
    assert SETTINGS["filterableAttributes"] == ["tags", "category", "author_id", "hidden"]
    assert SETTINGS["sortableAttributes"] == ["created_at", "last_activity_at"]
    assert [d["title"] for d in meili.requests[2]["body"]] == ["p0", "p2"]


@pytest.mark.skipif(not os.environ.get("MEILISEARCH_URL"), reason="set MEILISEARCH_URL to run against a live server")
def test_live_server_round_trip(settings, make_post, reader):  # pragma: no cover - needs a server
    settings.MEILISEARCH_URL = os.environ["MEILISEARCH_URL"]
    settings.MEILISEARCH_API_KEY = os.environ.get("MEILISEARCH_API_KEY", "")
    settings.MEILISEARCH_INDEX = "rota_test_forum"
    backend = get_backend()
    post = make_post(title="训练卡住了 live", tags="live")
    task = backend.index.update_settings(SETTINGS)
    backend.client.wait_for_task(task.task_uid, timeout_in_ms=20000)
    task = backend.index.add_documents(backend._documents([post]), primary_key="id")
    backend.client.wait_for_task(task.task_uid, timeout_in_ms=20000)
    page = backend.search(SearchRequest(text="卡住", user=reader, tag="live"))
    assert [h.post_id for h in page.hits] == [post.pk]
    assert "<mark>" in page.hits[0].title
