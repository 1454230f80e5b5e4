"""Tuning and key for note numbers: the `--tuning` and `--scale` values, and
the offline estimates behind `auto` (from `daw-bridge analyze`'s first pass).

The engine does the reading and snapping itself (`rust_engine/src/scale.rs`,
settings `notes.tuning_hz`, `notes.scale_root`, `notes.scale_mode`), so the
live bridge and `analyze` share it; this module only turns words into those
settings and estimates them from a performance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import rust_engine

AUTO: Literal["auto"] = "auto"
TUNING_RANGE_HZ = (400.0, 480.0)
"""What `notes.tuning_hz` accepts: a little under a semitone either side of 440 Hz."""

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
"""Pitch-class names, as keys are written (`--scale Bb:major`)."""

# Krumhansl & Kessler's key profiles (1982): how well each pitch class above
# the tonic fits a major and a minor key, from listeners' ratings.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)

Scale = tuple[int, int]
"""(root pitch class 0..11, index into rust_engine.SCALE_MODES)."""


def parse_tuning(text: str) -> float | Literal["auto"]:
    """`auto` or an A4 reference in Hz within TUNING_RANGE_HZ; ValueError says what is wrong."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        hz = float(text)
    except ValueError:
        raise ValueError(f"not a frequency in Hz or 'auto': '{text}'") from None
    lo, hi = TUNING_RANGE_HZ
    if not (math.isfinite(hz) and lo <= hz <= hi):
        raise ValueError(f"the A4 reference must be from {lo:g} to {hi:g} Hz, got {text}")
    return hz


def parse_scale(text: str) -> Scale | Literal["auto"]:
    """`auto`, `chromatic`, or `KEY:MODE` (`C:major`, `F#:minor`, `Bb:dorian`);
    ValueError names the modes."""
    word = text.strip().lower()
    if word == AUTO:
        return AUTO
    if word == "chromatic":
        return (0, 0)
    modes = rust_engine.SCALE_MODES
    key, _, mode = text.strip().partition(":")
    root = _root(key)
    if root is None or mode.lower() not in modes[1:]:
        raise ValueError(
            f"expected KEY:MODE (e.g. C:major, F#:minor, Bb:dorian), 'chromatic' or 'auto', got '{text}'; "
            f"modes: {', '.join(modes[1:])}"
        )
    return (root, modes.index(mode.lower()))


def _root(key: str) -> int | None:
    if not key or key[0].upper() not in _PITCH_CLASSES:
        return None
    accidentals = key[1:]
    if accidentals not in ("", "#", "b"):
        return None
    return (_PITCH_CLASSES[key[0].upper()] + {"": 0, "#": 1, "b": -1}[accidentals]) % 12


def scale_name(scale: Scale) -> str:
    """`D:dorian`, or `chromatic`."""
    root, mode = scale
    return "chromatic" if mode == 0 else f"{NOTE_NAMES[root]}:{rust_engine.SCALE_MODES[mode]}"


def with_notes(engine: dict[str, Any] | None, tuning_hz: float | None = None,
               scale: Scale | None = None) -> dict[str, Any]:
    """A copy of an [engine] table with the tuning and scale settings set (those not None)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (engine or {}).items()}
    notes = out.setdefault("notes", {})
    if tuning_hz is not None:
        notes["tuning_hz"] = tuning_hz
    if scale is not None:
        notes["scale_root"], notes["scale_mode"] = scale
    return out


def estimate_tuning(midi: Sequence[float] | np.ndarray, weights: np.ndarray | None = None) -> float:
    """The A4 reference (Hz) that best explains voiced pitches `midi`
    (fractional MIDI at 440 Hz, each counted `weights` times if given): the
    circular mean of their distance to the nearest semitone, so vibrato and
    glides, which spread either way, cancel. 440 Hz when there is nothing to go
    on; clamped to TUNING_RANGE_HZ."""
    m = np.asarray(midi, dtype=float)
    w = np.ones_like(m) if weights is None else np.asarray(weights, dtype=float)
    if m.size == 0 or not w.sum() > 0:
        return 440.0
    angle = 2 * np.pi * (m - np.round(m))
    offset = math.atan2(float((w * np.sin(angle)).sum()), float((w * np.cos(angle)).sum())) / (2 * np.pi)
    lo, hi = TUNING_RANGE_HZ
    return min(max(440.0 * 2 ** (offset / 12), lo), hi)


def estimate_key(midi: Sequence[float] | np.ndarray, tuning_hz: float = 440.0,
                 weights: np.ndarray | None = None) -> Scale:
    """Major or minor key of voiced pitches `midi` (one per hop, so weighted by
    duration; or each counted `weights` times) read against `tuning_hz`: the
    Krumhansl-Kessler profile that correlates best with their pitch-class histogram."""
    m = np.asarray(midi, dtype=float) - 12 * math.log2(tuning_hz / 440.0)
    modes = rust_engine.SCALE_MODES
    if m.size == 0 or (weights is not None and not np.sum(weights) > 0):
        return (0, modes.index("major"))
    histogram = np.bincount(np.round(m).astype(int) % 12, weights=weights, minlength=12).astype(float)
    best, best_r = (0, modes.index("major")), -np.inf
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for root in range(12):
            r = np.corrcoef(histogram, np.roll(profile, root))[0, 1]
            if r > best_r:
                best, best_r = (root, modes.index(mode)), r
    return best


class LiveEstimate:
    """`run --tuning auto` and `--scale auto`: the A4 reference and the key of the
    music as it plays, from the voiced pitch events of every input, set on the
    running engine when they settle.

    Voiced pitches fill a histogram of pitch within the octave, in cents, that
    forgets with a half-life of `half_life_s` seconds of stream time, so a
    performer's drift and a change of key are followed while one wrong phrase
    does not flip the key. Every `every_s` seconds, once `min_voiced_s` seconds
    were voiced, the estimates of `estimate_tuning` and `estimate_key` are read
    from it: a tuning that moved by `TUNING_STEP_HZ` or more is set, a key when
    two estimates in a row agree on it. A setting changed by someone else (the
    TUI, OSC) since the estimator last set it is theirs: it is left alone from then on.

    `add` runs on the bridge's dispatch thread (an event sink): a few numpy
    operations per batch, on a fixed-size histogram.
    """

    BINS = 1200
    """One cent each, over an octave."""
    TUNING_STEP_HZ = 0.5

    def __init__(self, tuning: bool, scale: bool, get: Callable[[str], float], set_param: Callable[[str, float], None],
                 every_s: float = 2.0, min_voiced_s: float = 4.0, half_life_s: float = 60.0) -> None:
        self.tuning, self.scale = tuning, scale
        self._get, self._set = get, set_param
        self.every_s, self.min_voiced_s, self.half_life_s = every_s, min_voiced_s, half_life_s
        self.histogram = np.zeros(self.BINS)
        self._cents = np.arange(self.BINS) / 100.0  # bin i holds pitches i cents above C
        self._voiced_s = 0.0
        self._last_t: dict[int, float] = {}
        self._next_update: float | None = None
        self._candidate: Scale | None = None
        self._set_by_us: dict[str, float] = {}

    def add(self, events: Sequence[Any]) -> None:
        """Takes a batch of the bridge's events; may set the estimates on the engine."""
        pitches = [e for e in events if e.kind == "pitch"]
        if not pitches:
            return
        voiced = [e for e in pitches if e.voiced and math.isfinite(e.midi)]
        for e in voiced:
            # Hop to hop; a gap (unvoiced, or between batches) counts as one short step.
            last = self._last_t.get(e.input)
            if last is not None:
                self._voiced_s += min(max(e.t - last, 0.0), 0.05)
            self._last_t[e.input] = e.t
        if voiced:
            cents = np.round(np.array([e.midi for e in voiced]) * 100).astype(int) % self.BINS
            self.histogram += np.bincount(cents, minlength=self.BINS)
        now = pitches[-1].t
        if self._next_update is None:
            self._next_update = now + self.every_s
        elif now >= self._next_update:
            self._next_update = now + self.every_s
            self.histogram *= 0.5 ** (self.every_s / self.half_life_s)
            if self._voiced_s >= self.min_voiced_s:
                self._update()

    def _ours(self, key: str) -> bool:
        """Whether `key` is still the estimator's to set (nobody else changed it)."""
        return key not in self._set_by_us or self._get(key) == self._set_by_us[key]

    def _apply(self, key: str, value: float) -> None:
        self._set(key, value)
        self._set_by_us[key] = value

    def _update(self) -> None:
        tuning_hz = self._get("notes.tuning_hz")
        if self.tuning and self._ours("notes.tuning_hz"):
            estimate = round(estimate_tuning(self._cents, self.histogram), 1)
            if abs(estimate - tuning_hz) >= self.TUNING_STEP_HZ:
                self._apply("notes.tuning_hz", estimate)
                tuning_hz = estimate
        if self.scale and self._ours("notes.scale_root") and self._ours("notes.scale_mode"):
            key = estimate_key(self._cents, tuning_hz, self.histogram)
            now = (int(self._get("notes.scale_root")), int(self._get("notes.scale_mode")))
            if key != now and key == self._candidate:
                self._apply("notes.scale_root", float(key[0]))
                self._apply("notes.scale_mode", float(key[1]))
            self._candidate = key
