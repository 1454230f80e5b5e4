#!/usr/bin/env python3
"""Prints the bridge's OSC streams: a starting point for driving visuals.

    python osc_receiver.py --port 9000                # on the visuals machine, e.g. 192.168.1.20
    daw-bridge run --osc 192.168.1.20:9000            # on the bridge's machine

It listens on every interface (``--host 0.0.0.0``), so a bridge on another
machine reaches it; ``--host 127.0.0.1`` keeps it to this machine.

One line per message: time, address and the arguments by name, e.g.
``12:00:01.250 /bridge/dynamics rms=0.1 peak=0.3 db=-20.0 velocity=64``.
Only python-osc is needed (``pip install python-osc``), so it runs on a
visuals machine without the bridge: the argument names are copied here from
bridge/addresses.py, and a test keeps the copy equal to it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

ARG_NAMES = {
    "pitch": ["hz", "midi", "confidence"],
    "onset": ["strength"],
    "dynamics": ["rms", "peak", "db", "velocity"],
    "level": ["db"],
    "note": ["note", "velocity"],
    "bands": ["level"],
    "spectrum": ["centroid_hz", "flatness", "rolloff_hz"],
    "chroma": ["level"],
    "beat": ["beat", "bpm"],
    "tempo": ["bpm", "confidence"],
}
"""A kind with one name and more values sends a list: ``level=[0.1 0.9 ...]``."""


def describe(address: str, args: tuple[Any, ...]) -> str:
    """``address name=value ...``; the kind is the last address part (pitch, onset, ...)."""
    names = ARG_NAMES.get(address.rsplit("/", 1)[-1], [])
    if len(names) == 1 and len(args) > 1:
        return f"{address} {names[0]}=[" + " ".join(f"{v:.3g}" for v in args) + "]"
    if len(names) != len(args):
        names = [f"arg{i}" for i in range(len(args))]
    values = " ".join(f"{n}={v:.4g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(names, args))
    return f"{address} {values}".rstrip()


def main() -> int:
    parser = argparse.ArgumentParser(description="Print the OSC messages daw-bridge sends.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default every interface; 127.0.0.1 for this machine only)")
    parser.add_argument("--port", type=int, default=9000, help="UDP port to listen on (default 9000)")
    parser.add_argument("--count", type=int, metavar="N", help="exit after N messages")
    args = parser.parse_args()

    received = 0

    def on_message(address: str, *values: Any) -> None:
        nonlocal received
        received += 1
        print(f"{datetime.now():%H:%M:%S.%f}"[:-3], describe(address, values), flush=True)

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(on_message)
    try:
        server = BlockingOSCUDPServer((args.host, args.port), dispatcher)
    except OSError as e:
        print(f"osc_receiver: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    # --port 0 picks a free port; the line says which.
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        # One datagram (a bundle of several messages, or one message) per call.
        while args.count is None or received < args.count:
            server.handle_request()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
