"""Renders the bundled demo recording (demo.wav) and its true notes (demo_notes.json).

The demo is the opening phrase of "Ode to Joy" played with a synthetic harmonic
tone: every note has a sharp attack and decays to silence before the next one,
so the true onsets, offsets and pitches are known exactly and the file serves
as a golden test. Run it again to regenerate both files; the output is
bit-for-bit reproducible.

    python demo/make_demo.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.analyze import note_name
from bridge.signals import partials

SAMPLE_RATE = 48_000
HARMONICS = 6
ATTACK_S = 0.005
RELEASE_S = 0.015
GAP_S = 0.07
"""Silence between one note's release and the next attack: a clear re-onset."""

@dataclass(frozen=True)
class Note:
    """One synthetic note: ``start`` and ``end`` in seconds, ``end`` = silent again."""

    midi: int
    start: float
    end: float
    peak: float
    """Linear peak amplitude of the tone (full scale = 1)."""


def render(notes: list[Note], sample_rate: int, tail_s: float = 0.3) -> np.ndarray:
    """Renders harmonic tones (partials 1..6 at 1/k amplitude) as float64 mono.

    Each note ramps up linearly over 5 ms, decays gently, and fades out with a
    15 ms raised cosine that ends exactly at ``note.end``.
    """
    length = round((max(n.end for n in notes) + tail_s) * sample_rate)
    out = np.zeros(length)
    for note in notes:
        first = round(note.start * sample_rate)
        last = round(note.end * sample_rate)
        t = np.arange(last - first) / sample_rate
        f0 = 440.0 * 2.0 ** ((note.midi - 69) / 12.0)
        # Fixed, unequal phases keep the waveform's crest factor realistic.
        tone = partials(f0, t, HARMONICS, below_hz=0.45 * sample_rate, phase=lambda k: 0.7 * k * k)
        tone /= np.max(np.abs(tone))
        envelope = np.minimum(1.0, t / ATTACK_S) * np.exp(-t / 1.5)
        release = max(1, round(RELEASE_S * sample_rate))
        fade = 0.5 * (1 + np.cos(np.pi * np.arange(1, release + 1) / release))
        envelope[-release:] *= fade
        out[first:last] += note.peak * envelope * tone
    return out


def demo_notes() -> list[Note]:
    """The melody: E E F G G F E D C C D E E. D D, quarter = 0.375 s, a crescendo and back."""
    melody = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62]
    beats = [1] * 12 + [1.5, 0.5, 2]
    levels_db = [-18, -17, -16, -15, -13, -11, -9, -7, -6, -7, -9, -11, -12, -15, -18]
    notes = []
    start = 0.2
    for midi, length, level in zip(melody, beats, levels_db, strict=True):
        ioi = 0.375 * length
        notes.append(Note(midi, start, round(start + ioi - GAP_S, 6), 10 ** (level / 20)))
        start = round(start + ioi, 6)
    return notes


def main(out_dir: Path) -> None:
    """Writes demo.wav (16-bit mono 48 kHz) and demo_notes.json into ``out_dir``."""
    notes = demo_notes()
    audio = render(notes, SAMPLE_RATE)
    sf.write(out_dir / "demo.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    truth = {
        "notes": [
            {
                "note": n.midi,
                "name": note_name(n.midi),
                "start": n.start,
                "end": n.end,
                "peak_dbfs": round(20 * np.log10(n.peak), 2),
            }
            for n in notes
        ],
    }
    # One note per line keeps the file readable and its diffs small.
    lines = ",\n  ".join(json.dumps(n) for n in truth["notes"])
    (out_dir / "demo_notes.json").write_text(
        f'{{"sample_rate": {SAMPLE_RATE}, "notes": [\n  {lines}\n]}}\n'
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
