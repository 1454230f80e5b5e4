"""The control port under abuse (issue 12): bursts, a stopped server, slow clients,
numbers too big for a float, and a client aimed at something that is not a bridge.

Each test runs a real `daw-bridge run` process against a real dummy jackd and
talks to it over real TCP connections.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.control import MAX_CLIENTS, ControlServer
from bridge.signals import melody_audio
from conftest import CLI
from live_bridge import MELODY, ask, control_connection, free_port, ons, play_and_capture, wait_until


def _logged_note_ons(log: Path) -> list[int]:
    return [r["note"] for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "note_on"]


def test_a_burst_of_controls_never_stops_the_dispatch_thread(jack_server, bridges, players, tmp_path, monkeypatch):
    """2000 requests in one go on one connection: every one answered, and the
    dispatch thread (event log, OSC, takes) still works afterwards."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    control, log = free_port(), tmp_path / "events.jsonl"
    bridge = bridges(jack_server, "ctl-burst", "--control-port", str(control), "--events", str(log))
    with control_connection(control) as sock:
        f = sock.makefile("rwb")
        lines = [b'{"op":"set_midi_enabled","enabled":%s}\n' % (b"true" if k % 2 else b"false") for k in range(2000)]
        f.write(b"".join(lines))
        f.flush()
        replies = [json.loads(f.readline()) for _ in lines]
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
        assert ask(f, b'{"op":"snapshot"}')["result"]["midi_enabled"] is True  # the last one asked for
    seq = play_and_capture(players, "ctl-burst-daw", "ctl-burst", melody_audio(MELODY)[0])
    assert ons(seq) == MELODY
    wait_until(lambda: _logged_note_ons(log) == MELODY, 10, "the melody in the event log", bridge.report)
    err = bridge.stop()
    assert "dispatch" not in err, err


def test_controls_while_the_server_is_stopped_are_kept_not_fatal(fresh_jack_server, bridges, tmp_path, monkeypatch):
    """With jackd stopped (SIGSTOP) the process callback drains nothing: 300 changes
    must neither fill anything up for good nor kill the dispatch thread; once the
    server runs again the bridge still answers, keeps the last value asked for, and
    stops cleanly (a dead dispatch thread would make it exit 1).

    What reaches the graph afterwards is not asserted here: jackd2 itself sometimes
    drops a client across its own SIGSTOP/SIGCONT (an interrupted read of a
    notification, "Cannot read socket ... Interrupted system call" in its log)."""
    server = fresh_jack_server
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server.name)
    control = free_port()
    bridge = bridges(server, "ctl-stop", "--control-port", str(control))
    jackd_pid = server._server.process.pid
    with control_connection(control) as sock:
        f = sock.makefile("rwb")
        os.kill(jackd_pid, signal.SIGSTOP)
        try:
            for k in range(300):
                value = round(0.02 + 0.001 * ((k + 1) % 50), 3)  # ends on the default, 0.02
                reply = ask(f, b'{"op":"set_param","key":"onset.delta","value":%r}' % value)
                assert reply["ok"], reply
                reply = ask(f, b'{"op":"set_midi_enabled","enabled":true}')
                assert reply["ok"], reply
            time.sleep(0.5)  # the dispatch thread tries to pass them on meanwhile
        finally:
            os.kill(jackd_pid, signal.SIGCONT)
        time.sleep(0.5)  # the dispatch thread passes the latest values on
        snap = ask(f, b'{"op":"snapshot"}')["result"]
        assert snap["params"]["onset.delta"] == value == 0.02 and snap["midi_enabled"] is True
    err = bridge.stop()  # exit 0: the dispatch thread is alive
    assert "dispatch thread" not in err, err


def test_a_dead_dispatch_thread_is_reported_and_the_exit_status_says_so(jack_server, tmp_path):
    """No request can kill the dispatch thread any more, so the fault is injected: the
    bridge must say so on stderr, close its outputs and exit non-zero instead of
    running on silently."""
    script = (
        "import sys\n"
        "from bridge import live\n"
        "def broken(self, events):\n"
        "    raise RuntimeError('injected fault')\n"
        "live.LiveRunner._update_state = broken\n"
        "from bridge.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    take = tmp_path / "take.mid"
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "--name", "ctl-dead", "--record-midi", str(take), "--duration", "20"],
        env=jack_server.env, capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "daw-bridge: error: the dispatch thread stopped" in done.stderr, done.stderr
    assert "injected fault" in done.stderr
    assert take.exists()  # the take is still written on the way out


@pytest.fixture
def runner(jack_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A started LiveRunner in this process, for the control server's own tests."""
    import rust_engine

    from bridge.live import LiveOptions, LiveRunner

    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    runner = LiveRunner(LiveOptions(client_name="ctl-runner"), rust_engine.EngineConfig({}))
    runner.start()
    yield runner
    runner.stop()


def test_slow_clients_cannot_hold_the_control_port(runner):
    """Connections that trickle a byte now and then are dropped at the request-line
    deadline, so a real client gets in."""
    server = ControlServer(runner, port=0, deadline_s=1.5)
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(MAX_CLIENTS)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.4):
            for s in slow:
                try:
                    s.send(b" ")
                except OSError:
                    pass

    dribbler = threading.Thread(target=trickle)
    dribbler.start()
    try:
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            assert b"too many clients" in sock.makefile("rb").readline()  # all slots held now
        time.sleep(1.5)  # past the deadline
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            reply = ask(sock.makefile("rwb"), b'{"op":"snapshot"}')
        assert reply["ok"], reply
        for s in slow:
            assert s.recv(100) == b"", "a slow client was not dropped"
    finally:
        stop.set()
        dribbler.join()
        for s in slow:
            s.close()
        server.close()


def test_a_client_that_keeps_up_is_never_cut_off(runner):
    server = ControlServer(runner, port=0, deadline_s=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            f = sock.makefile("rwb")
            for _ in range(10):
                assert ask(f, b'{"op":"snapshot"}')["ok"]
                time.sleep(0.1)
    finally:
        server.close()


def test_a_huge_integer_is_refused_and_counted(runner):
    with ControlServer(runner, port=0) as server:
        for value in (b"1" + b"0" * 400, b"-" + b"9" * 4000):
            reply = server.handle(b'{"op":"set_param","key":"onset.delta","value":%s}' % value)
            assert reply["ok"] is False and "finite number" in reply["error"], reply
        assert server.rejected == 2
        assert server.handle(b'{"op":"set_param","key":"onset.delta","value":1}')["ok"] is True


class _NotABridge(socketserver.StreamRequestHandler):
    """Answers every line with `reply`, as some other service on the port would."""

    reply = b""

    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(self.reply)


@pytest.fixture(params=[
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    b'{"jsonrpc": "2.0", "id": 1, "result": 3}\n',
    b'{"ok": true, "result": {"inputs": 5}}\n',
    b"",
])
def not_a_bridge(request: pytest.FixtureRequest) -> Iterator[int]:
    handler = type("Handler", (_NotABridge,), {"reply": request.param})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        yield server.server_address[1]
        server.shutdown()
        thread.join()


def test_tui_aimed_at_something_else_says_so(not_a_bridge: int) -> None:
    done = subprocess.run(
        [*CLI, "tui", "--port", str(not_a_bridge)], capture_output=True, text=True, timeout=30, check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("daw-bridge: error: "), done.stderr
    assert f"127.0.0.1:{not_a_bridge}" in lines[0] and "daw-bridge" in lines[0], lines[0]
