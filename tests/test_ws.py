"""The WebSocket feed and browser page (`daw-bridge run --ws`) with real parts: a real
`daw-bridge run` on a dummy jackd fed by a Player, WebSocket clients of the `websockets`
library, HTTP requests with urllib, and Debian's chromium, headless, driven over the
DevTools protocol. Nothing leaves the machine: every socket is on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bridge.analyze import note_name
from bridge.loop_server import QUEUE_MAX
from bridge.signals import melody_audio
from bridge.ws import page, parse_listen
from conftest import CLI, run_cli
from live_bridge import MELODY, Bridge, wait_until


@pytest.fixture(autouse=True)
def _players_on_the_test_server(jack_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)


def ws_port(bridge: Bridge) -> int:
    """The port `--ws 127.0.0.1:0` got, as the bridge prints it."""
    found: list[int] = []

    def printed() -> bool:
        if m := re.search(r"browser page http://127\.0\.0\.1:(\d+)/", bridge.stderr):
            found.append(int(m.group(1)))
        return bool(found)

    wait_until(printed, 20, "the WebSocket port on stderr", bridge.report)
    return found[0]


@contextmanager
def client(port: int, subscribe: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[ClientConnection]:
    """A WebSocket client past the hello (and the subscription's answer, when given)."""
    # No limit on the messages held unread (the library's default stops reading at 16): the
    # test reads one client after another, and a client that stops reading is dropped.
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, **{"max_queue": None, **kwargs}) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello", hello
        if subscribe is not None:
            ws.send(json.dumps(subscribe))
            assert answer(ws)["type"] == "subscribed"
        yield ws


def answer(ws: ClientConnection) -> dict[str, Any]:
    """The answer to a message sent: the first message that is no event (events stream meanwhile)."""
    while (m := json.loads(ws.recv(timeout=10)))["type"] not in ("subscribed", "error"):
        pass
    return m


def drain(ws: ClientConnection, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    """Every message until none came for `quiet_s`."""
    out = []
    while True:
        try:
            out.append(json.loads(ws.recv(timeout=quiet_s)))
        except TimeoutError:
            return out


def play(players: Any, name: str, target: str, loop: bool = False) -> Any:
    audio, _ = melody_audio(MELODY)
    p = players(name, audio, loop=loop)
    p.start([target])
    return p


def test_melody_reaches_subscribed_clients_in_order_with_its_input(jack_server, bridges, players):
    """Melody into in_2 of a two-input bridge: a client subscribed to notes and onsets gets the
    note-ons in order, each with its note-off, all from input 2 and nothing else; a client of
    every kind also gets pitch and dynamics, thinned to its rate by the events' own time."""
    bridge = bridges(jack_server, "ws-order", "--inputs", "2", "--ws", "127.0.0.1:0")
    port = ws_port(bridge)
    with client(port, {"subscribe": ["note_on", "note_off", "onset"]}) as notes, \
            client(port, {"subscribe": "all", "rate_hz": 20}) as everything:
        p = play(players, "ws-order-player", "ws-order:in_2")
        assert p.wait_finished(30), "the player did not finish"
        got, all_kinds = drain(notes), drain_for(everything, 1.0)  # pitch and dynamics never pause
    assert {m["type"] for m in got} == {"note_on", "note_off", "onset"}, got
    assert {m["input"] for m in got} == {2}, got
    assert [m["note"] for m in got if m["type"] == "note_on"] == MELODY, got
    sounding = None
    for m in got:
        if m["type"] == "note_on":
            assert sounding is None, got
            sounding = m["note"]
        elif m["type"] == "note_off" and m["note"] == sounding:
            sounding = None
    assert sounding is None, got
    assert len([m for m in got if m["type"] == "onset"]) >= len(MELODY)
    # The client of every kind: the same notes, and the hop-rate kinds no closer than 1/20 s.
    assert [m["note"] for m in all_kinds if m["type"] == "note_on"] == MELODY
    # The feed turns the engine's features on: its page draws bands and chroma.
    for kind in ("pitch", "dynamics", "bands", "spectrum", "chroma"):
        times = [m["t"] for m in all_kinds if m["type"] == kind and m["input"] == 2]
        assert len(times) > 10, kind
        assert all(b - a >= 1 / 20 - 1e-9 for a, b in itertools.pairwise(times)), (kind, times)
    assert {m["input"] for m in all_kinds if m["type"] == "dynamics"} == {1, 2}  # in_1 hears silence


def test_page_at_root_404_elsewhere_and_bad_subscriptions_answered(jack_server, bridges):
    """GET / is the packaged page (inline, nothing from the network); other paths are 404;
    a bad subscribe message is answered with an error and leaves the subscription as it was."""
    bridge = bridges(jack_server, "ws-http", "--ws", "0")
    port = ws_port(bridge)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        body = r.read()
    assert body == page() and b"<canvas" in body and b"new WebSocket" in body
    assert not re.search(rb"""(src|href)=["']?(https?:)?//""", body), "the page fetches from the network"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/app.js", timeout=10)
    assert e.value.code == 404
    with client(port) as ws:
        for bad in ("not json", '{"subscribe": "note_on"}', '{"rate_hz": 0}', '{"colour": 1}', "[]"):
            ws.send(bad)
            assert answer(ws)["type"] == "error", bad
    assert bridge.stop() is not None


def test_ws_flag_errors_are_one_line(jack_server):
    """A bad --ws value, or a busy port, is one line and exit status 2; a non-loopback host warns."""
    r = run_cli("run", "--ws", "127.0.0.1:http")
    assert r.returncode == 2 and r.stderr.startswith("daw-bridge: error: --ws:"), r.stderr
    assert "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*CLI, "run", "--ws", str(port), "--duration", "1"], env=jack_server.env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2, r.stderr
    assert re.fullmatch(r"daw-bridge: error: --ws: cannot listen on 127\.0\.0\.1:\d+: .*\n", r.stderr), r.stderr
    assert parse_listen("[::1]:0") == ("::1", 0) and parse_listen("9000") == ("127.0.0.1", 9000)


def test_non_loopback_listen_warns_before_it_binds(jack_server):
    """The warning comes before the socket is bound: here an address of the documentation
    range (TEST-NET-1), which no interface has, so nothing listens beyond loopback."""
    r = subprocess.run([*CLI, "run", "--ws", "192.0.2.1:0", "--duration", "1"], env=jack_server.env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[0].startswith("daw-bridge: warning: the WebSocket feed will listen on 192.0.2.1"), r.stderr
    assert r.stderr.splitlines()[-1].startswith("daw-bridge: error: --ws: cannot listen on 192.0.2.1:0: "), r.stderr


def test_a_stalled_client_is_dropped_and_the_others_get_everything(jack_server, bridges, players):
    """A client that subscribes to everything at the top rate and then never reads fills its
    queue and is dropped (it sees the connection close); a client connected all along receives
    every note-on the bridge played (its own log on stdout), in order."""
    bridge = bridges(jack_server, "ws-stall", "--inputs", "8", "--ws", "0")  # 8 inputs: the stall comes sooner
    port = ws_port(bridge)
    # A small receive buffer and a one-message queue: the kernel soon stops taking more.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    with client(port, {"subscribe": ["note_on"]}) as good, \
            client(port, {"subscribe": "all", "rate_hz": 1000}, sock=raw, max_queue=1) as stalled:
        p = play(players, "ws-stall-player", "ws-stall:in_1", loop=True)
        wait_until(lambda: "dropped: it does not keep up" in bridge.stderr, 60, "the stalled client dropped",
                   bridge.report)
        received = [m["note"] for m in drain_for(good, 3.0) if m["type"] == "note_on"]
        players.close(p)
        received += [m["note"] for m in drain(good) if m["type"] == "note_on"]
        with pytest.raises(ConnectionClosed):
            for _ in range(QUEUE_MAX * 1000):
                stalled.recv(timeout=10)
    bridge.stop()
    played = [int(_note_number(line)) for line in bridge.out_path.read_text().splitlines() if " on  " in line]
    assert len(played) > len(MELODY), played
    assert received == played


def drain_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message for `seconds`."""
    out, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            out.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return out


_NAMES = {note_name(n): n for n in range(128)}


def _note_number(line: str) -> int:
    """The note of a `run` log line: '    0.200  in_1  on  C4   vel 111'."""
    return _NAMES[line.split()[3]]


# -- the page in a real browser ---------------------------------------------------------------

CHROMIUM = shutil.which("chromium")


@contextmanager
def headless_chromium(url: str, profile: Path) -> Iterator[ClientConnection]:
    """Debian's chromium, headless, showing `url`; yields a DevTools connection to the page.

    Kept on the machine: no background services, every host name resolves to nothing but
    127.0.0.1, and any request that is not to loopback goes to a proxy that is not there."""
    proc = subprocess.Popen(
        [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", url,
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        wait_until(lambda: active.exists() and len(active.read_text().split()) == 2, 60, "chromium's DevTools port")
        devtools = int(active.read_text().split()[0])
        pages: list[dict[str, Any]] = []

        def page_listed() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=5) as r:
                pages[:] = [t for t in json.load(r) if t["type"] == "page" and t["url"].startswith(url)]
            return bool(pages)

        wait_until(page_listed, 30, "the page in chromium")
        with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as cdp:
            yield cdp
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def evaluate(cdp: ClientConnection, expression: str) -> Any:
    """The value of a JavaScript expression in the page (DevTools Runtime.evaluate)."""
    evaluate.calls += 1  # type: ignore[attr-defined]
    ident = evaluate.calls  # type: ignore[attr-defined]
    cdp.send(json.dumps({"id": ident, "method": "Runtime.evaluate",
                         "params": {"expression": expression, "returnByValue": True}}))
    while True:
        reply = json.loads(cdp.recv(timeout=30))
        if reply.get("id") == ident:
            return reply["result"]["result"].get("value")


evaluate.calls = 0  # type: ignore[attr-defined]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_the_page_in_headless_chromium_shows_the_melodys_notes(jack_server, bridges, players, tmp_path):
    """The page, loaded by a real browser, connects to the feed and shows the melody's note
    names as they are played, in order, and a level on the meter."""
    bridge = bridges(jack_server, "ws-page", "--ws", "0")
    port = ws_port(bridge)
    with headless_chromium(f"http://127.0.0.1:{port}/", tmp_path / "profile") as cdp:
        wait_until(lambda: evaluate(cdp, "document.getElementById('status').textContent") == "live", 30,
                   "the page connected", bridge.report)
        p = play(players, "ws-page-player", "ws-page:in_1")
        level = "document.querySelector('.meter .val').textContent"
        wait_until(lambda: evaluate(cdp, level).endswith(("p", "f")), 20, "a level and marking on the meter")
        assert p.wait_finished(30), "the player did not finish"
        names = "[...document.querySelectorAll('#notes span')].map(e => e.textContent)"
        wanted = [note_name(n) for n in MELODY]
        wait_until(lambda: evaluate(cdp, names) == wanted, 20, f"the notes {wanted} on the page",
                   lambda: f"page shows {evaluate(cdp, names)}\n{bridge.report()}")
        assert evaluate(cdp, "document.getElementById('note').textContent") in wanted
