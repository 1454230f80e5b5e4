"""Tuning and key for note numbers: the `--tuning` and `--scale` values, and
the offline estimates behind `auto` (from `daw-bridge analyze`'s first pass).

The engine does the reading and snapping itself (`rust_engine/src/scale.rs`,
settings `notes.tuning_hz`, `notes.scale_root`, `notes.scale_mode`), so the
live bridge and `analyze` share it; this module only turns words into those
settings and estimates them from a performance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import rust_engine

AUTO: Literal["auto"] = "auto"
TUNING_RANGE_HZ = (400.0, 480.0)
"""What `notes.tuning_hz` accepts: a little under a semitone either side of 440 Hz."""

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

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
    return "chromatic" if mode == 0 else f"{_NAMES[root]}:{rust_engine.SCALE_MODES[mode]}"


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


def estimate_tuning(midi: Sequence[float] | np.ndarray) -> float:
    """The A4 reference (Hz) that best explains voiced pitches `midi`
    (fractional MIDI at 440 Hz): the circular mean of their distance to the
    nearest semitone, so vibrato and glides, which spread either way, cancel.
    440 Hz when there is nothing to go on; clamped to TUNING_RANGE_HZ."""
    m = np.asarray(midi, dtype=float)
    if m.size == 0:
        return 440.0
    angle = 2 * np.pi * (m - np.round(m))
    offset = math.atan2(float(np.sin(angle).sum()), float(np.cos(angle).sum())) / (2 * np.pi)
    lo, hi = TUNING_RANGE_HZ
    return min(max(440.0 * 2 ** (offset / 12), lo), hi)


def estimate_key(midi: Sequence[float] | np.ndarray, tuning_hz: float = 440.0) -> Scale:
    """Major or minor key of voiced pitches `midi` (one per hop, so weighted by
    duration) read against `tuning_hz`: the Krumhansl-Kessler profile that
    correlates best with their pitch-class histogram."""
    m = np.asarray(midi, dtype=float) - 12 * math.log2(tuning_hz / 440.0)
    modes = rust_engine.SCALE_MODES
    if m.size == 0:
        return (0, modes.index("major"))
    histogram = np.bincount(np.round(m).astype(int) % 12, minlength=12).astype(float)
    best, best_r = (0, modes.index("major")), -np.inf
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for root in range(12):
            r = np.corrcoef(histogram, np.roll(profile, root))[0, 1]
            if r > best_r:
                best, best_r = (root, modes.index(mode)), r
    return best
