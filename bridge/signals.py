"""Synthetic harmonic tones with known notes: the signals of the tests, the
benchmarks and the demo recording (demo/make_demo.py), from one generator.

A tone is the sum of partials 1..N at amplitude 1/h (`partials`), under an
envelope: the tests' `harmonic` ramps linearly and keeps its level, the
benchmarks' `harmonic_tone` uses raised-cosine ramps and a set peak, the demo
decays. Everything is float32 at 48 kHz unless a rate is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SR = 48_000


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def partials(
    hz: float, t: np.ndarray, harmonics: int, below_hz: float = np.inf, phase: Callable[[int], float] | None = None
) -> np.ndarray:
    """sum of sin(2 pi h hz t + phase(h)) / h for h = 1..`harmonics` with h * hz < `below_hz`."""
    out = np.zeros(len(t))
    for h in range(1, harmonics + 1):
        if h * hz < below_hz:
            out += np.sin(2 * np.pi * h * hz * t + (phase(h) if phase else 0.0)) / h
    return out


def harmonic(midi: float, seconds: float, amp: float = 0.3, harmonics: int = 5, release_s: float = 0.02) -> np.ndarray:
    """A tone with a 5 ms linear attack and a linear release of `release_s`, at 48 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.clip(np.minimum(t / 0.005, (seconds - t) / release_s), 0, 1)
    return (amp * env * partials(midi_hz(midi), t, harmonics)).astype(np.float32)


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


def harmonic_tone(hz: float, rate: int, seconds: float, harmonics: int = 5,
                  attack_s: float = 0.005, release_s: float = 0.010, peak: float = 0.5) -> np.ndarray:
    """A tone of partials below Nyquist with raised-cosine attack and release, scaled to `peak`."""
    n = round(seconds * rate)
    tone = partials(hz, np.arange(n) / rate, harmonics, below_hz=rate / 2)
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


# -- drum grooves with exact beats, for the beat tracker's tests and benchmark --


def kick(rate: int = SR) -> np.ndarray:
    """A kick drum: a sine burst whose pitch falls from 150 to 50 Hz, decaying over about 0.3 s."""
    t = np.arange(int(0.3 * rate)) / rate
    hz = 50.0 + 100.0 * np.exp(-t / 0.03)
    phase = 2 * np.pi * np.cumsum(hz) / rate
    return (np.sin(phase) * np.exp(-t / 0.08)).astype(np.float32)


def snare(rate: int = SR, seed: int = 2) -> np.ndarray:
    """A snare drum: a noise burst with a 190 Hz tone, decaying over about 0.2 s."""
    t = np.arange(int(0.2 * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    body = np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.03)
    return (0.5 * noise * np.exp(-t / 0.05) + 0.6 * body).astype(np.float32)


def hihat(rate: int = SR, seed: int = 3) -> np.ndarray:
    """A closed hi-hat: white noise high-passed (a triple first difference), decaying over 50 ms."""
    t = np.arange(int(0.06 * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t) + 3)
    high = np.diff(noise, 3) / 8.0
    return (high * np.exp(-t / 0.012)).astype(np.float32)


@dataclass(frozen=True)
class Pattern:
    """One bar of a drum part on a grid of `steps_per_beat` steps per beat."""

    beats_per_bar: int
    steps_per_beat: int
    kick: tuple[int, ...]
    snare: tuple[int, ...]
    hihat: tuple[int, ...]
    ghost: tuple[int, ...] = ()
    """Ghost notes: the snare at a quarter of its level."""


PATTERNS: dict[str, Pattern] = {
    "four_on_the_floor": Pattern(4, 4, (0, 4, 8, 12), (4, 12), (2, 6, 10, 14)),
    "backbeat": Pattern(4, 4, (0, 8, 10), (4, 12), (0, 2, 4, 6, 8, 10, 12, 14)),
    "funk": Pattern(4, 4, (0, 2, 10), (4, 12), tuple(range(16)), ghost=(7, 9, 15)),
    # Kicks three sixteenths apart (3 + 3 + 4): a dotted-eighth pulse against the beat.
    "funk_syncopated": Pattern(4, 4, (0, 3, 6, 10), (4, 12), tuple(range(16)), ghost=(7, 9, 15)),
    # Triplet grid: the ride's "ding, ding-a" and the second eighth of each beat played late.
    "swing": Pattern(4, 3, (0, 6), (3, 9), (0, 3, 5, 6, 9, 11)),
    "half_time": Pattern(4, 4, (0, 6), (8,), (0, 2, 4, 6, 8, 10, 12, 14)),
    "three_four": Pattern(3, 4, (0,), (4, 8), (0, 2, 4, 6, 8, 10)),
    # 6/8 counted in two dotted-quarter beats of three eighths.
    "six_eight": Pattern(2, 3, (0,), (3,), (0, 1, 2, 3, 4, 5)),
}


@dataclass(frozen=True)
class Groove:
    """A rendered drum groove; `beats` are the exact beat times in seconds, `downbeats` the bars' first."""

    signal: np.ndarray
    beats: np.ndarray
    downbeats: np.ndarray
    pattern: Pattern
    rate: int

    def bpm_at(self, t: float) -> float:
        """The tempo at time `t`, from the beats around it."""
        i = int(np.clip(np.searchsorted(self.beats, t), 1, len(self.beats) - 1))
        return 60.0 / float(self.beats[i] - self.beats[i - 1])


def beat_times(bpm: float | tuple[float, float], seconds: float, lead_s: float = 0.5,
               jump_at_s: float | None = None) -> np.ndarray:
    """Beat times from `lead_s` on: a steady `bpm`; with a pair (from, to), an
    accelerando (tempo linear in time) or, given `jump_at_s`, a jump at the
    first beat after it."""
    start, end = (bpm, bpm) if isinstance(bpm, (int, float)) else bpm
    times, t = [], lead_s
    while t < seconds:
        times.append(t)
        if jump_at_s is not None:
            now = start if t < jump_at_s else end
        else:
            now = start + (end - start) * (t - lead_s) / (seconds - lead_s)
        t += 60.0 / now
    return np.asarray(times)


def groove(pattern: str | Pattern, bpm: float | tuple[float, float], seconds: float = 20.0,
           rate: int = SR, jump_at_s: float | None = None, peak: float = 0.5) -> Groove:
    """`pattern` (a name in PATTERNS or a Pattern) played for `seconds` on the beats of
    `beat_times`; a step between two beats falls at its share of that beat."""
    p = PATTERNS[pattern] if isinstance(pattern, str) else pattern
    beats = beat_times(bpm, seconds, jump_at_s=jump_at_s)
    out = np.zeros(int((seconds + 1.0) * rate))
    steps_per_bar = p.beats_per_bar * p.steps_per_beat
    sounds = [(kick(rate), p.kick, 1.0), (snare(rate), p.snare, 0.6), (snare(rate), p.ghost, 0.15),
              (hihat(rate), p.hihat, 0.35)]
    for b in range(len(beats) - 1):
        for s in range(p.steps_per_beat):
            step = (b % p.beats_per_bar) * p.steps_per_beat + s
            t = beats[b] + (beats[b + 1] - beats[b]) * s / p.steps_per_beat
            at = round(t * rate)
            for sound, steps, gain in sounds:
                if step % steps_per_bar in steps:
                    # As a drummer plays them, hi-hats off the beat are softer than on it.
                    soft = 0.6 if sound is sounds[-1][0] and s else 1.0
                    out[at:at + len(sound)] += soft * gain * sound[: len(out) - at]
    beats = beats[:-1]
    out = out[: int(seconds * rate)]
    return Groove((out * peak / np.max(np.abs(out))).astype(np.float32), beats,
                  beats[:: p.beats_per_bar], p, rate)
