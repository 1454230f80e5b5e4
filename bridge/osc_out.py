"""OSC output: one timestamped bundle per JACK block, to one or more UDP targets.

Runs on the bridge's dispatch thread, never in the JACK callback, but it must
still never block or raise: a visuals machine that is switched off must not
stall MIDI or the recording. So sockets are non-blocking, every send error is
counted per target (for the TUI) instead of raised, and nothing is retried.

Messages and bundles are built with python-osc. The sockets are our own rather
than ``pythonosc.udp_client.UDPClient`` for two reasons: its ``sendto`` on an
unconnected socket never learns that a target refuses (Linux reports an ICMP
port-unreachable only to a *connected* UDP socket), and given a host name it
resolves it on every send, a blocking DNS lookup. Here the name is resolved
once, at start, and each target gets a connected socket.
"""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from rust_engine import EngineConfig, Event

from bridge.addresses import (
    DEFAULT_OSC_PREFIX,
    EVENT_KIND_TO_OSC,
    FEATURE_KINDS,
    OSC_MESSAGES,
    OscKind,
    osc_address,
    validate_prefix,
)

MAX_RATE_HZ = 10_000.0
SILENCE_MODES = ("once", "stream")
"""In silence, "once" sends one last pitch (unvoiced) and dynamics message per input and then
nothing until sound returns; "stream" keeps sending them at the rate limit."""
TIMETAGS = ("block", "immediate")
"""Bundles stamped with their JACK period's time (already past on arrival), or OSC's
"immediately" (1), for receivers such as SuperCollider that schedule by the timetag."""


def parse_target(text: str) -> tuple[str, int]:
    """Parses ``HOST:PORT`` (IPv6 as ``[::1]:PORT``) into ``(host, port)``.

    Raises ValueError with a message naming the bad target.
    """
    spec = text.strip()
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"OSC target {text!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = spec.rpartition(":")
        if not sep:
            raise ValueError(f"OSC target {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9000")
        if ":" in host:
            raise ValueError(f"OSC target {text!r}: write an IPv6 address in brackets, [::1]:9000")
    if not host:
        raise ValueError(f"OSC target {text!r}: the host is empty")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"OSC target {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class TargetStats:
    """What happened to one target so far, for the TUI."""

    target: str
    bundles: int = 0
    messages: int = 0
    errors: int = 0
    last_error: str | None = None


class _Target:
    """A connected, non-blocking UDP socket to one receiver."""

    def __init__(self, host: str, port: int) -> None:
        self.label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise ValueError(
                f"OSC target {self.label}: cannot resolve host: {e.strerror}"
            ) from None
        # "localhost" may list ::1 first while receivers usually bind 127.0.0.1.
        family, _, _, _, sockaddr = min(infos, key=lambda i: i[0] != socket.AF_INET)
        self.sockaddr: tuple[Any, ...] = sockaddr
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.connected = False
        self.stats = TargetStats(self.label)

    def send(self, dgram: bytes) -> OSError | None:
        """Sends one datagram; returns the error instead of raising it."""
        try:
            if not self.connected:
                # Connecting a UDP socket only picks a route: it sends nothing and
                # cannot block, so retrying it after "network unreachable" is cheap.
                self.sock.connect(self.sockaddr)
                self.connected = True
            self.sock.send(dgram)
        except OSError as e:
            return e
        return None


class OscSender:
    """Sends the engine's events as OSC bundles to every target.

    ``send_block`` takes the events of one JACK block and the block's time
    (seconds since the epoch) and sends one bundle per target stamped with that
    time. Pitch and dynamics arrive every analysis hop (375 per second at
    48 kHz / 128), more than receivers want, so each (input, stream) sends at
    most one value per ``1 / rate_hz`` interval of block time: the latest one
    known when the interval starts; the values in between are dropped
    (counted in ``coalesced``). Onsets and notes are always sent.

    With ``silence="once"`` a stream that falls silent (pitch unvoiced,
    dynamics below ``silence_db``, the engine's gate) sends its first silent
    value and then nothing until it sounds again: a receiver gets the change,
    not a flood of zeros. ``timetag="immediate"`` stamps every bundle
    "immediately" instead of with the block's time.

    The spectral features (``bands``, ``spectrum``, ``chroma``) are sent only
    for the kinds in ``features``: the engine may compute them for another
    consumer. They are rate-limited like pitch, and silent (all levels under
    ``FEATURE_SILENT``) like pitch and dynamics.

    Raises ValueError for a bad prefix, rate or target (unresolvable host,
    duplicate); sending itself never raises.
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        prefix: str = DEFAULT_OSC_PREFIX,
        n_inputs: int = 1,
        rate_hz: float = 100.0,
        silence: str = "once",
        silence_db: float = EngineConfig.defaults()["notes"]["silence_db"],
        timetag: str = "block",
        features: Collection[str] = (),
    ) -> None:
        validate_prefix(prefix)
        unknown = set(features) - set(FEATURE_KINDS)
        if unknown:
            raise ValueError(f"unknown OSC feature {min(unknown)!r} (expected {', '.join(FEATURE_KINDS)})")
        if silence not in SILENCE_MODES:
            raise ValueError(f"OSC silence must be one of {', '.join(SILENCE_MODES)}, got {silence!r}")
        if timetag not in TIMETAGS:
            raise ValueError(f"OSC timetag must be one of {', '.join(TIMETAGS)}, got {timetag!r}")
        if not (math.isfinite(rate_hz) and 0 < rate_hz <= MAX_RATE_HZ):
            raise ValueError(
                f"OSC rate must be above 0 and at most {MAX_RATE_HZ:g} Hz, got {rate_hz}"
            )
        if n_inputs < 1:
            raise ValueError(f"n_inputs must be at least 1, got {n_inputs}")
        for host, port in targets:
            if not 1 <= port <= 65535:
                raise ValueError(f"OSC target {host}:{port}: the port must be from 1 to 65535")
        if len(set(targets)) != len(targets):
            raise ValueError("the same OSC target is given twice")
        self.prefix = prefix
        self.n_inputs = n_inputs
        self.rate_hz = rate_hz
        self.silence = silence
        self.silence_db = silence_db
        """The engine's gate (``notes.silence_db``); the live runner updates it when that changes."""
        self.timetag = timetag
        self.features = frozenset(features)
        self._targets: list[_Target] = []
        try:
            for host, port in targets:
                self._targets.append(_Target(host, port))
        except ValueError:
            self.close()
            raise
        self._pending: dict[tuple[int, OscKind], Event] = {}
        self._last_interval: dict[tuple[int, OscKind], int] = {}
        self._quiet: set[tuple[int, OscKind]] = set()  # streams whose last queued value was silent
        self._coalesced = 0
        self._last_timetag = 0.0
        self._lock = threading.Lock()  # stats are read from the UI thread

    def send_block(self, events: Sequence[Event], timetag: float) -> None:
        """Sends the events of one block as one bundle per target, stamped ``timetag``.

        Call it also for a block without events now and then (an empty list):
        that sends a continuous value held back by the rate limit.
        """
        messages: list[OscMessage] = []
        for event in events:
            input_ = event.input or 1  # offline events carry input 0
            for kind in EVENT_KIND_TO_OSC.get(event.kind, ()):
                if kind in FEATURE_KINDS and kind not in self.features:
                    continue
                if not OSC_MESSAGES[kind].continuous:
                    messages.append(self._message(event, input_, kind))
                    continue
                key = (input_, kind)
                if self.silence == "once":
                    silent = _silent(event, kind, self.silence_db)
                    if silent and key in self._quiet:
                        continue  # the silent value that marks the change is queued or sent already
                    (self._quiet.add if silent else self._quiet.discard)(key)
                if key in self._pending:
                    self._coalesced += 1
                self._pending[key] = event

        interval = math.floor(timetag * self.rate_hz)
        for key in list(self._pending):
            # "!=" rather than ">": a clock that steps back must not mute a stream.
            if self._last_interval.get(key) != interval:
                self._last_interval[key] = interval
                messages.append(self._message(self._pending.pop(key), *key))
        self._send(messages, timetag)

    def send_note_offs(self, notes: Sequence[tuple[int, int]], timetag: float) -> None:
        """Sends note-offs (velocity 0) for (input, note) pairs whose engine is gone,
        e.g. after a server loss, so receivers do not hold a note forever."""
        messages = []
        for input_, note in notes:
            builder = OscMessageBuilder(osc_address(self.prefix, input_, self.n_inputs, "note"))
            builder.add_arg(note, "i")
            builder.add_arg(0, "i")
            messages.append(builder.build())
        self._send(messages, timetag)

    def _send(self, messages: list[OscMessage], timetag: float) -> None:
        if not messages:
            return
        # Never back in time: receivers schedule by the stamps, and a held-back value sent
        # with the wall clock's "now" may come after a period stamped a little ahead of it.
        timetag = self._last_timetag = max(timetag, self._last_timetag)
        stamp = IMMEDIATELY if self.timetag == "immediate" else timetag
        builder = OscBundleBuilder(stamp)  # type: ignore[arg-type]  # float seconds, as documented
        for message in messages:
            builder.add_content(message)
        dgram = builder.build().dgram
        for target in self._targets:
            error = target.send(dgram)
            with self._lock:
                s = target.stats
                if error is None:
                    target.stats = replace(
                        s, bundles=s.bundles + 1, messages=s.messages + len(messages)
                    )
                else:
                    target.stats = replace(s, errors=s.errors + 1, last_error=_describe(error))

    def stats(self) -> dict[str, TargetStats]:
        """Counters per target (keyed ``host:port``), safe to call from any thread."""
        with self._lock:
            return {t.label: t.stats for t in self._targets}

    @property
    def coalesced(self) -> int:
        """Continuous values dropped by the rate limit so far."""
        return self._coalesced

    def close(self) -> None:
        """Closes the sockets; further sends count as errors."""
        for target in self._targets:
            target.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _message(self, event: Event, input_: int, kind: OscKind) -> OscMessage:
        return event_message(event, osc_address(self.prefix, input_, self.n_inputs, kind), kind)


def event_values(event: Event, kind: OscKind) -> list[tuple[str, float | int]]:
    """The (OSC type, value) arguments of `kind`'s message for `event`, in order (a
    note-off's velocity is 0): the OSC message and OSCQuery's VALUE both read them."""
    values: list[tuple[str, float | int]] = []
    for arg in OSC_MESSAGES[kind].args:
        if arg.repeat:
            values.extend((arg.type, v) for v in getattr(event, arg.name))
        elif event.kind == "note_off" and arg.name == "velocity":
            values.append((arg.type, 0))
        else:
            values.append((arg.type, getattr(event, arg.name)))
    return values


def event_message(event: Event, address: str, kind: OscKind) -> OscMessage:
    """The OSC message of `kind` for `event` at `address` (also OSCQuery's LISTEN packets)."""
    builder = OscMessageBuilder(address)
    for type_, value in event_values(event, kind):
        builder.add_arg(value, type_)
    return builder.build()


FEATURE_SILENT = 1e-3
"""A feature stream whose visual levels are all under this is silent (they decay towards 0)."""


def _silent(event: Event, kind: OscKind, silence_db: float) -> bool:
    """Whether a continuous value says "nothing is sounding", for ``silence="once"``."""
    if kind == "pitch":
        return not event.voiced
    if kind in FEATURE_KINDS:
        return max(event.level, default=0.0) < FEATURE_SILENT
    return event.db < silence_db


def _describe(error: OSError) -> str:
    if isinstance(error, BlockingIOError):
        return "send buffer full, bundle dropped"
    return error.strerror or str(error)
