"""The control port, server side: state and controls of a running bridge on loopback TCP.

The bridge process runs a `ControlServer`: a TCP server on 127.0.0.1 that
answers newline-delimited JSON requests, one JSON reply line each. It only
calls the runner's `snapshot()` and control methods, which copy state under a
short lock or queue work to the dispatch thread, so a slow, frozen or hostile
client costs one server thread and never the audio. Every request is checked
(operation in an allow-list, argument types and ranges); a bad one is counted,
answered with an error and otherwise ignored. A whole request line must arrive
within a deadline, so clients that trickle bytes cannot hold the few
connection slots.

The checking and carrying out is `Controls`, which the OSC control-in
(`bridge.osc_in`) uses too: one rule for a value whichever way it comes.

The client side (`tui.remote.RemoteSource`) has the same methods as the
runner, so the TUI works unchanged on either.

Requests and replies::

    {"op": "snapshot"}                                    -> {"ok": true, "result": {...}}
    {"op": "set_param", "key": "onset.delta", "value": 0.02}
    {"op": "set_midi_enabled", "enabled": false}
    {"op": "set_osc_enabled", "enabled": true}
    {"op": "start_recording", "name": "take-1.mid"}       (a file name only: the take goes
                                                           into the server's take directory)
    {"op": "stop_recording"}
    {"op": "connect", "source": "ardour:out_1", "input": 1, "connected": true}
    {"op": "audio_outputs"}                               -> {"ok": true, "result": ["..."]}
    {"op": "scale_tempo", "factor": 2}                    (2 doubles, 0.5 halves the tempo; 0.25..4)
    {"op": "hold_tempo", "held": true}                    (freeze the tempo, or let it follow)
    {"op": "tap_tempo", "at": 1700000000.25}              (a tapped beat; "at" the tapper's
                                                           time.time(), within the last 10 s;
                                                           without it, the moment it arrives)
    anything wrong                                        -> {"ok": false, "error": "..."}
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from bridge import addresses
from bridge.errors import BridgeError
from bridge.params import PARAMS, TAP_WINDOW_S, TEMPO_FACTORS
from bridge.state import InputState, Snapshot

DEFAULT_PORT = addresses.CONTROL_PORT
MAX_REQUEST = 8192
"""Longest request line in bytes; every valid request is far shorter."""
MAX_CLIENTS = 8
REQUEST_DEADLINE_S = 10.0
"""A whole request line must arrive within this of the connection opening or of the
previous reply (a TUI asks several times a second); a slower client is dropped."""
HISTORY_POINTS = 600
"""Pitch history points sent per input: the piano roll has fewer columns than that."""
_PORT_NAME_MAX = 320  # JACK's full port name limit (client + ':' + port)


# -- snapshot codec -------------------------------------------------------------


def _thin(history: deque[tuple[float, float | None]], now: float) -> list[tuple[float, float | None]]:
    recent = [(t, m) for t, m in history if now - t <= 10.0]
    step = max(1, math.ceil(len(recent) / HISTORY_POINTS))
    return [(round(t, 4), None if m is None else round(m, 3)) for t, m in recent[::step]]


def snapshot_to_json(snap: Snapshot) -> dict[str, Any]:
    """A JSON-able dict of `snap`, with the pitch history thinned for the wire."""
    out = {f.name: getattr(snap, f.name) for f in dataclasses.fields(snap) if f.name not in ("inputs", "osc")}
    out["inputs"] = [
        {
            **{f.name: getattr(s, f.name) for f in dataclasses.fields(s)},
            "onset_times": list(s.onset_times),
            "history": _thin(s.history, snap.stream_time),
            "notes": list(s.notes),
        }
        for s in snap.inputs
    ]
    out["osc"] = {
        target: dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) and not isinstance(stats, type) else dict(stats)
        for target, stats in snap.osc.items()
    }
    return out


def snapshot_from_json(data: dict[str, Any]) -> Snapshot:
    """The Snapshot that `snapshot_to_json` encoded (OSC stats stay dicts)."""
    inputs = []
    for d in data["inputs"]:
        d = dict(d)
        d["onset_times"] = deque(d["onset_times"], maxlen=64)
        d["history"] = deque((tuple(p) for p in d["history"]), maxlen=4000)
        d["notes"] = deque((tuple(n) for n in d["notes"]), maxlen=16)
        inputs.append(InputState(**d))
    fields = {**data, "inputs": inputs, "connections": [tuple(c) for c in data["connections"]]}
    return Snapshot(**fields)


# -- request checking -------------------------------------------------------------


class BadRequest(Exception):
    """A request that is not one the server accepts: rejected, counted, answered."""


def _bool(req: dict[str, Any], name: str) -> bool:
    value = req.get(name)
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false")
    return value


def _number(req: dict[str, Any], name: str) -> float:
    value = req.get(name)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        number = float(value)  # OverflowError for an integer beyond any float
    except (TypeError, OverflowError):
        raise BadRequest(f"'{name}' must be a finite number") from None
    if not math.isfinite(number):
        raise BadRequest(f"'{name}' must be a finite number")
    return number


def _text(req: dict[str, Any], name: str, limit: int) -> str:
    value = req.get(name)
    if not isinstance(value, str) or not value or len(value) > limit or "\0" in value:
        raise BadRequest(f"'{name}' must be a non-empty string of at most {limit} characters")
    return value


_TAKE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.mid")


def _take_path(req: dict[str, Any], take_dir: Path) -> Path:
    """Nothing from the network is used as a path: only a plain file name, placed in the
    directory the server was given (the runner creates it there, exclusively)."""
    name = _text(req, "name", 104)
    if not _TAKE_NAME.fullmatch(name):
        raise BadRequest("'name' must be a plain file name ending in .mid (letters, digits, . _ -)")
    return take_dir / name


def _args(req: dict[str, Any], allowed: set[str]) -> None:
    extra = set(req) - allowed - {"op"}
    if extra:
        raise BadRequest(f"unexpected field(s): {', '.join(sorted(extra))}")


class Controls:
    """The requests every remote control of the runner accepts, checked and carried out:
    the control port's JSON lines and the OSC control-in (`bridge.osc_in`) both come
    here, so a value is refused or taken by one rule whichever way it arrives.

    `requests` and `rejected` count what came in; `close()` releases the take directory.
    """

    def __init__(self, runner: Any, take_dir: Path | None = None) -> None:
        self.runner = runner
        self.take_dir = (take_dir or Path.cwd()).resolve()
        # Opened once: takes go into this directory even if its path is swapped for a link later.
        try:
            self._take_dir_fd = os.open(self.take_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise BridgeError(f"cannot use '{self.take_dir}' for takes: {e.strerror or e}") from None
        self.requests = 0
        self.rejected = 0
        self._count_lock = threading.Lock()
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "snapshot": self._snapshot,
            "set_param": self._set_param,
            "set_midi_enabled": self._set_midi_enabled,
            "set_osc_enabled": self._set_osc_enabled,
            "start_recording": self._start_recording,
            "stop_recording": self._stop_recording,
            "connect": self._connect,
            "audio_outputs": self._audio_outputs,
            "scale_tempo": self._scale_tempo,
            "hold_tempo": self._hold_tempo,
            "tap_tempo": self._tap_tempo,
        }

    def close(self) -> None:
        os.close(self._take_dir_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, line: bytes) -> dict[str, Any]:
        """Checks and carries out one request line; the reply as a dict."""
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._count()
            return self._reject("not a JSON request")
        return self.request(req)

    def request(self, req: Any) -> dict[str, Any]:
        """Checks and carries out one decoded request; the reply as a dict."""
        self._count()
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            return self._reject("a request is a JSON object with an 'op'")
        op = self._ops.get(req["op"])
        if op is None:
            return self._reject(f"unknown op '{req['op'][:40]}'")
        try:
            return {"ok": True, "result": op(req)}
        except (BadRequest, ValueError) as e:  # ValueError: a value the engine refuses
            return self._reject(str(e))
        except BridgeError as e:
            # A valid request the bridge could not carry out (e.g. a vanished port).
            return {"ok": False, "error": str(e)}

    def _count(self) -> None:
        with self._count_lock:
            self.requests += 1

    def _reject(self, why: str) -> dict[str, Any]:
        with self._count_lock:
            self.rejected += 1
        return {"ok": False, "error": why}

    # One method per op: check every field, then call the runner.

    def _snapshot(self, req: dict[str, Any]) -> dict[str, Any]:
        _args(req, set())
        return snapshot_to_json(self.runner.snapshot())

    def _set_param(self, req: dict[str, Any]) -> None:
        _args(req, {"key", "value"})
        key = req.get("key")
        if not isinstance(key, str) or key not in PARAMS:
            raise BadRequest(f"'key' must be one of: {', '.join(PARAMS)}")
        self.runner.set_param(key, PARAMS[key].check(_number(req, "value")))

    def _scale_tempo(self, req: dict[str, Any]) -> None:
        _args(req, {"factor"})
        factor = _number(req, "factor")
        lo, hi = TEMPO_FACTORS
        if not lo <= factor <= hi:
            raise BadRequest(f"'factor' must be {lo:g}..{hi:g}")
        self.runner.scale_tempo(factor)

    def _hold_tempo(self, req: dict[str, Any]) -> None:
        _args(req, {"held"})
        self.runner.hold_tempo(_bool(req, "held"))

    def _tap_tempo(self, req: dict[str, Any]) -> None:
        _args(req, {"at"})
        if "at" not in req:
            self.runner.tap_tempo(None)
            return
        at = _number(req, "at")
        now = time.time()
        if not now - TAP_WINDOW_S <= at <= now + 1.0:
            raise BadRequest(f"'at' must be a time.time() within the last {TAP_WINDOW_S:g} s")
        self.runner.tap_tempo(at)

    def _set_midi_enabled(self, req: dict[str, Any]) -> None:
        _args(req, {"enabled"})
        self.runner.set_midi_enabled(_bool(req, "enabled"))

    def _set_osc_enabled(self, req: dict[str, Any]) -> None:
        _args(req, {"enabled"})
        self.runner.set_osc_enabled(_bool(req, "enabled"))

    def _start_recording(self, req: dict[str, Any]) -> None:
        _args(req, {"name"})
        self.runner.start_recording(_take_path(req, self.take_dir), dir_fd=self._take_dir_fd)

    def _stop_recording(self, req: dict[str, Any]) -> None:
        _args(req, set())
        self.runner.stop_recording()

    def _connect(self, req: dict[str, Any]) -> None:
        _args(req, {"source", "input", "connected"})
        source = _text(req, "source", _PORT_NAME_MAX)
        number = req.get("input")
        inputs = len(self.runner.snapshot().inputs)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= inputs:
            raise BadRequest(f"'input' must be a whole number from 1 to {inputs}")
        connected = _bool(req, "connected")
        self.runner.connect(source, number, connected)

    def _audio_outputs(self, req: dict[str, Any]) -> list[str]:
        _args(req, set())
        return list(self.runner.audio_outputs())


class ControlServer(Controls):
    """Serves snapshots of `runner` and takes its controls on a loopback TCP port.

    `port=0` picks a free port (see `.port`). Runs on daemon threads until `close()`.
    """

    def __init__(
        self,
        runner: Any,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        take_dir: Path | None = None,
        deadline_s: float = REQUEST_DEADLINE_S,
    ) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise BridgeError(f"the control server binds to a loopback address only, not '{host}'")
        if not 0 <= port <= 65535:
            raise BridgeError(f"control port must be 0..65535, got {port}")
        super().__init__(runner, take_dir)
        self.deadline_s = deadline_s
        self._clients = threading.BoundedSemaphore(MAX_CLIENTS)
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(server.deadline_s)
                if not server._clients.acquire(blocking=False):
                    sock.sendall(b'{"ok": false, "error": "too many clients"}\n')
                    return
                try:
                    server._serve(sock)
                finally:
                    server._clients.release()

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 64  # a burst of connections is accepted, not left half-open

        try:
            self._server = Server((host, port), Handler)
        except OSError as e:
            super().close()
            raise BridgeError(f"cannot open the control port {host}:{port}: {e.strerror or e}") from None
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="daw-bridge-control", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
        super().close()

    def _serve(self, sock: socket.socket) -> None:
        lines = _RequestLines(sock, self.deadline_s)
        while (line := lines.next()) is not None:
            too_long = len(line) > MAX_REQUEST and not line.endswith(b"\n")
            reply = self._reject("request too long") if too_long else self.handle(line)
            try:
                sock.settimeout(self.deadline_s)  # a client that reads no replies is dropped too
                sock.sendall(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
            except OSError:
                return
            if too_long:
                return  # the rest of that line cannot be told from a next request


class _RequestLines:
    """Request lines from a client socket, each within a deadline of the last."""

    def __init__(self, sock: socket.socket, deadline_s: float) -> None:
        self._sock, self._deadline_s = sock, deadline_s
        self._buf = bytearray()
        self._eof = False

    def next(self) -> bytes | None:
        """The next line with its newline (the last may lack it; one longer than
        MAX_REQUEST comes as its first MAX_REQUEST + 1 bytes), or None when the
        client has closed, failed, or missed the deadline."""
        deadline = time.monotonic() + self._deadline_s
        while True:
            end = self._buf.find(b"\n", 0, MAX_REQUEST + 1)
            if end >= 0 or len(self._buf) > MAX_REQUEST or (self._eof and self._buf):
                size = end + 1 if end >= 0 else min(len(self._buf), MAX_REQUEST + 1)
                line = bytes(self._buf[:size])
                del self._buf[:size]
                return line
            left = deadline - time.monotonic()
            if self._eof or left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except OSError:  # a timeout included
                return None
            self._eof = not chunk
            self._buf += chunk
