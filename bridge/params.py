"""The engine settings that may change while the bridge runs.

The keys, ranges and docs are the engine's own (its settings table in
`rust_engine/src/config.rs`, read through `EngineConfig.live_params()`): the
control server, the runner and every UI check a value by the same rule the
engine applies, and a new live setting needs no edit here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import rust_engine

TEMPO_FACTORS = (0.25, 4.0)
"""The range of a beat control's tempo factor (0.5 halves the tracked tempo, 2 doubles it)."""
TAP_WINDOW_S = 10.0
"""How far in the past a tapped beat's time may lie (a UI reads its clock before its request arrives)."""


@dataclass(frozen=True)
class Param:
    """One live-tunable setting: its dotted key, inclusive range and meaning."""

    key: str
    lo: float
    hi: float
    unit: str
    doc: str
    default: float
    whole: bool
    """Takes whole numbers only (a scale's root and mode)."""

    def check(self, value: object) -> float:
        """The value as a float, or ValueError saying why it is not allowed."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{self.key} must be a number")  # noqa: TRY004 - one error type for every bad value
        # Compared before any float(): a huge int stays exact and is refused, never an OverflowError.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.key} must be a finite number")
        if not self.lo <= value <= self.hi:
            unit = f" {self.unit}" if self.unit else ""
            raise ValueError(f"{self.key} must be from {self.lo:g} to {self.hi:g}{unit}")
        if self.whole and not float(value).is_integer():
            raise ValueError(f"{self.key} must be a whole number")
        return float(value)

    def clamp(self, value: float) -> float:
        """`value` kept within the range."""
        return min(self.hi, max(self.lo, value))


PARAMS: dict[str, Param] = {p["key"]: Param(**p) for p in rust_engine.EngineConfig.live_params()}
"""Every live-tunable setting by key, in the engine's order."""


def split_key(key: str) -> tuple[str, str]:
    """`"notes.silence_db"` -> `("notes", "silence_db")`: the [engine] table layout."""
    section, _, name = key.partition(".")
    return section, name


def values(config: rust_engine.EngineConfig) -> dict[str, float]:
    """The live settings' values in `config`, by key."""
    settings = config.to_dict()
    return {key: float(settings[section][name]) for key in PARAMS for section, name in [split_key(key)]}
