#!/usr/bin/env python3
"""Drops a REAPER marker at every onset the bridge detects.

    daw-bridge run --osc 127.0.0.1:9001
    .venv/bin/python examples/reaper_onset_markers.py --listen 9001 --reaper 127.0.0.1:8000

A REAPER OSC pattern file can only map an address to an action when the action
number is in the address or is the argument; the bridge's /bridge/onset carries
its strength instead. So this relay turns each onset (any input, any prefix)
into REAPER's `/action 40157` ("Markers: Insert marker at current position"),
which the daw-bridge pattern config (or REAPER's Default one) accepts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

INSERT_MARKER = 40157


def main() -> int:
    parser = argparse.ArgumentParser(description="Insert a REAPER marker at every bridge onset.")
    parser.add_argument("--listen", type=int, default=9001, help="UDP port the bridge sends to (default 9001)")
    parser.add_argument("--reaper", default="127.0.0.1:8000", help="REAPER's OSC HOST:PORT (default 127.0.0.1:8000)")
    parser.add_argument("--action", type=int, default=INSERT_MARKER, help="REAPER action ID to run (default 40157)")
    parser.add_argument("--min-strength", type=float, default=0.0, help="ignore weaker onsets")
    args = parser.parse_args()

    host, _, port = args.reaper.rpartition(":")
    if not host or not port.isdigit():
        print(f"reaper_onset_markers: --reaper must be HOST:PORT, got '{args.reaper}'", file=sys.stderr)
        return 2
    reaper = SimpleUDPClient(host, int(port))

    def on_message(address: str, *values: Any) -> None:
        # /bridge/onset or /bridge/<input>/onset, whatever the prefix.
        if address.endswith("/onset") and values and values[0] >= args.min_strength:
            reaper.send_message("/action", args.action)

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(on_message)
    try:
        server = BlockingOSCUDPServer(("127.0.0.1", args.listen), dispatcher)
    except OSError as e:
        print(f"reaper_onset_markers: cannot listen on port {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"onsets on 127.0.0.1:{server.server_address[1]} -> /action {args.action} to {args.reaper}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
