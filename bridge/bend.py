"""Pitch bend for the cents deviation, as the engine writes it to `midi_out`
(rust_engine/src/period.rs): the rtmidi output, the take and `analyze --bend`
follow the same rules."""

from __future__ import annotations

import math

BEND_CENTRE = 8192
BEND_STEP = 64
"""Bend changes smaller than this (~1.6 cents at a 2-semitone range) are not sent, as on midi_out."""


def bend_value(semitones: float, bend_range: float) -> int:
    """The 14-bit bend for a deviation of `semitones` at a range of `bend_range` semitones."""
    return min(max(math.floor(BEND_CENTRE + semitones / bend_range * 8192 + 0.5), 0), 16383)
