"""OSCQuery (`daw-bridge run --oscquery`): the bridge's OSC namespace for controllers to discover.

Serves the OSCQuery proposal (Vidvox): an HTTP JSON tree of every OSC address
the bridge sends (its streams, read-only) and takes (``<prefix>/control/...``,
writable at the ``--osc-in`` UDP port), with FULL_PATH, CONTENTS, TYPE,
ACCESS, RANGE, DESCRIPTION and VALUE; ``?ATTRIBUTE`` for one attribute and
``?HOST_INFO`` for where to send OSC. On the same port a WebSocket takes
``{"COMMAND": "LISTEN", "DATA": "/bridge/pitch"}`` (and ``IGNORE``) and streams
that path's OSC packets, binary: the bridge's events as they are dispatched,
and a control's new value when it changes (by any route: OSC, the control
port, the TUI).

It runs like the WebSocket feed (`bridge.ws`): the `websockets` library's
asyncio server on an event loop in a thread of its own, answering HTTP in
`process_request`. The dispatch thread only calls `publish`, which stores the
latest event of each stream (for VALUE) and appends packets to the bounded
queues of listening clients without waiting; a client whose queue fills up
is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pythonosc.osc_message_builder import OscMessageBuilder
from rust_engine import Event
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.addresses import (
    CONTROL,
    EVENT_KIND_TO_OSC,
    OSC_MESSAGES,
    ControlSpec,
    OscKind,
    control_address,
    control_specs,
    osc_address,
)
from bridge.loop_server import LoopClient, LoopServer
from bridge.osc_out import event_message, event_values
from bridge.params import PARAMS
from bridge.state import Snapshot

EXTENSIONS = {
    "ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "LISTEN": True,
    "TAGS": False, "EXTENDED_TYPE": False, "UNIT": False, "CRITICAL": False, "CLIPMODE": False,
    "OVERLOADS": False, "PATH_CHANGED": False, "PATH_RENAMED": False, "PATH_ADDED": False,
    "PATH_REMOVED": False, "HTML": False, "ECHO": False,
}
"""What this server supports, as HOST_INFO says it (the proposal's optional attributes and commands)."""
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "ACCESS", "RANGE", "DESCRIPTION", "VALUE")
CONTROL_POLL_S = 0.1
"""How often control values are compared for listeners (only while someone listens to one)."""

# Ranges of the streams' arguments where they are fixed, by argument name.
_ARG_RANGES: dict[str, tuple[float, float]] = {
    "confidence": (0.0, 1.0), "midi": (0.0, 127.0), "note": (0, 127), "velocity": (0, 127),
    "level": (0.0, 1.0), "flatness": (0.0, 1.0), "peak": (0.0, 1.0), "rms": (0.0, 1.0),
}


@dataclass
class Node:
    """One OSC address (a method, when it has a TYPE or an ACCESS) or container."""

    path: str
    description: str = ""
    children: dict[str, Node] = field(default_factory=dict)
    type: str | None = None
    access: int = 0
    range: list[dict[str, Any] | None] | None = None
    stream: tuple[int, OscKind] | None = None
    control: ControlSpec | None = None


def _child(parent: Node, name: str) -> Node:
    if name not in parent.children:
        parent.children[name] = Node(f"{parent.path.rstrip('/')}/{name}")
    return parent.children[name]


def _place(root: Node, address: str) -> Node:
    node = root
    for part in address.strip("/").split("/"):
        node = _child(node, part)
    return node


def namespace(prefix: str, n_inputs: int, bands: int) -> Node:
    """The tree of every stream (per input) and control under `prefix`."""
    root = Node("/", "daw-bridge: audio analysis as OSC")
    for k in range(1, n_inputs + 1):
        for kind, spec in OSC_MESSAGES.items():
            node = _place(root, osc_address(prefix, k, n_inputs, kind))
            count = {"N": bands, "12": 12}
            types, ranges = "", []
            for arg in spec.args:
                n = count[arg.repeat] if arg.repeat else 1
                types += arg.type * n
                lo_hi = _ARG_RANGES.get(arg.name)
                ranges += [None if lo_hi is None else {"MIN": lo_hi[0], "MAX": lo_hi[1]}] * n
            node.type, node.access, node.range, node.stream = types, 1, ranges, (k, kind)
            node.description = f"{spec.meaning} ({spec.signature})"
    if n_inputs > 1:
        for k in range(1, n_inputs + 1):
            _place(root, f"{prefix}/{k}").description = f"Input {k} (in_{k})"
    _place(root, f"{prefix}/{CONTROL}").description = "Live controls: send OSC to the bridge's --osc-in port"
    for control in control_specs():
        node = _place(root, control_address(prefix, control))
        node.control, node.description = control, control.meaning
        if control.key is not None:
            p = PARAMS[control.key]
            node.type, node.access, node.range = "i" if p.whole else "f", 3, [{"MIN": p.lo, "MAX": p.hi}]
        elif control.types == "i|T|F":
            node.type, node.access = "T", 3
        elif control.types == "s":
            node.type, node.access = "s", 3
        else:
            node.access = 2  # a trigger: nothing to read
    return root


def control_value(spec: ControlSpec, snap: Snapshot) -> list[Any] | None:
    """A control's VALUE in `snap`: the setting, the switch, the take's file name ("" when none)."""
    if spec.key is not None:
        value = snap.params[spec.key]
        return [int(value) if PARAMS[spec.key].whole else value]
    if spec.path == "/midi":
        return [snap.midi_enabled]
    if spec.path == "/osc":
        return [snap.osc_enabled]
    if spec.path == "/record":
        return [snap.recording.rpartition("/")[2] if snap.recording else ""]
    if spec.path == "/tempo/hold":
        return [snap.tempo_held]
    return None


class _Listener(LoopClient):
    """One WebSocket client: the paths it listens to and its queue of OSC packets."""

    def __init__(self, connection: ServerConnection, rate_hz: float) -> None:
        super().__init__(connection)
        self.paths: frozenset[str] = frozenset()  # replaced, never changed in place
        self.interval = 1.0 / rate_hz
        self.last_sent: dict[str, float] = {}
        self.controls_sent: dict[str, list[Any] | None] = {}

    def due(self, path: str, t: float) -> bool:
        """A continuous stream's next packet is due by the event's own time (as `bridge.ws` thins)."""
        last = self.last_sent.get(path)
        if last is not None and last <= t < last + self.interval:
            return False
        self.last_sent[path] = t
        return True


class OscQueryServer(LoopServer[_Listener]):
    """HTTP namespace and WebSocket LISTEN on one port; `publish` from the dispatch thread.

    `snapshot` gives the controls' values; `osc_in` is where controls are sent
    (host, port) for HOST_INFO. Binds in the constructor: OSError for a busy port.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str,
        prefix: str,
        n_inputs: int,
        bands: int,
        rate_hz: float,
        osc_in: tuple[str, int],
        snapshot: Callable[[], Snapshot],
    ) -> None:
        self.name = name
        self.osc_in = osc_in
        self.rate_hz = rate_hz
        self.dropped = 0
        self._snapshot = snapshot
        self.root = namespace(prefix, n_inputs, bands)
        self._nodes: dict[str, Node] = {}
        self._index(self.root)
        self._streams = {node.stream: path for path, node in self._nodes.items() if node.stream is not None}
        self._latest: dict[str, Event] = {}  # path -> the stream's latest event, for VALUE
        super().__init__(host, port, "daw-bridge-oscquery")

    def _index(self, node: Node) -> None:
        self._nodes[node.path] = node
        for child in node.children.values():
            self._index(child)

    # -- dispatch thread ---------------------------------------------------------------

    def publish(self, events: Iterable[Event]) -> None:
        """Keeps each stream's latest event and queues packets for listeners; never blocks."""
        listeners = self._clients
        queued = False
        for event in events:
            k = event.input or 1
            for kind in EVENT_KIND_TO_OSC.get(event.kind, ()):
                path = self._streams.get((k, kind))
                if path is None:
                    continue
                self._latest[path] = event
                packet: bytes | None = None
                for client in listeners:
                    if client.dropped or path not in client.paths:
                        continue
                    if OSC_MESSAGES[kind].continuous and not client.due(path, event.t):
                        continue
                    if packet is None:
                        packet = event_message(event, path, kind).dgram
                    queued = self._queue(client, packet) or queued
        if queued:
            self._wake_soon()

    # -- HTTP: the namespace -------------------------------------------------------------

    def describe(self, node: Node, snap: Snapshot | None, contents: bool = True) -> dict[str, Any]:
        """The node's JSON object, with its sub-nodes unless `contents` is False; VALUE
        from `snap` (controls) and the streams' latest events."""
        out: dict[str, Any] = {"FULL_PATH": node.path, "ACCESS": node.access}
        if node.description:
            out["DESCRIPTION"] = node.description
        if node.type is not None:
            out["TYPE"] = node.type
        if node.range is not None:
            out["RANGE"] = node.range
        value = self.value(node, snap)
        if value is not None:
            out["VALUE"] = value
        if node.children and contents:
            out["CONTENTS"] = {name: self.describe(child, snap) for name, child in node.children.items()}
        return out

    def value(self, node: Node, snap: Snapshot | None) -> list[Any] | None:
        if node.control is not None:
            return control_value(node.control, snap) if snap is not None else None
        if node.stream is not None and (event := self._latest.get(node.path)) is not None:
            values = [v for _, v in event_values(event, node.stream[1])]
            if all(math.isfinite(v) for v in values):
                return values
        return None

    def host_info(self, local_host: str) -> dict[str, Any]:
        host, port = self.osc_in
        if host in ("0.0.0.0", "::", ""):  # every interface: the one this request came in on
            host = local_host
        return {
            "NAME": self.name, "EXTENSIONS": EXTENSIONS,
            "OSC_IP": host, "OSC_PORT": port, "OSC_TRANSPORT": "UDP",
        }

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # LISTEN: the WebSocket handshake goes on
        url = urlsplit(request.path)
        path = unquote(url.path)
        path = path.rstrip("/") or "/"
        query = unquote(url.query)
        if query == "HOST_INFO":
            return _json(self.host_info(str(connection.local_address[0])))
        node = self._nodes.get(path)
        if node is None:
            return connection.respond(404, f"no OSC node at {path[:200]}\n")
        snap = self._snapshot() if _has_controls(node) else None
        if not query:
            return _json(self.describe(node, snap))
        if query not in ATTRIBUTES:
            return connection.respond(400, f"unknown attribute '{query[:40]}' (known: {', '.join(ATTRIBUTES)}, HOST_INFO)\n")
        whole = self.describe(node, snap, contents=query == "CONTENTS")
        if query not in whole:
            return Response(204, "No Content", Headers([("Content-Length", "0")]), b"")
        return _json({query: whole[query]})

    # -- event loop thread -------------------------------------------------------------

    def _background(self) -> Coroutine[Any, Any, None]:
        return self._watch_controls()

    async def _handle(self, connection: ServerConnection) -> None:
        client = _Listener(connection, self.rate_hz)
        self._clients = [*self._clients, client]
        sender = asyncio.ensure_future(self._send(client))
        try:
            async for message in connection:
                self._command(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients = [c for c in self._clients if c is not client]
            sender.cancel()

    async def _send(self, client: _Listener) -> None:
        with contextlib.suppress(ConnectionClosed):
            while not client.dropped:
                await client.ready.wait()
                client.ready.clear()
                while client.queue and not client.dropped:
                    await client.connection.send(client.queue.popleft())

    def _command(self, client: _Listener, message: str | bytes) -> None:
        """LISTEN or IGNORE a readable path; anything else is ignored, as the proposal allows."""
        try:
            command = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(command, dict) or not isinstance(path := command.get("DATA"), str):
            return
        node = self._nodes.get(path)
        if node is None or not node.access & 1:
            return
        if command.get("COMMAND") == "LISTEN":
            client.paths = client.paths | {path}
        elif command.get("COMMAND") == "IGNORE":
            client.paths = client.paths - {path}
            client.controls_sent.pop(path, None)

    async def _watch_controls(self) -> None:
        """Sends a control's value to its listeners when it changes, whoever changed it."""
        while True:
            await asyncio.sleep(CONTROL_POLL_S)
            listening = [(c, p) for c in self._clients for p in c.paths if self._nodes[p].control is not None]
            if not listening:
                continue
            snap = self._snapshot()
            for client, path in listening:
                node = self._nodes[path]
                assert node.control is not None and node.type is not None
                value = control_value(node.control, snap)
                if value is None or client.controls_sent.get(path) == value:
                    continue
                client.controls_sent[path] = value
                client.queue.append(_control_packet(path, node.type, value))
                client.ready.set()


def _has_controls(node: Node) -> bool:
    return node.control is not None or any(_has_controls(c) for c in node.children.values())


def _control_packet(path: str, type_: str, value: list[Any]) -> bytes:
    builder = OscMessageBuilder(path)
    for v in value:
        builder.add_arg(v, ("T" if v else "F") if type_ == "T" else type_)
    return builder.build().dgram


def _json(data: dict[str, Any]) -> Response:
    body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")])
    return Response(200, "OK", headers, body)
