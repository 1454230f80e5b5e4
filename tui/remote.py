"""The control port, client side: `daw-bridge tui` attached to a running bridge.

`RemoteSource` speaks the newline-delimited JSON protocol of
`bridge.control.ControlServer` and has the same methods as the runner, so the
TUI works unchanged on either.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

from bridge.control import DEFAULT_PORT, snapshot_from_json
from bridge.errors import BridgeError
from bridge.state import Snapshot

MAX_REPLY = 64 * 1024 * 1024
"""Longest reply line read; a snapshot of 64 inputs is about a megabyte."""


class RemoteSource:
    """The runner's snapshot and controls, over a ControlServer's socket.

    Errors (no server, a refused request, a port where something else answers)
    are BridgeErrors, as the runner's own. The connection is reopened on the next
    call after it breaks, and once at once when a kept connection turns out closed
    (the server drops clients that stay quiet past its deadline).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout: float = 2.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._rfile: Any = None

    def _call(self, op: str, **args: Any) -> Any:
        line = json.dumps({"op": op, **args}).encode() + b"\n"
        with self._lock:
            try:
                reply = self._exchange(line)
            except OSError:
                # A kept connection the server has dropped since: one fresh try.
                self._drop()
                try:
                    reply = self._exchange(line)
                except OSError as e:
                    self._drop()
                    raise BridgeError(f"no daw-bridge control server at {self.host}:{self.port} ({e.strerror or e})") from None
        try:
            data = json.loads(reply)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
            self.close()
            raise self._not_a_bridge(f"it answered {reply[:40]!r}")
        if not data["ok"]:
            raise BridgeError(str(data.get("error", "request refused")))
        return data.get("result")

    def _exchange(self, line: bytes) -> bytes:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self._rfile = self._sock.makefile("rb")
        self._sock.sendall(line)
        reply: bytes = self._rfile.readline(MAX_REPLY)
        if not reply:
            raise ConnectionResetError("connection closed")
        return reply

    def _not_a_bridge(self, detail: str) -> BridgeError:
        return BridgeError(f"{self.host}:{self.port} is not a daw-bridge control port ({detail})")

    def _drop(self) -> None:
        if self._sock is not None:
            self._rfile.close()
            self._sock.close()
        self._sock = self._rfile = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def snapshot(self) -> Snapshot:
        data = self._call("snapshot")
        try:
            return snapshot_from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise self._not_a_bridge(f"an unreadable snapshot: {type(e).__name__} {e}") from None

    def set_param(self, key: str, value: float) -> None:
        self._call("set_param", key=key, value=value)

    def set_midi_enabled(self, enabled: bool) -> None:
        self._call("set_midi_enabled", enabled=enabled)

    def set_osc_enabled(self, enabled: bool) -> None:
        self._call("set_osc_enabled", enabled=enabled)

    def start_recording(self, path: Path) -> None:
        # The bridge decides where takes go; only the name travels.
        self._call("start_recording", name=Path(path).name)

    def stop_recording(self) -> None:
        self._call("stop_recording")

    def connect(self, source: str, input_number: int, connected: bool = True) -> None:
        self._call("connect", source=source, input=input_number, connected=connected)

    def scale_tempo(self, factor: float) -> None:
        self._call("scale_tempo", factor=factor)

    def hold_tempo(self, held: bool) -> None:
        self._call("hold_tempo", held=held)

    def tap_tempo(self, at: float | None = None) -> None:
        self._call("tap_tempo", **({} if at is None else {"at": at}))

    def audio_outputs(self) -> list[str]:
        return list(self._call("audio_outputs"))
