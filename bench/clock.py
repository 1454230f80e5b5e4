"""Beats and MIDI clock of the live bridge against the exact beats of generated drum grooves.

For each groove (bridge/signals.py `groove`) a private dummy jackd (48 kHz, 128 frames or --frames)
runs `rust_engine.LiveBridge` (default EngineConfig, beat source "audio"); a frame-locked
`rust_engine.Player` plays the groove into in_1 and another records `clock_out` with JACK
frame times. Everything is counted in JACK frames from the frame of the groove's first
sample, so the figures are what a receiver of the bridge's output sees:

- beat sent: when each beat event left the callback (`Event.frame`) against the groove's
  beat it belongs to (the nearest, within a third of a beat), after the first 6 s (lock-in):
  median and p95 in ms (positive: late), and the share sent before the beat was played.
- clock phase: the first clock of each beat (every 24th after Start) against the nearest
  groove beat: median (signed, + late) and p95 of the absolute difference, in ms.
- clock jitter: the ticks from 6 s to the groove's end (of the longest run from a Start;
  "starts" counts the runs), each tick interval against the local tempo (the mean interval
  over the beat around it): the standard deviation and the largest, in ms. This is what a
  receiver's tempo follower feels. Intervals over a tick the recorder missed (a period it
  was not run for) are left out.
- clock rate: a least-squares line through tick frame vs tick number (numbers counted
  over missed ticks) against the groove's tick (60 / BPM / 24) and against the tracked
  tempo's (the median `bpm` of the beat events after the lock-in), in %.
- skipped: periods the server ran without the bridge, the player and the recorder. A
  period the bridge misses drops a period of its input: the tracker hears the groove
  with holes, shorter than it is.

Usage: python -m bench.clock [--seconds 20] [--frames 128] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import rust_engine

from bench.players import frame_player, midi_recorder, play_locked
from bridge import addresses, jackd
from bridge.signals import SR, groove

GROOVES = [("four_on_the_floor", 100), ("four_on_the_floor", 128), ("backbeat", 140), ("swing", 110),
           ("three_four", 120)]
LOCK_S = 6.0
CLOCK, START = 0xF8, 0xFA
WRAP = 1 << 32


def since(frame: int, origin: int) -> int:
    """Frames from `origin` to `frame` (JACK frame times wrap at 2**32), signed."""
    return (frame - origin + (1 << 31)) % WRAP - (1 << 31)


def measure(pattern: str, bpm: int, seconds: float, frames: int = 128) -> dict[str, float]:
    g = groove(pattern, bpm, seconds=seconds)
    name = jackd.unique_server_name("clock")
    server = jackd.start(name, SR, frames, realtime=False, die_with_parent=True)
    os.environ["JACK_DEFAULT_SERVER"] = name
    bridge = player = recorder = None
    try:
        config = rust_engine.EngineConfig({"beat": {"beats_per_bar": g.pattern.beats_per_bar}})
        bridge = rust_engine.LiveBridge("daw-bridge", 1, config, beat_source="audio", **addresses.port_names(1))
        player = frame_player("clock-player")
        recorder = midi_recorder("clock-recorder", ["clock_in"])
        player.connect(player.outputs[0], f"{bridge.name}:in_1")
        recorder.connect(f"{bridge.name}:{addresses.CLOCK_OUT_PORT}", recorder.midi_inputs[0])
        time.sleep(0.5)
        bridge.poll()
        origin = play_locked(player, g.signal)
        events = []
        end = origin + len(g.signal)
        while since(player.frame_time(), end) < 0:
            time.sleep(0.1)
            events += bridge.poll()
        time.sleep(0.2)
        events += bridge.poll()
        midi = recorder.midi(0)
        skipped = {"bridge": bridge.stats()["skipped_periods"], "player": player.stats()["skipped_periods"],
                   "recorder": recorder.stats()["skipped_periods"]}
    finally:
        for c in (player, recorder):
            if c is not None:
                c.close()
        if bridge is not None:
            bridge.close()
        server.stop(timeout=15)
        os.environ.pop("JACK_DEFAULT_SERVER", None)

    truth = g.beats * SR
    period = 60.0 * SR / bpm

    def nearest(frame: float) -> float | None:
        """Frames from the nearest groove beat to `frame`, if within a third of a beat."""
        i = int(np.argmin(np.abs(truth - frame)))
        d = frame - truth[i]
        return d if abs(d) < period / 3 and truth[i] >= LOCK_S * SR else None

    beats = [since(e.frame, origin) for e in events if e.kind == "beat"]
    sent = np.array([d for f in beats if (d := nearest(f)) is not None]) / SR * 1000
    got = [(since(f, origin), b[0]) for f, b in midi if len(b) == 1]
    # Runs of ticks from each Start: a lost beat stops the clock and the next lock restarts it.
    runs: list[list[int]] = []
    for f, k in got:
        if k == START:
            runs.append([])
        elif k == CLOCK and runs:
            runs[-1].append(f)
    firsts = np.array([d for run in runs for f in run[::24] if (d := nearest(f)) is not None]) / SR * 1000
    windows = [np.array([f for f in run if LOCK_S * SR <= f < len(g.signal)]) for run in runs]
    window = max(windows, key=len)
    gaps = np.diff(window)
    # Tick numbers counted over the ticks the recorder missed.
    steps = np.maximum(1, np.round(gaps / np.median(gaps)))
    n = np.concatenate([[0], np.cumsum(steps)])
    slope, _ = np.polyfit(n, window, 1)
    per_tick = gaps / steps
    local = np.convolve(per_tick, np.ones(25) / 25, mode="same")[12:-12]
    deviation = ((per_tick[12:-12] - local)[steps[12:-12] == 1]) / SR * 1000
    tracked = np.median([e.bpm for e in events if e.kind == "beat" and since(e.frame, origin) >= LOCK_S * SR])
    return {
        "beats": len(sent),
        "sent_median_ms": float(np.median(sent)),
        "sent_p95_ms": float(np.percentile(sent, 95)),
        "sent_early_share": float(np.mean(sent < 0)),
        "phase_median_ms": float(np.median(firsts)),
        "phase_p95_ms": float(np.percentile(np.abs(firsts), 95)),
        "jitter_std_ms": float(np.std(deviation)),
        "jitter_max_ms": float(np.max(np.abs(deviation))),
        "rate_error_pct": float((period / 24 / slope - 1) * 100),
        "rate_vs_tracked_pct": float((60.0 * SR / tracked / 24 / slope - 1) * 100),
        "starts": len(runs),
        **{f"skipped_{k}": v for k, v in skipped.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--frames", type=int, default=128, help="JACK period in frames")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = {}
    print(f"{'groove':24} {'beats':>5} {'sent med':>8} {'p95':>6} {'early':>5}  {'phase med':>9} {'p95':>6}"
          f"  {'jitter sd':>9} {'max':>5}  {'rate %':>6} {'vs trk':>6} {'starts':>6}  skipped b/p/r")
    for pattern, bpm in GROOVES:
        r = measure(pattern, bpm, args.seconds, args.frames)
        rows[f"{pattern} {bpm}"] = r
        print(f"{pattern + ' ' + str(bpm):24} {r['beats']:5d} {r['sent_median_ms']:8.1f} {r['sent_p95_ms']:6.1f} "
              f"{r['sent_early_share']:5.2f}  {r['phase_median_ms']:9.1f} {r['phase_p95_ms']:6.1f}  "
              f"{r['jitter_std_ms']:9.3f} {r['jitter_max_ms']:5.2f}  {r['rate_error_pct']:6.2f} "
              f"{r['rate_vs_tracked_pct']:6.2f} {r['starts']:6d}  "
              f"{r['skipped_bridge']}/{r['skipped_player']}/{r['skipped_recorder']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
