"""Renders the README's screenshot of the TUI on a real bridge playing the demo.

    python -m tui.screenshot [OUT.svg] [--size 100x30]

Starts a private dummy jackd, the bridge (with an OSC target, a local UDP
socket, so the OSC rate shows) and the demo recording looped into it by a
player in a child process (a Python process callback next to Textual would
be starved of the GIL), lets the UI run for a few seconds, saves an SVG and
stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import rust_engine

from bridge import jackd, processes
from bridge.live import LiveOptions, LiveRunner

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "demo.wav"


def _play(name: str, target: str) -> None:
    """Child process: loop the demo into `target` until stdin closes."""
    from bridge.player import Player, load_mono

    probe = jackd.probe()
    assert probe is not None
    player = Player(name, load_mono(DEMO, probe[0]), loop=True)
    player.start([target])
    sys.stdin.read()
    player.close()


async def _shoot(runner: LiveRunner, out: Path, size: tuple[int, int], seconds: float) -> None:
    from tui.app import BridgeApp

    app = BridgeApp(runner, config_path=Path("daw-bridge.toml"))
    app.theme = "textual-dark"
    async with app.run_test(size=size) as pilot:
        await pilot.pause(seconds)
        app.save_screenshot(out.name, path=str(out.parent))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tui.screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "tui.svg")
    parser.add_argument("--size", default="100x30", help="terminal size WxH (default 100x30)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the demo plays first")
    parser.add_argument("--play", nargs=2, metavar=("NAME", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.play:
        _play(*args.play)
        return 0
    width, height = (int(v) for v in args.size.split("x"))
    server = jackd.start(jackd.unique_server_name("screenshot"), die_with_parent=True)
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sink.bind(("127.0.0.1", 9000))  # the port the README's examples use
    except OSError:
        sink.bind(("127.0.0.1", 0))
    runner = LiveRunner(LiveOptions(osc=[sink.getsockname()]), rust_engine.EngineConfig({}))
    player = None
    try:
        runner.start()
        client = runner.snapshot().client
        player = subprocess.Popen(
            [sys.executable, "-m", "tui.screenshot", "--play", f"{client}-demo", f"{client}:in_1"],
            stdin=subprocess.PIPE,
            cwd=ROOT,
            preexec_fn=processes.die_with_parent,  # noqa: PLW1509 - prctl must run in the child
        )
        asyncio.run(_shoot(runner, args.out, (width, height), args.seconds))
    finally:
        if player is not None:
            player.communicate(timeout=10)
        runner.stop()
        sink.close()
        server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
