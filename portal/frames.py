"""One websocket text frame for many sockets: an event framed once per process, written as it is.

An event reaches every local socket in its groups (``portal.fanout``). Sent the ordinary way, each
socket's copy goes through the consumer's ``send``, Channels' session wrapper, daphne's
``handle_reply`` and autobahn's ``sendMessage``, which frames it again and formats a debug log
message for every frame whatever the log level; at 1,000 sockets and 10 events a second those
layers were most of a server's time (docs/PERFORMANCE.md, "Where the time goes"). A server's
frames to clients are not masked, so the bytes of one text message are the same on every socket:
``TextFrame`` builds them once (autobahn's ``PreparedMessage``, the library's own broadcast
helper) and ``frame_writer`` writes them straight to a socket's Twisted transport under daphne —
the same bytes, in the same order, as the ordinary path, whose writes are synchronous too.

The writer declines (returns False, and the caller sends the ordinary way) whenever that path would
do something else: a socket not open (the ordinary path raises), autobahn holding queued writes
(ours would overtake them), or per-message compression negotiated (each socket compresses its
own). A socket daphne already knows is gone gets nothing, as daphne's ``handle_reply`` does. Any
other server (uvicorn, the test communicator) gets no writer.

This module imports no app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class TextFrame:
    """A text message and, built on first use, its single unmasked websocket frame."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The frame's bytes as a server sends them (RFC 6455: FIN, opcode 1, no mask)."""
        if self._wire is None:
            from autobahn.websocket.protocol import PreparedMessage  # daphne's; not needed elsewhere

            prepared = PreparedMessage(self.text.encode("utf-8"), isBinary=False, applyMask=False, doNotCompress=True)
            self._wire = prepared.payloadHybi
        return self._wire


FrameWriter = Callable[[TextFrame], bool]


def frame_writer(send: Any) -> FrameWriter | None:
    """For a socket served by daphne (``send`` is the server's own, ``partial(server.handle_reply,
    protocol)``): a function that writes a ``TextFrame`` to it and returns True, or returns False
    when the frame must be sent the ordinary way. None under any other server."""
    if not isinstance(send, functools.partial) or not send.args:
        return None
    server, protocol = getattr(send.func, "__self__", None), send.args[0]
    connections = getattr(server, "connections", None)
    state_open = getattr(protocol, "STATE_OPEN", None)
    if not isinstance(connections, dict) or state_open is None or not hasattr(protocol, "send_queue"):
        return None

    def write(frame: TextFrame) -> bool:
        try:
            if protocol.state != state_open or protocol.send_queue or protocol._perMessageCompress is not None:
                return False
            connection = connections.get(protocol)
            if connection is None or connection.get("disconnected"):
                return True  # gone: daphne drops what is sent to it
            protocol.transport.write(frame.wire)
        except AttributeError:  # daphne or autobahn changed: the ordinary path still works
            return False
        return True

    return write
