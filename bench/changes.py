"""How soon a re-attacked note is sent: tones played back to back, daw-bridge against aubio.

The latency bench (bench/latency.py) plays every tone after silence. In a
melody most notes follow another with no silence between, and the new note
must first be told from the old one's tail. Here 120 harmonic tones (the
latency bench's tones: 5 partials, 5 ms attack, here a 3 ms release), A2 to
G5 in a seeded random order, 150-300 ms long, follow each other with no gap.

Both contenders run offline on the same audio in 128-frame blocks, as a live
client at 128 frames would see it:
- daw-bridge: rust_engine.Analyzer, default config; a note-on is sent at its
  `emit_sample` (the frame the live bridge writes it at);
- aubio 0.4.9: notes('default', 1024, 128), sent at the end of the hop that
  returns it.

Delay = emission frame - the tone's first frame, scored by bench/latency.py's
`score`: a tone's answer is the first note-on sent inside it; further note-ons
inside it are false notes. No JACK period is added (bench/latency.py shows it
is the same for every contender).

Usage: python -m bench.changes [--tones 120] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.latency import score
from bridge.signals import ToneSequence, harmonic_tone, midi_hz

RATE = 48_000
BLOCK = 128
LOW, HIGH = 45, 79  # A2 .. G5


def back_to_back(tones: int, seed: int) -> ToneSequence:
    """`tones` random tones, each starting where the one before ends."""
    rng = np.random.default_rng(seed)
    pitches = [int(p) for p in rng.integers(LOW, HIGH + 1, tones)]
    parts, starts, pos = [np.zeros(RATE // 10, np.float32)], [], RATE // 10
    for p in pitches:
        n = int(RATE * rng.uniform(0.15, 0.3))
        parts.append(harmonic_tone(midi_hz(p), RATE, n / RATE, release_s=0.003))
        starts.append(pos)
        pos += n
    parts.append(np.zeros(RATE // 5, np.float32))
    return ToneSequence(np.concatenate(parts), np.asarray(starts), np.asarray(pitches), RATE)


def daw_bridge(signal: np.ndarray) -> list[tuple[int, int]]:
    """(emission frame, note) of every note-on."""
    import rust_engine

    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": RATE}))
    events = []
    for i in range(0, len(signal), BLOCK):
        events += an.process(signal[i:i + BLOCK])
    return [(e.emit_sample, e.note) for e in events if e.kind == "note_on"]


def aubio_notes(signal: np.ndarray) -> list[tuple[int, int]]:
    import aubio

    notes = aubio.notes("default", 1024, BLOCK, RATE)
    ons = []
    for i in range(len(signal) // BLOCK):
        out = notes(signal[i * BLOCK:(i + 1) * BLOCK])
        if out[0] != 0:
            ons.append(((i + 1) * BLOCK, int(out[0])))
    return ons


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tones", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    seq = back_to_back(args.tones, args.seed)
    print(f"{args.tones} tones back to back, A2..G5, {len(seq.signal) / RATE:.1f} s at {RATE} Hz, "
          f"{BLOCK}-frame blocks")
    print(f"{'contender':<28}{'median_ms':>10}{'p90_ms':>9}{'right':>10}{'false_notes':>13}")
    for name, run in [("daw-bridge", daw_bridge), ("aubio notes 1024/128", aubio_notes)]:
        s = score(name, run(seq.signal), seq, origin=0, period=0)
        delays = 1000 * np.array([x for x in s.latencies if x is not None]) / RATE
        print(f"{name:<28}{np.median(delays):>10.1f}{np.percentile(delays, 90):>9.1f}"
              f"{f'{s.right(seq.midis)}/{args.tones}':>10}{s.false_notes():>13}")
    print("delay = note-on emission frame - tone start; right = first note-on inside the tone has its pitch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
