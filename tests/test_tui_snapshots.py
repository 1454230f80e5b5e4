"""Screenshots of the TUI compared with reviewed SVGs (pytest-textual-snapshot).

The screen must be identical on every run, so the source is a fixed bridge
state: a real `Snapshot` of a bridge playing a scale, as the runner would
report it, with the controls applied to that state. Update the SVGs with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the diff.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from pathlib import Path
from typing import Any

from bridge.osc_out import TargetStats
from bridge.state import InputState, Snapshot
from tui.app import BridgeApp

SCALE = [60, 62, 64, 65, 67, 69, 67, 65, 64, 62]
HOP_S = 128 / 48000


def playing_input(transpose: int = 0) -> InputState:
    """An input 9.6 s into a scale of 1 s notes (0.85 s sounding, then silence)."""
    history: deque[tuple[float, float | None]] = deque(maxlen=4000)
    for i in range(int(9.6 / HOP_S)):
        t = i * HOP_S
        note = SCALE[int(t) % len(SCALE)] + transpose
        history.append((t, None if t % 1.0 > 0.85 else note + 0.08 * math.sin(i / 9)))
    return InputState(
        hz=440.0 * 2 ** ((62.12 + transpose - 69) / 12),
        midi=62.12 + transpose,
        confidence=0.96,
        voiced=True,
        db=-18.4,
        peak_db=-9.6,
        envelope_db=-19.2,
        marking="mf",
        note=62 + transpose,
        onsets=10,
        onset_times=deque([5.0, 6.0, 7.0, 8.0, 9.0], maxlen=64),
        last_onset=9.0,
        history=history,
        notes=deque([(t + 0.0, SCALE[t] + transpose, 80 + t) for t in range(10)], maxlen=16),
        bpm=120.0,
        beat=3,
        beat_confidence=0.62,
        last_beat=9.55,
    )


def snapshot(inputs: int = 1) -> Snapshot:
    return Snapshot(
        inputs=[playing_input(4 * k) for k in range(inputs)],
        stream_time=9.6,
        server="default",
        client="daw-bridge",
        sample_rate=48000,
        block_size=128,
        dsp_load=4.2,
        xruns=0,
        skipped_periods=0,
        dropouts=0,
        dropped_events=0,
        latency_ms=11.3,
        connections=[(f"ardour:Master/audio_out {k + 1}", f"daw-bridge:in_{k + 1}") for k in range(inputs)],
        osc={"127.0.0.1:9000": TargetStats("127.0.0.1:9000", bundles=960, messages=2880)},
        osc_enabled=True,
        midi_enabled=True,
        recording=None,
        params={"onset.delta": 0.03, "notes.silence_db": -50.0, "notes.min_confidence": 0.8,
                "notes.tuning_hz": 442.0, "notes.scale_root": 2.0, "notes.scale_mode": 3.0},
        status="running as 'daw-bridge' at 48000 Hz, 128 frames",
        connected=True,
    )


class FixedSource:
    """A bridge frozen at one Snapshot; the controls change that snapshot."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def snapshot(self) -> Snapshot:
        return copy.deepcopy(self.snap)

    def set_param(self, key: str, value: float) -> None:
        self.snap.params[key] = value

    def set_midi_enabled(self, enabled: bool) -> None:
        self.snap.midi_enabled = enabled

    def set_osc_enabled(self, enabled: bool) -> None:
        self.snap.osc_enabled = enabled

    def start_recording(self, path: Path) -> None:
        self.snap.recording = str(path)

    def stop_recording(self) -> None:
        self.snap.recording = None

    def connect(self, source: str, input_number: int, connected: bool = True) -> None:
        pair = (source, f"{self.snap.client}:in_{input_number}")
        if connected:
            self.snap.connections.append(pair)
        else:
            self.snap.connections.remove(pair)

    def audio_outputs(self) -> list[str]:
        return ["ardour:Master/audio_out 1", "ardour:Master/audio_out 2", "system:capture_1"]


def app(inputs: int = 1, theme: str = "textual-dark") -> BridgeApp:
    bridge_app = BridgeApp(FixedSource(snapshot(inputs)), config_path=Path("daw-bridge.toml"))
    bridge_app.theme = theme
    return bridge_app


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(app(), terminal_size=(80, 24))


def test_main_screen_after_controls(snap_compare: Any) -> None:
    # Less sensitive onsets, higher gate, MIDI and OSC off.
    assert snap_compare(app(), press=["O", "G", "c", "m", "s"], terminal_size=(80, 24))


def test_two_inputs_light_theme_120x40(snap_compare: Any) -> None:
    assert snap_compare(app(inputs=2, theme="textual-light"), terminal_size=(120, 40))


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(app(), press=["question_mark"], terminal_size=(80, 24))


def test_ports_screen(snap_compare: Any) -> None:
    assert snap_compare(app(), press=["p"], terminal_size=(80, 24))


def test_two_inputs_80x24(snap_compare: Any) -> None:
    # Compact panels: both inputs on screen, no scrolling.
    assert snap_compare(app(inputs=2), terminal_size=(80, 24))
