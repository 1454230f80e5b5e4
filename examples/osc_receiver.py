#!/usr/bin/env python3
"""Prints the bridge's OSC streams: a starting point for driving visuals.

    python examples/osc_receiver.py --port 9000
    daw-bridge run --osc 127.0.0.1:9000          # in another terminal

One line per message: time, address and the arguments by name, e.g.
``12:00:01.250 /bridge/dynamics rms=0.1 peak=0.3 db=-20.0 velocity=64``.
Only python-osc is needed, so it runs on a visuals machine without the
bridge; when the bridge is importable the argument names come from
bridge/addresses.py, else the values are printed unnamed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

try:
    from bridge.addresses import OSC_MESSAGES

    ARG_NAMES = {kind: [a.name for a in spec.args] for kind, spec in OSC_MESSAGES.items()}
except ImportError:
    ARG_NAMES = {}


def describe(address: str, args: tuple[Any, ...]) -> str:
    """``address name=value ...``; the kind is the last address part (pitch, onset, ...)."""
    names = ARG_NAMES.get(address.rsplit("/", 1)[-1], [])
    if len(names) != len(args):
        names = [f"arg{i}" for i in range(len(args))]
    values = " ".join(f"{n}={v:.4g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(names, args))
    return f"{address} {values}".rstrip()


def main() -> int:
    parser = argparse.ArgumentParser(description="Print the OSC messages daw-bridge sends.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
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
