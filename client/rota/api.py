"""A small typed client for Rota's REST API (``/api/v1/``), used by the ``rota`` command.

    from rota.api import RotaClient

    with RotaClient("https://rota.example.org", token="rota_...") as api:
        job = api.submit(name="train", workspace="/home/me/proj", entrypoint="train.py", group="training")
        for page in api.follow_logs(job["id"]):
            print(page["data"], end="")

Errors come back as :mod:`rota.errors` exceptions carrying the server's message. Network failures
are retried with exponential backoff (and jitter): every request when the connection could not be
made, and idempotent requests (GET, DELETE) also on timeouts, dropped connections and 502/503/504.
A POST whose connection broke after it was sent is not repeated, so nothing is submitted twice.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from rota import __version__, logstream
from rota.errors import ApiError, NetworkError, NotRotaServer

RetryHook = Callable[[str, float, int, int], None]
"""Called before each retry with (reason, delay in seconds, retry number, retries allowed)."""

RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "stopped", "canceled"})
SUSPENDED_STATUSES = frozenset({"suspended", "held"})


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def _describe(exc: httpx.HTTPError) -> str:
    """A short human reason for a transport error."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return "unknown host"
        if "certificate" in text or "ssl" in text:
            return f"TLS error: {exc}"
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.ReadTimeout):
        return "the server did not answer in time"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed unexpectedly"
    return str(exc) or exc.__class__.__name__


class RotaClient:
    """Talks to one Rota server with one token. Use as a context manager, or call :meth:`close`.

    ``retries`` and ``backoff`` default to ``ROTA_RETRIES`` (4) and ``ROTA_RETRY_BACKOFF`` (0.5 s):
    delays grow 0.5, 1, 2, 4 s (capped at 8 s), each with ±20 % jitter.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        on_retry: RetryHook | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retries = int(retries if retries is not None else _env_number("ROTA_RETRIES", 4))
        self.backoff = backoff if backoff is not None else _env_number("ROTA_RETRY_BACKOFF", 0.5)
        self.on_retry = on_retry
        read_timeout = timeout if timeout is not None else _env_number("ROTA_TIMEOUT", 30.0)
        headers = {"Accept": "application/json", "User-Agent": f"rota-client/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url + "/api/v1/",
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=min(10.0, read_timeout)),
            transport=transport,
            follow_redirects=False,
        )

    def __enter__(self) -> RotaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # ---- transport -------------------------------------------------------------------------

    def _delay(self, retry: int) -> float:
        base = min(8.0, self.backoff * (2 ** (retry - 1)))
        return base * random.uniform(0.8, 1.2)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request; return the decoded JSON body (``None`` for 204).

        Raises :class:`ApiError` with the server's message for 4xx/5xx answers,
        :class:`NetworkError` when the server stays unreachable after the retries, and
        :class:`NotRotaServer` when the answer is not the Rota API's JSON.
        """
        method = method.upper()
        idempotent = method in IDEMPOTENT
        retry = 0
        while True:
            reason: str
            try:
                response = self._http.request(method, path.lstrip("/"), params=params, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent: always safe
                reason = _describe(exc)
            except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                reason = _describe(exc)
                if not idempotent:
                    raise NetworkError(
                        f"Lost the connection to {self.url} during {method} {path} ({reason}). The request may "
                        "or may not have been carried out: check before repeating it (rota list, rota status)."
                    ) from exc
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise NetworkError(f"The server address {self.url!r} is not a valid http(s) URL ({exc}).") from exc
            except httpx.HTTPError as exc:
                raise NetworkError(f"Talking to {self.url} failed: {_describe(exc)}") from exc
            else:
                if response.status_code in RETRY_STATUSES and idempotent and retry < self.retries:
                    reason = f"HTTP {response.status_code}"
                else:
                    return self._decode(response)
            if retry >= self.retries:
                attempts = retry + 1
                raise NetworkError(
                    f"Cannot reach the Rota server at {self.url} ({reason}; tried {attempts} "
                    f"time{'s' if attempts != 1 else ''}). Check the address (rota whoami shows it; "
                    "ROTA_URL or rota login --url changes it), that the server is up, and your network."
                )
            retry += 1
            delay = self._delay(retry)
            if self.on_retry is not None:
                self.on_retry(reason, delay, retry, self.retries)
            time.sleep(delay)

    def _decode(self, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 204 or (status < 300 and not response.content):
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if status < 300:
            if body is None:
                raise NotRotaServer(
                    f"{self.url} answered {response.request.method} {response.request.url.path} with something "
                    "that is not JSON: is this the address of a Rota server?"
                )
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            extra = {k: v for k, v in error.items() if k not in {"code", "message", "fields"}}
            raise ApiError(
                str(error["message"]),
                status=status,
                code=str(error.get("code") or "error"),
                fields=error.get("fields") or {},
                extra=extra,
            )
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            raise NotRotaServer(f"{self.url} redirects the API to {where}: use that address as the URL.")
        if status == 404:
            raise NotRotaServer(
                f"{self.url} has no Rota API at {response.request.url.path} (HTTP 404): is the URL right?"
            )
        if status >= 500:
            raise ApiError(f"The server failed (HTTP {status}). Try again later.", status=status, code="server_error")
        raise ApiError(f"HTTP {status} from {self.url}: {response.text[:200]}", status=status)

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters (``None`` values are left out; lists repeat the parameter)."""
        pairs: list[tuple[str, Any]] = []
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                pairs.extend((key, v) for v in value)
            elif isinstance(value, bool):
                pairs.append((key, "true" if value else "false"))
            else:
                pairs.append((key, value))
        return self.request("GET", path, params=pairs)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body (``{}`` when none)."""
        return self.request("POST", path, json=body if body is not None else {})

    def delete(self, path: str, **params: Any) -> Any:
        """DELETE with query parameters (``None`` values are left out)."""
        return self.request("DELETE", path, params={k: v for k, v in params.items() if v is not None})

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every row of a paginated list, page after page."""
        page = 1
        while True:
            body = self.get(path, page=page, **params)
            if isinstance(body, list):  # an unpaginated list
                yield from body
                return
            yield from body.get("results", [])
            if not body.get("next"):
                return
            page += 1

    # ---- account ---------------------------------------------------------------------------

    def login(self, username: str, password: str, *, name: str = "rota cli") -> dict[str, Any]:
        """Exchange a user name and password for a new token (``token`` holds the secret, once)."""
        return self.post("auth/token/", {"username": username, "password": password, "name": name})

    def me(self) -> dict[str, Any]:
        """The user the token belongs to, with the token's scope."""
        return self.get("me/")

    def tokens(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """My API tokens, newest first."""
        return list(self.pages("tokens/", include_revoked=1 if include_revoked else None))

    def token_create(self, name: str, *, scope: str = "all", expires_at: str | None = None) -> dict[str, Any]:
        """A new token; the secret is in ``token`` and is shown only this once."""
        body: dict[str, Any] = {"name": name, "scope": scope}
        if expires_at:
            body["expires_at"] = expires_at
        return self.post("tokens/", body)

    def token_revoke(self, token_id: int) -> None:
        """Revoke one of my tokens (revoking twice is harmless)."""
        self.delete(f"tokens/{int(token_id)}/")

    # ---- experiments -----------------------------------------------------------------------

    @staticmethod
    def _key(key: str | int) -> str:
        return quote(str(key).strip(), safe="")

    def submit(self, **fields: Any) -> dict[str, Any]:
        """Submit a job (``POST experiments/``); returns its detail."""
        return self.post("experiments/", {k: v for k, v in fields.items() if v is not None})

    def experiments(self, **filters: Any) -> dict[str, Any]:
        """One page of my jobs: ``{count, next, previous, results}``."""
        return self.get("experiments/", **filters)

    def experiment(self, key: str | int) -> dict[str, Any]:
        """One job by chain id or name: attempts, ranks and nodes, pending reason."""
        return self.get(f"experiments/{self._key(key)}/")

    def action(self, key: str | int, action: str) -> dict[str, Any]:
        """``stop``, ``suspend`` or ``resume`` a job; returns its detail afterwards."""
        if action not in {"stop", "suspend", "resume"}:
            raise ValueError(f"unknown action {action!r}")
        return self.post(f"experiments/{self._key(key)}/{action}/")

    def tag(self, key: str | int, tag: str) -> dict[str, Any]:
        """Add a tag to a job; returns its detail."""
        return self.post(f"experiments/{self._key(key)}/tags/", {"tag": tag})

    def untag(self, key: str | int, tag: str) -> dict[str, Any]:
        """Remove a tag from a job; returns its detail."""
        return self.delete(f"experiments/{self._key(key)}/tags/", tag=tag)

    def star(self, key: str | int, starred: bool = True) -> dict[str, Any]:
        """Star (or unstar) a job; returns its detail."""
        path = f"experiments/{self._key(key)}/star/"
        return self.post(path) if starred else self.delete(path)

    def set_priority(
        self, key: str | int, *, priority: str | int | None = None, custom_rank: float | None = None
    ) -> dict[str, Any]:
        """Change a job's priority (name or number) and/or its rank among the owner's jobs."""
        body: dict[str, Any] = {}
        if priority is not None:
            body["priority"] = priority
        if custom_rank is not None:
            body["custom_rank"] = custom_rank
        return self.post(f"experiments/{self._key(key)}/priority/", body)

    # ---- logs ------------------------------------------------------------------------------

    def logs(
        self,
        key: str | int,
        *,
        rank: int = 0,
        cursor: str | None = None,
        limit: int | None = None,
        tail: int | None = None,
    ) -> dict[str, Any]:
        """One page of a rank's log: ``{data, cursor, eof, finished, status, attempt_ids}``."""
        return self.get(f"experiments/{self._key(key)}/logs/", rank=rank, cursor=cursor, limit=limit, tail=tail)

    def follow_logs(
        self,
        key: str | int,
        *,
        rank: int = 0,
        cursor: str | None = None,
        follow: bool = True,
        poll: float = 0.5,
        max_poll: float = 2.0,
        stop: Callable[[dict[str, Any]], bool] | None = None,
        limit: int | None = None,
        live: bool | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield log pages from ``cursor`` (the start when ``None``) on.

        Without ``follow`` it stops at the end of what is written now. With ``follow`` it goes on
        until the page says ``finished``, or until ``stop(page)`` is true at the end of the output.
        While the job runs, new lines come over the live socket (:mod:`rota.logstream`) as they
        are written; pages from it carry ``"live": true`` and no ``eof``. Where the socket is not
        offered (``live=False``, ``ROTA_LIVE_LOGS=0``, a proxy without websockets) it polls: every
        ``poll`` s while output flows, slowing to ``max_poll`` s when idle.
        """
        if live is None:
            live = os.environ.get("ROTA_LIVE_LOGS", "1").strip().lower() not in {"0", "no", "false", "off"}
        live_log = self._live_log() if follow and live else None
        misses = 0  # streams in a row that opened but brought nothing and did not end cleanly
        idle_since: float | None = None
        while True:
            page = self.logs(key, rank=rank, cursor=cursor, limit=limit)
            cursor = page.get("cursor") or cursor
            yield page
            if not page.get("eof"):
                idle_since = None
                continue
            if not follow or page.get("finished") or (stop is not None and stop(page)):
                return
            if live_log is not None and page.get("status") in logstream.LIVE_STATUSES and "chain_id" in page:
                end, got = logstream.StreamEnd(), False
                try:
                    for data, after in live_log.stream(int(page["chain_id"]), rank, cursor, end):
                        got, cursor = True, after
                        yield {**page, "data": data, "cursor": cursor, "eof": False, "live": True}
                except logstream.LiveLogUnavailable:
                    live_log = None  # not offered here: poll from now on
                    continue
                misses = 0 if got or end.how != "closed" else misses + 1
                if misses >= 3:
                    live_log = None
                if got or end.how != "closed":
                    continue  # the next page says what happened and brings anything not yet read
            now = time.monotonic()
            idle_since = idle_since or now
            time.sleep(poll if now - idle_since < 10 else max_poll)

    def _live_log(self) -> Any:
        """The live log socket for this server, or ``None`` where it cannot be used."""
        try:
            return logstream.LiveLog(self.url, self.token)
        except logstream.LiveLogUnavailable:
            return None

    def log_search(self, key: str | int, query: str, **params: Any) -> dict[str, Any]:
        """Search the latest attempt's logs across ranks: matching lines and counts per rank."""
        return self.get(f"experiments/{self._key(key)}/logs/search/", q=query, **params)

    # ---- cluster ---------------------------------------------------------------------------

    def nodes(self, **filters: Any) -> list[dict[str, Any]]:
        """Every node, filtered by ``group``, ``state`` …"""
        return list(self.pages("nodes/", **filters))

    def node_groups(self) -> list[dict[str, Any]]:
        """Node groups with their node counts."""
        return list(self.pages("node-groups/"))

    def quota(self) -> dict[str, Any]:
        """My resolved quota: ``node`` rows with use, ``jupyter`` rows, ``environments``."""
        return self.get("quota/")

    def environments(self) -> list[dict[str, Any]]:
        """Environments (images) I may use, my default first."""
        return list(self.pages("environments/"))
