"""What the bridge shows of itself: the state of each input and a snapshot of the whole.

The runner fills these from the dispatch thread; user interfaces (the TUI, in
this process or over the control port) only ever read copies. They live here,
below both, so that neither the runner nor a UI depends on the other.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class InputState:
    """What the UI shows for one input."""

    hz: float = 0.0
    midi: float = 0.0
    confidence: float = 0.0
    voiced: bool = False
    db: float = -120.0
    peak_db: float = -120.0
    envelope_db: float = -120.0
    marking: str = "ppp"
    note: int | None = None
    onsets: int = 0
    onset_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    last_onset: float = -1.0
    history: deque[tuple[float, float | None]] = field(default_factory=lambda: deque(maxlen=4000))
    notes: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=16))
    bpm: float = 0.0
    """The tempo of the last beat or tempo event; 0 before the first."""
    beat: int = 0
    """The last beat's place in the bar (1 = downbeat); 0 before the first."""
    beat_confidence: float = 0.0
    last_beat: float = -1.0
    """Stream time of the last beat, for the beat lamp."""

    def onset_rate(self, now: float) -> float:
        """Onsets per second over the last 5 s of stream time."""
        return sum(1 for t in self.onset_times if now - t <= 5.0) / 5.0

    def copy(self) -> InputState:
        return replace(
            self,
            onset_times=deque(self.onset_times, maxlen=64),
            history=deque(self.history, maxlen=4000),
            notes=deque(self.notes, maxlen=16),
        )


@dataclass
class Snapshot:
    """A consistent copy of the bridge's state, for the TUI and the status log."""

    inputs: list[InputState]
    stream_time: float
    server: str
    client: str
    sample_rate: int
    block_size: int
    dsp_load: float
    xruns: int
    skipped_periods: int
    """Periods the server ran without the bridge: audio it never saw (PipeWire reports no xrun)."""
    dropouts: int
    """Holes of digital silence inside an input's sound: a client upstream late on PipeWire."""
    dropped_events: int
    latency_ms: float | None
    connections: list[tuple[str, str]]
    osc: dict[str, Any]
    osc_enabled: bool
    midi_enabled: bool
    recording: str | None
    params: dict[str, float]
    status: str
    connected: bool
    control_port: int | None = None
    """The loopback port `daw-bridge tui` attaches to, when serving one."""
    tempo_held: bool = False
    """The tracked tempo is frozen (beat controls)."""
    beat_source: str = "auto"
    clock_input: int = 1
    """The input whose beats drive the MIDI clock."""
