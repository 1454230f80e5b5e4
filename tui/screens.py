"""The modal screens: help, and picking the JACK ports that feed the inputs."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.segment import Segment
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widgets import Label, SelectionList, Static
from textual.widgets.option_list import OptionDoesNotExist
from textual.widgets.selection_list import Selection

from bridge.errors import BridgeError

HELP = """\
[b]daw-bridge[/b]: pitch, onsets and dynamics of JACK inputs, sent as MIDI and OSC.

[b $text-accent]Per input[/]  note, cents needle, Hz, confidence; the MIDI note sounding;
           rms / peak meter (dBFS, peak hold │), dynamic marking;
           onset lamp and rate; the pitch of the last 10 s
[b $text-accent]Outputs[/]    last MIDI notes; the beat of the clock's input: lamp, place in the
           bar, tempo, confidence (held: frozen); OSC targets (messages/s), recording
[b $text-accent]JACK[/]       server, rate, period, DSP load, xruns, latency, connections

[b]o[/] / [b]O[/]  onset threshold δ down / up (down = more sensitive)
[b]g[/] / [b]G[/]  silence gate down / up (3 dB steps)
[b]c[/] / [b]C[/]  confidence threshold down / up
[b]a[/] / [b]A[/]  A4 reference down / up (1 Hz): notes are read against it
[b]k[/] / [b]K[/]  key down / up     [b]l[/] / [b]L[/]  previous / next scale to snap to
[b]m[/]      MIDI output on / off (off sends note-offs)
[b]s[/]      OSC output on / off
[b]r[/]      start / stop recording a take (take-YYYYmmdd-HHMMSS.mid here)
[b]b[/]      tap the beat (two taps or more set the tempo and the next beat)
[b][[/] / [b]][/]  halve / double the tempo     [b]h[/]  hold the tempo / follow again
[b]p[/]      pick the JACK ports that feed each input
[b]w[/]      write these settings (δ, gate, confidence, A4, key, scale) to the config file
[b]t[/]      light / dark theme     [b]?[/]  this help     [b]q[/]  quit
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Content.from_markup(HELP))
            yield Label("esc closes", classes="hint")


class PortList(SelectionList[str]):
    """A SelectionList whose box reads ✓ for a connected port and is empty otherwise:
    the stock box shows the same X for both and tells them apart by colour alone,
    which a monochrome or light terminal loses."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            value = self.get_option_at_index(self.scroll_offset.y + y).value
        except OptionDoesNotExist:
            return strip
        segments = list(strip)
        # SelectionList draws [left edge, box, right edge, space, prompt...].
        box = segments[1]
        segments[1] = Segment("✓" if value in self.selected else " ", box.style, box.control)
        return Strip(segments, strip.cell_length)


class PortsScreen(ModalScreen[None]):
    """Every JACK audio output, ticked where it feeds the chosen input; space toggles."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "close"),
        Binding("i", "next_input", "next input"),
        Binding("u", "reload", "update list"),
    ]

    def __init__(self, source: Any, inputs: int) -> None:
        super().__init__()
        self.source = source
        self.inputs = max(inputs, 1)
        self.input_number = 1

    def compose(self) -> ComposeResult:
        with Vertical(id="ports"):
            yield Label(id="ports-title")
            yield PortList(id="port-list")
            yield Label("✓ connected · space: connect / disconnect · i: next input · u: update · esc", classes="hint")

    def on_mount(self) -> None:
        self.action_reload()

    def _target(self) -> str:
        return f"in_{self.input_number}"

    def action_reload(self) -> None:
        ports = self.query_one("#port-list", SelectionList)
        try:
            outputs = self.source.audio_outputs()
            snapshot = self.source.snapshot()
        except BridgeError as e:
            self.app.notify(str(e), title="JACK ports", severity="error", markup=False)
            return
        feeding = {src for src, dst in snapshot.connections if dst.endswith(f":{self._target()}")}
        title = f"JACK outputs → {snapshot.client}:{self._target()}"
        self.query_one("#ports-title", Label).update(title if outputs else f"{title}: no audio outputs in the graph")
        ports.clear_options()
        ports.add_options([Selection(name, name, name in feeding) for name in outputs])

    def action_next_input(self) -> None:
        self.input_number = self.input_number % self.inputs + 1
        self.action_reload()

    def on_selection_list_selection_toggled(self, event: SelectionList.SelectionToggled[str]) -> None:
        port = event.selection.value
        wanted = port in event.selection_list.selected
        try:
            self.source.connect(port, self.input_number, wanted)
        except BridgeError as e:
            self.app.notify(str(e), title="JACK ports", severity="error", markup=False)
            # Show the graph as it is, not as asked (select/deselect post no SelectionToggled).
            if wanted:
                event.selection_list.deselect(port)
            else:
                event.selection_list.select(port)
            return
        verb = "connected" if wanted else "disconnected"
        self.app.notify(f"{port} {verb} {'to' if wanted else 'from'} {self._target()}", markup=False)
