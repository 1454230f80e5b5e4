"""OSC control in: the bridge's live controls as OSC messages (`daw-bridge run --osc-in`).

A control surface (TouchOSC, Open Stage Control, a Max or Pd patch) sends
``/bridge/control/...`` messages to a UDP port; each one is turned into the
control port's request (``{"op": "set_param", ...}``) and handed to the same
`bridge.control.Controls`, so a value is checked, refused and counted by the
one rule that also guards the TUI's port. Nothing here is on the real-time
path: python-osc's blocking UDP server runs on a thread of its own, one
datagram after another, and a control only queues a wanted value for the
dispatch thread (`LiveRunner.set_param` and friends).

The address map is `bridge.addresses.control_addresses(prefix)`: every
live-tunable engine setting (`bridge.params.PARAMS`, the engine's own table)
under ``<prefix>/control/<section>/<name>``, plus ``midi``, ``osc``,
``record`` and ``record/stop``.
"""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from bridge.addresses import CONTROL, ControlSpec, control_addresses
from bridge.control import Controls

LOGGED_MAX = 32
"""Distinct refused addresses logged (each once); past that refusals are only counted."""


class Refused(ValueError):
    """An OSC message that is not one of the controls, or has the wrong arguments."""


def _float_value(value: float) -> float:
    """An OSC float32 (``0.02`` arrives as 0.019999999552965164) as the decimal that was
    meant: the shortest that reads back as the same float32. So a range's bound such as
    0.3 is not refused for float32's error, and the value reads back as it was sent.
    A double (OSC ``d``) that is no float32 stays as it is."""
    with np.errstate(over="ignore"):  # beyond float32: inf, and the value stays as it is
        single = np.float32(value)
    return float(str(single)) if float(single) == value else value


def request_for(spec: ControlSpec, args: tuple[Any, ...]) -> dict[str, Any]:
    """The control port's request for a message to `spec` with `args`; Refused names what is wrong."""
    if spec.key is not None:
        if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int | float):
            raise Refused(f"takes one number (f or i), got {_describe(args)}")
        value = _float_value(args[0]) if isinstance(args[0], float) else args[0]
        return {"op": "set_param", "key": spec.key, "value": value}
    if spec.types == "i|T|F":
        if len(args) != 1 or not isinstance(args[0], bool | int) or args[0] not in (0, 1):
            raise Refused(f"takes 1 or 0 (i) or T or F, got {_describe(args)}")
        op, field = SWITCHES[spec.path]
        return {"op": op, field: bool(args[0])}
    if spec.path == "/record":
        if len(args) != 1 or not isinstance(args[0], str):
            raise Refused(f"takes one string, the take's file name, got {_describe(args)}")
        return {"op": "start_recording", "name": args[0]}
    if args:
        raise Refused(f"takes no arguments, got {_describe(args)}")
    return dict(TRIGGERS[spec.path])


SWITCHES = {
    "/midi": ("set_midi_enabled", "enabled"),
    "/osc": ("set_osc_enabled", "enabled"),
    "/tempo/hold": ("hold_tempo", "held"),
}
"""The control port's op and field for each on/off control."""

TRIGGERS: dict[str, dict[str, Any]] = {
    "/record/stop": {"op": "stop_recording"},
    "/tempo/halve": {"op": "scale_tempo", "factor": 0.5},
    "/tempo/double": {"op": "scale_tempo", "factor": 2},
    "/tempo/tap": {"op": "tap_tempo"},  # no "at": tapped when it arrives
}
"""The control port's request for each control that takes no argument."""


def _describe(args: tuple[Any, ...]) -> str:
    """What came, for a refusal's message: ``none``, ``'0.1'``, ``2 arguments (0.1, 0.2)``."""
    if len(args) == 1:
        return repr(args[0])[:40]
    shown = ", ".join(repr(a)[:40] for a in args[:4])
    return f"{len(args)} arguments ({shown}{', ...' if len(args) > 4 else ''})" if args else "none"


class _Dispatcher(Dispatcher):
    """python-osc's dispatcher, told to apply messages at once (a bundle stamped in the
    future must not hold the server thread) and to count packets it cannot parse."""

    def __init__(self, on_malformed: Any) -> None:
        super().__init__(strict_timing=False)
        self._on_malformed = on_malformed

    def call_handlers_for_packet(self, data: bytes, client_address: tuple[str, int]) -> list[Any]:
        try:
            osc_packet.OscPacket(data)
        except osc_packet.ParseError:
            self._on_malformed()
            return []
        return super().call_handlers_for_packet(data, client_address)


class OscControlIn:
    """Receives control messages on a UDP port and carries them out on `runner` through
    the control port's `Controls` (takes go into `take_dir`, the current directory by default).

    Binds in the constructor (OSError for a bad or busy port), serves on a
    daemon thread until `close()`. `messages` and `refused` count what came in;
    each refused address is logged once on stderr.
    """

    def __init__(self, runner: Any, host: str, port: int, prefix: str, take_dir: Path | None = None) -> None:
        self.prefix = prefix
        self.addresses = control_addresses(prefix)
        self.messages = 0
        self.refused = 0
        self._logged: set[str] = set()
        self._lock = threading.Lock()
        self.controls = Controls(runner, take_dir)
        dispatcher = _Dispatcher(lambda: self._refuse("(not an OSC packet)", "malformed packet"))
        dispatcher.set_default_handler(self._handle)
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._server = BlockingOSCUDPServer((host, port), dispatcher, family=family)
        except BaseException:
            self.controls.close()
            raise
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="daw-bridge-osc-in", daemon=True)
        self._thread.start()

    def _handle(self, address: str, *args: Any) -> None:
        with self._lock:
            self.messages += 1
        spec = self.addresses.get(address)
        if spec is None:
            self._refuse(address, f"not a control (see 'python -m bridge.addresses'; the controls are under {self.prefix}/{CONTROL}/)")
            return
        try:
            request = request_for(spec, args)
        except Refused as e:
            self._refuse(address, str(e))
            return
        reply = self.controls.request(request)
        if not reply["ok"]:
            self._refuse(address, reply["error"])

    def _refuse(self, address: str, why: str) -> None:
        with self._lock:
            self.refused += 1
            first = address not in self._logged and len(self._logged) < LOGGED_MAX
            if first:
                self._logged.add(address)
        if first:
            print(f"daw-bridge: OSC control {address[:80]} refused: {why} (logged once; later refusals are counted)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
        self.controls.close()
