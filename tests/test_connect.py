"""A catastrophic --connect pattern (issue 12): `(a+)+$` against a long port name
backtracks for longer than anyone waits. The bridge must go on answering its
control port, connect the ports the pattern matches, and stop on SIGTERM.

Real parts: a `daw-bridge run` process, a dummy jackd, JACK clients whose
ports the pattern meets, a TCP control connection.
"""

from __future__ import annotations

import json

import jack

from bridge.portmatch import PortMatcher
from live_bridge import control_connection, free_port, wait_until

EVIL = "(a+)+$"
LONG_NAME = "a" * 48 + "!"  # 2**48 ways to fail


def test_a_catastrophic_pattern_costs_the_bridge_nothing(jack_server, bridges, monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", jack_server.name)
    evil = jack.Client("pat-evil", no_start_server=True)
    daw = jack.Client("pat-daw", no_start_server=True)
    evil.outports.register(LONG_NAME)
    out = daw.outports.register("out")
    evil.activate()
    daw.activate()
    control = free_port()
    try:
        bridge = bridges(jack_server, "pat-br", "--connect", f"^pat-daw:out$|{EVIL}", "--control-port", str(control))
        # The port the pattern matches is connected...
        wait_until(lambda: "pat-br:in_1" in [p.name for p in daw.get_all_connections(out)], 15,
                   "pat-daw:out connected", bridge.report)
        # ...the control port answers (the GIL is free)...
        with control_connection(control) as sock:
            sock.settimeout(10)
            f = sock.makefile("rwb")

            def shown() -> bool:
                f.write(b'{"op": "snapshot"}\n')
                f.flush()
                return ["pat-daw:out", "pat-br:in_1"] in json.loads(f.readline())["result"]["connections"]

            wait_until(shown, 10, "the connection in a snapshot", bridge.report)
        # ...a port that appears later is still matched...
        late = daw.outports.register("late-aaaa")
        wait_until(lambda: "pat-br:in_1" in [p.name for p in daw.get_all_connections(late)], 15,
                   "pat-daw:late-aaaa connected", bridge.report)
        assert evil.get_all_connections(f"pat-evil:{LONG_NAME}") == []
        # ...and SIGTERM stops it in order.
        err = bridge.stop()
        assert "takes too long on port 'pat-evil:" in err, err
    finally:
        for client in (evil, daw):
            client.deactivate()
            client.close()


def test_each_port_name_is_matched_once() -> None:
    matcher = PortMatcher("^ardour:(Master|Voice)/audio_out [12]$")
    try:
        names = ["ardour:Master/audio_out 1", "ardour:Voice/audio_out 2", "system:capture_1", "ardour:Master/audio_out 3"]
        assert [matcher.matches(n) for n in names] == [True, True, False, False]
        child = matcher._child
        assert child is not None
        child.kill()  # a name it answered before needs no child
        child.wait()
        assert [matcher.matches(n) for n in names] == [True, True, False, False]
    finally:
        matcher.close()


def test_a_name_that_takes_too_long_is_no_match_and_the_next_is_served() -> None:
    matcher = PortMatcher(f"^x:ok|{EVIL}")
    try:
        assert matcher.matches("x:" + LONG_NAME) is False
        assert matcher.matches("x:ok") is True  # a new child answered it
        assert matcher.matches("y:" + "b" * 300) is False
    finally:
        matcher.close()


def test_port_names_with_any_characters_are_matched_as_they_are() -> None:
    matcher = PortMatcher(r"^a\nb:c$")
    try:
        assert matcher.matches("a\nb:c") is True
        assert matcher.matches("a b:c") is False
        assert matcher.matches('q"uote\\:é') is False
    finally:
        matcher.close()

