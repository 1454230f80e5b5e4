"""A JACK client that plays audio into the graph and can capture MIDI from it.

`daw-bridge run --demo` uses it to feed the bundled recording into the
bridge, and the tests use it as the "DAW": it plays a known melody and records
what the bridge sends back, each with its JACK frame time. Its process
callback only copies preallocated arrays and appends to a preallocated list.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import cast

import jack
import numpy as np
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


class Player:
    """Plays `audio` (mono float32) from its `out` port, once or looped.

    `start_frame` is the JACK frame time of the audio's first sample, known
    after the first cycle; `midi` holds (frame time, bytes) of every MIDI event
    received on its `midi_in` port.
    """

    def __init__(self, name: str, audio: np.ndarray, loop: bool = False, max_midi_events: int = 100_000) -> None:
        self._audio = np.ascontiguousarray(audio, dtype=np.float32)
        self._loop = loop
        self._pos = 0
        self._playing = False
        self.start_frame: int | None = None
        self.midi: list[tuple[int, bytes]] = []
        self._max_midi = max_midi_events
        self.finished = threading.Event()
        try:
            self.client = jack.Client(name, no_start_server=True)
        except jack.JackError as e:
            raise BridgeError(f"cannot open JACK client '{name}': {e}") from None
        # register() gives an OwnPort / OwnMidiPort; the JACK-Client stub says only Port.
        self.out = cast(jack.OwnPort, self.client.outports.register("out"))
        self.midi_in = cast(jack.OwnMidiPort, self.client.midi_inports.register("midi_in"))
        self.client.set_process_callback(self._process)

    @property
    def sample_rate(self) -> int:
        return self.client.samplerate

    def _process(self, frames: int) -> None:
        buf = self.out.get_array()
        frame0 = self.client.last_frame_time
        for offset, data in self.midi_in.incoming_midi_events():
            if len(self.midi) < self._max_midi:
                self.midi.append((frame0 + offset, bytes(data)))
        if not self._playing:
            buf.fill(0.0)
            return
        if self.start_frame is None:
            self.start_frame = frame0
        n = len(self._audio)
        done = 0
        while done < frames:
            if self._pos >= n:
                if not self._loop:
                    buf[done:] = 0.0
                    self.finished.set()
                    break
                self._pos = 0
            take = min(frames - done, n - self._pos)
            buf[done : done + take] = self._audio[self._pos : self._pos + take]
            self._pos += take
            done += take

    def start(self, connect_to: tuple[str, ...] | list[str] = (), midi_from: str | None = None, play: bool = True) -> None:
        """Activates the client, makes the given connections, then starts playing
        (so no audio is lost to a port not yet connected)."""
        self.client.activate()
        try:
            for port in connect_to:
                self.client.connect(self.out, port)
            if midi_from:
                self.client.connect(midi_from, self.midi_in)
        except jack.JackError as e:
            raise BridgeError(f"cannot connect the player: {e}") from None
        self._playing = play

    def play(self) -> None:
        self._playing = True

    def close(self) -> None:
        try:
            self.client.deactivate()
            self.client.close()
        except jack.JackError:
            pass  # the server is gone already


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.player AUDIO --name NAME --to PORT... [--loop]`: plays AUDIO into
    the given ports until stopped. `run --demo` starts it as a process of its own, since a
    Python process callback shares the GIL with whatever else runs in its process (a TUI)."""
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
        probe = jack.Client(f"{args.name}-probe", no_start_server=True)
        rate = probe.samplerate
        probe.close()
        player = Player(args.name, load_mono(args.audio, rate), loop=args.loop)
        player.start(args.to)
    except (BridgeError, jack.JackError) as e:
        print(f"player: error: {e}", file=sys.stderr)
        return 2
    try:
        while not player.finished.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        player.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
