"""The engine settings the UI may change while the bridge runs.

One table for the keys, their steps and their limits, so the key bindings,
the status line and the control server (which must refuse anything else)
agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    key: str
    label: str
    step: float
    lo: float
    hi: float
    fmt: str

    def stepped(self, value: float, direction: int) -> float:
        """`value` moved by one step up (+1) or down (-1), kept within the limits."""
        # Rounding keeps repeated presses from drifting (0.1 + 0.2 = 0.30000000000000004).
        return min(self.hi, max(self.lo, round(value + direction * self.step, 6)))

    def check(self, value: object) -> float:
        """The value as a float, or ValueError saying why it is not allowed."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{self.key} must be a finite number")
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{self.key} must be from {self.lo:g} to {self.hi:g}")
        return float(value)

    def show(self, value: float) -> str:
        return self.fmt.format(value)


PARAMS: dict[str, Param] = {
    p.key: p
    for p in (
        # Lower delta = a lower threshold above the median = more onsets.
        Param("onset.delta", "onset δ", 0.005, 0.0, 1.0, "{:.3f}"),
        Param("notes.silence_db", "gate", 3.0, -120.0, 0.0, "{:.0f} dB"),
        Param("notes.min_confidence", "conf ≥", 0.05, 0.0, 1.0, "{:.2f}"),
    )
}
