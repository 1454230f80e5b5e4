"""The live bridge on PipeWire's JACK: the real `daw-bridge run` started through
`pw-jack` on a private PipeWire server (tests/pipewire_server.py), a melody
played into it and its MIDI recorded by a JACK client of the same server
(tests/midi_capture.py), a real OSC receiver. Skipped only when PipeWire is
not installed (Debian: pipewire, pipewire-jack)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message import OscMessage

from bridge.player import note_messages
from bridge.processes import stop_process
from bridge.signals import SR, harmonic, melody_audio
from conftest import CLI
from midi_capture import Capture, assert_recovered_after_loss, capture
from pipewire_server import PrivatePipeWire, missing_binaries, spawn
from udp_capture import UdpCapture

MISSING = missing_binaries()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"PipeWire is not installed ({', '.join(MISSING)} not found; Debian: pipewire pipewire-jack)"
)

MELODY = [60, 64, 67, 72, 67]
PIPEWIRE_LIBJACK = "/pipewire-0.3/jack/libjack.so"


class Bridge:
    """`daw-bridge run` as a client of `server`; its output is read as it comes."""

    def __init__(self, server: PrivatePipeWire, name: str, args: tuple[str, ...]) -> None:
        self.proc = spawn(
            server.jack_command(*CLI, "run", "--name", name, *args), server.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(s,), daemon=True) for s in (self.proc.stdout, self.proc.stderr)]
        for reader in self._readers:
            reader.start()
        self.name = ""

    def wait_started(self) -> Bridge:
        """Waits until the client is active and learns the name the server gave it."""
        self.name = self.wait_for(r"running as '([^']+)'").group(1)
        return self

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20.0) -> re.Match[str]:
        """The `count`-th line (stdout or stderr) matching `pattern`, once it is printed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(re.compile(pattern).search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    pytest.fail(f"bridge exited ({self.proc.returncode}) before printing {pattern!r}:\n{self.text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"bridge did not print {pattern!r} within {timeout:g} s:\n{self.text()}")
                self._changed.wait(0.1)

    def libjacks(self) -> set[str]:
        """The libjack files the bridge process has mapped."""
        maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        return {line.split()[-1] for line in maps.splitlines() if "/libjack.so" in line}

    def stop(self) -> str:
        """SIGTERM, as a user would; returns everything it printed."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        for reader in self._readers:
            reader.join(timeout=5)
        text = self.text()
        assert self.proc.returncode == 0, text
        assert "Traceback" not in text, text
        return text


@pytest.fixture
def pipewire(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivatePipeWire]:
    """A private PipeWire at 48 kHz; quantum 1024 frames (PipeWire's own default) unless parametrized."""
    server = PrivatePipeWire(tmp_path, quantum=getattr(request, "param", 1024))
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def run_bridge(pipewire: PrivatePipeWire) -> Iterator[Callable[..., Bridge]]:
    """`run_bridge(*args, name="pwtest")` starts a bridge; any left running is stopped at the end."""
    started: list[Bridge] = []

    def start(*args: str, name: str = "pwtest") -> Bridge:
        bridge = Bridge(pipewire, name, args)
        started.append(bridge)
        return bridge.wait_started()

    yield start
    for bridge in started:
        stop_process(bridge.proc, timeout=20)


def play(
    server: PrivatePipeWire, tmp_path: Path, audio: np.ndarray, name: str, midi_from: str,
    to: tuple[str, ...] = (), wait_connected: bool = False,
) -> Capture:
    """Plays `audio` from a JACK client `name` of `server` and returns the MIDI it heard."""
    return capture(server.jack_command(), server.env, audio, tmp_path, name, midi_from, to, wait_connected)


def periods_skipped(text: str) -> int:
    """The periods the bridge says, as it stops, the server ran without it, and the
    dropouts it heard (a late client upstream whose port stayed silent)."""
    found = [re.search(rf"(\d+) {what}", text) for what in ("periods skipped", "dropouts")]
    return sum(int(f.group(1)) for f in found if f)


T = TypeVar("T")


def once_more_if_skipped(attempt: Callable[[], tuple[T, int]], check: Callable[[T], None]) -> T:
    """Runs `attempt` and `check`s what it gives back with the periods the
    server skipped the player or the bridge for. PipeWire runs the graph on
    without a client that is late (a busy machine, or a vCPU the host did not
    run) and tells no one but that client's frame clock, or, when the late
    client is the player, the bridge's ear (a dropout: a hole of exact zeros
    inside a note): the audio of those periods never reached the bridge whole. Only then, a failed check is said
    and the attempt made once more; a wrong result with nothing skipped fails."""
    result, skipped = attempt()
    try:
        check(result)
        return result
    except AssertionError as e:
        if not skipped:
            raise
        warnings.warn(f"PipeWire skipped {skipped} periods and the check failed ({e}); once more", stacklevel=2)
    result, _ = attempt()
    check(result)
    return result


@dataclass
class MelodyRun:
    bridge: Bridge
    libjacks: set[str]
    played: Capture
    text: str
    osc: list[OscMessage]


@pytest.mark.parametrize("pipewire", [256, 1024], indirect=True, ids=["quantum256", "quantum1024"])
def test_melody_in_gives_midi_and_osc(pipewire: PrivatePipeWire, run_bridge: Callable[..., Bridge], tmp_path: Path) -> None:
    audio, starts = melody_audio(MELODY)

    def attempt() -> tuple[MelodyRun, int]:
        osc = UdpCapture()
        try:
            bridge = run_bridge("--osc", f"127.0.0.1:{osc.port}")
            libjacks = bridge.libjacks()
            played = play(pipewire, tmp_path, audio, "pw-player", f"{bridge.name}:midi_out", to=(f"{bridge.name}:in_1",))
            text = bridge.stop()
        finally:
            osc.close()
        messages = [m for b in osc.bundles() for m in b if isinstance(m, OscMessage)]
        return MelodyRun(bridge, libjacks, played, text, messages), played.skipped_periods + periods_skipped(text)

    def check(run: MelodyRun) -> None:
        # It really ran on PipeWire's libjack, at the server's period.
        assert run.libjacks and all(PIPEWIRE_LIBJACK in path for path in run.libjacks), run.libjacks
        assert run.bridge.name == "pwtest"
        assert run.played.block_size == pipewire.quantum

        # JACK MIDI: the melody on channel 1, every note-on closed by its note-off.
        notes = note_messages(run.played.midi)
        ons = [n for n in notes if n[0] == "on"]
        assert [n[3] for n in ons] == MELODY, run.text
        assert [(n[0], n[3]) for n in notes] == [(kind, note) for note in MELODY for kind in ("on", "off")]
        assert all(n[2] == 0 for n in notes)
        # Within a period of the analysis' own latency.
        for (_, frame, _, _), start in zip(ons, starts):
            latency_ms = (frame - (run.played.start_frame + start)) / SR * 1000
            assert 0 < latency_ms < 60 + 1000 * pipewire.quantum / SR, latency_ms

        # OSC: the same notes, on and off.
        osc_notes = [tuple(m.params) for m in run.osc if m.address == "/bridge/note"]
        assert [n for n, v in osc_notes if v > 0] == MELODY
        assert sorted(n for n, v in osc_notes if v == 0) == sorted(MELODY)
        assert {"/bridge/pitch", "/bridge/onset", "/bridge/dynamics"} <= {m.address for m in run.osc}
        assert "on  C4" in run.text and "off G4" in run.text

    once_more_if_skipped(attempt, check)


def test_a_second_bridge_of_the_same_name_uses_its_own_ports(
    pipewire: PrivatePipeWire, run_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    # PipeWire renames the second client but its libjack keeps telling it the name it asked
    # for, which is the first bridge's: `--connect` would feed the first bridge.
    first = run_bridge()
    assert first.name == "pwtest"
    audio, _ = melody_audio([62, 69])

    def attempt() -> tuple[tuple[str, Capture], int]:
        second = run_bridge("--connect", "^pw-source:out$")
        played = play(pipewire, tmp_path, audio, "pw-source", f"{second.name}:midi_out", wait_connected=True)
        text = second.stop()
        return (second.name, played), played.skipped_periods + periods_skipped(text)

    def check(result: tuple[str, Capture]) -> None:
        name, played = result
        assert re.fullmatch(r"pwtest-\d+", name), name
        # Notes from the second bridge's own port: its own input was fed.
        assert played.notes() == [("on", 62), ("off", 62), ("on", 69), ("off", 69)]

    once_more_if_skipped(attempt, check)


def test_pipewire_killed_and_restarted_recovers_without_stuck_notes(
    pipewire: PrivatePipeWire, run_bridge: Callable[..., Bridge], tmp_path: Path
) -> None:
    take = tmp_path / "lost.mid"
    bridge = run_bridge("--record-midi", str(take))
    wav = tmp_path / "e4.wav"
    sf.write(wav, harmonic(64, 10.0), SR, subtype="FLOAT")
    # The feeder dies with the server: a process of its own, killed with it.
    feeder = spawn(
        pipewire.jack_command(sys.executable, "-m", "bridge.player", str(wav), "--name", "pw-feeder", "--to", f"{bridge.name}:in_1"),
        pipewire.env,
    )
    try:
        bridge.wait_for(r"in_1  on  E4")
        pipewire.kill()
    finally:
        stop_process(feeder)
    # PipeWire's libjack reports the loss only through jack_on_shutdown.
    bridge.wait_for(r"JACK server '\S+' lost")
    pipewire.start()
    bridge.wait_for(r"running as '([^']+)'", count=2)

    g4 = np.concatenate([np.zeros(SR // 10, np.float32), harmonic(67, 1.0)])
    played = play(pipewire, tmp_path, g4, "pw-catcher", f"{bridge.name}:midi_out", to=(f"{bridge.name}:in_1",))
    bridge.stop()
    notes = played.notes()
    assert_recovered_after_loss(notes, take, lost=64, new=67)  # the E4 sounding at the loss, then a G4
