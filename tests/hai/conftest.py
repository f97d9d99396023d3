"""Fixtures for the HAI-compatible API: requests built exactly as HAI's client builds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts import services as account_services


def client_query(pairs: list[tuple[str, Any]]) -> str:
    """The query string as hai-cli sends it: pasted together unencoded, then the HTTP library's
    few escapes (a space becomes ``+``; ``{``, ``}`` and ``"`` are percent-encoded; ``:`` stays)."""
    text = "&".join(f"{key}={value}" for key, value in pairs)
    return text.replace(" ", "+").replace("{", "%7B").replace("}", "%7D").replace('"', "%22")


class Hai:
    """Calls a HAI endpoint like hai-cli: POST, ``?token=`` first or where the client puts it,
    an empty ``application/octet-stream`` body unless a JSON body is given."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.http = Client()

    def __call__(
        self, path: str, *pairs: tuple[str, Any], body: Any = None, token_first: bool = True, method: str = "post"
    ) -> Any:
        items = list(pairs)
        if self.token is not None:
            items = [("token", self.token), *items] if token_first else [*items, ("token", self.token)]
        url = f"{path}?{client_query(items)}" if items else path
        if method != "post":
            return getattr(self.http, method)(url)
        if body is None:
            return self.http.post(url, data=b"", content_type="application/octet-stream")
        import json

        return self.http.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture(autouse=True)
def _own_log_root(settings: Any, tmp_path: Any) -> None:
    """Each test reads and writes logs of its own: chain and attempt ids repeat between tests."""
    settings.ROTA_LOG_ROOT = tmp_path / "logs"


@pytest.fixture
def make_hai(db: None) -> Callable[..., Hai]:
    def make(user: Any, scope: str = "all") -> Hai:
        return Hai(account_services.token_create(actor=user, name="hai", scope=scope).raw)

    return make


@pytest.fixture
def hai(make_hai: Callable[..., Hai], user: Any) -> Hai:
    return make_hai(user)


def create_body(workspace: Any, name: str = "my exp", nodes: Any = 1, **extra: Any) -> dict[str, Any]:
    """The body ``hai-cli python train.py -- -n N --name NAME`` sends (keys in the client's order)."""
    body: dict[str, Any] = {
        "version": 2,
        "name": name,
        "priority": 30,
        "spec": {"workspace": str(workspace), "entrypoint": "train.py", "parameters": "-c 'a b.yml'"},
        "resource": {"image": "default", "group": "training", "node_count": nodes},
    }
    body.update(extra)
    return body
