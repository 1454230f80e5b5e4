"""The TUI on a real bridge: a LiveRunner on a dummy jackd, fed by a JACK player client.

Every key binding is pressed through Textual's pilot and checked twice: in the
runner's state (and, where it has one, its effect: MIDI on the wire, OSC
datagrams, a MIDI file, the config file) and on the screen.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jack
import mido
import numpy as np
import pytest
import rust_engine
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import SelectionList, Static
from textual.widgets._toast import Toast

from bridge import config
from bridge.control import ControlServer
from bridge.errors import BridgeError
from bridge.live import LiveOptions, LiveRunner
from bridge.player import Player
from bridge.state import InputState
from tui.app import BridgeApp
from tui.params import PARAMS
from tui.remote import RemoteSource
from tui.screens import HelpScreen, PortsScreen
from tui.widgets import OnsetLamp

SIZE = (80, 24)


def unique(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def cli_command() -> list[str]:
    """The installed `daw-bridge` command (conftest's, as the CLI tests run it)."""
    from conftest import CLI

    return list(CLI)


@pytest.fixture
def osc_receiver() -> Iterator[socket.socket]:
    """A real UDP socket on 127.0.0.1 standing in for an OSC receiver."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> int:
    """Datagrams waiting on `sock`, read and counted."""
    n = 0
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return n
        n += 1


@pytest.fixture
def runner(jack_server: Any, monkeypatch: pytest.MonkeyPatch, osc_receiver: socket.socket) -> Iterator[LiveRunner]:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    options = LiveOptions(client_name=unique("tui-bridge"), osc=[osc_receiver.getsockname()])
    live = LiveRunner(options, rust_engine.EngineConfig({}))
    live.start()
    yield live
    live.stop()


@pytest.fixture
def player(runner: LiveRunner) -> Iterator[Player]:
    """A player feeding the bridge's in_1 and listening to its MIDI output. Its
    process callback is Rust, so it runs in this process next to Textual."""
    p = Player(unique("tui-player"))
    client = runner.snapshot().client
    p.start([f"{client}:in_1"], midi_from=f"{client}:midi_out", play=False)
    yield p
    p.close()


@pytest.fixture
def tone(synth: ModuleType) -> Callable[..., np.ndarray]:
    """`tone(midi, seconds=0.5)`: a harmonic tone at 48 kHz, or a melody from a list."""

    def render(midi: int | list[int], seconds: float = 0.5, gap: float = 0.1) -> np.ndarray:
        notes = [midi] if isinstance(midi, int) else midi
        step = seconds + gap
        parts = [synth.Note(m, 0.05 + i * step, 0.05 + i * step + seconds, 0.3) for i, m in enumerate(notes)]
        audio: np.ndarray = synth.render(parts, 48000, tail_s=0.2).astype(np.float32)
        return audio

    return render


class SilentSource:
    """A client with one audio output and no process callback: a port to pick in the list."""

    def __init__(self, name: str) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out").name
        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def until(pilot: Pilot[Any], ok: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Lets the app run until `ok()` holds; fails with `what` after `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if ok():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_until(ok: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """`until` for code outside the app."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def text(widget: Any) -> str:
    """What a widget shows, as plain text."""
    if isinstance(widget, Static):
        return str(widget.visual)
    return str(widget.render().plain)


def box(ports: SelectionList[str], row: int) -> str:
    """The mark in the check box of the port list's visible row `row`."""
    return ports.render_line(row).text[1]


def toasts(app: BridgeApp) -> list[str]:
    return [t.render().plain for t in app.screen.query(Toast)]


# -- key bindings on a real runner ------------------------------------------------------


@pytest.mark.parametrize(
    "key, param, direction",
    [
        ("o", "onset.delta", -1),
        ("O", "onset.delta", 1),
        ("g", "notes.silence_db", -1),
        ("G", "notes.silence_db", 1),
        ("c", "notes.min_confidence", -1),
        ("C", "notes.min_confidence", 1),
    ],
)
def test_param_keys_change_the_runner_and_the_display(runner: LiveRunner, key: str, param: str, direction: int) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            before = runner.snapshot().params[param]
            await pilot.press(key)
            after = runner.snapshot().params[param]
            assert after == pytest.approx(before + direction * PARAMS[param].step)
            await pilot.pause(0.1)
            assert f"{PARAMS[param].label} {PARAMS[param].show(after)}" in text(app.params)

    run(go())


def test_param_keys_stop_at_the_limits(runner: LiveRunner) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            for _ in range(25):
                await pilot.press("C")
            assert runner.snapshot().params["notes.min_confidence"] == 1.0
            for _ in range(8):
                await pilot.press("o")
            assert runner.snapshot().params["onset.delta"] == 0.0

    run(go())


def test_midi_key_mutes_and_unmutes_midi_output(runner: LiveRunner, player: Player, tone: Callable[..., np.ndarray]) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("m")
            assert runner.snapshot().midi_enabled is False
            await until(pilot, lambda: "MIDI off" in text(app.outputs), "MIDI off on screen")
            await pilot.pause(player.play(tone(69)) + 0.3)
            assert player.note_ons() == []
            assert runner.snapshot().inputs[0].onsets > 0  # the tone was heard, only not sent

            await pilot.press("m")
            assert runner.snapshot().midi_enabled is True
            await until(pilot, lambda: "MIDI on" in text(app.outputs), "MIDI on on screen")
            player.play(tone(69))
            await until(pilot, lambda: 69 in player.note_ons(), "a note-on for A4 on the JACK MIDI port")

    run(go())


def test_osc_key_stops_and_restarts_osc_output(
    runner: LiveRunner, player: Player, tone: Callable[..., np.ndarray], osc_receiver: socket.socket
) -> None:
    target = f"127.0.0.1:{osc_receiver.getsockname()[1]}"

    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            player.play(tone(69, seconds=2.0))
            await until(pilot, lambda: drain(osc_receiver) > 0, "OSC datagrams")
            await until(pilot, lambda: " 0 msg/s" not in text(app.outputs), "a non-zero OSC rate on screen")
            assert target in text(app.outputs)

            await pilot.press("s")
            assert runner.snapshot().osc_enabled is False
            await pilot.pause(0.2)
            drain(osc_receiver)
            await pilot.pause(0.4)
            assert drain(osc_receiver) == 0
            assert "OSC  off" in text(app.outputs)

            await pilot.press("s")
            assert runner.snapshot().osc_enabled is True
            await until(pilot, lambda: drain(osc_receiver) > 0, "OSC datagrams again")
            assert "OSC  on" in text(app.outputs)

    run(go())


def test_record_key_records_a_take(
    runner: LiveRunner, player: Player, tone: Callable[..., np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await until(pilot, lambda: runner.snapshot().recording is not None, "the runner recording")
            take = Path(runner.snapshot().recording or "")
            assert take.parent == tmp_path and take.name.startswith("take-") and take.suffix == ".mid"
            await until(pilot, lambda: take.name in text(app.outputs), "the take's name on screen")
            await pilot.pause(player.play(tone([64, 67])) + 0.3)
            await pilot.press("r")
            await until(pilot, lambda: runner.snapshot().recording is None, "the take closed")
            await until(pilot, lambda: "REC  off" in text(app.outputs), "REC off on screen")
            await until(pilot, lambda: take.exists(), "the MIDI file")
        notes = [m.note for m in mido.MidiFile(take).play() if m.type == "note_on" and m.velocity > 0]
        assert notes == [64, 67]

    run(go())


def test_save_key_writes_the_tuned_settings(runner: LiveRunner, tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    start = runner.snapshot().params

    async def go() -> None:
        app = BridgeApp(runner, config_path=path)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("O", "G", "G", "c", "A", "A", "K", "K", "L", "L")
            await until(pilot, lambda: "A4 442.0 Hz  key D  scale minor" in text(app.params), "the note settings")
            await pilot.press("w")
            await pilot.pause(0.1)
            assert any(f"saved to {path}" in t for t in toasts(app))

    run(go())
    engine = config.load(path)["engine"]
    params = runner.snapshot().params
    assert (engine["notes"]["tuning_hz"], engine["notes"]["scale_root"], engine["notes"]["scale_mode"]) == (442.0, 2, 2)
    assert "scale_root = 2\n" in path.read_text()  # a whole number, as written by hand
    assert engine["onset"]["delta"] == params["onset.delta"] == pytest.approx(start["onset.delta"] + 0.005)
    assert engine["notes"]["silence_db"] == params["notes.silence_db"] == start["notes.silence_db"] + 6
    assert engine["notes"]["min_confidence"] == params["notes.min_confidence"] == pytest.approx(start["notes.min_confidence"] - 0.05)


def test_save_key_keeps_the_rest_of_the_file(runner: LiveRunner, tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('# mine\n[bridge]\ninputs = 1\n\n[engine.onset]\n# my comment\ndelta = 0.5\nmin_ioi_ms = 50.0\n')

    async def go() -> None:
        app = BridgeApp(runner, config_path=path)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("w")

    run(go())
    saved = path.read_text()
    assert "# mine" in saved and "# my comment" in saved and "min_ioi_ms = 50.0" in saved
    assert config.load(path)["engine"]["onset"]["delta"] == runner.snapshot().params["onset.delta"] != 0.5


def test_save_into_an_unwritable_place_is_a_notification(runner: LiveRunner, tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "bridge.toml"

    async def go() -> None:
        app = BridgeApp(runner, config_path=path)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("w")
            await pilot.pause(0.1)
            assert any("cannot write config" in t for t in toasts(app))
            assert app.is_running

    run(go())
    assert not path.parent.exists()


def test_ports_screen_connects_and_disconnects(runner: LiveRunner, jack_server: Any) -> None:
    p = SilentSource(unique("tui-src"))
    try:

        async def go() -> None:
            app = BridgeApp(runner)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("p")
                assert isinstance(app.screen, PortsScreen)
                ports = app.screen.query_one(SelectionList)
                values = [ports.get_option_at_index(i).value for i in range(ports.option_count)]
                assert p.port in values
                ports.focus()
                ports.highlighted = values.index(p.port)
                target = f"{runner.snapshot().client}:in_1"
                await pilot.pause()
                row = values.index(p.port) - ports.scroll_offset.y
                assert box(ports, row) == " "
                await pilot.press("space")
                await until(pilot, lambda: (p.port, target) in runner.snapshot().connections, "the connection")
                assert p.port in ports.selected
                assert box(ports, row) == "✓"
                await pilot.press("space")
                await until(pilot, lambda: (p.port, target) not in runner.snapshot().connections, "the disconnection")
                assert box(ports, row) == " "
                await pilot.press("escape")
                assert not isinstance(app.screen, PortsScreen)

        run(go())
    finally:
        p.close()


def test_a_refused_connection_is_a_notification(runner: LiveRunner) -> None:
    p = SilentSource(unique("tui-gone"))

    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press("p")
            ports = app.screen.query_one(SelectionList)
            values = [ports.get_option_at_index(i).value for i in range(ports.option_count)]
            ports.focus()
            ports.highlighted = values.index(p.port)
            p.close()  # the port vanishes while it is listed
            await pilot.press("space")
            await pilot.pause(0.1)
            assert any("cannot connect" in t for t in toasts(app))
            assert p.port not in ports.selected
            assert app.is_running and runner.running

    run(go())


def test_help_screen_opens_and_closes(runner: LiveRunner) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            shown = text(app.screen.query_one("#help Static"))
            for key in "oOgGcCmsrpwtq":
                assert f"\n{key}" in shown or f" {key} " in shown or f"{key}  " in shown
            await pilot.pause(0.2)  # the main screen keeps polling behind the help
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

    run(go())


def test_theme_key_switches_light_and_dark(runner: LiveRunner) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            app.theme = "textual-dark"
            await pilot.press("t")
            assert app.theme == "textual-light"
            await pilot.press("t")
            assert app.theme == "textual-dark"

    run(go())


def test_jack_panel_shows_the_server_and_connections(runner: LiveRunner, player: Player, jack_server: Any) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: player.out in text(app.jack), "the player's connection on screen")
            shown = text(app.jack)
            assert jack_server.name in shown
            assert f"{jack_server.rate} Hz · {jack_server.period} fr" in shown
            assert "xruns" in shown and "latency" in shown
            assert "running as" in text(app.status)

    run(go())


def test_a_late_frame_still_lights_the_onset_lamp_once() -> None:
    """The stream time jumps past a flash between two drawn frames: the onset still lights one."""
    lamp = OnsetLamp()
    lamp.show(InputState(onsets=0), now=1.0)
    lamp.render()
    lamp.show(InputState(onsets=1, last_onset=1.05), now=1.5)  # 450 ms later: past the 150 ms flash
    assert lamp.lit
    lamp.render()
    assert not lamp.lit  # once drawn, the flash is over
    lamp.show(InputState(onsets=2, last_onset=1.55), now=1.6)  # a frame within the flash
    assert lamp.lit


def test_onset_lamp_meter_and_roll_follow_the_audio(runner: LiveRunner, player: Player, tone: Callable[..., np.ndarray]) -> None:
    async def go() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            panel = app.panels[0]
            # What each drawn frame showed: the flash is 150 ms, which a busy test machine's
            # polling could miss, but the lamp promises to light in at least one frame.
            drawn_lit: list[bool] = []
            render = panel.lamp.render

            def spy() -> Content:
                drawn_lit.append(panel.lamp.lit)
                return render()

            panel.lamp.render = spy  # type: ignore[method-assign]
            player.play(tone(69, seconds=1.0))
            await until(pilot, lambda: any(drawn_lit), "the onset lamp drawn lit")
            await until(pilot, lambda: "A4" in text(panel.tuner), "A4 on the tuner")
            await until(pilot, lambda: "▀" in text(panel.roll) or "▄" in text(panel.roll), "pitch in the roll")
            assert panel.meter.hold_db > -30.0
            assert "total 1" in text(panel.lamp)
            await until(pilot, lambda: not panel.lamp.lit, "the lamp dark again")

    run(go())


# -- the end-to-end test -------------------------------------------------------------------


@pytest.mark.parametrize("attached", [False, True], ids=["in-process", "attached"])
def test_displayed_note_follows_the_melody(
    runner: LiveRunner, player: Player, tone: Callable[..., np.ndarray], attached: bool
) -> None:
    """C4, E4, G4 played into the real bridge appear on the tuner in that order. The tuner
    shows the note of the moment, so each is held 1.2 s: a screen refresh starved for that
    long on a busy machine would skip one, as it would for a user."""
    server = ControlServer(runner, port=0) if attached else None
    source: Any = RemoteSource("127.0.0.1", server.port) if server else runner
    seen: list[str] = []

    async def go() -> None:
        app = BridgeApp(source)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: bool(app.panels), "the input panel")
            tuner = app.panels[0].tuner
            length = player.play(tone([60, 64, 67], seconds=1.2))
            for _ in range(int((length + 0.5) / 0.02)):
                note = text(tuner).split()[0]
                if note != "--" and (not seen or seen[-1] != note):
                    seen.append(note)
                await pilot.pause(0.02)

    try:
        run(go())
    finally:
        if server:
            source.close()
            server.close()
    assert [n for n in seen if n in ("C4", "E4", "G4")] == ["C4", "E4", "G4"], seen


# -- the control channel ---------------------------------------------------------------------


def test_remote_source_mirrors_the_runner(runner: LiveRunner, player: Player, tmp_path: Path) -> None:
    with ControlServer(runner, port=0, take_dir=tmp_path) as server:
        remote = RemoteSource("127.0.0.1", server.port)
        try:
            wait_until(lambda: bool(runner.snapshot().connections), "the player's connection")
            snap = remote.snapshot()
            assert snap.client == runner.snapshot().client
            assert snap.params == runner.snapshot().params
            assert (player.out, f"{snap.client}:in_1") in snap.connections
            remote.set_param("notes.silence_db", -41.0)
            assert runner.snapshot().params["notes.silence_db"] == -41.0
            remote.set_midi_enabled(False)
            assert runner.snapshot().midi_enabled is False
            remote.set_osc_enabled(False)
            assert runner.snapshot().osc_enabled is False
            assert player.out in remote.audio_outputs()
            remote.connect(player.out, 1, False)
            wait_until(lambda: not runner.snapshot().connections, "the disconnection")
            take = tmp_path / "remote.mid"
            remote.start_recording(take)
            remote.stop_recording()
            wait_until(take.exists, "the remote take's MIDI file")
            assert server.rejected == 0
        finally:
            remote.close()


BAD_REQUESTS = [
    b"not json",
    b"[1, 2]",
    b'{"no": "op"}',
    b'{"op": "shutdown"}',
    b'{"op": "set_param", "key": "pitch.fmin_hz", "value": 30}',
    b'{"op": "set_param", "key": "onset.delta", "value": "0.1"}',
    b'{"op": "set_param", "key": "onset.delta", "value": true}',
    b'{"op": "set_param", "key": "onset.delta", "value": NaN}',
    b'{"op": "set_param", "key": "notes.silence_db", "value": 12}',
    b'{"op": "set_param", "key": "notes.min_confidence", "value": 0.5, "extra": 1}',
    b'{"op": "set_midi_enabled", "enabled": 0}',
    b'{"op": "set_osc_enabled"}',
    b'{"op": "start_recording", "name": "../relative.mid"}',
    b'{"op": "start_recording", "name": "not-a-midi-file.txt"}',
    b'{"op": "start_recording", "path": "/tmp/take.mid"}',
    b'{"op": "connect", "source": "x:y", "input": 9, "connected": true}',
    b'{"op": "connect", "source": "", "input": 1, "connected": true}',
    b'{"op": "connect", "source": "x:y", "input": 1, "connected": "yes"}',
    b'\xff\xfe{"op": "snapshot"}',
    b'{"op": "scale_tempo", "factor": 10}',
    b'{"op": "scale_tempo", "factor": 0}',
    b'{"op": "scale_tempo", "factor": "2"}',
    b'{"op": "scale_tempo"}',
    b'{"op": "hold_tempo", "held": "yes"}',
    b'{"op": "tap_tempo", "at": 1000.0}',
    b'{"op": "tap_tempo", "at": 1e300}',
    b'{"op": "tap_tempo", "when": 1}',
]


def test_control_server_rejects_and_counts_malformed_requests(runner: LiveRunner) -> None:
    before = runner.snapshot()
    with ControlServer(runner, port=0) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        f = sock.makefile("rwb")
        for line in BAD_REQUESTS:
            f.write(line + b"\n")
            f.flush()
            reply = f.readline()
            assert b'"ok":false' in reply, (line, reply)
        assert server.rejected == len(BAD_REQUESTS)
        # The same connection still serves good requests.
        f.write(b'{"op": "snapshot"}\n')
        f.flush()
        assert f.readline().startswith(b'{"ok":true')
        # An over-long line is refused and the connection closed.
        f.write(b'{"op": "snapshot", "pad": "' + b"x" * 20000 + b'"}\n')
        f.flush()
        assert b"too long" in f.readline()
        assert f.readline() == b""
        assert server.rejected == len(BAD_REQUESTS) + 1
    after = runner.snapshot()
    assert after.params == before.params
    assert after.midi_enabled and after.osc_enabled and after.recording is None
    assert not after.tempo_held


def test_control_server_binds_to_loopback_only(runner: LiveRunner) -> None:
    for host in ("0.0.0.0", "192.168.1.2", "example.org"):
        with pytest.raises(BridgeError, match="loopback"):
            ControlServer(runner, host=host, port=0)
    with ControlServer(runner, port=0) as server:
        assert server.host == "127.0.0.1"


def test_remote_source_without_a_server_is_a_bridge_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(BridgeError, match="no daw-bridge control server"):
        RemoteSource("127.0.0.1", port).snapshot()


def test_a_lost_source_shows_in_the_status_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> None:
        app = BridgeApp(RemoteSource("127.0.0.1", port))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.pause(0.1)
            assert "no daw-bridge control server" in text(app.status)
            await pilot.press("m", "o", "r")
            await pilot.pause(0.1)
            assert app.is_running
            assert any("no daw-bridge control server" in t for t in toasts(app))

    run(go())


# -- daw-bridge tui ----------------------------------------------------------------------------


def test_tui_subcommand_without_a_bridge_is_a_bridge_error() -> None:
    import argparse

    from tui.cli import add_subcommand

    parser = argparse.ArgumentParser(prog="daw-bridge", exit_on_error=False)
    add_subcommand(parser.add_subparsers(dest="command"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = parser.parse_args(["tui", "--port", str(port)])
    with pytest.raises(BridgeError, match=f"control port {port}"):
        args.handler(args)
    for bad in ("0", "70000", "x"):
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            parser.parse_args(["tui", "--port", bad])


def test_tui_attaches_to_a_running_daw_bridge(jack_server: Any, cli_command: list[str], tmp_path: Path) -> None:
    """`daw-bridge run --control-port P` in its own process; the UI attaches, steers it,
    quits, and the bridge runs on until it is stopped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = unique("tui-run")
    bridge = subprocess.Popen(
        [*cli_command, "run", "--name", name, "--control-port", str(port)],
        env=jack_server.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    remote = RemoteSource("127.0.0.1", port)
    try:

        def up() -> bool:
            try:
                return remote.snapshot().connected
            except BridgeError:
                return False

        wait_until(up, "the bridge's control port", timeout=15)
        start = remote.snapshot().params["notes.silence_db"]

        async def go() -> None:
            app = BridgeApp(remote)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: name in text(app.status), "the bridge's status")
                await pilot.press("G")
                await pilot.press("q")

        run(go())
        assert remote.snapshot().params["notes.silence_db"] == start + 3
        assert bridge.poll() is None  # quitting the UI leaves the bridge running
    finally:
        remote.close()
        bridge.terminate()
        _, err = bridge.communicate(timeout=15)
    assert bridge.returncode == 0, err


def test_jack_panel_lists_every_source_of_an_input(runner: LiveRunner, player: Player) -> None:
    """Two sources on in_1 at 80x24: both on the in_1 line, counted, none below the panel's edge."""
    other = SilentSource(unique("tui-second"))
    try:
        client = runner.snapshot().client
        runner.connect(other.port, 1)

        async def go() -> None:
            app = BridgeApp(runner)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: other.port in text(app.jack), "the second source on screen")
                lines = text(app.jack).splitlines()
                assert len(lines) <= app.jack.content_size.height
                line = next(ln for ln in lines if ln.startswith("in_1 ← "))
                assert line.startswith("in_1 ← (2) ") and player.out in line and other.port in line
                assert sorted(src for src, dst in runner.snapshot().connections if dst == f"{client}:in_1") == sorted(
                    [player.out, other.port]
                )

        run(go())
    finally:
        other.close()


def test_two_inputs_both_on_screen_at_80x24(jack_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full panels would push in_2 below the screen: they go compact and both show, whole."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    live = LiveRunner(LiveOptions(client_name=unique("tui-two"), inputs=2), rust_engine.EngineConfig({}))
    live.start()
    try:

        async def go() -> None:
            app = BridgeApp(live)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: len(app.panels) == 2, "two panels")
                await pilot.pause()
                screen = app.inputs.region
                for panel in app.panels:
                    assert panel.has_class("compact")
                    assert screen.contains_region(panel.region), f"{panel.border_title} off screen"
                    assert "Hz" in text(panel.tuner) and "rms" in text(panel.meter)
                await pilot.resize_terminal(120, 40)
                await until(pilot, lambda: not app.panels[0].has_class("compact"), "full panels again")

        run(go())
    finally:
        live.stop()


# -- beat controls ------------------------------------------------------------------------


def beat_line(app: BridgeApp) -> str:
    return next(line for line in text(app.outputs).splitlines() if line.startswith("BEAT"))


def test_beat_keys_halve_double_and_hold_and_taps_set_the_tempo(runner: LiveRunner, player: Player) -> None:
    """A 90 BPM groove looped into the bridge: the BEAT line shows its tempo; ']' doubles it,
    '[' halves it back, 'h' holds it (and says so); four taps a third of a second apart over
    the control port set 180 BPM, the groove's double time, which the tracker keeps (a tempo
    of no octave relation to the groove, such as 60, it would rightly leave)."""
    from bridge.signals import groove

    player.play(groove("four_on_the_floor", 90, seconds=8.0).signal, loop=True)

    def tempo() -> float:
        return runner.snapshot().inputs[0].bpm

    def near(bpm: float) -> Callable[[], bool]:
        return lambda: abs(tempo() / bpm - 1) < 0.04

    async def scenario() -> None:
        app = BridgeApp(runner)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, near(90), "the groove's 90 BPM", timeout=20)
            await until(pilot, lambda: "BPM" in beat_line(app), "the BEAT line")
            assert "90" in beat_line(app) or "89" in beat_line(app) or "91" in beat_line(app), beat_line(app)
            await pilot.press("right_square_bracket")
            await until(pilot, near(180), "the doubled tempo", timeout=10)
            await pilot.press("left_square_bracket")
            await until(pilot, near(90), "the halved tempo", timeout=10)
            await pilot.press("h")
            await until(pilot, lambda: runner.snapshot().tempo_held and "held" in beat_line(app), "hold")
            await pilot.press("h")
            await until(pilot, lambda: not runner.snapshot().tempo_held, "hold released")

    run(scenario())
    with ControlServer(runner, port=0) as server:
        remote = RemoteSource(port=server.port)
        now = time.time()
        for k in range(4):
            remote.tap_tempo(now - 1.0 + k / 3)
        remote.close()
    wait_until(near(180), "the tapped 180 BPM", timeout=10)
