"""A `websockets` server on an asyncio loop of its own thread: the ground of the
WebSocket feed (`bridge/ws.py`) and of OSCQuery (`bridge/oscquery.py`).

The dispatch thread queues each client's messages in a deque (append and
popleft are atomic, so there is no lock the dispatch thread could wait on) and
wakes the loop at most once per batch; the loop sends. A client whose queue
overflows is dropped, so a stalled client never slows the bridge: a close frame
if its buffers have room, and the connection cut a second later either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections import deque
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

QUEUE_MAX = 512
"""Messages waiting for one client; when full the client is dropped."""
MAX_MESSAGE = 4096
"""Largest message a client may send (subscriptions and LISTEN commands are far smaller)."""
CLOSE_TOO_SLOW = 1008  # policy violation: it did not keep up


class LoopClient:
    """One connection and its queue, filled by the dispatch thread and emptied by the loop."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.queue: deque[Any] = deque()
        self.ready = asyncio.Event()
        self.dropped = False
        self.label = "{}:{}".format(*connection.remote_address[:2])


C = TypeVar("C", bound=LoopClient)


class LoopServer(Generic[C]):
    """Binds in the constructor, so a busy port fails before anything is live (OSError
    for the caller to word). Subclasses answer HTTP (`_http`) and connections (`_handle`)."""

    what = "WebSocket"
    """The kind of client, in the message that drops one."""

    def __init__(self, host: str, port: int, thread_name: str) -> None:
        self.dropped = 0
        """Clients dropped for being too slow."""
        self._clients: list[C] = []  # replaced, never changed in place: read by both threads
        self._wake_pending = False
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        bound: Future[tuple[str, int]] = Future()
        self._thread = threading.Thread(target=self._run, args=(host, port, bound), name=thread_name, daemon=True)
        self._thread.start()
        self.host, self.port = bound.result()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # -- subclasses ----------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """The answer to a plain HTTP request, or None to go on with the WebSocket handshake."""
        raise NotImplementedError

    async def _handle(self, connection: ServerConnection) -> None:
        raise NotImplementedError

    def _background(self) -> Coroutine[Any, Any, None] | None:
        """A task to run on the loop while the server serves, if any."""
        return None

    # -- dispatch thread ---------------------------------------------------------------

    def _queue(self, client: C, message: object) -> bool:
        """Queues `message` for `client`, or drops the client when its queue is full."""
        if len(client.queue) >= QUEUE_MAX:
            self._drop(client)
            return False
        client.queue.append(message)
        return True

    def _wake_soon(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(self._wake)

    def _drop(self, client: C) -> None:
        client.dropped = True
        self.dropped += 1
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._abort, client)

    # -- event loop thread -------------------------------------------------------------

    def _run(self, host: str, port: int, bound: Future[tuple[str, int]]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve(host, port, bound))
        except BaseException as e:
            if not bound.done():
                bound.set_exception(e)  # the constructor raises it (OSError: a busy port)
            else:
                raise
        finally:
            self._loop.close()

    async def _serve(self, host: str, port: int, bound: Future[tuple[str, int]]) -> None:
        self._server = await serve(
            self._handle, host, port,
            process_request=self._http, max_size=MAX_MESSAGE, close_timeout=1, server_header=None,
        )
        address = next(iter(self._server.sockets)).getsockname()
        bound.set_result((address[0], address[1]))
        background = self._background()
        task = asyncio.ensure_future(background) if background is not None else None
        await self._server.wait_closed()
        if task is not None:
            task.cancel()

    def _wake(self) -> None:
        self._wake_pending = False
        for client in self._clients:
            if client.queue:
                client.ready.set()

    def _abort(self, client: C) -> None:
        print(f"daw-bridge: {self.what} client {client.label} dropped: it does not keep up", file=sys.stderr)
        client.ready.set()
        closing = asyncio.ensure_future(client.connection.close(CLOSE_TOO_SLOW, "too slow"))
        self._loop.call_later(1.0, _cut, client.connection, closing)

    # -- any thread ----------------------------------------------------------------------

    def close(self) -> None:
        """Closes every connection and the server, and ends the loop's thread."""
        server = self._server
        if server is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(server.close)
        self._thread.join(timeout=5)


def _cut(connection: ServerConnection, closing: asyncio.Future[None]) -> None:
    if not closing.done():
        connection.transport.abort()
