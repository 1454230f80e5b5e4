"""The live bridge as a user runs it, for the JACK tests: `daw-bridge run` as a
subprocess (`bridges`), the "DAW" players (`players`, Rust-callback players from
bridge.player), and helpers to read what came back (MIDI, takes, the control port).

A pytest plugin (tests/conftest.py loads it), so its fixtures need no import;
the helpers are imported from here by the test modules that use them.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jack
import mido
import numpy as np
import pytest

from bridge.errors import BridgeError
from bridge.player import Player, note_messages
from bridge.processes import stop_process
from conftest import CLI

MELODY = [60, 64, 67, 72, 67]


def notes(midi: list[tuple[int, bytes]]) -> list[tuple[str, int]]:
    """("on"/"off", note) of the note messages among (frame, bytes) MIDI events."""
    return [(kind, note) for kind, _frame, _channel, note in note_messages(midi)]


# -- signals and MIDI -------------------------------------------------------------------------


def assert_balanced(seq: list[tuple[str, int]]) -> None:
    """Every note-on is followed by its note-off before the next note-on; none left open."""
    sounding = None
    for kind, note in seq:
        if kind == "on":
            assert sounding is None, f"on {note} while {sounding} sounds: {seq}"
            sounding = note
        else:
            assert sounding == note, f"off {note} while {sounding} sounds: {seq}"
            sounding = None
    assert sounding is None, f"{sounding} left sounding: {seq}"


def take_notes(path: Path) -> list[tuple[str, int]]:
    """The note messages of a recorded take, read back with mido."""
    out = []
    for m in mido.merge_tracks(mido.MidiFile(path).tracks):
        if m.type == "note_on" and m.velocity > 0:
            out.append(("on", m.note))
        elif m.type == "note_off" or m.type == "note_on":
            out.append(("off", m.note))
    return out


def ons(seq: list[tuple[str, int]]) -> list[int]:
    return [n for kind, n in seq if kind == "on"]


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, context: Callable[[], str] | None = None
) -> float:
    """Polls `condition` every 10 ms; returns the seconds it took, fails after `timeout`.

    `context` (e.g. the bridge's stderr) is read only on failure and added to the message,
    so a timeout says what the other side was doing.
    """
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except OSError as e:  # e.g. the bridge closed the control connection
            detail = f"\n{context()}" if context is not None else ""
            pytest.fail(f"{type(e).__name__}: {e} while waiting for {what}{detail}")
        if time.monotonic() - start > timeout:
            detail = f"\n{context()}" if context is not None else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(0.01)


# -- the bridge as a subprocess ----------------------------------------------------------------


def _sigint_default() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it
    # ignored; a user's Ctrl-C reaches a foreground bridge with the default action.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Bridge:
    """One `daw-bridge run` process; its output goes to files (a pipe could fill up)."""

    def __init__(self, env: dict[str, str], args: list[str], work: Path) -> None:
        self.out_path, self.err_path = work / "bridge.out", work / "bridge.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*CLI, "run", *args], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=_sigint_default,  # noqa: PLW1509 - one signal() call; Popen has no other way
            )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def report(self) -> str:
        """Whether it still runs, and its stderr so far: for assertion messages."""
        code = self.proc.poll()
        state = "running" if code is None else f"exited with {code}"
        return f"--- bridge ({state}) stderr ---\n{self.stderr}"

    def stop(self, sig: int = signal.SIGTERM) -> str:
        """Stops it with `sig`; it must exit 0 without a traceback. Returns its stderr."""
        self.proc.send_signal(sig)
        self.proc.wait(30)
        err = self.stderr
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err
        return err

    def close(self) -> None:
        """Ends it if still running: SIGTERM first. A SIGKILLed client makes jackd die of
        SIGPIPE when it is stopped next, and a jackd that dies keeps its slot in JACK's
        server registry (eight slots per machine) until a server of its name runs again."""
        stop_process(self.proc, timeout=15)


@pytest.fixture
def bridges(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    """`start(server, name, *args)`: a bridge named `name` whose ports are registered."""
    started: list[Bridge] = []

    def start(server: Any, name: str, *args: str) -> Bridge:
        work = tmp_path / f"run-{len(started)}"
        work.mkdir()
        bridge = Bridge(server.env, ["--name", name, *args], work)
        started.append(bridge)
        client = graph_client(server)
        try:
            wait_until(
                lambda: bridge.proc.poll() is not None or client.get_ports(f"^{name}:midi_out$"),
                20, f"{name}:midi_out",
            )
        finally:
            client.close()
        assert bridge.proc.poll() is None, f"bridge exited early: {bridge.stderr}"
        return bridge

    yield start
    for bridge in started:
        bridge.close()


class Players:
    """Makes Players and closes each exactly once (a closed JACK client must not be touched)."""

    def __init__(self) -> None:
        self._open: list[Player] = []

    def __call__(self, name: str, audio: np.ndarray, loop: bool = False) -> Player:
        self._open.append(Player(name, audio, loop=loop))
        return self._open[-1]

    def close(self, player: Player) -> None:
        self._open.remove(player)
        player.close()

    def close_all(self) -> None:
        while self._open:
            self.close(self._open[-1])


@pytest.fixture
def players() -> Iterator[Players]:
    """`players(name, audio, loop=False)`: a Player closed at the end of the test."""
    pool = Players()
    yield pool
    pool.close_all()


def graph_client(server: Any) -> jack.Client:
    return jack.Client("flt-graph", servername=server.name, no_start_server=True)


def connect_when_there(
    player: Player, port: str, timeout: float = 10, context: Callable[[], str] | None = None
) -> None:
    """Connects `port` (the bridge's midi_out) to the player's midi_in as soon as it exists;
    `context` as for `wait_until`."""
    # A port shows up as soon as it is registered, but JACK refuses to connect it
    # until its client is activated a moment later: retry until then.
    def connected() -> bool:
        if not player.ports(f"^{port}$"):
            return False
        try:
            player.connect(port, player.midi_in)
        except BridgeError:
            return False
        return True

    wait_until(connected, timeout, port, context)


def _connected(player: Player, source: str, destination: str) -> bool:
    try:
        player.connect(source, destination)
    except BridgeError:
        return False
    return True


def play_and_capture(
    players: Players, name: str, bridge: str, audio: np.ndarray, context: Callable[[], str] | None = None
) -> list[tuple[str, int]]:
    """Plays `audio` into `bridge`:in_1 and returns the notes that came back."""
    p = players(name, audio)
    # Right after a server hiccup the bridge may still be coming back (a new client):
    # connect once its ports take a connection, then play.
    for source, destination in ((p.out, f"{bridge}:in_1"), (f"{bridge}:midi_out", p.midi_in)):
        wait_until(lambda s=source, d=destination: _connected(p, s, d), 20, f"{source} -> {destination}", context)
    p.play()
    assert p.wait_finished(30), "the player did not finish"
    time.sleep(0.3)  # the last note-off
    players.close(p)
    return p.notes()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def control_connection(port: int) -> socket.socket:
    """A connection to the bridge's control port, once it listens (it opens after the JACK client)."""
    box: list[socket.socket] = []

    def attempt() -> bool:
        try:
            box.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except ConnectionRefusedError:
            return False
        return True

    wait_until(attempt, 20, f"the control port {port}")
    return box[0]


def ask(f: Any, line: bytes) -> dict[str, Any]:
    """One request line on a control connection's file `f`, and its reply."""
    f.write(line + b"\n")
    f.flush()
    reply = f.readline()
    assert reply, f"no reply to {line[:60]!r}: connection closed"
    return json.loads(reply)
