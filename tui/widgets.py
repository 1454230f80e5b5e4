"""The small drawing widgets of one input: tuner, level meter, onset lamp, piano roll.

Each keeps the last InputState it was given and draws it as styled text when
Textual asks. Colours are theme variables, so they follow the theme in light
and dark terminals: $text-success / $text-warning / $text-error / $text-accent
for text (legible on either background), the plain ones for solid blocks.
"""

from __future__ import annotations

import statistics

from textual.content import Content
from textual.widget import Widget

from bridge.analyze import note_name
from bridge.state import InputState

METER_FLOOR_DB = -60.0
PEAK_HOLD_S = 1.5
ONSET_FLASH_S = 0.15
ROLL_SECONDS = 10.0
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _level_style(db: float) -> str:
    return "$error" if db > -6.0 else "$warning" if db > -18.0 else "$success"


class InputWidget(Widget):
    """A widget drawing one input's state at stream time `now`."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.state = InputState()
        self.now = 0.0

    def show(self, state: InputState, now: float) -> None:
        self.state, self.now = state, now
        self.refresh()


class Tuner(InputWidget):
    """Note name, cents, frequency and confidence, and a needle from -50 to +50 cents."""

    def render(self) -> Content:
        s, width = self.state, max(self.size.width, 12)
        voiced = s.voiced and s.hz > 0
        if voiced:
            nearest = round(s.midi)
            cents = (s.midi - nearest) * 100.0
            tune = "$text-success" if abs(cents) <= 5 else "$text-warning" if abs(cents) <= 20 else "$text-error"
            head = Content.assemble(
                (f"{note_name(nearest):<4}", "bold $text-accent"),
                (f"{cents:+4.0f}¢", tune),
                f" {s.hz:8.1f} Hz",
            )
        else:
            tune = "$text-muted"
            head = Content.assemble(("--  ", "$text-muted"), ("   -¢", "$text-muted"), ("      -- Hz", "$text-muted"))
        head = Content.assemble(head, (f"  conf {s.confidence:.2f}", "" if voiced else "$text-muted"))
        # The needle: '♭' and '♯' at the ends, '┼' in tune, one cell per cents step.
        span = width - 2
        centre = span // 2
        cells = ["─"] * span
        cells[centre] = "┼"
        needle = None
        if voiced:
            needle = min(span - 1, max(0, centre + round((s.midi - round(s.midi)) * 2 * centre)))
        scale = Content.assemble(
            ("♭", "$text-muted"),
            *(
                ("█", tune) if i == needle else (c, "$accent" if c == "┼" else "$text-muted")
                for i, c in enumerate(cells)
            ),
            ("♯", "$text-muted"),
        )
        if s.note is not None:
            velocity = next((v for _, n, v in reversed(s.notes) if n == s.note), 0)
            midi_line = Content.assemble("MIDI ", (f"{note_name(s.note):<4}", "bold $text-success"), f" vel {velocity}")
        else:
            midi_line = Content.assemble("MIDI ", ("—", "$text-muted"))
        return Content("\n").join([head, scale, midi_line])


class Meter(InputWidget):
    """RMS and peak bars in dBFS (from -60), a peak-hold tick, and the dynamic marking."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._hold = (METER_FLOOR_DB, 0.0)  # (level, stream time it was reached)

    def show(self, state: InputState, now: float) -> None:
        level, at = self._hold
        if state.peak_db >= level or now - at > PEAK_HOLD_S or now < at:
            self._hold = (state.peak_db, now)
        super().show(state, now)

    @property
    def hold_db(self) -> float:
        return self._hold[0]

    def _bar(self, db: float, width: int, hold: float | None = None) -> Content:
        def cell_of(level: float) -> float:
            return (min(0.0, max(METER_FLOOR_DB, level)) - METER_FLOOR_DB) / -METER_FLOOR_DB * width

        filled = cell_of(db)
        tick = min(width - 1, int(cell_of(hold))) if hold is not None and hold > METER_FLOOR_DB else None
        parts: list[tuple[str, str]] = []
        for i in range(width):
            cell_db = METER_FLOOR_DB + (i + 0.5) / width * -METER_FLOOR_DB
            if i == tick:
                parts.append(("│", f"bold {_level_style(hold or 0.0)}"))
            elif i + 1 <= filled:
                parts.append(("█", _level_style(cell_db)))
            elif i < filled:
                parts.append((_EIGHTHS[int((filled - i) * 8)], _level_style(cell_db)))
            else:
                parts.append(("·", "$text-muted"))
        return Content.assemble(*parts)

    def render(self) -> Content:
        s = self.state
        width = max(self.size.width - 15, 4)
        rms = Content.assemble("rms  ", self._bar(s.db, width), f" {s.db:6.1f} dB")
        peak = Content.assemble("peak ", self._bar(s.peak_db, width, self.hold_db), f" {s.peak_db:6.1f} dB")
        dyn = Content.assemble("dyn  ", (f"{s.marking:<4}", "bold $text-accent"), f" env {s.envelope_db:6.1f} dB")
        return Content("\n").join([rms, peak, dyn])


class OnsetLamp(InputWidget):
    """Lights for a moment at each onset; shows the onset rate over the last 5 s.

    A new onset lights the lamp in at least one drawn frame, however late the
    frame: a slow terminal, a low `--fps` or a busy machine would otherwise let
    the stream time jump past a flash and skip it."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._count: int | None = None  # onsets seen so far (None: nothing shown yet)
        self._unshown = False  # an onset came that no drawn frame has lit yet

    def show(self, state: InputState, now: float) -> None:
        if self._count is not None and state.onsets > self._count:
            self._unshown = True
        self._count = state.onsets
        super().show(state, now)

    @property
    def lit(self) -> bool:
        return self._unshown or 0.0 <= self.now - self.state.last_onset < ONSET_FLASH_S

    def render(self) -> Content:
        s = self.state
        lamp = ("●", "bold $warning") if self.lit else ("○", "$text-muted")
        self._unshown = False
        return Content.assemble("onset ", lamp, f" {s.onset_rate(self.now):4.1f}/s  total {s.onsets}")


class PianoRoll(InputWidget):
    """The last 10 s of pitch: one column per time slice, two semitones per row
    (upper and lower half blocks), note names of the Cs and the top row at the left."""

    GUTTER = 4

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._low: int | None = None  # MIDI note of the bottom half-row

    def columns(self) -> list[int | None]:
        """The rounded median pitch of each column's time slice, None where unvoiced."""
        width = max(self.size.width - self.GUTTER, 1)
        start = self.now - ROLL_SECONDS
        slices: list[list[float]] = [[] for _ in range(width)]
        for t, midi in self.state.history:
            if midi is None or not start <= t <= self.now:
                continue
            slices[min(width - 1, int((t - start) / ROLL_SECONDS * width))].append(midi)
        return [round(statistics.median(v)) if v else None for v in slices]

    def _range(self, cols: list[int | None], rows: int) -> int:
        """Bottom note of the view; moves only when the pitch leaves it, so the roll does not jitter."""
        voiced = [c for c in cols if c is not None]
        span = rows * 2
        low = self._low if self._low is not None else (60 - span // 2)
        if voiced:
            lo, hi = min(voiced), max(voiced)
            if lo < low or hi >= low + span:
                low = (lo + hi) // 2 - span // 2 if hi - lo < span else hi - span + 1
        self._low = low
        return low

    def render(self) -> Content:
        rows = max(self.size.height, 1)
        cols = self.columns()
        low = self._range(cols, rows)
        lines = []
        for r in range(rows):
            top = low + (rows - 1 - r) * 2 + 1  # upper half of this row
            label = note_name(top - 1) if (top - 1) % 12 == 0 else note_name(top) if top % 12 == 0 else ""
            if r == 0 and not label:
                label = note_name(top)
            cells: list[tuple[str, str]] = []
            for c in cols:
                if c == top:
                    cells.append(("▀", "$accent"))
                elif c == top - 1:
                    cells.append(("▄", "$accent"))
                else:
                    grid = (top - 1) % 12 == 0 or top % 12 == 0
                    cells.append(("·" if grid else " ", "$text-muted"))
            lines.append(Content.assemble((f"{label:<{self.GUTTER}}", "$text-muted"), *cells))
        return Content("\n").join(lines)

