"""The WebSocket feed: every engine event as JSON to browsers, and the page that shows them.

Browsers cannot receive OSC (UDP), so visuals in a browser read this instead.
`WsFeed` serves the page (bridge/web/index.html) at ``/`` and a WebSocket at
``/ws`` with the `websockets` library's asyncio server, on an event loop in a
thread of its own. The dispatch thread only calls `publish`, which encodes
each event once and appends it to every interested client's bounded queue
without ever waiting: a client whose queue is full is too slow (or gone) and
is dropped, so no browser can hold up MIDI, OSC or the take.

Messages are the JSON-lines event schema (``Event.to_dict()``) plus
``"input"``, one event per message. Kinds that come every hop (`RATE_LIMITED`)
are thinned per client, input and kind to at most the client's rate; every
other kind (notes, onsets, and whatever kinds the engine adds later) always
goes out. A client chooses kinds and rate with
``{"subscribe": ["note_on", ...], "rate_hz": 30}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Iterable
from importlib import resources
from typing import Any

from rust_engine import Event
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.loop_server import LoopClient, LoopServer

log = logging.getLogger(__name__)

RATE_LIMITED = frozenset({"pitch", "dynamics", "bands", "spectrum", "chroma"})
"""Kinds the engine emits every hop: thinned to the client's rate. Any other kind is never dropped."""
MAX_RATE_HZ = 1000.0
PAGE = "index.html"
_ANSWERS = frozenset({"subscribed", "error"})


def parse_listen(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (IPv6 as ``[::1]:PORT``) into ``(host, port)``, host 127.0.0.1 by
    default, port 0 for any free port. ValueError names what is wrong."""
    spec = text.strip()
    host, port_text = "127.0.0.1", spec
    if spec.startswith("["):
        inner, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"'{text}': expected [IPV6]:PORT")
        host, port_text = inner, rest[1:]
    elif ":" in spec:
        host, _, port_text = spec.rpartition(":")
        if ":" in host:
            raise ValueError(f"'{text}': write an IPv6 address in brackets, [::1]:8765")
    if not host:
        raise ValueError(f"'{text}': the host is empty")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"'{text}': the port must be a number from 0 (any free port) to 65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may well be reachable from elsewhere


def page() -> bytes:
    """The browser page, a file in the package (no build step, nothing fetched)."""
    return resources.files("bridge").joinpath("web", PAGE).read_bytes()


class _Client(LoopClient):
    """One browser: what it wants, and its queue of (kind, message)."""

    def __init__(self, connection: ServerConnection, rate_hz: float) -> None:
        super().__init__(connection)
        self.kinds: frozenset[str] | None = None  # None: every kind
        self.interval = 1.0 / rate_hz
        self.last_sent: dict[tuple[str, int], float] = {}

    def wants(self, kind: str, key: tuple[str, int], t: float) -> bool:
        """Subscribed to `kind`, and (for a rate-limited kind) due: thinned by the event's
        own time `t`, so the result does not depend on when the dispatch thread ran."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if kind not in RATE_LIMITED:
            return True
        last = self.last_sent.get(key)
        if last is not None and last <= t < last + self.interval:
            return False  # (t < last: a new stream after a lost server starts again at 0)
        self.last_sent[key] = t
        return True


class WsFeed(LoopServer[_Client]):
    """The WebSocket server and page; `publish` from the dispatch thread, `close` at stop.

    Binds in the constructor, so a busy port fails before anything is live:
    BridgeError-free, it raises OSError for the caller to word.
    """

    def __init__(self, host: str, port: int, n_inputs: int, rate_hz: float) -> None:
        self.n_inputs = n_inputs
        self.rate_hz = rate_hz
        self._page = page()
        super().__init__(host, port, "daw-bridge-ws")

    # -- dispatch thread ---------------------------------------------------------------

    def publish(self, events: Iterable[Event]) -> None:
        """Queues `events` for every client that wants them; never blocks or raises."""
        clients = self._clients
        if not clients:
            return
        queued = False
        for event in events:
            kind, k = event.kind, event.input or 1
            message: str | None = None
            for client in clients:
                if client.dropped or not client.wants(kind, (kind, k), event.t):
                    continue
                if message is None:
                    message = self._encode(event, k)
                    if not message:
                        break
                queued = self._queue(client, (kind, message)) or queued
        if queued:
            self._wake_soon()

    @staticmethod
    def _encode(event: Event, k: int) -> str:
        record: dict[str, Any] = event.to_dict()
        record["input"] = k
        try:
            return json.dumps(record, allow_nan=False, separators=(",", ":"))
        except ValueError:
            return ""  # not finite: the engine promises finite values, so this is rare

    # -- event loop thread -------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path == "/ws":
            return None  # the WebSocket handshake goes on
        if path in ("/", "/index.html"):
            headers = Headers([
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(self._page))),
                ("Cache-Control", "no-cache"),
            ])
            return Response(200, "OK", headers, self._page)
        return connection.respond(404, "not found: the page is at / and the feed at /ws\n")

    async def _handle(self, connection: ServerConnection) -> None:
        client = _Client(connection, self.rate_hz)
        hello = {"type": "hello", "inputs": self.n_inputs, "rate_hz": self.rate_hz, "rate_limited": sorted(RATE_LIMITED)}
        await connection.send(json.dumps(hello))
        self._clients = [*self._clients, client]
        sender = asyncio.ensure_future(self._send(client))
        try:
            async for message in connection:
                self._subscribe(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients = [c for c in self._clients if c is not client]
            sender.cancel()

    async def _send(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while not client.dropped:
                await client.ready.wait()
                client.ready.clear()
                while client.queue and not client.dropped:
                    kind, message = client.queue.popleft()
                    # Queued before a subscribe message changed the kinds: left out here, so
                    # nothing of an old subscription follows the "subscribed" answer.
                    if kind in _ANSWERS or client.kinds is None or kind in client.kinds:
                        await client.connection.send(message)

    def _subscribe(self, client: _Client, message: str | bytes) -> None:
        """Applies ``{"subscribe": [kinds] | "all", "rate_hz": N}``; answers an error
        message (and changes nothing) for anything else."""
        try:
            request = json.loads(message)
            if not isinstance(request, dict) or not set(request) <= {"subscribe", "rate_hz"} or not request:
                raise ValueError('expected {"subscribe": ["note_on", ...], "rate_hz": N}')
            kinds = request.get("subscribe", "all")
            if kinds != "all" and not (isinstance(kinds, list) and all(isinstance(x, str) for x in kinds)):
                raise ValueError('"subscribe" must be a list of event types or "all"')
            rate = request.get("rate_hz", self.rate_hz)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE_HZ:
                raise ValueError(f'"rate_hz" must be a number above 0 and at most {MAX_RATE_HZ:g}')
        except ValueError as e:  # json.JSONDecodeError too: "not JSON" is said by its message
            _reply(client, {"type": "error", "error": str(e)})
            return
        if "subscribe" in request:
            client.kinds = None if kinds == "all" else frozenset(kinds)
        client.interval = 1.0 / rate
        client.last_sent.clear()
        _reply(client, {
            "type": "subscribed",
            "subscribe": "all" if client.kinds is None else sorted(client.kinds),
            "rate_hz": rate,
        })


def _reply(client: _Client, message: dict[str, Any]) -> None:
    """Answers a client's message in line with its feed: after what was queued before."""
    client.queue.append((message["type"], json.dumps(message)))
    client.ready.set()
