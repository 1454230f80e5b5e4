"""How the TUI shows and steps the live settings.

Which settings exist, and their ranges, are the engine's (`bridge.params`);
this table adds only what is the UI's own: a short label, a step per key
press, a display format and the keys that step it. A test checks that every
live setting has a row here and no row names anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from rust_engine import SCALE_MODES

from bridge.params import PARAMS as ENGINE_PARAMS
from bridge.params import Param as EngineParam
from bridge.tuning import NOTE_NAMES


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
    names: tuple[str, ...] = ()
    """What each whole value stands for (a key's pitch class, a scale's mode), if not a number."""
    line: int = 0
    """The settings line it is shown on: 0 detection, 1 how notes are read (tuning and key)."""
    footer: bool = True
    """Whether its keys are in the footer (else only in the help: the footer fits 80 columns)."""

    @property
    def engine(self) -> EngineParam:
        return ENGINE_PARAMS[self.key]

    def stepped(self, value: float, direction: int) -> float:
        """`value` moved by one step up (+1) or down (-1), kept within the engine's range."""
        # Rounding keeps repeated presses from drifting (0.1 + 0.2 = 0.30000000000000004).
        return self.engine.clamp(round(value + direction * self.step, 6))

    def show(self, value: float) -> str:
        if self.names:
            return self.names[int(value)]
        return self.fmt.format(value)


PARAMS: dict[str, Param] = {
    p.key: p
    for p in (
        # Lower delta = a lower threshold above the median = more onsets.
        Param("onset.delta", "onset δ", "onset", 0.005, "{:.3f}", ("o", "onset δ down (more sensitive)"), ("O", "onset δ up (less sensitive)")),
        Param("notes.silence_db", "gate", "gate", 3.0, "{:.0f} dB", ("g", "silence gate down"), ("G", "silence gate up")),
        Param("notes.min_confidence", "conf ≥", "conf", 0.05, "{:.2f}", ("c", "confidence down"), ("C", "confidence up")),
        Param("notes.tuning_hz", "A4", "A4", 1.0, "{:.1f} Hz", ("a", "A4 reference down"), ("A", "A4 reference up"),
              line=1, footer=False),
        Param("notes.scale_root", "key", "key", 1.0, "", ("k", "key down a semitone"), ("K", "key up a semitone"),
              names=NOTE_NAMES, line=1, footer=False),
        Param("notes.scale_mode", "scale", "scale", 1.0, "", ("l", "previous scale"), ("L", "next scale"),
              names=tuple(SCALE_MODES), line=1, footer=False),
    )
}
