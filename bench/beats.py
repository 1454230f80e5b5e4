"""Beat tracking of daw-bridge's engine against aubio and librosa on generated drum grooves.

The grooves come from bridge/signals.py (`groove`): every pattern of
`signals.PATTERNS` at several steady tempi, plus a tempo jump and an
accelerando, 20-30 s each at 48 kHz, with their exact beat times. All
contenders run in one process on the same audio and are scored the same way
with mir_eval.beat, after its usual trim of the first 5 s (the lock-in):

- F: beat F-measure, 70 ms window.
- CMLt / AMLt: continuity, correct metrical level / any metrical level
  (double, half, off-beat allowed), 17.5 % of the beat tolerance.
- Acc1 / Acc2: the contender's final tempo within 4 % of the groove's tempo
  over its last 5 s; Acc2 also allows x2, x1/2, x3, x1/3.
- late: median time from a beat to the moment the contender reported it
  (causal contenders only; a negative figure would mean it came early).

Contenders:

- daw-bridge: rust_engine.Analyzer, default config (beats_per_bar from the
  pattern), fed 128-frame blocks; beat events give the beats, the last one's
  `bpm` the tempo, `emit_sample - sample` the lateness.
- aubio 0.4.9 (causal): tempo('default', 1024, 128), one call per hop; a beat at
  `get_last_s()` when it fires, the tempo `get_bpm()` at the end.
- librosa (offline, the whole file at once): beat.beat_track at 22.05 kHz, hop
  512 (its default), its global tempo.

Usage: python -m bench.beats [--seconds 20] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.signals import PATTERNS, SR, Groove, groove

TEMPI = (70, 85, 100, 120, 140, 170)
HOP = 128


@dataclass
class Tracked:
    beats: np.ndarray
    bpm: float
    late_s: float | None


def daw_bridge(g: Groove) -> Tracked:
    from rust_engine import Analyzer, EngineConfig

    an = Analyzer(EngineConfig({"beat": {"beats_per_bar": g.pattern.beats_per_bar}}))
    events = []
    for i in range(0, len(g.signal), HOP):
        events += an.process(g.signal[i:i + HOP])
    beats = [e for e in events + an.flush() if e.kind == "beat"]
    late = [(e.emit_sample - e.sample) / SR for e in beats]
    return Tracked(np.array([e.t for e in beats]), beats[-1].bpm if beats else 0.0,
                   float(np.median(late)) if late else None)


def aubio_tempo(g: Groove) -> Tracked:
    import aubio

    tracker = aubio.tempo("default", 1024, HOP, SR)
    beats, late = [], []
    for i in range(0, len(g.signal) - HOP + 1, HOP):
        if tracker(g.signal[i:i + HOP])[0]:
            t = tracker.get_last_s()
            beats.append(t)
            late.append((i + HOP) / SR - t)
    return Tracked(np.array(beats), float(tracker.get_bpm()), float(np.median(late)) if late else None)


def librosa_beat(g: Groove) -> Tracked:
    import librosa

    y = librosa.resample(g.signal, orig_sr=SR, target_sr=22_050)
    tempo, frames = librosa.beat.beat_track(y=y, sr=22_050)
    return Tracked(librosa.frames_to_time(frames, sr=22_050), float(np.atleast_1d(tempo)[0]), None)


CONTENDERS = {"daw-bridge (causal)": daw_bridge, "aubio tempo (causal)": aubio_tempo,
              "librosa beat_track (offline)": librosa_beat}


def material(seconds: float) -> list[tuple[str, Groove]]:
    items = [(f"{name} {bpm}", groove(name, bpm, seconds)) for name in PATTERNS for bpm in TEMPI]
    items.append(("backbeat jump 100->130", groove("backbeat", (100, 130), 30, jump_at_s=15)))
    items.append(("four_on_the_floor accel 90->130", groove("four_on_the_floor", (90, 130), 30)))
    return items


def scores(g: Groove, t: Tracked) -> dict[str, float]:
    import mir_eval

    ref = mir_eval.beat.trim_beats(g.beats)
    est = mir_eval.beat.trim_beats(t.beats)
    _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
    end = g.beats[g.beats >= g.beats[-1] - 5]
    truth = 60.0 / float(np.median(np.diff(end)))
    ratio = t.bpm / truth if t.bpm > 0 else 0.0
    acc1 = abs(ratio - 1) <= 0.04
    acc2 = any(abs(ratio / m - 1) <= 0.04 for m in (1, 2, 0.5, 3, 1 / 3))
    return {"F": mir_eval.beat.f_measure(ref, est), "CMLt": cmlt, "AMLt": amlt,
            "Acc1": float(acc1), "Acc2": float(acc2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--per-file", action="store_true", help="print every groove's scores too")
    args = ap.parse_args()
    items = material(args.seconds)
    table: dict[str, list[dict[str, float]]] = {name: [] for name in CONTENDERS}
    lateness: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for label, g in items:
        row = []
        for name, run in CONTENDERS.items():
            tracked = run(g)
            s = scores(g, tracked)
            table[name].append(s)
            if tracked.late_s is not None:
                lateness[name].append(tracked.late_s)
            row.append(f"{s['F']:.2f}/{s['CMLt']:.2f}")
        if args.per_file:
            print(f"{label:34} " + "  ".join(row), file=sys.stderr)
    metrics = ("F", "CMLt", "AMLt", "Acc1", "Acc2")
    print(f"{len(items)} generated grooves ({', '.join(PATTERNS)} at {', '.join(map(str, TEMPI))} BPM, "
          f"a tempo jump, an accelerando); mir_eval after its 5 s trim")
    print(f"{'contender':30} " + " ".join(f"{m:>6}" for m in metrics) + f" {'late ms':>8}")
    summary = {}
    for name, rows in table.items():
        means = {m: float(np.mean([r[m] for r in rows])) for m in metrics}
        late = float(np.median(lateness[name]) * 1000) if lateness[name] else None
        summary[name] = {**means, "late_ms": late}
        late_text = f"{late:8.1f}" if late is not None else f"{'-':>8}"
        print(f"{name:30} " + " ".join(f"{means[m]:6.3f}" for m in metrics) + f" {late_text}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
