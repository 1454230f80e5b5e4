"""Test signals, a frame-locked JACK player and a JACK MIDI recorder for the live benchmarks.

Latency is measured in JACK frame time, so both ends are anchored to it:
the player writes sample `t - start` of its signal into the buffer of the
cycle whose frame `t` it is, so every tone starts at a known frame whatever
the cycle in which it lands, and a cycle the Python callback misses only
leaves a hole (which the cycle log shows) instead of shifting what follows.
The recorder stamps every MIDI event with its cycle's `last_frame_time` plus
the event's offset: the frame at which a downstream client receives it.

Player and recorder are two clients: one client both feeding the bridge and
reading its MIDI would close a loop in the graph, which JACK breaks by
delaying one of the connections a cycle.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jack
import numpy as np

WRAP = 1 << 32  # JACK frame times are unsigned 32-bit
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def note_name(midi: int) -> str:
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def harmonic_tone(hz: float, rate: int, seconds: float, harmonics: int = 5,
                  attack_s: float = 0.005, release_s: float = 0.010, peak: float = 0.5) -> np.ndarray:
    """A tone of `harmonics` partials at amplitude 1/h, raised-cosine attack and release."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    tone = sum(np.sin(2 * np.pi * h * hz * t) / h for h in range(1, harmonics + 1) if h * hz < rate / 2)
    env = np.ones(n)
    a, r = int(attack_s * rate), int(release_s * rate)
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    env[n - r:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    tone = tone * env
    return (tone * peak / np.max(np.abs(tone))).astype(np.float32)


@dataclass(frozen=True)
class ToneSequence:
    """A signal of tones; `starts` are sample offsets of each tone's first sample."""

    signal: np.ndarray
    starts: np.ndarray
    midis: np.ndarray
    rate: int

    def slot(self, i: int) -> tuple[int, int]:
        """The span [start, next start) in which tone `i`'s note-on must fall."""
        end = int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.signal)
        return int(self.starts[i]), end


def tone_sequence(midis: list[int], rate: int, tone_s: float = 0.25, gap_s: float = 0.15,
                  lead_s: float = 0.1, jitter: int = 256, seed: int = 1) -> ToneSequence:
    """`midis` played one after another, each `tone_s` long and followed by about `gap_s` of silence.

    Each start is moved by a random 0..`jitter` frames so that the tones fall at
    all offsets within a JACK period (a fixed grid would start every tone at
    the same offset and bias the latency by up to a period).
    """
    tone_n, slot_n, lead_n = int(tone_s * rate), int((tone_s + gap_s) * rate), int(lead_s * rate)
    signal = np.zeros(lead_n + slot_n * len(midis) + jitter, dtype=np.float32)
    shifts = np.random.default_rng(seed).integers(0, jitter, len(midis)) if jitter else 0
    starts = lead_n + slot_n * np.arange(len(midis)) + shifts
    for start, m in zip(starts, midis):
        signal[start:start + tone_n] = harmonic_tone(midi_hz(m), rate, tone_s)
    return ToneSequence(signal, starts, np.asarray(midis), rate)


class CycleLog:
    """The `last_frame_time` of every cycle a callback ran, preallocated; gaps are missed cycles."""

    def __init__(self, capacity: int) -> None:
        self.frames = np.zeros(capacity, dtype=np.int64)
        self.count = 0

    def add(self, frame: int) -> None:
        if self.count < len(self.frames):
            self.frames[self.count] = frame
            self.count += 1

    def missed(self, period: int) -> list[tuple[int, int]]:
        """(first missing frame, cycles missed) for each hole in the log."""
        f = self.frames[:self.count]
        steps = np.diff(f) % WRAP
        return [(int(f[i]) + period, int(steps[i] // period) - 1)
                for i in np.nonzero(steps > period)[0]]

    def irregular(self, period: int) -> int:
        """Steps shorter than a period (the server re-syncing its frame time after an xrun)."""
        return int(np.count_nonzero(np.diff(self.frames[:self.count]) % WRAP < period))


class FramePlayer:
    """A JACK client that plays one signal on `outputs` ports, locked to frame time."""

    def __init__(self, name: str, server: str, outputs: int = 1, seconds_capacity: float = 600) -> None:
        self.client = jack.Client(name, servername=server, no_start_server=True)
        self.ports = [self.client.outports.register(f"out_{k}") for k in range(1, outputs + 1)]
        self.period = self.client.blocksize
        self.cycles = CycleLog(int(seconds_capacity * self.client.samplerate / self.period))
        self._signal = np.zeros(0, dtype=np.float32)
        self._start: int | None = None
        self._loop = False
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        t = self.client.last_frame_time
        self.cycles.add(t)
        outs = [p.get_array() for p in self.ports]
        start = self._start
        d = (t - start) % WRAP if start is not None else WRAP
        n = len(self._signal)
        if self._loop and n and d < WRAP // 2:
            d %= n
        if d >= n:  # before the start (wrapped: huge), or after the end
            for out in outs:
                out.fill(0.0)
            return
        chunk = self._signal[d:d + frames]
        for out in outs:
            out[:len(chunk)] = chunk
            out[len(chunk):] = 0.0

    def play(self, signal: np.ndarray, lead_s: float = 0.5, loop: bool = False) -> int:
        """Start `signal` `lead_s` from now; returns the frame time of its first sample."""
        self._signal = np.ascontiguousarray(signal, dtype=np.float32)
        self._loop = loop
        start = (self.client.frame_time + int(lead_s * self.client.samplerate)) % WRAP
        self._start = start
        return start

    def connect(self, output: int, port: str) -> None:
        self.client.connect(self.ports[output - 1], port)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class MidiRecorder:
    """A JACK client recording several MIDI inputs as (input, frame, bytes)."""

    def __init__(self, name: str, server: str, inputs: list[str], seconds_capacity: float = 600) -> None:
        self.client = jack.Client(name, servername=server, no_start_server=True)
        self.names = inputs
        self.ports = [self.client.midi_inports.register(i) for i in inputs]
        self.period = self.client.blocksize
        self.cycles = CycleLog(int(seconds_capacity * self.client.samplerate / self.period))
        self.events: list[tuple[int, int, bytes]] = []
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, _frames: int) -> None:
        t = self.client.last_frame_time
        self.cycles.add(t)
        for k, port in enumerate(self.ports):
            for offset, data in port.incoming_midi_events():
                self.events.append((k, (t + offset) % WRAP, bytes(data)))

    def note_ons(self, input_name: str) -> list[tuple[int, int]]:
        """(frame, note) of every note-on (velocity > 0) seen on `input_name`."""
        k = self.names.index(input_name)
        return [(f, b[1]) for i, f, b in list(self.events)
                if i == k and len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0]

    def connect(self, port: str, input_name: str) -> None:
        self.client.connect(port, self.ports[self.names.index(input_name)])

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


XRUN_LINE = re.compile(r"JackEngine::XRun: client = (\S+) was not finished")
XRUN_STATE = re.compile(r"JackEngine::XRun: client = (\S+) was not finished, state = (\S+)")


class LogSpan:
    """jackd's log lines written between `__init__` and `end()` (the bench/xruns.py method)."""

    def __init__(self, log_path: Path) -> None:
        self.path = log_path
        self.begin = log_path.stat().st_size
        self.text = ""

    def end(self) -> str:
        with self.path.open("rb") as log:
            log.seek(self.begin)
            self.text = log.read().decode(errors="replace")
        return self.text

    def xruns(self) -> dict[str, int]:
        """Attributed xruns per client name ("JackEngine::XRun: client = NAME was not finished")."""
        counts: dict[str, int] = {}
        for name in XRUN_LINE.findall(self.text):
            counts[name] = counts.get(name, 0) + 1
        return counts

    def xrun_events(self) -> list[dict[str, str]]:
        """One {client: state} per xrun: the lines jackd writes before "Process error".

        State "Triggered" means the client was due to run but never got the CPU
        in that period; "Running" that it started and had not finished.
        """
        events: list[dict[str, str]] = []
        current: dict[str, str] = {}
        for line in self.text.splitlines():
            m = XRUN_STATE.search(line)
            if m:
                current[m.group(1)] = m.group(2)
            elif "Process error" in line and current:
                events.append(current)
                current = {}
        if current:
            events.append(current)
        return events

    def driver_xruns(self) -> int:
        return self.text.count("JackTimedDriver::Process XRun")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    """Loop a melody of harmonic tones into JACK ports until stdin closes.

    Used by bench/scale.py as a separate process, so the player's Python
    callback never waits for the GIL of the process that polls the bridge.
    Prints READY once connected and, at the end, one JSON line with the
    number of cycles its callback missed.
    """
    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", default="bench-player")
    parser.add_argument("--melody", type=int, nargs="+", required=True, help="MIDI notes")
    parser.add_argument("--tone", type=float, default=0.25, help="seconds per tone")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between tones")
    parser.add_argument("--connect", nargs="*", default=[], help="input ports to feed")
    args = parser.parse_args()
    player = FramePlayer(args.name, args.server, 1)
    seq = tone_sequence(args.melody, player.client.samplerate, args.tone, args.gap, jitter=0)
    for port in args.connect:
        player.connect(1, port)
    player.play(seq.signal, lead_s=0.1, loop=True)
    print("READY", flush=True)
    sys.stdin.read()
    missed = sum(n for _, n in player.cycles.missed(player.period))
    player.close()
    print(json.dumps({"missed_cycles": missed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
