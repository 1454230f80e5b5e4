"""The dummy JACK server of bridge/jackd.py and tests/jack_fixtures.py, against real jackd."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jack
import numpy as np
import pytest

from bridge import jackd
from bridge.jackd import unique_server_name as private_server_name

if TYPE_CHECKING:
    from jack_fixtures import DummyJack

# The fixtures, by name; also fine once tests/conftest.py loads them (a plugin registers once).
ROOT = Path(__file__).resolve().parent.parent
NOTE_ON = bytes([0x90, 64, 100])
TIMEOUT_S = 5.0


def open_client(server: DummyJack, name: str) -> jack.Client:
    return jack.Client(name, servername=server.name, no_start_server=True)


def test_server_carries_audio_and_midi_between_clients(jack_server: DummyJack) -> None:
    """Ports register and connect, and a known sample value and MIDI event arrive intact."""
    sender, receiver = open_client(jack_server, "sender"), open_client(jack_server, "receiver")
    audio_out = sender.outports.register("audio_out")
    midi_out = sender.midi_outports.register("midi_out")
    audio_in = receiver.inports.register("audio_in")
    midi_in = receiver.midi_inports.register("midi_in")
    got_audio: queue.Queue[float] = queue.Queue()
    got_midi: queue.Queue[tuple[int, bytes]] = queue.Queue()

    @sender.set_process_callback
    def _send(_frames: int) -> None:
        audio_out.get_array().fill(0.25)
        midi_out.clear_buffer()
        midi_out.write_midi_event(5, NOTE_ON)

    @receiver.set_process_callback
    def _receive(_frames: int) -> None:
        got_audio.put_nowait(float(np.max(audio_in.get_array())))
        for offset, data in midi_in.incoming_midi_events():
            got_midi.put_nowait((offset, bytes(data)))

    with sender, receiver:
        sender.connect(audio_out, audio_in)
        sender.connect(midi_out, midi_in)
        receiver.connect("system:capture_1", "receiver:audio_in")  # a driver port joins in too
        assert sorted(p.name for p in receiver.get_all_connections(audio_in)) == [
            "sender:audio_out", "system:capture_1"]
        assert [p.name for p in receiver.get_all_connections(midi_in)] == ["sender:midi_out"]
        assert midi_in.is_midi and not audio_in.is_midi
        assert got_midi.get(timeout=TIMEOUT_S) == (5, NOTE_ON)
        while (level := got_audio.get(timeout=TIMEOUT_S)) == 0.0:
            pass  # cycles from before the connection carry silence
        assert level == 0.25  # the dummy's capture port is silent, so the sum is the sender's


def test_fixture_server_has_requested_format(jack_server: DummyJack) -> None:
    client = open_client(jack_server, "format")
    try:
        assert (client.samplerate, client.blocksize) == (48000, 128)
        assert client.get_ports("system:capture_")  # the dummy backend's ports exist
    finally:
        client.close()


def test_factory_starts_server_with_other_period(
    jack_server_factory: Callable[..., DummyJack],
) -> None:
    server = jack_server_factory(period=256)
    assert jackd.probe(server.name) == (48000, 256)
    server.stop()  # JACK allows only a few servers per machine: free the slot now
    assert not server.is_running()


def test_start_uses_running_server_and_leaves_it_alone(jack_server: DummyJack) -> None:
    found = jackd.start(jack_server.name, period=1024)
    assert not found.owned
    assert (found.rate, found.period) == (48000, 128)  # the running server's format wins
    found.stop()
    assert jack_server.is_running()


def test_probe_reports_absent_server() -> None:
    assert jackd.probe(private_server_name("absent")) is None


def test_start_and_stop_own_server(tmp_path: Path) -> None:
    name = private_server_name("own")
    with jackd.start(name, period=256, log_path=tmp_path / "jackd.log") as server:
        assert server.owned and jackd.probe(name) == (48000, 256)
        assert server.command[server.command.index("-d") + 1] == "dummy"
    assert server.process is not None and server.process.returncode is not None
    assert not jackd.is_running(name)


def test_kill_and_restart_server(fresh_jack_server: DummyJack) -> None:
    fresh_jack_server.kill()
    assert not fresh_jack_server.is_running()
    fresh_jack_server.restart()  # same name after a crash: stale sockets must not block it
    client = open_client(fresh_jack_server, "after-restart")
    try:
        port = client.midi_outports.register("midi_out")
        assert port.name == "after-restart:midi_out"
    finally:
        client.close()


def test_start_raises_when_jackd_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no jackd on PATH
    with pytest.raises(jackd.JackdError, match="jackd not found"):
        jackd.start(private_server_name("missing"))


def test_start_raises_when_jackd_exits(tmp_path: Path) -> None:
    too_long = "x" * 100  # its socket path would not fit: jackd says "Failed to open server"
    with pytest.raises(jackd.JackdError, match="jackd exited .*Failed to open server"):
        server = jackd.start(too_long, log_path=tmp_path / "jackd.log", die_with_parent=True)
        server.stop()  # only reached if jackd wrongly accepted the name


def test_name_libjack_cannot_take_is_refused() -> None:
    with pytest.raises(jackd.JackdError, match="1 to 255 bytes"):
        jackd.probe("x" * 300)  # libjack itself would abort the process on this name


def test_cli_says_one_line_when_jackd_missing(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "bridge.jackd", "--name", private_server_name("cli")],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {jackd.MISSING_JACKD}"]


def test_server_dies_with_the_process_that_started_it() -> None:
    """die_with_parent: a test run that crashes leaves no jackd behind."""
    name = private_server_name("orphan")
    code = (f"import os, signal; from bridge import jackd; "
            f"jackd.start({name!r}, die_with_parent=True); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                   timeout=30, check=False)
    deadline = time.monotonic() + TIMEOUT_S
    while jackd.is_running(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not jackd.is_running(name)


@pytest.mark.parametrize("via", ["rtmidi", "mido"])
def test_rtmidi_jack_virtual_port_reaches_jack_client(
    jack_server: DummyJack, monkeypatch: pytest.MonkeyPatch, via: str,
) -> None:
    """python-rtmidi's JACK API (no ALSA sequencer here) carries MIDI into the JACK graph."""
    import mido
    import rtmidi

    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)  # rtmidi opens the default server
    if via == "rtmidi":
        out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=f"bridge-{via}")
        out.open_virtual_port("midi_out")
        send, close = out.send_message, out.delete
    else:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        port = backend.open_output(f"bridge-{via}", virtual=True, client_name=f"bridge-{via}")
        send, close = (lambda msg: port.send(mido.Message.from_bytes(msg))), port.close
    receiver = open_client(jack_server, f"rx-{via}")
    midi_in = receiver.midi_inports.register("midi_in")
    got: queue.Queue[bytes] = queue.Queue()

    @receiver.set_process_callback
    def _receive(_frames: int) -> None:
        for _offset, data in midi_in.incoming_midi_events():
            got.put_nowait(bytes(data))

    try:
        with receiver:
            sources = receiver.get_ports(f"bridge-{via}:", is_midi=True, is_output=True)
            assert len(sources) == 1, [p.name for p in receiver.get_ports(is_midi=True)]
            receiver.connect(sources[0], midi_in)
            for note in (60, 62, 64):
                send([0x90, note, 100])
            assert [got.get(timeout=TIMEOUT_S) for _ in range(3)] == [
                bytes([0x90, n, 100]) for n in (60, 62, 64)]
    finally:
        close()
