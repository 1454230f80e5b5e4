"""Plays audio into the JACK graph and records the MIDI that comes back.

`daw-bridge run --demo` feeds the bundled recording into the bridge with it,
and the tests and benchmarks use it as the "DAW". The client is
`rust_engine.Player`, whose process callback is Rust: it neither allocates
nor locks, plays locked to JACK frame time, and keeps every MIDI event with
its frame time through a preallocated ring, so a busy machine or a busy
Python process does not make it miss cycles or lose MIDI. This module adds
what callers do around it: connecting, waiting, and reading notes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rust_engine
import soundfile as sf

from bridge.errors import BridgeError


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Reads an audio file as mono float32 at `sample_rate` (the server's rate)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise BridgeError(f"cannot read audio '{path}': {e}") from None
    mono = data.mean(axis=1)
    if rate != sample_rate:
        # Linear resampling is enough for a demo feed; the analysis runs at the server rate.
        positions = np.arange(int(len(mono) * sample_rate / rate)) * (rate / sample_rate)
        mono = np.interp(positions, np.arange(len(mono)), mono)
    return np.ascontiguousarray(mono, dtype=np.float32)


def note_messages(events: Sequence[tuple[int, bytes]]) -> list[tuple[str, int, int, int]]:
    """(kind "on"/"off", frame, channel, note) of the note messages among `events`
    ((frame, bytes) pairs); a note-on of velocity 0 counts as an off."""
    out = []
    for frame, data in events:
        if len(data) != 3:
            continue
        status, note, velocity = data[0] & 0xF0, data[1], data[2]
        if status == 0x90 and velocity > 0:
            out.append(("on", frame, data[0] & 0x0F, note))
        elif status == 0x80 or status == 0x90:
            out.append(("off", frame, data[0] & 0x0F, note))
    return out


ON_TIME_LEAD_S = 0.2
"""How far ahead an on-time play starts: its request must reach the callback first."""


def frame_ahead(engine: rust_engine.Player, lead_s: float) -> int:
    """The JACK frame time `lead_s` from now (frame times wrap at 2**32): where a play
    locked to the frame clock can start."""
    return (engine.frame_time() + int(lead_s * engine.sample_rate)) % 2**32


class Player:
    """A `rust_engine.Player` with one audio output `out` and one MIDI input `midi_in`,
    given the audio it plays up front.

    `start_frame` is the JACK frame time of the audio's first sample, known once
    it plays; `midi` holds (frame time, bytes) of every MIDI event received.
    """

    def __init__(self, name: str, audio: np.ndarray | None = None, loop: bool = False) -> None:
        try:
            self.engine = rust_engine.Player(name)
        except (RuntimeError, ValueError) as e:
            raise BridgeError(str(e)) from None
        self._audio = np.zeros(0, np.float32) if audio is None else np.ascontiguousarray(audio, np.float32)
        self._loop = loop
        self._trouble_at_play = self._trouble()

    @property
    def name(self) -> str:
        return self.engine.name

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    @property
    def out(self) -> str:
        """Full name of the audio output."""
        return self.engine.outputs[0]

    @property
    def midi_in(self) -> str:
        """Full name of the MIDI input."""
        return self.engine.midi_inputs[0]

    @property
    def start_frame(self) -> int | None:
        return self.engine.start_frame

    @property
    def midi(self) -> list[tuple[int, bytes]]:
        return self.engine.midi()

    def notes(self) -> list[tuple[str, int]]:
        """("on"|"off", note) of the note messages received so far."""
        return [(kind, note) for kind, _, _, note in note_messages(self.midi)]

    def note_ons(self) -> list[int]:
        """Note numbers of the note-ons received so far."""
        return [note for kind, note in self.notes() if kind == "on"]

    def xruns(self) -> int:
        """Xruns the server reported while this player was open (anywhere in the graph)."""
        return int(self.engine.stats()["xruns"])

    def _trouble(self) -> tuple[int, int]:
        stats = self.engine.stats()
        return int(stats["xruns"]), int(stats["skipped_periods"])

    def trouble_since_play(self) -> tuple[int, int]:
        """(xruns the server reported, periods it ran without this player) since
        the last `play` (or since opening): the ways a busy machine can put a
        hole in what was played. PipeWire reports only the second."""
        now = self._trouble()
        return now[0] - self._trouble_at_play[0], now[1] - self._trouble_at_play[1]

    def start(self, connect_to: Sequence[str] = (), midi_from: str | None = None, play: bool = True,
              on_time: bool = False) -> None:
        """Makes the given connections, then starts playing (so no audio is lost
        to a port not yet connected); `on_time` as for `play`."""
        for port in connect_to:
            self.connect(self.out, port)
        if midi_from:
            self.connect(midi_from, self.midi_in)
        if play:
            self.play(on_time=on_time)

    def play(self, audio: np.ndarray | None = None, loop: bool | None = None, on_time: bool = False) -> float:
        """Starts `audio` (else the player's own) from the next period; returns its length in seconds.

        Audio played so goes on where it stopped after a period the server skipped
        this player for: whole, but later than its time. `on_time` plays it as a
        DAW's timeline does instead, locked to the server's frame clock from
        `ON_TIME_LEAD_S` on: such a period is a hole, and the rest keeps its time
        (a tempo stays the tempo)."""
        if audio is not None:
            self._audio = np.ascontiguousarray(audio, np.float32)
        if loop is not None:
            self._loop = loop
        self._trouble_at_play = self._trouble()
        at = frame_ahead(self.engine, ON_TIME_LEAD_S) if on_time else None
        try:
            self.engine.play(self._audio, loop=self._loop, at_frame=at)
        except RuntimeError as e:
            raise BridgeError(f"player '{self.name}': {e}") from None
        return len(self._audio) / self.sample_rate

    def wait_finished(self, timeout: float) -> bool:
        """Waits for the audio to have played to its end; false on timeout."""
        return self.engine.wait_finished(timeout)

    def connect(self, source: str, destination: str) -> None:
        try:
            self.engine.connect(source, destination)
        except RuntimeError as e:
            raise BridgeError(str(e)) from None

    def connections(self, port: str) -> list[str]:
        return self.engine.connections(port)

    def ports(self, pattern: str) -> list[str]:
        return self.engine.ports(pattern)

    def close(self) -> None:
        self.engine.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.player AUDIO --name NAME --to PORT... [--loop]`: plays AUDIO into
    the given ports until stopped (SIGTERM, Ctrl-C) or, unless looped, played through.
    `run --demo` starts it as a process of its own, and tests use it for a player that
    must die with its server: closing a client after its server was killed can hang
    inside libjack."""
    import argparse
    import signal
    import sys

    p = argparse.ArgumentParser(prog="python -m bridge.player")
    p.add_argument("audio", type=Path)
    p.add_argument("--name", default="daw-bridge-player")
    p.add_argument("--to", action="append", default=[], metavar="PORT")
    p.add_argument("--loop", action="store_true")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        player = Player(args.name, loop=args.loop)
    except BridgeError as e:
        print(f"player: error: {e}", file=sys.stderr)
        return 2
    try:
        player.start(args.to, play=False)
        player.play(load_mono(args.audio, player.sample_rate))
        while not player.wait_finished(0.5):
            if player.engine.stats()["server_lost"]:
                print("player: error: the JACK server went away", file=sys.stderr)
                return 1
    except BridgeError as e:
        print(f"player: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        player.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
