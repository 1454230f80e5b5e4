"""How the TUI shows and steps the live settings.

Which settings exist, and their ranges, are the engine's (`bridge.params`);
this table adds only what is the UI's own: a short label, a step per key
press, a display format and the keys that step it. A test checks that every
live setting has a row here and no row names anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.params import PARAMS as ENGINE_PARAMS
from bridge.params import Param as EngineParam


@dataclass(frozen=True)
class Param:
    key: str
    label: str
    group: str
    """The footer's name for the pair of key bindings."""
    step: float
    fmt: str
    down: tuple[str, str]
    """Key binding and help text for one step down."""
    up: tuple[str, str]

    @property
    def engine(self) -> EngineParam:
        return ENGINE_PARAMS[self.key]

    def stepped(self, value: float, direction: int) -> float:
        """`value` moved by one step up (+1) or down (-1), kept within the engine's range."""
        # Rounding keeps repeated presses from drifting (0.1 + 0.2 = 0.30000000000000004).
        return self.engine.clamp(round(value + direction * self.step, 6))

    def show(self, value: float) -> str:
        return self.fmt.format(value)


PARAMS: dict[str, Param] = {
    p.key: p
    for p in (
        # Lower delta = a lower threshold above the median = more onsets.
        Param("onset.delta", "onset δ", "onset", 0.005, "{:.3f}", ("o", "onset δ down (more sensitive)"), ("O", "onset δ up (less sensitive)")),
        Param("notes.silence_db", "gate", "gate", 3.0, "{:.0f} dB", ("g", "silence gate down"), ("G", "silence gate up")),
        Param("notes.min_confidence", "conf ≥", "conf", 0.05, "{:.2f}", ("c", "confidence down"), ("C", "confidence up")),
    )
}
