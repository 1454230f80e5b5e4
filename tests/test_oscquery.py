"""OSC control in (`run --osc-in`) and OSCQuery (`run --oscquery`) with real parts: a real
`daw-bridge run` on a dummy jackd, OSC sent over real UDP with python-osc's client, the
effect read back over the control port, the namespace over HTTP with urllib and LISTEN
with a `websockets` client. Nothing leaves the machine: every socket is on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient
from websockets.sync.client import ClientConnection, connect

from bridge.addresses import OSC_MESSAGES, control_addresses, control_reference_markdown, osc_address
from bridge.params import PARAMS
from bridge.signals import melody_audio
from conftest import CLI, ROOT
from live_bridge import MELODY, Bridge, ask, control_connection, free_port, take_notes, wait_until


@pytest.fixture(autouse=True)
def _players_on_the_test_server(jack_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)


def _snapshot(f: Any) -> dict[str, Any]:
    reply = ask(f, b'{"op":"snapshot"}')
    assert reply["ok"], reply
    return reply["result"]


def _printed_port(bridge: Bridge, pattern: str) -> int:
    found: list[int] = []

    def printed() -> bool:
        if m := re.search(pattern, bridge.stderr):
            found.append(int(m.group(1)))
        return bool(found)

    wait_until(printed, 20, pattern, bridge.report)
    return found[0]


def test_osc_controls_change_the_running_bridge_and_bad_ones_are_refused_and_counted(
    jack_server, bridges, tmp_path, monkeypatch
):
    """Every kind of control over real UDP, read back over the control port; then a set of
    bad messages (out of range, wrong type, unknown address, a path, a name in use, a
    malformed packet): none changes anything, each address is logged once, all are counted."""
    monkeypatch.chdir(tmp_path)  # the take directory is the bridge's working directory
    udp, control = free_port(socket.SOCK_DGRAM), free_port()
    bridge = bridges(jack_server, "oscin", "--osc-in", str(udp), "--control-port", str(control))
    osc = SimpleUDPClient("127.0.0.1", udp)
    with control_connection(control) as sock:
        f = sock.makefile("rwb")
        defaults = _snapshot(f)
        assert defaults["midi_enabled"] and defaults["osc_enabled"] and defaults["recording"] is None
        # Every live setting, each to a value other than its default (as a float32, read back
        # as sent; a whole one, a key or a scale, as an integer).
        wanted = {}
        for key, p in PARAMS.items():
            value = round(p.lo + (p.hi - p.lo) * 0.37, 0 if p.whole else 3)
            value = int(value) if p.whole else value
            assert value != defaults["params"][key]
            osc.send_message("/bridge/control/" + key.replace(".", "/"), value)
            wanted[key] = value
        wait_until(lambda: _snapshot(f)["params"] == wanted, 10, f"params {wanted}", bridge.report)
        osc.send_message("/bridge/control/onset/delta", 1)  # an integer is a number too
        wait_until(lambda: _snapshot(f)["params"]["onset.delta"] == 1.0, 10, "onset.delta 1 (i)", bridge.report)
        osc.send_message("/bridge/control/midi", 0)
        osc.send_message("/bridge/control/osc", False)
        wait_until(lambda: not _snapshot(f)["midi_enabled"] and not _snapshot(f)["osc_enabled"], 10, "both off")
        osc.send_message("/bridge/control/midi", True)
        osc.send_message("/bridge/control/osc", 1)
        wait_until(lambda: _snapshot(f)["midi_enabled"] and _snapshot(f)["osc_enabled"], 10, "both on again")
        osc.send_message("/bridge/control/record", "take-1.mid")
        wait_until(lambda: (_snapshot(f)["recording"] or "").endswith("/take-1.mid"), 10, "a take", bridge.report)
        assert (tmp_path / "take-1.mid").is_file()
        osc.send_message("/bridge/control/record/stop", [])
        wait_until(lambda: _snapshot(f)["recording"] is None, 10, "the take stopped", bridge.report)
        assert take_notes(tmp_path / "take-1.mid") == []  # a valid, empty MIDI file

        before = _snapshot(f)
        bad: list[tuple[str, Any]] = [
            ("/bridge/control/onset/delta", 5.0),  # out of range
            ("/bridge/control/onset/delta", 5.0),  # again: counted, not logged again
            ("/bridge/control/onset/delta", "0.1"),  # a string
            ("/bridge/control/onset/delta", [0.1, 0.2]),  # two numbers
            ("/bridge/control/onset/delta", float("nan")),
            ("/bridge/control/notes/scale_root", 2.5),  # a key is a whole number
            ("/bridge/control/midi", 2),
            ("/bridge/control/osc", 0.5),
            ("/bridge/control/nothing", 1),
            ("/bridge/control/*", 1),  # no patterns
            ("/bridge/control/record", "../escape.mid"),
            ("/bridge/control/record", "take-1.mid"),  # exists already
            ("/bridge/control/record/stop", 1),
        ]
        for address, value in bad:
            osc.send_message(address, value)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"/bridge/control/midi\0\0\0\0,i", ("127.0.0.1", udp))  # cut short: malformed
        osc.send_message("/bridge/control/notes/min_confidence", 0.5)  # a good one last: all are in
        wait_until(lambda: _snapshot(f)["params"]["notes.min_confidence"] == 0.5, 10, "the last control")
        after = _snapshot(f)
    assert after["params"] == {**before["params"], "notes.min_confidence": 0.5}
    assert (after["midi_enabled"], after["osc_enabled"], after["recording"]) == (True, True, None)
    assert not (tmp_path.parent / "escape.mid").exists()
    err = bridge.stop()
    refusals = [line for line in err.splitlines() if "refused:" in line]
    assert len([r for r in refusals if "/bridge/control/onset/delta " in r]) == 1, refusals
    # One per address: delta, scale_root, midi, osc, nothing, *, record, record/stop, malformed.
    assert len(refusals) == 9, refusals
    assert "/bridge/control/nothing refused: not a control" in err
    assert "/bridge/control/notes/scale_root refused: notes.scale_root must be a whole number" in err
    assert "/bridge/control/midi refused: takes 1 or 0 (i) or T or F, got 2" in err
    sent = len(PARAMS) + 7 + len(bad) + 1  # 7 good controls after the params; the good one last
    assert f"daw-bridge: OSC control in: {sent} messages, {len(bad) + 1} refused" in err, err


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        return json.loads(r.read())


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("CONTENTS", {}).values():
        yield from _nodes(child)


def test_the_namespace_lists_every_stream_and_control_and_a_float_sent_reads_back(jack_server, bridges):
    """--oscquery alone (the controls on a free UDP port, given by HOST_INFO): the tree holds
    every output address of both inputs, read-only with its type, and every control,
    writable with its range and value; a float sent to the HOST_INFO port is the VALUE after."""
    bridge = bridges(jack_server, "oscq", "--inputs", "2", "--oscquery", "0")
    port = _printed_port(bridge, r"OSCQuery namespace http://127\.0\.0\.1:(\d+)/")
    info = _get(port, "/?HOST_INFO")
    assert info["NAME"] == "oscq" and info["OSC_TRANSPORT"] == "UDP" and info["OSC_IP"] == "127.0.0.1"
    assert info["EXTENSIONS"]["LISTEN"] is True and info["EXTENSIONS"]["VALUE"] is True
    assert f"OSC control in on udp 127.0.0.1:{info['OSC_PORT']} " in bridge.stderr

    tree = _get(port, "/")
    nodes = {n["FULL_PATH"]: n for n in _nodes(tree)}
    assert tree["FULL_PATH"] == "/" and "bridge" in tree["CONTENTS"]
    for k in (1, 2):
        for kind, spec in OSC_MESSAGES.items():
            node = nodes[osc_address("/bridge", k, 2, kind)]
            assert node["ACCESS"] == 1 and node["DESCRIPTION"].startswith(spec.meaning[:20])
            assert set(node["TYPE"]) == {a.type for a in spec.args} and len(node["TYPE"]) == len(node["RANGE"])
    assert len(nodes["/bridge/1/bands"]["TYPE"]) == 8 and len(nodes["/bridge/2/chroma"]["TYPE"]) == 12
    controls = control_addresses("/bridge")
    assert {p for p, n in nodes.items() if p.startswith("/bridge/control/") and n["ACCESS"]} == set(controls)
    for address, spec in controls.items():
        node = nodes[address]
        if spec.key is not None:
            p = PARAMS[spec.key]
            kind = "i" if p.whole else "f"
            assert (node["TYPE"], node["ACCESS"], node["RANGE"]) == (kind, 3, [{"MIN": p.lo, "MAX": p.hi}])
            assert node["VALUE"] == [p.default] and isinstance(node["VALUE"][0], int) == p.whole
    assert nodes["/bridge/control/midi"]["VALUE"] == [True] and nodes["/bridge/control/record"]["VALUE"] == [""]
    assert nodes["/bridge/control/record/stop"]["ACCESS"] == 2 and "VALUE" not in nodes["/bridge/control/record/stop"]

    # One attribute; one node; the errors of the proposal.
    assert _get(port, "/bridge/control/onset/delta?RANGE") == {"RANGE": [{"MIN": 0.0, "MAX": 1.0}]}
    assert _get(port, "/bridge/1/pitch?ACCESS") == {"ACCESS": 1}
    assert _get(port, "/bridge/control/midi")["FULL_PATH"] == "/bridge/control/midi"
    assert _status(port, "/bridge/control/record/stop?VALUE") == 204
    assert _status(port, "/bridge/nothing") == 404
    assert _status(port, "/bridge/control/midi?COLOUR") == 400

    osc = SimpleUDPClient("127.0.0.1", info["OSC_PORT"])
    osc.send_message("/bridge/control/onset/delta", 0.3)
    wait_until(lambda: _get(port, "/bridge/control/onset/delta?VALUE") == {"VALUE": [0.3]}, 10, "VALUE 0.3", bridge.report)
    osc.send_message("/bridge/control/midi", False)
    wait_until(lambda: _get(port, "/bridge/control/midi?VALUE") == {"VALUE": [False]}, 10, "midi off", bridge.report)
    bridge.stop()


@contextmanager
def _listener(port: int, *paths: str) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10, max_queue=None) as ws:
        for path in paths:
            ws.send(json.dumps({"COMMAND": "LISTEN", "DATA": path}))
        yield ws


def _packets(ws: ClientConnection, quiet_s: float = 1.0) -> list[OscMessage]:
    out = []
    while True:
        try:
            data = ws.recv(timeout=quiet_s)
        except TimeoutError:
            return out
        assert isinstance(data, bytes), data
        out.append(OscMessage(data))


def test_listen_streams_the_melodys_notes_and_a_controls_changes_as_osc(jack_server, bridges, players):
    """LISTEN over the WebSocket on the OSCQuery port: /bridge/note brings the melody's
    note-ons (and note-offs) as binary OSC, in order; /bridge/control/midi brings its
    value when an OSC message switches it; an unlistened stream brings nothing."""
    udp = free_port(socket.SOCK_DGRAM)
    bridge = bridges(jack_server, "oscq-listen", "--osc-in", str(udp), "--oscquery", "0")
    port = _printed_port(bridge, r"OSCQuery namespace http://127\.0\.0\.1:(\d+)/")
    with _listener(port, "/bridge/note", "/bridge/control/midi", "/bridge/nothing") as ws:
        first = _packets(ws, 1.0)
        assert [(m.address, m.params) for m in first] == [("/bridge/control/midi", [True])], first
        audio, _ = melody_audio(MELODY)
        p = players("oscq-listen-daw", audio)
        p.start(["oscq-listen:in_1"])
        assert p.wait_finished(30), "the player did not finish"
        SimpleUDPClient("127.0.0.1", udp).send_message("/bridge/control/midi", 0)
        got = _packets(ws, 1.5)
    notes = [m for m in got if m.address == "/bridge/note"]
    assert {m.address for m in got} == {"/bridge/note", "/bridge/control/midi"}, got
    assert [m.params[0] for m in notes if m.params[1] > 0] == MELODY, notes
    assert len([m for m in notes if m.params[1] == 0]) == len(MELODY), notes
    assert [m.params for m in got if m.address == "/bridge/control/midi"] == [[False]]
    bridge.stop()


def test_osc_in_and_oscquery_flag_errors_and_the_non_loopback_warning(jack_server):
    """Bad values and busy ports are one line and exit 2; a non-loopback host warns before
    it binds (an address of TEST-NET-1, which no interface has: nothing listens beyond loopback)."""
    for flag, value in (("--osc-in", "127.0.0.1:osc"), ("--oscquery", "[::1]")):
        r = subprocess.run([*CLI, "run", flag, value], capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2 and r.stderr.startswith(f"daw-bridge: error: {flag}:"), r.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        r = subprocess.run([*CLI, "run", "--osc-in", str(busy.getsockname()[1]), "--duration", "1"],
                           env=jack_server.env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2, r.stderr
    assert re.fullmatch(r"daw-bridge: error: --osc-in: cannot listen on 127\.0\.0\.1:\d+: .*\n", r.stderr), r.stderr
    for flag, warned, failed in (
        ("--osc-in", ["the OSC control in"], "--osc-in"),
        ("--oscquery", ["the OSC control in", "the OSCQuery server"], "--oscquery (its OSC control in)"),
    ):
        r = subprocess.run([*CLI, "run", flag, "192.0.2.1:0", "--duration", "1"], env=jack_server.env,
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.splitlines()
        assert [line.split(" will listen on 192.0.2.1")[0] for line in lines[:-1]] == [
            f"daw-bridge: warning: {what}" for what in warned
        ], r.stderr
        assert lines[-1].startswith(f"daw-bridge: error: {failed}: cannot listen on 192.0.2.1:0: "), r.stderr


def test_python_m_bridge_addresses_lists_the_control_in_addresses_and_the_docs_have_them():
    out = subprocess.run([sys.executable, "-m", "bridge.addresses"], capture_output=True, text=True, timeout=60, check=True).stdout
    for address, spec in control_addresses("/bridge").items():
        types = spec.types.replace("|", "\\|") or "-"
        assert f"| `{address}` | `{types}` |" in out, address
    table = control_reference_markdown().strip()
    assert table in out and table in (ROOT / "README.md").read_text() and table in (ROOT / "docs" / "osc.md").read_text()



def test_osc_tempo_controls_double_halve_hold_and_tap_the_tracked_tempo(jack_server, bridges, players):
    """A 90 BPM groove looped into the bridge; over real UDP: /tempo/double gives 180,
    /tempo/hold holds and releases (also its OSCQuery VALUE), four /tempo/tap at the groove's
    tempo bring 90 back (a tapped tempo of no octave relation to the groove the tracker would
    rightly leave), and /tempo/double and /tempo/halve again; a trigger sent an argument is refused."""
    from bridge.signals import groove

    udp, control, query = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    bridge = bridges(jack_server, "oscbeat", "--osc-in", str(udp), "--control-port", str(control),
                     "--oscquery", str(query))
    player = players("oscbeat-groove", groove("four_on_the_floor", 90, seconds=8.0).signal, loop=True)
    player.start(["oscbeat:in_1"])
    osc = SimpleUDPClient("127.0.0.1", udp)
    with control_connection(control) as sock:
        f = sock.makefile("rwb")

        def near(bpm: float) -> Any:
            return lambda: abs(_snapshot(f)["inputs"][0]["bpm"] / bpm - 1) < 0.04

        wait_until(near(90), 20, "the groove's 90 BPM", bridge.report)
        osc.send_message("/bridge/control/tempo/double", [])
        wait_until(near(180), 10, "the doubled tempo", bridge.report)
        osc.send_message("/bridge/control/tempo/hold", 1)
        wait_until(lambda: _snapshot(f)["tempo_held"], 10, "held", bridge.report)
        assert _get(query, "/bridge/control/tempo/hold?VALUE") == {"VALUE": [True]}
        osc.send_message("/bridge/control/tempo/hold", False)
        wait_until(lambda: not _snapshot(f)["tempo_held"], 10, "released", bridge.report)
        osc.send_message("/bridge/control/tempo/halve", 2.0)  # a trigger takes no argument
        for k in range(4):  # tapped when each arrives: 90 BPM
            if k:
                time.sleep(60 / 90)
            osc.send_message("/bridge/control/tempo/tap", [])
        wait_until(near(90), 10, "the tapped 90 BPM", bridge.report)
        osc.send_message("/bridge/control/tempo/double", [])
        wait_until(near(180), 10, "doubled again", bridge.report)
        osc.send_message("/bridge/control/tempo/halve", [])
        wait_until(near(90), 10, "the halved tempo", bridge.report)
    err = bridge.stop()
    assert "/bridge/control/tempo/halve refused: takes no arguments, got 2.0" in err, err
    assert "daw-bridge: OSC control in: 10 messages, 1 refused" in err, err
