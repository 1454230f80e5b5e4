"""The Textual app: polls the bridge's state and sends the user's controls.

`BridgeApp(source)` works on any object with the LiveRunner's `snapshot()`
and control methods: the runner itself (`daw-bridge run --tui`) or a
`RemoteSource` talking to a running bridge (`daw-bridge tui`). It reads a
snapshot at most `fps` times a second and never touches JACK: the controls
queue work for the bridge's dispatch thread, so a frozen UI cannot disturb
the audio or the MIDI and OSC output.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Protocol

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Static

from bridge.analyze import note_name
from bridge.config import user_config_path
from bridge.errors import BridgeError
from bridge.state import Snapshot
from tui.params import PARAMS
from tui.screens import HelpScreen, PortsScreen
from tui.settings import save_params
from tui.widgets import Meter, OnsetLamp, PianoRoll, Tuner

MAX_FPS = 30.0
BEAT_FLASH_S = 0.1
"""How long the beat lamp stays lit after a beat (stream time)."""
FULL_PANEL_ROWS = 9
"""An input panel's height with every line (InputPanel's min-height in app.tcss)."""


class Source(Protocol):
    """What the app needs from the bridge (LiveRunner and RemoteSource both have it)."""

    def snapshot(self) -> Snapshot: ...
    def set_param(self, key: str, value: float) -> None: ...
    def set_midi_enabled(self, enabled: bool) -> None: ...
    def set_osc_enabled(self, enabled: bool) -> None: ...
    def start_recording(self, path: Path) -> None: ...
    def stop_recording(self) -> None: ...
    def connect(self, source: str, input_number: int, connected: bool = True) -> None: ...
    def audio_outputs(self) -> list[str]: ...
    def scale_tempo(self, factor: float) -> None: ...
    def hold_tempo(self, held: bool) -> None: ...
    def tap_tempo(self, at: float | None = None) -> None: ...


class Rate:
    """Messages per second of one OSC target, from counts seen over the last second."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque()

    def update(self, now: float, count: int) -> float:
        self._seen.append((now, count))
        while len(self._seen) > 2 and now - self._seen[1][0] >= 1.0:
            self._seen.popleft()
        t0, c0 = self._seen[0]
        return (count - c0) / (now - t0) if now > t0 else 0.0


class InputPanel(Vertical):
    """One input: tuner, meter and onset lamp on the left, the piano roll on the right."""

    def __init__(self, number: int) -> None:
        super().__init__(classes="input")
        self.number = number
        self.border_title = f"in_{number}"
        self.border_subtitle = "last 10 s"
        self.tuner, self.meter, self.lamp, self.roll = Tuner(), Meter(), OnsetLamp(), PianoRoll()

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(classes="gauges"):
                yield self.tuner
                yield self.meter
                yield self.lamp
            yield self.roll


def _stats(stats: Any) -> dict[str, Any]:
    """OSC target stats as a dict (the runner gives dataclasses, the remote dicts)."""
    return dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) and not isinstance(stats, type) else dict(stats)


def _light_terminal() -> bool:
    """COLORFGBG="fg;bg" (set by many terminals) with a light background colour."""
    bg = os.environ.get("COLORFGBG", "").rpartition(";")[2]
    return bg in ("7", "15")


def _param_bindings() -> list[Binding]:
    """A down and an up key for each live setting, from the one table in tui/params.py."""
    bindings = []
    for key, p in PARAMS.items():
        group = Binding.Group(p.group, compact=True)
        for (letter, text), direction in ((p.down, -1), (p.up, 1)):
            bindings.append(Binding(letter, f"param({key!r}, {direction})", text, show=p.footer, group=group))
    return bindings


class BridgeApp(App[None]):
    """Monitor and steer a daw-bridge."""

    CSS_PATH = "app.tcss"
    TITLE = "daw-bridge"

    BINDINGS: ClassVar[list[BindingType]] = [
        *_param_bindings(),
        Binding("m", "toggle_midi", "MIDI"),
        Binding("s", "toggle_osc", "OSC"),
        Binding("r", "record", "rec"),
        Binding("b", "tap", "tap", show=False),
        Binding("left_square_bracket", "scale_tempo(0.5)", "tempo ÷2", show=False),
        Binding("right_square_bracket", "scale_tempo(2.0)", "tempo ×2", show=False),
        Binding("h", "hold", "hold", show=False),
        Binding("p", "ports", "ports"),
        Binding("w", "save", "save"),
        Binding("t", "toggle_theme", "theme", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit", show=False),  # in the help; the footer has no room at 80 columns
    ]

    def __init__(
        self, source: Source, config_path: Path | None = None, fps: float = 20.0, loaded_from: Path | None = None
    ) -> None:
        """`config_path` is where `w` saves (default: the per-user config file);
        `loaded_from` the file the bridge's settings came from, said once on screen."""
        super().__init__()
        self.source = source
        self.config_path = config_path or user_config_path()
        self.loaded_from = loaded_from
        self.fps = min(fps, MAX_FPS)
        self.last: Snapshot | None = None
        self.error: str | None = None
        self._rates: dict[str, Rate] = {}
        # Held, not queried: a modal screen on top must not hide them from the poll.
        self.status = Static(id="status")
        self.inputs = VerticalScroll(id="inputs")
        self.panels: list[InputPanel] = []
        self.outputs = Static(id="outputs")
        self.jack = Static(id="jack")
        self.params = Static(id="params")
        self.theme = "textual-light" if _light_terminal() else "textual-dark"

    def compose(self) -> ComposeResult:
        yield self.status
        yield self.inputs
        with Horizontal(id="bottom"):
            yield self.outputs
            yield self.jack
        yield self.params
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.outputs.border_title = "outputs"
        self.jack.border_title = "JACK"
        self.poll()
        self.set_interval(1.0 / self.fps, self.poll)
        if self.loaded_from is not None:
            self.notify(f"settings loaded from {self.loaded_from}", markup=False)

    # -- display -------------------------------------------------------------------

    def poll(self) -> None:
        """Reads one snapshot and redraws; a lost source shows in the status line."""
        try:
            snap = self.source.snapshot()
        except BridgeError as e:
            self.error = str(e)
            self._show_status()
            return
        self.error = None
        self.show(snap)

    def show(self, snap: Snapshot) -> None:
        self.last = snap
        if len(self.panels) != len(snap.inputs):
            self.inputs.remove_children()
            self.panels = [InputPanel(k + 1) for k in range(len(snap.inputs))]
            self.inputs.mount_all(self.panels)
        self._fit_panels()
        for panel, state in zip(self.panels, snap.inputs, strict=True):
            for widget in (panel.tuner, panel.meter, panel.lamp, panel.roll):
                widget.show(state, snap.stream_time)
        self._show_status()
        self.outputs.update(self._outputs(snap))
        self.jack.update(self._jack(snap))
        self.params.update(self._params(snap))

    def _fit_panels(self) -> None:
        """Panels drop their MIDI and peak lines when full ones would push an input
        below the screen (two inputs at 80x24), where only a scrollbar would hint at it."""
        room = self.inputs.size.height
        compact = room > 0 and len(self.panels) * FULL_PANEL_ROWS > room
        for panel in self.panels:
            panel.set_class(compact, "compact")

    def on_resize(self) -> None:
        self._fit_panels()

    def _show_status(self) -> None:
        snap = self.last
        if self.error is not None:
            line = Content.assemble(("○ ", "$text-error"), (self.error, "$text-error"))
        elif snap is None:
            line = Content("waiting for the bridge")
        else:
            dot = ("● ", "$text-success") if snap.connected else ("○ ", "$text-error")
            line = Content.assemble(dot, (snap.status, "" if snap.connected else "$text-error"))
        self.status.update(line)

    def _outputs(self, snap: Snapshot) -> Content:
        def on_off(flag: bool) -> tuple[str, str]:
            return ("on ", "bold $text-success") if flag else ("off", "bold $text-error")

        notes = sorted((t, k, note) for k, s in enumerate(snap.inputs) for t, note, _ in s.notes)
        names = " ".join(note_name(n) if len(snap.inputs) == 1 else f"{k + 1}:{note_name(n)}" for _, k, n in notes[-8:])
        lines = [Content.assemble(("MIDI ", "bold"), on_off(snap.midi_enabled), " ", (names or "—", "$text-accent"))]
        lines.append(self._beat(snap))
        lines.append(Content.assemble(("OSC  ", "bold"), on_off(snap.osc_enabled), (" no targets" if not snap.osc else "")))
        now = time.monotonic()
        for target, raw in snap.osc.items():
            st = _stats(raw)
            rate = self._rates.setdefault(target, Rate()).update(now, st["messages"])
            err = (f" {st['errors']} err", "$text-error") if st["errors"] else (" 0 err", "$text-muted")
            lines.append(Content.assemble(f" {target} ", (f"{rate:5.0f} msg/s", "$text-accent"), err))
        if snap.recording:
            lines.append(Content.assemble(("REC  ", "bold"), ("● ", "bold $text-error"), Path(snap.recording).name))
        else:
            lines.append(Content.assemble(("REC  ", "bold"), ("off", "$text-muted")))
        return Content("\n").join(lines)

    def _beat(self, snap: Snapshot) -> Content:
        """The clock input's beat: lamp, place in the bar, tempo, confidence, and whether it is held."""
        s = snap.inputs[min(snap.clock_input, len(snap.inputs)) - 1]
        held = (" held", "bold $text-warning") if snap.tempo_held else ""
        if s.bpm <= 0:
            return Content.assemble(("BEAT ", "bold"), ("○ —", "$text-muted"), held)
        lit = 0.0 <= snap.stream_time - s.last_beat < BEAT_FLASH_S
        lamp = ("●", "bold $warning") if lit else ("○", "$text-muted")
        return Content.assemble(
            ("BEAT ", "bold"), lamp, f" {s.beat or '-'} ", (f"{s.bpm:5.1f} BPM", "$text-accent"),
            f" conf {s.beat_confidence:.2f}", held,
        )

    def _jack(self, snap: Snapshot) -> Content:
        latency = f"{snap.latency_ms:.1f} ms" if snap.latency_ms is not None else "—"
        load = "$text-error" if snap.dsp_load > 75 else "$text-warning" if snap.dsp_load > 50 else ""
        lines = [
            Content.assemble(("client ", "bold"), snap.client, (" on ", "$text-muted"), snap.server),
            Content.assemble(f"{snap.sample_rate} Hz · {snap.block_size} fr · DSP ", (f"{snap.dsp_load:.1f}%", load)),
            Content.assemble(
                "xruns ",
                (str(snap.xruns), "bold $text-error" if snap.xruns else ""),
                (f" +{snap.skipped_periods} skipped", "bold $text-error") if snap.skipped_periods else "",
                (f" +{snap.dropouts} dropouts", "bold $text-error") if snap.dropouts else "",
                " · latency ",
                (latency, "$text-accent"),
            ),
        ]
        if snap.dropped_events:
            lines.append(Content.assemble(("dropped events ", "$text-error"), str(snap.dropped_events)))
        if snap.control_port is not None:
            lines.append(Content.assemble(("control ", "bold"), f"127.0.0.1:{snap.control_port}"))
        if not snap.connections:
            lines.append(Content.styled("inputs not connected (p: pick ports)", "$text-muted"))
            return Content("\n").join(lines)
        # One line per input with every source feeding it, counted: a second
        # source on in_1 must not hide below the panel's edge.
        feeds: dict[int, list[str]] = {k: [] for k in range(1, len(snap.inputs) + 1)}
        for src, dst in snap.connections:
            number = dst.rpartition(":in_")[2]
            if number.isdigit():
                feeds.setdefault(int(number), []).append(src)
        rows = [
            Content.assemble(f"in_{k} ← ", (f"({len(srcs)}) ", "bold") if len(srcs) > 1 else "", (", ".join(srcs), "$text-accent"))
            if srcs
            else Content.assemble(f"in_{k} ← ", ("— (p: pick ports)", "$text-muted"))
            for k, srcs in sorted(feeds.items())
        ]
        room = self.jack.content_size.height - len(lines)
        if 0 < room < len(rows):
            rows = rows[: room - 1] + [Content.styled(f"… {len(rows) - room + 1} more inputs (p: pick ports)", "$text-muted")]
        return Content("\n").join(lines + rows)

    def _params(self, snap: Snapshot) -> Content:
        lines: list[list[Content | str | tuple[str, str]]] = [[], []]
        for key, p in PARAMS.items():
            if key in snap.params:
                lines[p.line] += [f"{p.label} ", (p.show(snap.params[key]), "bold $text-accent"), "  "]
        lines[0].append((f"→ {self.config_path}", "$text-muted"))
        return Content("\n").join(Content.assemble(*parts) for parts in lines)

    # -- controls --------------------------------------------------------------------

    def _control(self, what: str, fn: Any, *args: Any) -> bool:
        """Calls a control; a refusal is a notification, never a crash."""
        try:
            fn(*args)
        except (BridgeError, ValueError) as e:
            self.notify(str(e), title=what, severity="error", markup=False)
            return False
        return True

    def _snapshot_or_warn(self) -> Snapshot | None:
        if self.last is None or self.error is not None:
            self.notify(self.error or "no state from the bridge yet", severity="warning", markup=False)
            return None
        return self.last

    def action_param(self, key: str, direction: int) -> None:
        snap = self._snapshot_or_warn()
        if snap is None or key not in snap.params:
            return
        param = PARAMS[key]
        value = param.stepped(snap.params[key], direction)
        if value != snap.params[key] and self._control(param.label, self.source.set_param, key, value):
            snap.params[key] = value
            self.params.update(self._params(snap))

    def action_toggle_midi(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is not None and self._control("MIDI", self.source.set_midi_enabled, not snap.midi_enabled):
            snap.midi_enabled = not snap.midi_enabled
            self.outputs.update(self._outputs(snap))

    def action_toggle_osc(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is not None and self._control("OSC", self.source.set_osc_enabled, not snap.osc_enabled):
            snap.osc_enabled = not snap.osc_enabled
            self.outputs.update(self._outputs(snap))

    def action_record(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is None:
            return
        if snap.recording:
            if self._control("recording", self.source.stop_recording):
                self.notify(f"take saved: {snap.recording}", markup=False)
                snap.recording = None
            return
        path = Path.cwd() / time.strftime("take-%Y%m%d-%H%M%S.mid")
        n = 2
        while path.exists():
            path = path.with_name(time.strftime(f"take-%Y%m%d-%H%M%S-{n}.mid"))
            n += 1
        if self._control("recording", self.source.start_recording, path):
            self.notify(f"recording to {path}", markup=False)
            snap.recording = str(path)

    def action_tap(self) -> None:
        # The moment of the key press, not of the request's arrival, is the beat.
        self._control("tap", self.source.tap_tempo, time.time())

    def action_scale_tempo(self, factor: float) -> None:
        self._control("tempo", self.source.scale_tempo, factor)

    def action_hold(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is not None and self._control("hold", self.source.hold_tempo, not snap.tempo_held):
            snap.tempo_held = not snap.tempo_held
            self.outputs.update(self._outputs(snap))

    def action_ports(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is not None:
            self.push_screen(PortsScreen(self.source, len(snap.inputs)))

    def action_save(self) -> None:
        snap = self._snapshot_or_warn()
        if snap is None:
            return
        params = {k: v for k, v in snap.params.items() if k in PARAMS}
        make_dir = self.config_path == user_config_path()
        if self._control("save settings", lambda: save_params(self.config_path, params, make_dir=make_dir)):
            self.notify(f"settings saved to {self.config_path}", markup=False)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
