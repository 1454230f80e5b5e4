"""Signals to a real `daw-bridge run` (issue 12): the processes it starts end with
it, also when it is SIGKILLed and has no say. (SIGHUP mid-note: tests/test_faults.py.)"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bridge import jackd
from conftest import DEMO_DIR
from live_bridge import Bridge, wait_until


def _free_registry_slot(name: str, timeout: float = 10.0) -> None:
    """A jackd that did not exit cleanly keeps its slot in JACK's machine-wide registry
    (eight servers) until a server of its name runs again: run one, so repeated test runs
    on one machine never find the registry full. Until the orphaned jackd is reaped it
    still counts as running; then there is nothing to free yet, and it is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            jackd.start(name).stop()
            return
        except jackd.JackdError:
            if time.monotonic() > deadline:
                return  # best effort: the registry slot stays taken, the test's result stands
            time.sleep(0.2)


def _children(pid: int) -> dict[int, str]:
    """pid -> command name of the live processes whose parent is `pid`."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(rest[1]) == pid and rest[0] != "Z":
            found[int(stat.parent.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_the_demo_player_and_jackd_end_with_the_bridge(sig, tmp_path, monkeypatch):
    """`run --demo` with no server running starts jackd and a player process of its
    own; neither may outlive the bridge."""
    server_name = jackd.unique_server_name("sig")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", server_name)
    bridge = Bridge(dict(os.environ), ["--name", "sig-demo", "--demo", str(DEMO_DIR / "demo.wav")], tmp_path)
    try:
        wait_until(lambda: len(_children(bridge.proc.pid)) >= 2, 30, "jackd and the demo player", bridge.report)
        children = _children(bridge.proc.pid)
        assert any("jackd" in name for name in children.values()), children
        time.sleep(1.0)  # the player is playing into the bridge
        bridge.proc.send_signal(sig)
        bridge.proc.wait(30)
        wait_until(lambda: not any(_alive(pid) for pid in children), 15, f"the children {children} to end")
    finally:
        bridge.close()
        _free_registry_slot(server_name)
    if sig == signal.SIGHUP:
        assert bridge.proc.returncode == 0, bridge.stderr
        assert "Traceback" not in bridge.stderr, bridge.stderr


def test_every_child_the_bridge_starts_asks_to_die_with_it():
    """Each Popen in bridge/ and tui/ passes processes.die_with_parent (read from the source,
    so a new child process cannot be added without it)."""
    import ast

    root = Path(__file__).resolve().parents[1]
    missing = []
    for path in [*sorted((root / "bridge").glob("*.py")), *sorted((root / "tui").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Popen":
                keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if "die_with_parent" not in keywords.get("preexec_fn", ""):
                    missing.append(f"{path.name}:{node.lineno}")
    assert missing == []
