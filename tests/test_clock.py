"""MIDI clock on `clock_out` and JACK transport as the beat source, on a real jackd: a Rust
player plays a drum groove from bridge/signals.py into the bridge and records, with frame
times, what comes out of `clock_out` (and of `midi_out`, which must carry no clock); a
JACK-Client timebase master rolls the transport at a known tempo for `--beat-source transport`."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import jack
import numpy as np
import pytest

from bridge.signals import SR, groove
from live_bridge import Players, wait_until

CLOCK, START, STOP = 0xF8, 0xFA, 0xFC
TICKS_PER_BEAT = 24


def realtime(midi: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(frame, status) of the one-byte real-time messages among captured MIDI."""
    return [(frame, data[0]) for frame, data in midi if len(data) == 1]


def rate_error(ticks: list[int], bpm: float, rate: int = SR) -> float:
    """How far the ticks' rate is from 24 per beat at `bpm`, as a fraction. From their median
    spacing: a period a client missed on a busy machine (an xrun) delays or loses the ticks in
    it, which moves a mean over the whole run by as much, and the median not at all."""
    per_tick = float(np.median(np.diff(ticks)))
    return (60.0 * rate / bpm / TICKS_PER_BEAT) / per_tick - 1.0


@pytest.mark.parametrize("stop_on_loss", [True, False])
def test_clock_out_clocks_a_groove_and_stops_when_it_ends(jack_server, bridges, players: Players, monkeypatch,
                                                          stop_on_loss: bool):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    name = f"clk-{int(stop_on_loss)}"
    flag = "--clock-stop-on-loss" if stop_on_loss else "--no-clock-stop-on-loss"
    bridges(jack_server, name, "--beat-source", "audio", flag)
    bpm, seconds, tail_s = 120, 14.0, 4.0
    g = groove("four_on_the_floor", bpm, seconds=seconds)
    audio = np.concatenate([g.signal, np.zeros(int(tail_s * SR), np.float32)])
    notes = players(f"{name}-notes", None)
    notes.start(midi_from=f"{name}:midi_out", play=False)
    p = players(f"{name}-daw", audio)
    # On time: the groove keeps its tempo in the server's time even if this player is skipped.
    p.start([f"{name}:in_1"], midi_from=f"{name}:clock_out", on_time=True)
    assert p.wait_finished(40), "the player did not finish"
    time.sleep(0.2)
    got = realtime(p.midi)
    start = p.start_frame
    assert start is not None
    kinds = [k for _, k in got]
    assert kinds and set(kinds) <= {CLOCK, START, STOP}, kinds[:10]
    assert kinds.index(START) < kinds.index(CLOCK), "Start before the first clock"
    assert kinds.count(START) == 1
    ticks = [f - start for f, k in got if k == CLOCK]
    # The rate once the tracker has locked, over the groove: 24 per beat within 1 %.
    locked = [t for t in ticks if 6 * SR < t < seconds * SR]
    assert len(locked) > 300
    assert abs(rate_error(locked, bpm)) < 0.01, rate_error(locked, bpm)
    end = seconds * SR
    if stop_on_loss:
        assert kinds[-1] == STOP and kinds.count(STOP) == 1, kinds[-5:]
        stop = got[-1][0] - start
        assert end < stop < end + 3 * SR, (stop - end) / SR
        assert all(t <= stop for t in ticks)
    else:
        assert STOP not in kinds
        assert ticks[-1] > end + 2 * SR, "the clock runs on after the beat is lost"
    # midi_out carries no clock (and here no notes: drums only).
    assert not realtime(notes.midi)


class TimebaseMaster:
    """A JACK-Client timebase master: bar, beat and tick at a steady tempo in 4/4 from frame 0."""

    TICKS = 1920.0

    def __init__(self, server: str, bpm: float) -> None:
        self.bpm = bpm
        self.client = jack.Client("tb-master", servername=server, no_start_server=True)
        self.client.set_timebase_callback(self._timebase)
        self.client.activate()

    def _timebase(self, _state: int, _blocksize: int, pos: Any, _new_pos: bool) -> None:
        beats = pos.frame / (pos.frame_rate * 60.0 / self.bpm)
        pos.valid |= jack.POSITION_BBT
        pos.bar = int(beats // 4) + 1
        pos.beat = int(beats % 4) + 1
        pos.tick = int((beats % 1.0) * self.TICKS)
        pos.bar_start_tick = (pos.bar - 1) * 4 * self.TICKS
        pos.beats_per_bar = 4.0
        pos.beat_type = 4.0
        pos.ticks_per_beat = self.TICKS
        pos.beats_per_minute = self.bpm

    def close(self) -> None:
        self.client.transport_stop()
        self.client.deactivate()
        self.client.close()


def test_beat_source_transport_follows_the_rolling_transport(fresh_jack_server, bridges, players: Players,
                                                              monkeypatch, tmp_path: Path):
    """No audio at all: the beats, their places in the bar, the tempo and the clock come
    from the transport that the timebase master rolls at 132 BPM; when it stops, so does the clock."""
    server = fresh_jack_server
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    log = tmp_path / "events.jsonl"
    bridge = bridges(server, "tr", "--beat-source", "transport", "--events", str(log))
    capture = players("tr-capture", None)
    capture.start(midi_from="tr:clock_out", play=False)
    master = TimebaseMaster(server.name, 132.0)
    try:
        master.client.transport_frame = 0
        master.client.transport_start()
        wait_until(lambda: len([m for m in realtime(capture.midi) if m[1] == CLOCK]) > 24 * 12, 20, "12 beats of clock")
        master.client.transport_stop()
        wait_until(lambda: realtime(capture.midi)[-1][1] == STOP, 10, "Stop after the transport stopped")
    finally:
        master.close()
    got = realtime(capture.midi)
    kinds = [k for _, k in got]
    assert kinds[0] == START and kinds.count(START) == 1 and kinds[-1] == STOP, kinds[:3]
    ticks = [f for f, k in got if k == CLOCK]
    assert abs(rate_error(ticks, 132.0)) < 0.01, rate_error(ticks, 132.0)
    # Beat and tempo events: the transport's tempo and places counting 1 2 3 4.
    bridge.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    beats = [e for e in lines if e["type"] == "beat"]
    assert len(beats) >= 12
    assert all(e["bpm"] == pytest.approx(132.0) for e in beats)
    places = [e["beat"] for e in beats]
    assert all(b == a % 4 + 1 for a, b in itertools.pairwise(places)), places
    # A beat apart in stream time, but for periods the server skipped the bridge for on a
    # busy machine: the transport rolls on through them, the bridge's stream time does not.
    gaps = np.diff([e["t"] for e in beats])
    assert abs(np.median(gaps) - 60 / 132) < 1e-4, gaps
    assert [e for e in lines if e["type"] == "tempo"]
