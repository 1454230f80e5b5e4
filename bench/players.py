"""What the live benchmarks share: opening the player and recorder, reading
note-ons back, and reading jackd's log.

Latency is measured in JACK frame time, so both ends are anchored to it. The
player (`rust_engine.Player`, a Rust process callback) plays locked to frame
time: the period starting at frame `t` gets sample `t - start` of its signal,
so every tone starts at a known frame, and a period it misses leaves a hole
instead of shifting what follows. The recorder (a second `rust_engine.Player`,
MIDI inputs only) stamps every MIDI event with its period's frame time plus
the event's offset: the frame at which a downstream client receives it.

Player and recorder are two clients: one client both feeding the bridge and
reading its MIDI would close a loop in the graph, which JACK breaks by
delaying one of the connections a period.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import rust_engine

from bridge.player import frame_ahead


def frame_player(name: str, outputs: int = 1) -> rust_engine.Player:
    """A player with audio outputs out_1..out_N (all the same signal) and no MIDI input."""
    return rust_engine.Player(name, outputs=[f"out_{k}" for k in range(1, outputs + 1)], midi_inputs=[])


def play_locked(player: rust_engine.Player, signal: np.ndarray, lead_s: float = 0.5, loop: bool = False) -> int:
    """Starts `signal` `lead_s` from now, locked to frame time; returns the frame of its first sample."""
    start = frame_ahead(player, lead_s)
    player.play(signal, loop=loop, at_frame=start)
    return start


def midi_recorder(name: str, inputs: list[str]) -> rust_engine.Player:
    """A client recording the MIDI inputs `inputs` (no audio output)."""
    return rust_engine.Player(name, outputs=[], midi_inputs=inputs)


def note_ons(recorder: rust_engine.Player, input_name: str) -> list[tuple[int, int]]:
    """(frame, note) of every note-on (velocity > 0) the recorder saw on `input_name`."""
    k = [p.split(":", 1)[1] for p in recorder.midi_inputs].index(input_name)
    return [(f, b[1]) for f, b in recorder.midi(k) if len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0]


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
