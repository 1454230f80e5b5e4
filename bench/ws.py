"""Onset -> WebSocket latency, and ten clients at once with one stalled (issue 14).

A private dummy jackd (48 kHz, realtime) runs `daw-bridge run --ws 0` as a user would; a
frame-locked player (`bridge.player.Player`) plays a melody of harmonic tones into it. Ten
WebSocket clients connect first: nine read in threads of their own, and one subscribes to
everything at the top rate (1000 Hz) with a 4 KiB receive buffer and never reads.

Latency of one onset for one client: the JACK frame time when its `onset` message arrived
(read from a JACK client in this process at arrival) minus the frame of the tone's first
sample, in ms. It includes the JACK period, the engine's detection delay, the bridge's 5 ms
dispatch poll and the WebSocket hop. The run also checks that every reading client got every
note-on the bridge played (its own log on stdout), and when the stalled client was dropped.

Usage: python -m bench.ws [--period 128] [--notes 24] [--clients 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import jack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bridge import jackd
from bridge.analyze import note_name
from bridge.player import Player
from bridge.signals import SR, melody_audio

CLI = Path(sys.executable).with_name("daw-bridge")
NAME = "wsbench"


def reader(port: int, arrivals: list[tuple[int, dict]], clock: jack.Client, ready: threading.Event) -> None:
    """Records (frame time at arrival, message) of onsets and note-ons until the feed closes."""
    with connect(f"ws://127.0.0.1:{port}/ws", max_queue=None) as ws:
        ws.send(json.dumps({"subscribe": ["onset", "note_on"]}))
        ready.set()
        try:
            while True:
                m = json.loads(ws.recv())
                arrivals.append((clock.frame_time, m))
        except ConnectionClosed:
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--period", type=int, default=128)
    ap.add_argument("--notes", type=int, default=24)
    ap.add_argument("--clients", type=int, default=10)
    args = ap.parse_args()
    server_name = f"dawbridge-wsbench-{os.getpid()}"
    server = jackd.start(server_name, SR, args.period, die_with_parent=True)
    env = {**os.environ, "JACK_DEFAULT_SERVER": server_name}
    os.environ["JACK_DEFAULT_SERVER"] = server_name
    # Eight inputs (the player feeds the first): the stalled client's share of pitch and dynamics
    # fills its buffers within the run.
    stack = contextlib.ExitStack()
    bridge = subprocess.Popen([str(CLI), "run", "--name", NAME, "--inputs", "8", "--ws", "0"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert bridge.stderr is not None
        port = 0
        while not port and (line := bridge.stderr.readline()):
            if m := re.search(r"browser page http://127\.0\.0\.1:(\d+)/", line):
                port = int(m.group(1))
        if not port:
            raise SystemExit("the bridge did not start")
        err_lines: list[tuple[float, str]] = []
        stderr = bridge.stderr

        def read_stderr() -> None:
            for line in stderr:
                err_lines.append((time.monotonic(), line))

        threading.Thread(target=read_stderr, daemon=True).start()
        clock = jack.Client(f"{NAME}-clock", no_start_server=True)
        clock.activate()
        time.sleep(1.0)  # the bridge's ports are there
        arrivals: list[list[tuple[int, dict]]] = [[] for _ in range(args.clients - 1)]
        threads = []
        for box in arrivals:
            ready = threading.Event()
            t = threading.Thread(target=reader, args=(port, box, clock, ready), daemon=True)
            t.start()
            ready.wait(10)
            threads.append(t)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", port))
        stalled = stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws", sock=raw, max_queue=1))
        stalled.send(json.dumps({"subscribe": "all", "rate_hz": 1000}))
        stalled_at = time.monotonic()
        melody = [48 + (i * 7) % 36 for i in range(args.notes)]
        audio, starts = melody_audio(melody)
        player = Player(f"{NAME}-player", audio)
        player.start([f"{NAME}:in_1"])
        player.wait_finished(60)
        start = player.start_frame
        time.sleep(1.0)
        bridge.terminate()
        out, _ = bridge.communicate(timeout=30)
        for t in threads:
            t.join(10)
        dropped = next(((at, line.strip()) for at, line in err_lines if "dropped" in line), None)
        played = [line.split()[3] for line in out.splitlines() if " on  " in line]
        assert start is not None
        latencies = []
        complete = 0
        for box in arrivals:
            onsets = [f for f, m in box if m["type"] == "onset"]
            for s in starts:
                onset = start + s
                after = [f - onset for f in onsets if 0 <= (f - onset) & 0xFFFFFFFF < SR // 5]
                if after:
                    latencies.append(min(after) / SR * 1000)
            complete += [note_name(m["note"]) for _, m in box if m["type"] == "note_on"] == played
        player.close()
        clock.close()
        print(f"period {args.period} frames at {SR} Hz, {args.notes} tones, {args.clients} clients (1 stalled)")
        if latencies:
            q = statistics.quantiles(latencies, n=20)
            print(f"onset -> WebSocket: {len(latencies)} onsets over {args.clients - 1} clients: "
                  f"median {statistics.median(latencies):.1f} ms, p95 {q[-1]:.1f} ms, max {max(latencies):.1f} ms")
        print(f"reading clients with every note-on the bridge played ({len(played)}): {complete} of {args.clients - 1}")
        if dropped is None:
            print("stalled client: not dropped")
        else:
            print(f"stalled client: dropped {dropped[0] - stalled_at:.1f} s after it stopped reading ({dropped[1]})")
        print(f"load average: {os.getloadavg()[0]:.2f}")
    finally:
        stack.close()
        if bridge.poll() is None:
            bridge.kill()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
