"""Websockets of experiments: the page's event stream (with multiplexed log follows) and the CLI's log.

Consumers only authenticate, check visibility, join groups and forward (STYLE.md habit 3); events
come from services through ``portal.realtime`` after commit, logs from the process's tailers
(``apps.logs.tailer``). Who is connecting is settled by ``apps.accounts.ws_auth`` (session
cookie or token, Origin checked); an anonymous user, or one who may not see the chain, is refused
before the handshake completes, so nothing is sent.

``/ws/events/`` — one per page. On connect: groups ``user.<id>`` (own chains, quota), ``team.<id>``
(the chains team-mates share with the user's team) and, for members of any admin group, ``admins``
(node states, container changes, scheduling passes: what the admin pages show). Client → server (JSON)::

    {"action": "subscribe", "chain": 12}        → {"type": "subscribed", "chain": 12}
    {"action": "unsubscribe", "chain": 12}      → {"type": "unsubscribed", "chain": 12}
    {"action": "follow_log", "chain": 12, "rank": 0, "cursor": "34:1024" | null, "tail": 65536 | null,
     "stream": "s1"}
    {"action": "unfollow_log", "stream": "s1"}
    {"action": "ping"}                          → {"type": "pong"}

When the owner stops sharing a chain, a team-mate's subscription to it ends with
``{"type": "unsubscribed", "chain": 12}`` and each follow of its log with a ``not_found`` error
(with ``stream``): nothing more of it is sent. ``/ws/logs/`` then closes with 4404 after the error.

Errors: ``{"type": "error", "code": "not_found" | "bad_request" | "too_many" | "internal", "message": …}``
(with ``stream`` or ``chain`` when about one). A chain the user may not see is ``not_found``,
exactly like one that does not exist. Events: ``{"type": "chain.status", …fields}`` (see the
apps' ``events.py``). Log messages::

    {"type": "log.lines", "stream": "s1", "chain": 12, "rank": 0, "data": "…", "cursor": "34:2048"}
    {"type": "log.behind", "stream": "s1", "chain": 12, "rank": 0, "cursor": "34:2048"}
    {"type": "log.end", "stream": "s1", "chain": 12, "rank": 0, "status": "succeeded"}

After ``log.behind`` the stream is over: follow again from its cursor. After ``log.end`` nothing
more will come (a resumed chain is followed anew).

``/ws/logs/<chain>/<rank>/`` — the CLI. The same log messages without ``stream``, plus the
chain's status when the follow reaches the live end and whenever it changes (lines written before
a change come first), so a client learns that the job was suspended or held without polling::

    {"type": "log.status", "chain": 12, "rank": 0, "status": "held"}

The client sends ``{"cursor": …, "tail": …}`` first — ``{}`` for the beginning, ``{"tail": 0}``
for what is written from now on (after the last whole line). Nothing is sent before it: the
socket waits for the request however long it takes to arrive (a server that started on its own
after a delay sent a busy client's log from the beginning, then again from where it asked).
Sending it again restarts the follow (after ``log.behind``). The server closes with 1000 after
``log.end``. Close codes before the handshake: 4401 not authenticated, 4404 no such
chain or rank for this user.

Both sockets close with 4401, after ``{"type": "error", "code": "unauthenticated", "message": …}``,
when the token or session they were opened with stops holding (revoked, expired, signed out,
account deactivated): see ``AuthWatch``.

Subprotocols: ``rota.v1`` is accepted when offered (browsers must offer it when they pass a
``rota.token.<token>`` subprotocol, which is never echoed).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from apps.accounts.choices import AdminGroup
from apps.accounts.ws_auth import PROTOCOL, credential_problem_texts, scope_language
from apps.core.aio import cancel_and_wait
from apps.core.errors import ApplicationError
from apps.core.metrics import LOG_LINES, WEBSOCKETS, count_lines
from apps.experiments.selectors import chains_visible_to
from apps.logs import params as log_params
from apps.logs import tailer as tailing
from apps.logs.store import ChainCursor, get_log_store
from portal.fanout import get_fanout
from portal.frames import frame_writer
from portal.realtime import ADMINS_GROUP, chain_group, team_group, user_group

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
MAX_MESSAGE_BYTES = 8 * 1024
MAX_SUBSCRIPTIONS = 500
MAX_LOG_STREAMS = 16
MAX_ID = 2**62  # larger ids cannot exist (and would overflow the database's integers)
MAX_RANK = 100_000
SEEN_EVENT_IDS = 512
VISIBILITY_EVENT = "chain.visibility"  # apps.experiments.events.ChainVisibilityChanged
ACCESS_EVENT = "user.access"  # apps.accounts.events.UserAccessChanged


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- reads (database thread) --------------------------------------------------------------------


def _chain_for_follow(user: Any, chain_id: int, rank: int) -> tailing.ChainState:
    """The chain's state if ``user`` may see it and it has ``rank``; else ``RequestError``."""
    _check_follow(user, chain_id, rank)
    return _follow_state(chain_id)


def _check_follow(user: Any, chain_id: int, rank: int) -> None:
    """``RequestError`` unless ``user`` may see the chain and it has ``rank`` (one query)."""
    node_count = chains_visible_to(user=user).filter(pk=chain_id).values_list("node_count", flat=True).first()
    if node_count is None:
        raise RequestError("not_found", f"No job {chain_id} that you can see.")
    if not 0 <= rank < node_count:
        raise RequestError("not_found", f"Job {chain_id} has ranks 0 to {node_count - 1}; there is no rank {rank}.")


def _follow_state(chain_id: int) -> tailing.ChainState:
    """The chain's state now (its attempts), or ``RequestError`` when it has none yet."""
    state = tailing.chain_states([chain_id]).get(chain_id)
    if state is None:
        raise RequestError("not_found", f"Job {chain_id} has no attempt yet.")
    return state


def _chain_visible(user: Any, chain_id: int) -> bool:
    return chains_visible_to(user=user).filter(pk=chain_id).exists()


def _is_admin(user: Any) -> bool:
    """Any admin group: they all read the admin pages, which refresh on the ``admins`` events."""
    return bool(user.in_admin_group(*AdminGroup))


def _reload_user(user: Any) -> Any:
    """The user as the database has it now (team, groups, role changed since the socket opened)."""
    return type(user).objects.select_related("team").get(pk=user.pk)


def _user_groups(user: Any) -> list[str]:
    """The groups a socket of ``user`` is in for what it may see: its own, its team's, the admins'."""
    groups = [user_group(user.pk)]
    if getattr(user, "team_id", None) is not None:
        groups.append(team_group(user.team_id))  # the team's shared chains
    if _is_admin(user):
        groups.append(ADMINS_GROUP)
    return groups


# --- parsing ------------------------------------------------------------------------------------


def _int_field(message: dict[str, Any], name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    value = message.get(name)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bound = f" and at most {maximum}" if maximum else ""
        raise RequestError("bad_request", f"`{name}` must be a whole number of at least {minimum}{bound}.")
    return value


def parse_start(message: dict[str, Any], state: tailing.ChainState) -> tuple[ChainCursor | None, int | None]:
    """``cursor`` ("<attempt id>:<offset>", one of the chain's attempts) or ``tail`` (bytes), parsed
    as the HTTP API parses them (``apps.logs.params``)."""
    try:
        text = message.get("cursor")
        if text not in (None, ""):
            return log_params.parse_cursor(str(text), state.attempt_ids), None
        if message.get("tail") is not None:
            return None, log_params.int_param(message, "tail", 0, maximum=log_params.MAX_PAGE_BYTES)
    except ApplicationError as exc:
        raise RequestError("bad_request", exc.message) from None
    return None, None


def negotiated_subprotocol(scope: dict[str, Any]) -> str | None:
    return PROTOCOL if PROTOCOL in scope.get("subprotocols", []) else None


def transport_backlog_probe(send: Any) -> Callable[[], int] | None:
    """Bytes daphne accepted for this socket but could not write yet (a slow network), if visible.

    ASGI's ``send`` never waits under daphne: it hands the frame to Twisted, which buffers it. The
    send callable daphne passes is ``partial(server.handle_reply, protocol)``; its transport's
    buffer is the backlog. Any other server (or a test communicator) gets no probe."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "dataBuffer"):
        return None

    def probe() -> int:
        try:
            pending = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
            queue = getattr(protocol, "send_queue", None) or ()
            return int(pending + sum(len(item[0]) for item in queue))
        except Exception:  # internals changed: behave as if unknown
            return 0

    return probe


# --- log streams --------------------------------------------------------------------------------


class LogSink:
    """Writes one log stream's messages to a consumer's socket."""

    def __init__(
        self,
        consumer: AsyncWebsocketConsumer,
        *,
        chain_id: int,
        rank: int,
        stream: str | None,
        on_done: Callable[[LogSink], Any],
        backlog: Callable[[], int] | None,
    ) -> None:
        self.consumer = consumer
        self.chain_id = chain_id
        self.rank = rank
        self.stream = stream
        self.on_done = on_done
        self._backlog = backlog
        self.viewer: tailing.Viewer | None = None
        stream_part = f'"stream":{json.dumps(stream)},' if stream is not None else ""
        self._lines_head = f'{{"type":"log.lines",{stream_part}"chain":{chain_id},"rank":{rank},"data":'
        self._endpoint = "events" if stream is not None else "logs"

    def _fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"stream": self.stream} if self.stream is not None else {}
        return {**fields, "chain": self.chain_id, "rank": self.rank}

    async def lines(self, text: str, cursor: str, json_text: str | None) -> None:
        data = json_text if json_text is not None else json.dumps(text, ensure_ascii=False)
        await self.consumer.send(text_data=f'{self._lines_head}{data},"cursor":"{cursor}"}}')
        LOG_LINES.labels(self._endpoint).inc(count_lines(text))

    async def behind(self, cursor: str) -> None:
        await self.consumer.send(text_data=json.dumps({"type": "log.behind", **self._fields(), "cursor": cursor}))
        await self.on_done(self)

    async def end(self, status: str) -> None:
        await self.consumer.send(text_data=json.dumps({"type": "log.end", **self._fields(), "status": status}))
        await self.on_done(self)

    async def status(self, status: str) -> None:
        await self.consumer.send(text_data=json.dumps({"type": "log.status", **self._fields(), "status": status}))

    async def failed(self) -> None:
        message = "The log stream failed on the server; follow it again from your last cursor."
        body = {"type": "error", "code": "internal", "message": message, **self._fields()}
        await self.consumer.send(text_data=json.dumps(body))
        await self.on_done(self)

    def backlog(self) -> int:
        return self._backlog() if self._backlog is not None else 0


async def start_follow(
    consumer: AsyncWebsocketConsumer,
    *,
    user: Any,
    chain_id: int,
    rank: int,
    message: dict[str, Any],
    stream: str | None,
    on_done: Callable[[LogSink], Any],
    statuses: bool = False,
    checked: bool = False,
) -> LogSink:
    """Check the user may see the chain's rank (unless the caller just did: ``checked``), resolve
    the start, and start a viewer."""
    if checked:
        state = await database_sync_to_async(_follow_state)(chain_id)
    else:
        state = await database_sync_to_async(_chain_for_follow)(user, chain_id, rank)
    cursor, tail = parse_start(message, state)
    start = await asyncio.to_thread(
        tailing.resolve_start, get_log_store(), chain_id, rank, state.attempt_ids, cursor=cursor, tail=tail
    )
    sink = LogSink(
        consumer,
        chain_id=chain_id,
        rank=rank,
        stream=stream,
        on_done=on_done,
        backlog=transport_backlog_probe(consumer.scope.get("rota_server_send")),
    )
    sink.viewer = tailing.get_hub().follow(
        chain_id=chain_id, rank=rank, state=state, start=start, sink=sink, statuses=statuses
    )
    return sink


# --- credentials that end while the socket is open ----------------------------------------------


class AuthWatch:
    """Closes a consumer's socket (4401, after an ``unauthenticated`` error) once the token or
    session it was opened with no longer holds: checked at least every ``AUTH_RECHECK_SECONDS``
    (with every other socket of the process, ``CredentialWatch``), at the token's expiry, and when
    asked (``check_now``: the user's access changed)."""

    def __init__(self, consumer: AsyncWebsocketConsumer) -> None:
        self.consumer = consumer
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self._watch: CredentialWatch | None = None

    def start(self) -> None:
        self._watch = get_credential_watch()
        self._watch.add(self)
        credential = self.consumer.scope.get("rota_auth")
        expires_at = getattr(credential, "expires_at", None)
        if expires_at is not None:  # no query until then: the token says when it ends
            self.task = asyncio.get_running_loop().create_task(self._expire(expires_at))

    async def _expire(self, expires_at: Any) -> None:
        await asyncio.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.01)
        await self.check_now()

    def credential(self) -> tuple[Any, str]:
        """The credential to check and the language to explain a problem in."""
        return self.consumer.scope.get("rota_auth"), scope_language(self.consumer.scope)

    async def check_now(self) -> bool:
        """Check the credential now; if it no longer holds, say why and close (True)."""
        if self.closed:
            return True
        try:
            problems = await database_sync_to_async(credential_problem_texts)([self.credential()])
        except Exception:  # a database hiccup: keep the socket, check again later
            logger.exception("could not re-check a websocket's credential")
            return False
        return await self.close_if(problems[0])

    async def close_if(self, problem: str | None) -> bool:
        """Close the socket, saying ``problem``, unless it is ``None``; True if closed."""
        if problem is None:
            return self.closed
        if self.closed:
            return True
        self.closed = True
        if self._watch is not None:
            self._watch.remove(self)
        body = {"type": "error", "code": "unauthenticated", "message": problem}
        await self.consumer.send(text_data=json.dumps(body))
        await self.consumer.close(code=CLOSE_UNAUTHENTICATED)
        return True

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.remove(self)
        task, self.task = self.task, None
        await cancel_and_wait(task)


class CredentialWatch:
    """The open sockets of one event loop (one server process), their credentials re-checked
    together: one batch of queries every ``AUTH_RECHECK_SECONDS`` for all of them
    (``apps.accounts.ws_auth.credential_problem_texts``: at most three, however many sockets),
    not one query per socket.

    One query per socket cost the interpreter more than the messages it serves: 1,000 sockets
    re-checking every 15–30 s were most of a loaded server's time while it was delivering events,
    and sockets opened together re-checked together (docs/PERFORMANCE.md). A socket joins the
    batch from the next round on, so whatever happens to its credential, it is closed by the
    first round that starts after: within ``AUTH_RECHECK_SECONDS`` (plus the round's queries)."""

    def __init__(self) -> None:
        self.watches: dict[AuthWatch, None] = {}  # in the order they were added
        self.rounds = 0  # rounds completed (for tests)
        self._task: asyncio.Task[None] | None = None

    def add(self, watch: AuthWatch) -> None:
        self.watches[watch] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="credential re-checks")

    def remove(self, watch: AuthWatch) -> None:
        self.watches.pop(watch, None)

    async def _run(self) -> None:
        started = time.monotonic()
        while self.watches:
            interval = float(tailing.realtime_setting("AUTH_RECHECK_SECONDS"))
            await asyncio.sleep(max(0.0, started + interval - time.monotonic()))
            started = time.monotonic()  # the next round starts one interval after this one did
            await self.check(list(self.watches))
            self.rounds += 1
        self._task = None

    async def check(self, watches: list[AuthWatch]) -> None:
        """Re-check ``watches`` in one batch; close those whose credential no longer holds."""
        if not watches:
            return
        try:
            problems = await database_sync_to_async(credential_problem_texts)([w.credential() for w in watches])
        except Exception:  # a database hiccup: keep the sockets, check again next round
            logger.exception("could not re-check %d websockets' credentials", len(watches))
            return
        for watch, problem in zip(watches, problems, strict=True):
            if problem is not None and watch in self.watches:  # (not closed meanwhile)
                try:
                    await watch.close_if(problem)
                except Exception:  # a socket that broke meanwhile must not keep the others open
                    logger.warning("could not close a websocket whose credential ended", exc_info=True)


_credential_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CredentialWatch] = weakref.WeakKeyDictionary()


def get_credential_watch() -> CredentialWatch:
    """The credential watch of the running event loop (one per server process), created on first use."""
    loop = asyncio.get_running_loop()
    watch = _credential_watches.get(loop)
    if watch is None:
        watch = _credential_watches[loop] = CredentialWatch()
    return watch


# --- consumers ----------------------------------------------------------------------------------


class EventsConsumer(AsyncWebsocketConsumer):
    """``/ws/events/``: what the user may see, pushed; chain subscriptions and log follows on demand."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.chains: set[int] = set()
        self.streams: dict[str, LogSink] = {}
        self._seen: deque[str] = deque(maxlen=SEEN_EVENT_IDS)  # the ids of the latest events, oldest first
        self._seen_ids: set[str] = set()  # the same, to look up
        self.user_groups = await database_sync_to_async(_user_groups)(user)
        # Under daphne, events (framed once per process) are written to the socket as they are.
        self.write_frame = frame_writer(self.scope.get("rota_server_send"))
        self.fanout = get_fanout()
        self.joined: list[str] = []
        for group in self.user_groups:
            await self._join(group)
        await self.accept(subprotocol=negotiated_subprotocol(self.scope))
        self.counted = "events"
        WEBSOCKETS.labels("events").inc()
        self.auth_watch = AuthWatch(self)
        self.auth_watch.start()

    async def _join(self, group: str) -> None:
        await self.fanout.join(group, self)
        self.joined.append(group)

    async def _leave(self, group: str) -> None:
        self.joined.remove(group)
        await self.fanout.leave(group, self)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", None):
            WEBSOCKETS.labels(self.counted).dec()
            self.counted = ""
        if hasattr(self, "auth_watch"):
            await self.auth_watch.stop()
        for group in list(getattr(self, "joined", [])):
            await self._leave(group)
        for sink in list(getattr(self, "streams", {}).values()):
            if sink.viewer is not None:
                await sink.viewer.close()
        if hasattr(self, "streams"):
            self.streams.clear()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message: dict[str, Any] = {}
        try:
            message = self._parse(text_data)
            action = message.get("action")
            if action == "subscribe":
                await self._subscribe(message)
            elif action == "unsubscribe":
                await self._unsubscribe(message)
            elif action == "follow_log":
                await self._follow_log(message)
            elif action == "unfollow_log":
                await self._unfollow_log(message)
            elif action == "ping":
                await self.send(text_data='{"type":"pong"}')
            else:
                raise RequestError(
                    "bad_request", "`action` must be subscribe, unsubscribe, follow_log, unfollow_log or ping."
                )
        except RequestError as exc:
            await self._error(exc, message)

    @staticmethod
    def _parse(text_data: str | None) -> dict[str, Any]:
        if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
            raise RequestError("bad_request", f"Send JSON text messages of at most {MAX_MESSAGE_BYTES} bytes.")
        try:
            message = json.loads(text_data)
        except ValueError:
            raise RequestError("bad_request", "Messages must be JSON objects.") from None
        if not isinstance(message, dict):
            raise RequestError("bad_request", "Messages must be JSON objects.")
        return message

    async def _error(self, exc: RequestError, message: dict[str, Any]) -> None:
        body: dict[str, Any] = {"type": "error", "code": exc.code, "message": exc.message}
        for key in ("stream", "chain"):
            if isinstance(message.get(key), (str, int)) and not isinstance(message.get(key), bool):
                body[key] = message[key]
        await self.send(text_data=json.dumps(body))

    async def _subscribe(self, message: dict[str, Any]) -> None:
        chain_id = _int_field(message, "chain", minimum=1, maximum=MAX_ID)
        if chain_id not in self.chains:
            if len(self.chains) >= MAX_SUBSCRIPTIONS:
                raise RequestError("too_many", f"At most {MAX_SUBSCRIPTIONS} jobs per connection.")
            if not await database_sync_to_async(_chain_visible)(self.user, chain_id):
                raise RequestError("not_found", f"No job {chain_id} that you can see.")
            await self._join(chain_group(chain_id))
            self.chains.add(chain_id)
        await self.send(text_data=json.dumps({"type": "subscribed", "chain": chain_id}))

    async def _unsubscribe(self, message: dict[str, Any]) -> None:
        chain_id = _int_field(message, "chain", minimum=1, maximum=MAX_ID)
        if chain_id in self.chains:
            await self._leave(chain_group(chain_id))
            self.chains.discard(chain_id)
        await self.send(text_data=json.dumps({"type": "unsubscribed", "chain": chain_id}))

    async def _follow_log(self, message: dict[str, Any]) -> None:
        stream = message.get("stream")
        if not isinstance(stream, str) or not 1 <= len(stream) <= 64:
            raise RequestError("bad_request", "`stream` must be a client-chosen id of 1 to 64 characters.")
        chain_id = _int_field(message, "chain", minimum=1, maximum=MAX_ID)
        rank = _int_field(message, "rank", maximum=MAX_RANK) if message.get("rank") is not None else 0
        previous = self.streams.pop(stream, None)
        if previous is not None and previous.viewer is not None:
            await previous.viewer.close()
        if len(self.streams) >= MAX_LOG_STREAMS:
            raise RequestError("too_many", f"At most {MAX_LOG_STREAMS} logs followed per connection.")
        self.streams[stream] = await start_follow(
            self, user=self.user, chain_id=chain_id, rank=rank, message=message, stream=stream, on_done=self._done
        )

    async def _done(self, sink: LogSink) -> None:
        if sink.stream is not None and self.streams.get(sink.stream) is sink:
            del self.streams[sink.stream]

    async def _unfollow_log(self, message: dict[str, Any]) -> None:
        sink = self.streams.pop(str(message.get("stream")), None)
        if sink is not None and sink.viewer is not None:
            await sink.viewer.close()

    async def rota_event(self, message: dict[str, Any]) -> None:
        """An event from ``portal.realtime`` (handed over by ``portal.fanout``, with ``text``, its
        JSON, and ``frame``, its websocket frame): forward it once, even if it came through two
        groups — under daphne by writing the frame as it is (``portal.frames``), else by ``send``.
        ``chain.visibility`` is not forwarded: it makes the consumer re-check that chain."""
        event_id = message.get("id")
        if event_id is not None:
            if event_id in self._seen_ids:
                return
            if len(self._seen) == SEEN_EVENT_IDS:
                self._seen_ids.discard(self._seen[0])  # the deque drops it on append
            self._seen.append(event_id)
            self._seen_ids.add(event_id)
        event = message.get("event") or {}
        if event.get("type") == VISIBILITY_EVENT:
            await self._recheck_visibility(int(event["chain_id"]))
            return
        if event.get("type") == ACCESS_EVENT:
            await self._access_changed()
            return
        frame = message.get("frame")
        if frame is not None and self.write_frame is not None and self.write_frame(frame):
            return
        await self.send(text_data=message.get("text") or json.dumps(message["event"]))

    async def _access_changed(self) -> None:
        """The user's team, groups, role or active flag changed: close if the credential no longer
        holds; else move to the groups the user belongs in now and re-check everything followed."""
        if await self.auth_watch.check_now():
            return
        self.user = await database_sync_to_async(_reload_user)(self.user)
        wanted = await database_sync_to_async(_user_groups)(self.user)
        for group in self.user_groups:
            if group not in wanted and group in self.joined:
                await self._leave(group)
        for group in wanted:
            if group not in self.joined:
                await self._join(group)
        self.user_groups = wanted
        for chain_id in sorted(self.chains | {sink.chain_id for sink in self.streams.values()}):
            await self._recheck_visibility(chain_id)

    async def _recheck_visibility(self, chain_id: int) -> None:
        """Drop the subscription and log follows of ``chain_id`` if the user may no longer see it."""
        sinks = [(name, sink) for name, sink in self.streams.items() if sink.chain_id == chain_id]
        if chain_id not in self.chains and not sinks:
            return
        if await database_sync_to_async(_chain_visible)(self.user, chain_id):
            return
        if chain_id in self.chains:
            await self._leave(chain_group(chain_id))
            self.chains.discard(chain_id)
            await self.send(text_data=json.dumps({"type": "unsubscribed", "chain": chain_id}))
        for name, sink in sinks:
            if self.streams.get(name) is sink:
                del self.streams[name]
            if sink.viewer is not None:
                await sink.viewer.close()
            body = {"type": "error", "code": "not_found", "stream": name, "chain": chain_id}
            await self.send(text_data=json.dumps({**body, "message": f"No job {chain_id} that you can see."}))


class LogsConsumer(AsyncWebsocketConsumer):
    """``/ws/logs/<chain>/<rank>/``: one rank's log for the CLI — backlog, then follow, then end."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        kwargs = self.scope["url_route"]["kwargs"]
        self.chain_id, self.rank = int(kwargs["chain"]), int(kwargs["rank"])
        if self.chain_id > MAX_ID or self.rank > MAX_RANK:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.sink: LogSink | None = None
        self._start_lock = asyncio.Lock()
        # The first follow trusts this check instead of repeating it (one visibility query per
        # socket, not two): a change after it is a ``chain.visibility`` or ``user.access`` event,
        # which reaches this socket because it joins the groups before checking.
        self._checked = True
        # The chain's group for ``chain.visibility`` and the user's for ``user.access`` (other events
        # are ignored).
        self.fanout = get_fanout()
        self.joined: list[str] = []
        for group in (chain_group(self.chain_id), user_group(user.pk)):
            await self.fanout.join(group, self)
            self.joined.append(group)
        try:
            await database_sync_to_async(_chain_for_follow)(user, self.chain_id, self.rank)
        except RequestError:
            for group in list(self.joined):
                self.joined.remove(group)
                await self.fanout.leave(group, self)
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.accept(subprotocol=negotiated_subprotocol(self.scope))
        self.counted = "logs"
        WEBSOCKETS.labels("logs").inc()
        self.auth_watch = AuthWatch(self)
        self.auth_watch.start()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            message = EventsConsumer._parse(text_data)
        except RequestError as exc:
            await self.send(text_data=json.dumps({"type": "error", "code": exc.code, "message": exc.message}))
            return
        await self._start(message)

    async def _start(self, message: dict[str, Any]) -> None:
        async with self._start_lock:
            checked, self._checked = self._checked, False  # later follows check again
            if self.sink is not None and self.sink.viewer is not None:
                await self.sink.viewer.close()
                self.sink = None
            try:
                self.sink = await start_follow(
                    self,
                    user=self.user,
                    chain_id=self.chain_id,
                    rank=self.rank,
                    message=message,
                    stream=None,
                    on_done=self._done,
                    statuses=True,
                    checked=checked,
                )
            except RequestError as exc:
                await self.send(text_data=json.dumps({"type": "error", "code": exc.code, "message": exc.message}))

    async def _done(self, sink: LogSink) -> None:
        if sink is self.sink and sink.viewer is not None and sink.viewer.state == "ended":
            await self.close(code=1000)

    async def rota_event(self, message: dict[str, Any]) -> None:
        """On ``chain.visibility`` or ``user.access``, end the follow if the user may no longer see
        the chain (``user.access`` first reloads the user, or closes if the credential is gone)."""
        kind = (message.get("event") or {}).get("type")
        if kind == ACCESS_EVENT:
            if await self.auth_watch.check_now():
                return
            self.user = await database_sync_to_async(_reload_user)(self.user)
        elif kind != VISIBILITY_EVENT:
            return
        if await database_sync_to_async(_chain_visible)(self.user, self.chain_id):
            return
        if self.sink is not None and self.sink.viewer is not None:
            await self.sink.viewer.close()
            self.sink = None
        body = {"type": "error", "code": "not_found", "message": f"No job {self.chain_id} that you can see."}
        await self.send(text_data=json.dumps(body))
        await self.close(code=CLOSE_NOT_FOUND)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", None):
            WEBSOCKETS.labels(self.counted).dec()
            self.counted = ""
        if hasattr(self, "auth_watch"):
            await self.auth_watch.stop()
        for group in list(getattr(self, "joined", [])):
            self.joined.remove(group)
            await self.fanout.leave(group, self)
        sink = getattr(self, "sink", None)
        if sink is not None and sink.viewer is not None:
            await sink.viewer.close()
