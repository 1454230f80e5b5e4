"""OSC output against real receivers on 127.0.0.1.

Events come from the real engine analysing a synthetic melody block by block;
a python-osc ThreadingOSCUDPServer receives the messages as a user's patch
would, and a plain UDP socket keeps the raw datagrams so the bundles
themselves (one per block, their timetags) can be checked.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY
from pythonosc.osc_message import OscMessage
from pythonosc.osc_server import ThreadingOSCUDPServer
from rust_engine import Analyzer, EngineConfig, Event

from bridge.addresses import FEATURE_KINDS, OSC_MESSAGES, osc_address, osc_reference_markdown
from bridge.osc_out import OscSender, TargetStats, parse_target
from udp_capture import UdpCapture

SR = 48_000
HOP = 128
BLOCK_S = HOP / SR
BASE_TIME = time.time() - 60.0
"""Block times lie in the past so that python-osc's server does not wait for them."""


@dataclass(frozen=True)
class Block:
    time: float
    events: list[Event]


def engine_blocks(
    synth: ModuleType, notes: list[Any], seconds: float | None = None, features: bool = False
) -> list[Block]:
    """The engine's events for ``notes``, one list per 128-frame block, like the JACK callback;
    with ``features``, the spectral features too."""
    audio = synth.render(notes, SR).astype(np.float32)
    if seconds is not None:
        audio = audio[: int(seconds * SR)]
    enabled = {f"{kind}_enabled": 1 for kind in FEATURE_KINDS} if features else {}
    analyzer = Analyzer(EngineConfig({"sample_rate": SR, "hop": HOP, "features": enabled}))
    blocks = []
    for i, start in enumerate(range(0, len(audio), HOP)):
        events = analyzer.process(np.ascontiguousarray(audio[start : start + HOP]))
        blocks.append(Block(BASE_TIME + i * BLOCK_S, events))
    blocks.append(Block(BASE_TIME + len(blocks) * BLOCK_S, analyzer.flush()))
    return blocks


def melody(synth: ModuleType, offset: int = 0) -> list[Any]:
    return [synth.Note(n.midi + offset, n.start, n.end, n.peak) for n in synth.demo_notes()[:5]]


class OscServer:
    """A python-osc server that records every message it dispatches."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def raw() -> Iterator[UdpCapture]:
    receiver = UdpCapture()
    yield receiver
    receiver.close()


@pytest.fixture
def server() -> Iterator[OscServer]:
    srv = OscServer()
    yield srv
    srv.close()


def closed_port() -> int:
    """A UDP port on 127.0.0.1 that nobody listens on (the kernel answers ICMP unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send_all(sender: OscSender, blocks: list[Block]) -> None:
    # A short pause per block keeps the receivers' socket buffers from overflowing;
    # real blocks come 2.7 ms apart.
    for block in blocks:
        sender.send_block(block.events, block.time)
        time.sleep(0.0005)


def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def f32(x: float) -> float:
    """``x`` as it comes back from an OSC float (32-bit)."""
    return float(np.float32(x))


def expected_args(event: Event) -> tuple[Any, ...]:
    if event.kind == "pitch":
        return (f32(event.hz), f32(event.midi), f32(event.confidence))
    if event.kind == "onset":
        return (f32(event.strength),)
    if event.kind == "dynamics":
        return (f32(event.rms), f32(event.peak), f32(event.db), event.velocity)
    return (event.note, event.velocity if event.kind == "note_on" else 0)


def messages_of(bundle: OscBundle) -> list[tuple[str, tuple[Any, ...]]]:
    out = []
    for content in bundle:
        assert isinstance(content, OscMessage), "bundles must not nest"
        out.append((content.address, tuple(content.params)))
    return out


def block_index(timetag: float) -> int:
    index = round((timetag - BASE_TIME) / BLOCK_S)
    # The timetag is the block's time (to NTP and float precision).
    assert timetag == pytest.approx(BASE_TIME + index * BLOCK_S, abs=1e-6)
    return index


def test_one_bundle_per_block_with_every_note_and_onset(
    synth: ModuleType, raw: UdpCapture, server: OscServer
) -> None:
    blocks = engine_blocks(synth, melody(synth))
    with OscSender([("127.0.0.1", server.port), ("127.0.0.1", raw.port)]) as sender:
        send_all(sender, blocks)
        sent = sender.stats()
    bundle_count = sent[f"127.0.0.1:{raw.port}"].bundles
    message_count = sent[f"127.0.0.1:{raw.port}"].messages
    wait_for(lambda: len(raw.datagrams) >= bundle_count and len(server.messages) >= message_count)

    # Both targets got the same, and what was sent arrived.
    assert sent[f"127.0.0.1:{server.port}"] == TargetStats(
        f"127.0.0.1:{server.port}", bundle_count, message_count
    )
    assert len(raw.datagrams) == bundle_count
    bundles = raw.bundles()
    assert all(OscBundle.dgram_is_bundle(d) for d in raw.datagrams)
    received = [m for b in bundles for m in messages_of(b)]
    assert len(received) == message_count
    # python-osc's server unpacks the bundles into the same messages.
    assert sorted(server.messages, key=repr) == sorted(received, key=repr)

    # One bundle per block: every timetag is a block time, none repeats.
    indexes = [block_index(b.timestamp) for b in bundles]
    assert len(set(indexes)) == len(indexes)

    # Notes and onsets: all of them, in their own block's bundle, in order.
    by_block = dict(zip(indexes, bundles, strict=True))
    for i, block in enumerate(blocks):
        discrete = [
            ("/bridge/" + ("note" if e.kind.startswith("note") else e.kind), expected_args(e))
            for e in block.events
            if e.kind in ("onset", "note_on", "note_off")
        ]
        got = (
            [m for m in messages_of(by_block[i]) if m[0] in ("/bridge/onset", "/bridge/note")]
            if i in by_block
            else []
        )
        assert got == discrete
    notes = [m[1] for m in received if m[0] == "/bridge/note"]
    assert [n for n, v in notes if v > 0] == [n.midi for n in melody(synth)]
    assert sorted(n for n, v in notes if v == 0) == sorted(n.midi for n in melody(synth))


@pytest.mark.parametrize("rate_hz", [100.0, 30.0])
def test_continuous_streams_send_the_latest_value_once_per_interval(
    synth: ModuleType, raw: UdpCapture, rate_hz: float
) -> None:
    blocks = engine_blocks(synth, melody(synth), seconds=1.2)
    with OscSender([("127.0.0.1", raw.port)], rate_hz=rate_hz, silence="stream") as sender:
        send_all(sender, blocks)
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
        coalesced = sender.coalesced
    wait_for(lambda: sum(len(list(b)) for b in raw.bundles()) >= expected)
    bundles = raw.bundles()

    def interval(t: float) -> int:
        return math.floor(t * rate_hz)

    # /bridge/level carries the dynamics events' dB, on the dynamics stream's schedule.
    for kind, source in (("pitch", "pitch"), ("dynamics", "dynamics"), ("level", "dynamics")):
        stream = [(i, e) for i, b in enumerate(blocks) for e in b.events if e.kind == source]
        produced = {interval(blocks[i].time) for i, _ in stream}
        sent: list[tuple[int, int]] = []  # (interval, position of the value in the stream)
        for bundle in bundles:
            i = block_index(bundle.timestamp)
            for address, args in messages_of(bundle):
                if address != f"/bridge/{kind}":
                    continue
                # The latest value known at this block ...
                latest = max(n for n, (j, _) in enumerate(stream) if j <= i)
                event = stream[latest][1]
                assert args == ((f32(event.db),) if kind == "level" else expected_args(event))
                sent.append((interval(blocks[i].time), latest))
        intervals = [s for s, _ in sent]
        # ... at most once per interval, in every interval that had values; a value
        # held back at the end of one interval may go out in the next (silent) one,
        # but no value goes out twice.
        assert len(set(intervals)) == len(intervals), f"{kind}: two in one interval"
        assert produced <= set(intervals)
        positions = [n for _, n in sent]
        assert positions == sorted(set(positions)), f"{kind}: a value sent twice"
        assert len(sent) < len(stream)
    assert coalesced > 0


def test_a_held_back_value_goes_out_with_a_later_empty_block(
    synth: ModuleType, raw: UdpCapture
) -> None:
    blocks = [b for b in engine_blocks(synth, melody(synth), seconds=0.5) if b.events]
    pitched = [b for b in blocks if any(e.kind == "pitch" for e in b.events)][10:12]
    with OscSender([("127.0.0.1", raw.port)], rate_hz=10.0, silence="stream") as sender:
        t0 = math.floor(pitched[0].time * 10) / 10 + 0.001
        sender.send_block(pitched[0].events, t0)  # opens the interval: sent
        sender.send_block(pitched[1].events, t0 + 0.01)  # same interval: held back
        sender.send_block([], t0 + 0.1)  # next interval: the held value goes out
    wait_for(lambda: len(raw.datagrams) >= 2)
    pitches = [
        (round(b.timestamp - t0, 3), args)
        for b in raw.bundles()
        for address, args in messages_of(b)
        if address == "/bridge/pitch"
    ]
    last = [e for e in pitched[1].events if e.kind == "pitch"][-1]
    first = [e for e in pitched[0].events if e.kind == "pitch"][-1]
    assert pitches == [(0.0, expected_args(first)), (0.1, expected_args(last))]


def test_bundles_are_never_stamped_back_in_time(synth: ModuleType, raw: UdpCapture) -> None:
    """A held-back value flushed with a "now" behind the last period's stamp (a period
    stamped a little ahead of the wall clock under load) goes out stamped no earlier."""
    blocks = [b for b in engine_blocks(synth, melody(synth), seconds=0.5) if b.events]
    pitched = [b for b in blocks if any(e.kind == "pitch" for e in b.events)][10:12]
    with OscSender([("127.0.0.1", raw.port)], rate_hz=10.0, silence="stream") as sender:
        t0 = 1000.02
        sender.send_block(pitched[0].events, t0)
        sender.send_block(pitched[1].events, t0)  # held back
        sender.send_block([], t0 - 0.05)  # the wall clock's now, behind: a new interval
    wait_for(lambda: len(raw.datagrams) >= 2)
    assert [round(b.timestamp, 3) for b in raw.bundles()] == [t0, t0]


def test_several_inputs_use_numbered_addresses(synth: ModuleType, server: OscServer) -> None:
    one = engine_blocks(synth, melody(synth), seconds=1.0, features=True)
    two = engine_blocks(synth, melody(synth, offset=7), seconds=1.0, features=True)
    with OscSender(
        [("127.0.0.1", server.port)], n_inputs=2, rate_hz=50.0, silence="stream", features=FEATURE_KINDS
    ) as sender:
        for b1, b2 in zip(one, two, strict=True):
            # Offline events carry input 0; tag them as the live bridge would.
            sender.send_block(_tagged(b1.events, 1) + _tagged(b2.events, 2), b1.time)
            time.sleep(0.0005)
        expected = sender.stats()[f"127.0.0.1:{server.port}"].messages
    wait_for(lambda: len(server.messages) >= expected)
    addresses = {a for a, _ in server.messages}
    # Beats and tempo need seconds of a groove: tests/test_beat.py sends them.
    melodic = [kind for kind in OSC_MESSAGES if kind not in ("beat", "tempo")]
    assert addresses == {f"/bridge/{k}/{kind}" for k in (1, 2) for kind in melodic}
    ons = {
        k: [args[0] for a, args in server.messages if a == f"/bridge/{k}/note" and args[1] > 0]
        for k in (1, 2)
    }
    assert ons[1] == [n.midi for n in melody(synth) if n.start < 1.0]
    assert ons[2] == [n + 7 for n in ons[1]]
    # Each input is rate-limited on its own: both get pitch values.
    per_input = [sum(a == f"/bridge/{k}/pitch" for a, _ in server.messages) for k in (1, 2)]
    assert per_input[0] == per_input[1] > 10


def _tagged(events: list[Event], k: int) -> list[Event]:
    return [_Tagged(e, k) for e in events]  # type: ignore[misc]


class _Tagged:
    """An engine event seen as coming from input ``k`` (Event itself is read-only)."""

    def __init__(self, event: Event, k: int) -> None:
        self._event = event
        self.input = k

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def test_refusing_target_is_counted_and_does_not_disturb_the_good_one(
    synth: ModuleType, raw: UdpCapture
) -> None:
    blocks = engine_blocks(synth, melody(synth), seconds=1.0)
    dead = closed_port()
    with OscSender([("127.0.0.1", dead), ("127.0.0.1", raw.port)], silence="stream") as sender:
        send_all(sender, blocks)  # must not raise
        stats = sender.stats()
    good, bad = stats[f"127.0.0.1:{raw.port}"], stats[f"127.0.0.1:{dead}"]
    wait_for(lambda: len(raw.datagrams) >= good.bundles)
    assert good.errors == 0 and good.last_error is None
    assert len(raw.datagrams) == good.bundles > 100
    # Linux reports the ICMP port-unreachable on the send after the one that caused it.
    assert bad.errors > good.bundles // 4
    assert bad.last_error == "Connection refused"
    assert bad.bundles + bad.errors == good.bundles


def test_unroutable_target_is_counted_not_raised(synth: ModuleType, raw: UdpCapture) -> None:
    # Without SO_BROADCAST the kernel refuses to route to the broadcast address (EACCES),
    # the same path as "network unreachable": connect() fails on every send.
    blocks = [b for b in engine_blocks(synth, melody(synth), seconds=0.3) if b.events]
    with OscSender([("255.255.255.255", 9000), ("127.0.0.1", raw.port)]) as sender:
        send_all(sender, blocks)
        stats = sender.stats()
    bad = stats["255.255.255.255:9000"]
    assert bad.bundles == 0
    assert bad.errors == stats[f"127.0.0.1:{raw.port}"].bundles > 0
    assert bad.last_error == "Permission denied"


def test_send_after_close_is_counted(synth: ModuleType, raw: UdpCapture) -> None:
    block = next(b for b in engine_blocks(synth, melody(synth), seconds=0.5) if b.events)
    sender = OscSender([("127.0.0.1", raw.port)])
    sender.close()
    sender.send_block(block.events, block.time)
    assert sender.stats()[f"127.0.0.1:{raw.port}"].errors == 1


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("localhost:1", ("localhost", 1)),
        (" visuals.local:65535 ", ("visuals.local", 65535)),
        ("[::1]:7000", ("::1", 7000)),
    ],
)
def test_parse_target(text: str, target: tuple[str, int]) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("9000", "expected HOST:PORT"),
        ("host:", "port must be a number"),
        (":9000", "host is empty"),
        ("host:0", "1 to 65535"),
        ("host:65536", "1 to 65535"),
        ("host:-1", "1 to 65535"),
        ("host:90a", "port must be a number"),
        ("::1:9000", "brackets"),
        ("[::1]9000", "[IPV6]:PORT"),
    ],
)
def test_parse_target_rejects(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=r"OSC target .*") as info:
        parse_target(text)
    assert complaint in str(info.value) and repr(text) in str(info.value)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot resolve host"):
        OscSender([("no-such-host.invalid", 9000)])
    with pytest.raises(ValueError, match="port"):
        OscSender([("127.0.0.1", 0)])
    with pytest.raises(ValueError, match="twice"):
        OscSender([("127.0.0.1", 9000), ("127.0.0.1", 9000)])
    for rate in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="rate"):
            OscSender([], rate_hz=rate)
    for prefix in ("bridge", "/bridge/", "/a b", "/br*dge", "/"):
        with pytest.raises(ValueError, match="prefix"):
            OscSender([], prefix=prefix)


def test_custom_prefix(synth: ModuleType, server: OscServer) -> None:
    block = next(
        b for b in engine_blocks(synth, melody(synth)) if any(e.kind == "note_on" for e in b.events)
    )
    with OscSender([("127.0.0.1", server.port)], prefix="/stage/voice") as sender:
        sender.send_block(block.events, block.time)
    wait_for(lambda: any(a == "/stage/voice/note" for a, _ in server.messages))
    assert {a for a, _ in server.messages} <= {
        "/stage/voice/note",
        "/stage/voice/onset",
        "/stage/voice/pitch",
        "/stage/voice/dynamics",
        "/stage/voice/level",
    }
    assert (
        "/stage/voice/note",
        (melody(synth)[0].midi, next(e.velocity for e in block.events if e.kind == "note_on")),
    ) in server.messages


def test_address_table() -> None:
    assert osc_address("/bridge", 1, 1, "pitch") == "/bridge/pitch"
    assert osc_address("/bridge", 3, 4, "note") == "/bridge/3/note"
    with pytest.raises(ValueError):
        osc_address("/bridge", 5, 4, "note")
    table = osc_reference_markdown()
    # The documented signatures, as the live-bridge issue states them.
    for line in (
        "| `/bridge/pitch` | `/bridge/<input>/pitch` | `f:hz f:midi f:confidence` |",
        "| `/bridge/onset` | `/bridge/<input>/onset` | `f:strength` |",
        "| `/bridge/dynamics` | `/bridge/<input>/dynamics` | `f:rms f:peak f:db i:velocity` |",
        "| `/bridge/note` | `/bridge/<input>/note` | `i:note i:velocity` |",
    ):
        assert line in table
    assert len(table.splitlines()) == 2 + len(OSC_MESSAGES)


def test_onsets_and_notes_are_never_dropped(synth: ModuleType, raw: UdpCapture) -> None:
    blocks = engine_blocks(synth, melody(synth))
    onset = next(b for b in blocks if any(e.kind == "onset" for e in b.events))
    note = next(b for b in blocks if any(e.kind == "note_on" for e in b.events))
    # Six blocks inside one 1/rate interval: each one's onset or note must go out.
    with OscSender([("127.0.0.1", raw.port)], rate_hz=1.0) as sender:
        t0 = math.floor(onset.time) + 0.1
        for i in range(3):
            sender.send_block(onset.events, t0 + 0.002 * i)
            sender.send_block(note.events, t0 + 0.002 * i + 0.001)
    wait_for(lambda: len(raw.datagrams) >= 6)
    received = [m for b in raw.bundles() for m in messages_of(b)]
    assert sum(a == "/bridge/onset" for a, _ in received) == 3 * sum(
        e.kind == "onset" for e in onset.events
    )
    assert sum(a == "/bridge/note" for a, _ in received) == 3 * sum(
        e.kind.startswith("note") for e in note.events
    )


def silent(address: str, args: tuple[Any, ...], silence_db: float = -50.0) -> bool:
    """Whether a pitch, dynamics or level message carries silence (unvoiced, or below the gate)."""
    if address.endswith("pitch"):
        return args[0] == 0.0
    return (args[0] if address.endswith("level") else args[2]) < silence_db


@pytest.mark.parametrize("kind", ["pitch", "dynamics", "level"])
def test_in_silence_one_last_value_then_nothing_until_sound_returns(
    synth: ModuleType, raw: UdpCapture, kind: str
) -> None:
    # The melody, then 1 s of digital silence: 375 hops of unvoiced pitch at -120 dB.
    blocks = engine_blocks(synth, melody(synth))
    tail = blocks[-1].time
    blocks += [Block(tail + (i + 1) * BLOCK_S, []) for i in range(375)]
    with OscSender([("127.0.0.1", raw.port)]) as sender:
        send_all(sender, blocks)
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
    wait_for(lambda: sum(len(list(b)) for b in raw.bundles()) >= expected)
    address = f"/bridge/{kind}"
    sent = [(b.timestamp, args) for b in raw.bundles() for a, args in messages_of(b) if a == address]
    marks = [silent(address, args) for _, args in sent]
    # The engine's own stream: runs of silent values, as the hops produced them.
    source = "dynamics" if kind == "level" else kind
    stream = [(block.time, e) for block in blocks for e in block.events if e.kind == source]
    values = [(t, silent(f"/bridge/{source}", expected_args(e))) for t, e in stream]
    runs = [i for i in range(len(values)) if values[i][1] and (i == 0 or not values[i - 1][1])]
    long_runs = [
        i for i in runs
        if next((t for t, q in values[i:] if not q), math.inf) - values[i][0] > 2 / sender.rate_hz
    ]
    # A silent value is never followed by another: one per pause, and the streams go quiet.
    assert not any(a and b for a, b in itertools.pairwise(marks))
    # Every pause longer than two rate intervals got its one silent value, the last one included.
    assert sum(marks) >= len(long_runs) >= 3
    assert marks[-1] and sent[-1][0] < tail + 0.1
    # In between, sound streams at the rate limit as before.
    assert len(sent) - sum(marks) > 50


def test_streaming_in_silence_is_a_choice(synth: ModuleType, raw: UdpCapture) -> None:
    blocks = [Block(BASE_TIME + i * BLOCK_S, []) for i in range(375)]
    analyzer = Analyzer(EngineConfig({"sample_rate": SR, "hop": HOP}))
    blocks = [Block(b.time, analyzer.process(np.zeros(HOP, np.float32))) for b in blocks]
    with OscSender([("127.0.0.1", raw.port)], rate_hz=50.0, silence="stream") as sender:
        send_all(sender, blocks)
        expected = sender.stats()[f"127.0.0.1:{raw.port}"].messages
    wait_for(lambda: sum(len(list(b)) for b in raw.bundles()) >= expected)
    received = [m for b in raw.bundles() for m in messages_of(b)]
    # 1 s at 50 Hz: a value per interval, every one of them silence.
    for kind in ("pitch", "dynamics"):
        values = [args for a, args in received if a == f"/bridge/{kind}"]
        assert len(values) >= 49 and all(silent(f"/bridge/{kind}", args) for args in values)


def test_immediate_timetags(synth: ModuleType, raw: UdpCapture) -> None:
    blocks = engine_blocks(synth, melody(synth), seconds=1.0)
    with OscSender([("127.0.0.1", raw.port)], timetag="immediate") as sender:
        send_all(sender, blocks)
        sent = sender.stats()[f"127.0.0.1:{raw.port}"]
    wait_for(lambda: len(raw.datagrams) >= sent.bundles)
    assert len(raw.datagrams) == sent.bundles > 50
    # OSC's "immediately" is the timetag 1 (0 seconds, fraction 1).
    assert {d[8:16] for d in raw.datagrams} == {(1).to_bytes(8, "big")}
    assert {b.timestamp for b in raw.bundles()} == {IMMEDIATELY}
    notes = [tuple(m.params) for m in raw.messages() if m.address == "/bridge/note"]
    assert [n for n, v in notes if v > 0] == [n.midi for n in melody(synth) if n.start < 1.0]


def test_bad_silence_or_timetag_is_refused() -> None:
    with pytest.raises(ValueError, match="silence"):
        OscSender([], silence="never")
    with pytest.raises(ValueError, match="timetag"):
        OscSender([], timetag="now")
