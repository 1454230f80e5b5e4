"""Test signals shared by the engine and live-bridge tests: harmonic tones
(1/h partials) and melodies of them, at 48 kHz."""

from __future__ import annotations

import numpy as np

SR = 48_000


def harmonic(
    midi: float, seconds: float, amp: float = 0.3, harmonics: int = 5, release_s: float = 0.02
) -> np.ndarray:
    """A tone with a 5 ms attack and a linear release of `release_s`."""
    hz = 440.0 * 2 ** ((midi - 69) / 12)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * hz * h * t) / h for h in range(1, harmonics + 1))
    env = np.clip(np.minimum(t / 0.005, (seconds - t) / release_s), 0, 1)
    return (amp * env * x).astype(np.float32)


def melody_audio(notes: list[int], note_s: float = 0.25, gap_s: float = 0.15) -> tuple[np.ndarray, list[int]]:
    """0.2 s of silence, the notes with gaps, 0.3 s of silence; and each note's start sample."""
    parts, starts, pos = [np.zeros(int(0.2 * SR), np.float32)], [], int(0.2 * SR)
    for n in notes:
        starts.append(pos)
        tone = harmonic(n, note_s)
        parts += [tone, np.zeros(int(gap_s * SR), np.float32)]
        pos += len(tone) + int(gap_s * SR)
    parts.append(np.zeros(int(0.3 * SR), np.float32))
    return np.concatenate(parts), starts


def octave_low_attack(midi: float, seconds: float = 0.5) -> np.ndarray:
    """0.1 s of silence, then a tone whose first 40 ms carry its sub-octave as
    loud as itself (the period doubles), faded out by 60 ms: pitch trackers
    hear the octave below first. 0.1 s of silence after."""
    t = np.arange(int(seconds * SR)) / SR
    fade = np.clip(1 - (t - 0.04) / 0.02, 0, 1).astype(np.float32)
    tone = harmonic(midi, seconds) + fade * harmonic(midi - 12, seconds)
    silence = np.zeros(int(0.1 * SR), np.float32)
    return np.concatenate([silence, tone, silence])
