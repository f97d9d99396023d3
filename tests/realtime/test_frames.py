"""Events framed once per process and written to each socket as they are (``portal.frames``): the
same bytes as the ordinary send path, in order, and the ordinary path whenever that would differ."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.testing import StringTransport

from portal.frames import TextFrame, frame_writer

HANDSHAKE = (
    b"GET /ws/events/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Server:
    """daphne's server as the writer sees it: ``connections`` and the bound ``handle_reply``."""

    def __init__(self) -> None:
        self.connections: dict[Any, dict[str, Any]] = {}

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        raise AssertionError("the writer must not go through handle_reply")


def open_socket(server: Server) -> tuple[WebSocketServerProtocol, StringTransport]:
    """A real autobahn server protocol after a real handshake, on an in-memory transport."""
    factory = WebSocketServerFactory("ws://127.0.0.1:1/")
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(HANDSHAKE)
    assert protocol.state == protocol.STATE_OPEN
    transport.clear()
    server.connections[protocol] = {"connected": True}
    return protocol, transport


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_the_frame_is_the_bytes_autobahn_sends_for_the_message(length):
    server = Server()
    protocol, transport = open_socket(server)
    text = ("é" + "x" * length)[:length] if length else ""
    protocol.sendMessage(text.encode("utf-8"))  # the ordinary path's framing
    assert TextFrame(text).wire == transport.value()


def test_one_frame_written_to_many_sockets_in_the_order_sent():
    server = Server()
    sockets = [open_socket(server) for _ in range(3)]
    writers = [frame_writer(functools.partial(server.handle_reply, protocol)) for protocol, _ in sockets]
    frames = [TextFrame(f'{{"type":"chain.status","n":{n}}}') for n in range(3)]
    for frame in frames:
        for write in writers:
            assert write is not None and write(frame) is True
    expected = b"".join(frame.wire for frame in frames)
    assert [transport.value() for _, transport in sockets] == [expected] * 3
    assert frames[0].wire is frames[0].wire  # built once


def test_the_writer_declines_when_the_ordinary_path_would_differ():
    server = Server()
    frame = TextFrame('{"type":"chain.status"}')

    protocol, transport = open_socket(server)
    write = frame_writer(functools.partial(server.handle_reply, protocol))
    assert write is not None
    protocol.send_queue.append((b"queued", True))  # autobahn still holds a write: ours would overtake it
    assert write(frame) is False
    protocol.send_queue.clear()
    protocol._perMessageCompress = object()  # compression negotiated: each socket compresses its own
    assert write(frame) is False
    protocol._perMessageCompress = None
    protocol.state = protocol.STATE_CLOSING  # closing: the ordinary path raises, as it should
    assert write(frame) is False
    assert transport.value() == b""


def test_a_socket_daphne_knows_is_gone_gets_nothing():
    server = Server()
    protocol, transport = open_socket(server)
    write = frame_writer(functools.partial(server.handle_reply, protocol))
    assert write is not None
    server.connections[protocol]["disconnected"] = True
    assert write(TextFrame("{}")) is True  # handled: dropped, as daphne's handle_reply drops it
    del server.connections[protocol]
    assert write(TextFrame("{}")) is True
    assert transport.value() == b""


def test_no_writer_under_other_servers():
    async def send(message: dict[str, Any]) -> None:
        return None

    assert frame_writer(None) is None
    assert frame_writer(send) is None  # uvicorn, the test communicator
    assert frame_writer(functools.partial(send)) is None
    assert frame_writer(functools.partial(Server().handle_reply, object())) is None  # not a websocket protocol
