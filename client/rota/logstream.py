"""Live log lines over the server's websocket, ``/ws/logs/<chain>/<rank>/``.

The REST API stays the source of truth for what a job is doing (its status, whether it finished,
the pages of its log). While an attempt runs, polling that API every half second would either lag
or hammer the server, so :meth:`RotaClient.follow_logs` opens this socket instead: the server's
shared tailer pushes each line as it is written, from the cursor the last page ended at.

A stream ends when the attempt ends (``log.end``), when this reader fell too far behind
(``log.behind``: read on by pages from its cursor), or when the connection drops. Either way the
caller reads the next page over HTTP, which says what happened and brings anything missed; the
cursor makes the hand-over exact (no line twice, none lost).

The token travels in the ``Authorization`` header, never in the URL. No ``Origin`` header is sent:
the server then accepts only a token, never a cookie.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rota import __version__

PROTOCOL = "rota.v1"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message accepted: the server sends the backlog in chunks far below this."""


class LiveLogUnavailable(Exception):
    """The live socket cannot be used here (no websocket library, refused, not offered by the
    server or a proxy in between); read by pages instead."""


LIVE_STATUSES = frozenset({"starting", "running", "suspending", "stopping"})
"""While the chain is in one of these, its output may grow: the stream goes on."""

IDLE_RECHECK_SECONDS = 30.0
"""After this long without a message the stream ends so the caller looks at the job over HTTP (a
safety net: the server also reports status changes on the socket)."""


@dataclass
class StreamEnd:
    """How a stream ended: ``end`` (the log is over), ``status`` (the job left the running
    states, e.g. suspended), ``behind`` (read on by pages), ``idle`` (nothing for a while),
    ``closed`` (the connection dropped or the server closed it)."""

    how: str = "closed"
    status: str = ""


def socket_url(base_url: str, chain_id: int, rank: int) -> str:
    """``http(s)://host/prefix`` → ``ws(s)://host/prefix/ws/logs/<chain>/<rank>/``."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    else:
        raise LiveLogUnavailable(f"cannot open a websocket to {base_url!r}")
    return f"{base}/ws/logs/{int(chain_id)}/{int(rank)}/"


class LiveLog:
    """Opens one socket per :meth:`stream`; holds the server address and the token."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        open_timeout: float = 10.0,
        idle_recheck: float = IDLE_RECHECK_SECONDS,
    ) -> None:
        try:
            from websockets.sync.client import connect
        except ImportError as exc:  # an install without the optional speed-up: poll instead
            raise LiveLogUnavailable(f"the websockets package is missing ({exc})") from None
        self._connect = connect
        self.base_url = base_url
        self.token = token
        self.open_timeout = open_timeout
        self.idle_recheck = idle_recheck

    def stream(self, chain_id: int, rank: int, cursor: str | None, end: StreamEnd) -> Iterator[tuple[str, str]]:
        """Yield ``(text, cursor after it)`` as lines arrive; fill ``end`` with how it ended.

        Raises ``LiveLogUnavailable`` if the socket cannot be opened or the server refuses the
        request; a drop after it opened just ends the stream (``end.how == "closed"``).
        """
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        headers = {"User-Agent": f"rota-client/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            ws = self._connect(
                socket_url(self.base_url, chain_id, rank),
                additional_headers=headers,
                subprotocols=[PROTOCOL],  # type: ignore[list-item]
                open_timeout=self.open_timeout,
                close_timeout=2,
                max_size=MAX_MESSAGE_BYTES,
                user_agent_header=None,
            )
        except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
            raise LiveLogUnavailable(str(exc) or exc.__class__.__name__) from None
        with ws:  # closes it, however the stream ends
            ws.send(json.dumps({"cursor": cursor} if cursor else {}))
            while True:
                try:
                    raw = ws.recv(timeout=self.idle_recheck)
                except TimeoutError:
                    end.how = "idle"
                    return
                except (ConnectionClosed, OSError):
                    end.how = "closed"
                    return
                message = _parse(raw)
                kind = message.get("type")
                if kind == "log.lines":
                    yield str(message.get("data") or ""), str(message.get("cursor") or cursor or "")
                elif kind == "log.end":
                    end.how, end.status = "end", str(message.get("status") or "")
                    return
                elif kind == "log.status" and message.get("status") not in LIVE_STATUSES:
                    end.how, end.status = "status", str(message.get("status") or "")
                    return
                elif kind == "log.behind":
                    end.how = "behind"
                    return
                elif kind == "error":
                    if message.get("code") in {"unauthenticated", "internal"}:
                        end.how = "closed"  # the next page over HTTP tells the user what happened
                        return
                    raise LiveLogUnavailable(str(message.get("message") or message.get("code")))


def _parse(raw: Any) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return message if isinstance(message, dict) else {}
