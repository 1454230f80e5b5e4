"""How many inputs the live bridge analyses at once without xruns, and what one input costs.

Issue 3, "Benchmarks / Scale": 48 kHz / 256 frames on a private dummy jackd
(realtime). For each step a `rust_engine.LiveBridge` with N inputs runs for
`--seconds` while one frame-locked player (bench/players.py) loops a melody
of harmonic tones into every input. Counted per step, as bench/xruns.py does:
jackd's "JackEngine::XRun: client = NAME was not finished" lines naming the
bridge (bridge-caused xruns) and any other client, and the driver's own late
wake-ups. Also reported: the bridge's `stats()` (max_cycle_us since it was
opened, its xrun count), JACK's DSP load (the server's figure, sampled every
0.5 s: mean and max), and the cost of one input:

- fit: the slope of mean DSP load (as microseconds of a period) over N,
  which removes the player's and the server's share;
- offline: `Analyzer.process` timed on 256-frame blocks of the same melody
  in this process (the callback's work for one input, without JACK).

An xrun that names the bridge is split by what jackd says: "running_alone"
counts those where the bridge was running and no other client was late (the
only kind its own work can cause); the rest found it "Triggered" (due, but
never given the CPU in that period) or shared the period with other late
clients: the machine's scheduling, e.g. other JACK servers' realtime threads.

The API allows 1..64 inputs per client. Steps written `KxN` open K bridges of
N inputs each (separate clients, which JACK2 may run on both cores at once):
a measure of the machine, not of one client.

Usage: python -m bench.scale [--seconds 25] [--steps 1 2 4 8 16 2x16 3x16] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import rust_engine

from bench.players import LogSpan, frame_player, loadavg, play_locked
from bench.xruns import sched_latency
from bridge import addresses, jackd
from bridge.signals import tone_sequence

RATE, PERIOD = 48000, 256
MELODY = [52, 55, 59, 64, 67, 71, 76, 72, 69, 65, 62, 57, 53, 48, 45, 60]  # E3..E5 and down to A2


def parse_step(step: str) -> tuple[int, int]:
    """'8' -> one client of 8 inputs; '2x16' -> two clients of 16."""
    clients, _, inputs = step.rpartition("x")
    return (int(clients) if clients else 1), int(inputs)


def offline_cost(blocks: int = 4000) -> tuple[float, float]:
    """Mean and p99 microseconds of `Analyzer.process` on one 256-frame block of the melody."""
    seq = tone_sequence(MELODY, RATE, tone_s=0.25, gap_s=0.05)
    an = rust_engine.Analyzer(rust_engine.EngineConfig())
    signal = np.tile(seq.signal, 1 + blocks * PERIOD // len(seq.signal))
    times = np.zeros(blocks)
    for i in range(blocks):
        block = signal[i * PERIOD:(i + 1) * PERIOD]
        t0 = time.perf_counter_ns()
        an.process(block)
        times[i] = time.perf_counter_ns() - t0
    return float(np.mean(times) / 1000), float(np.percentile(times, 99) / 1000)


def start_player(ports: list[str]) -> rust_engine.Player:
    """The melody, looped into `ports` (a Rust callback: it does not wait for our GIL)."""
    player = frame_player("scale-player")
    for port in ports:
        player.connect(player.outputs[0], port)
    seq = tone_sequence(MELODY, RATE, tone_s=0.25, gap_s=0.05, jitter=0)
    play_locked(player, seq.signal, lead_s=0.1, loop=True)
    return player


def stop_player(player: rust_engine.Player) -> int:
    """Ends the player; returns the periods the server ran without it."""
    missed = int(player.stats()["skipped_periods"])
    player.close()
    return missed


def run_step(server: jackd.JackServer, step: str, seconds: float, verbose: bool = False) -> dict[str, object]:
    clients, inputs = parse_step(step)
    bridges: list[rust_engine.LiveBridge] = []
    player = None
    try:
        for c in range(clients):
            bridges.append(
                rust_engine.LiveBridge(f"scale-bridge-{c + 1}", inputs, rust_engine.EngineConfig(), **addresses.port_names(inputs))
            )
        ports = [f"{b.name}:{port}" for b in bridges for port in addresses.input_ports(inputs)]
        player = start_player(ports)
        time.sleep(2.0)  # settle: first cycles page in code and data
        for b in bridges:
            b.poll()
        stats0 = [b.stats() for b in bridges]
        assert server.log_path is not None
        span = LogSpan(server.log_path)
        load_start = loadavg()
        loads, notes = [], 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            loads.append(bridges[0].stats()["dsp_load"])
            for b in bridges:
                notes += sum(e.kind == "note_on" for e in b.poll())
        span.end()
        stats1 = [b.stats() for b in bridges]
        player_missed = stop_player(player)
        player = None
    finally:
        if player is not None:
            player.close()
        for b in bridges:
            b.close()
    xruns = span.xruns()
    names = {b.name for b in bridges}
    events = [e for e in span.xrun_events() if names & e.keys()]
    # An xrun in which the bridge was running while no other client was late is the
    # only kind its own work can cause; "Triggered" means it never got the CPU.
    alone_running = sum(1 for e in events
                        if all(k in names for k in e) and "Running" in {e[k] for k in e})
    if verbose:
        for line in span.text.splitlines():
            if "XRun" in line or "rror" in line:
                print(f"    jackd: {line}")
    return {
        "step": step, "inputs": clients * inputs, "clients": clients, "seconds": seconds,
        "xruns_bridge": sum(v for k, v in xruns.items() if k in names),
        "xrun_events_bridge": len(events),
        "xruns_bridge_running_alone": alone_running,
        "xruns_other": {k: v for k, v in xruns.items() if k not in names},
        "xruns_driver": span.driver_xruns(),
        "bridge_stats_xruns": sum(s1["xruns"] - s0["xruns"] for s0, s1 in zip(stats0, stats1)),
        "max_cycle_us": round(max(s["max_cycle_us"] for s in stats1), 1),
        "dsp_load_mean": round(float(np.mean(loads)), 1),
        "dsp_load_max": round(float(np.max(loads)), 1),
        "note_ons": notes, "player_missed_cycles": player_missed,
        "midi_lost": sum(s["midi_lost"] for s in stats1),
        "dropped_events": sum(s["dropped_events"] for s in stats1),
        "load_avg": load_start,
    }


COLUMNS = [("step", 6), ("inputs", 6), ("xruns_bridge", 12), ("running_alone", 13), ("xruns_other", 11),
           ("xruns_driver", 12),
           ("max_cycle_us", 12), ("dsp_load_mean", 13), ("dsp_load_max", 12),
           ("max_cycle_per_input_us", 22), ("note_ons", 8), ("load_avg", 15)]


def print_row(row: dict[str, object]) -> None:
    cells = []
    for c, w in COLUMNS:
        v = row.get(c, "")
        if c == "xruns_other":
            v = sum(v.values()) if isinstance(v, dict) else v
        if c == "running_alone":
            v = row["xruns_bridge_running_alone"]
        cells.append(f"{v!s:>{w}}")
    print("  ".join(cells), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--steps", nargs="+", default=["1", "2", "4", "8", "16", "32", "64"])
    parser.add_argument("--json", type=Path, help="append one JSON line per step here")
    parser.add_argument("--verbose", action="store_true", help="print jackd's xrun lines")
    parser.add_argument("--cyclictest", type=float, default=0.0, metavar="SECONDS",
                        help="first measure the machine's SCHED_FIFO wake-up latency this long")
    args = parser.parse_args()
    try:
        steps = [(s, parse_step(s)) for s in args.steps]
    except ValueError:
        print(f"error: steps look like 8 or 2x16, got {' '.join(args.steps)}", file=sys.stderr)
        return 2
    if any(not 1 <= n <= 64 or k < 1 for _, (k, n) in steps):
        print("error: each client takes 1..64 inputs (the API's ceiling); use KxN for more", file=sys.stderr)
        return 2
    mean_us, p99_us = offline_cost()
    print(f"# 48 kHz / {PERIOD} frames (period {PERIOD / RATE * 1e6:.0f} us), {args.seconds:g} s per step, "
          f"load average at start {loadavg()}")
    print(f"# offline: Analyzer.process on one {PERIOD}-frame block: mean {mean_us:.1f} us, p99 {p99_us:.1f} us")
    if args.cyclictest:
        print(f"# {sched_latency(args.cyclictest, PERIOD * 1e6 / RATE)}", flush=True)
    name = jackd.unique_server_name("scale")
    try:
        server = jackd.start(name, RATE, PERIOD, realtime=True, die_with_parent=True)
    except jackd.JackdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ["JACK_DEFAULT_SERVER"] = name  # LiveBridge picks its server as libjack does
    rows = []
    print("  ".join(f"{c:>{w}}" for c, w in COLUMNS))
    try:
        for step, _ in steps:
            row = run_step(server, step, args.seconds, args.verbose)
            row["max_cycle_per_input_us"] = round(row["max_cycle_us"] / (row["inputs"] / row["clients"]), 1)
            rows.append(row)
            print_row(row)
            if row["xruns_other"] or row["player_missed_cycles"]:
                print(f"    other clients' xruns {row['xruns_other']}, player missed "
                      f"{row['player_missed_cycles']} cycles", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        server.stop()
        if server.log_path is not None:
            server.log_path.unlink(missing_ok=True)
    single = [r for r in rows if r["clients"] == 1]
    period_us = PERIOD / RATE * 1e6
    if len(single) >= 2:
        n = np.array([r["inputs"] for r in single], dtype=float)
        load_us = np.array([r["dsp_load_mean"] for r in single]) * period_us / 100
        slope, intercept = np.polyfit(n, load_us, 1)
        print(f"\nper input (fit of mean DSP load over N, one client): {slope:.1f} us per period "
              f"({100 * slope / period_us:.2f} % of the {period_us:.0f} us period); "
              f"intercept {intercept:.0f} us (player + server)")
        print(f"per input (offline Analyzer.process): {mean_us:.1f} us mean, {p99_us:.1f} us p99 per period")
        print(f"=> one callback on one core: about {period_us / max(slope, mean_us):.0f} inputs fill a period "
              "on paper (the xrun-free count is lower)")
        for r in rows:
            r["per_input_fit_us"] = round(float(slope), 1)
    clean = [r["inputs"] for r in rows if r["xruns_bridge"] == 0]
    print(f"most inputs without any xrun naming the bridge: {max(clean) if clean else 'none'}; "
          f"steps with such xruns: {', '.join(r['step'] for r in rows if r['xruns_bridge']) or 'none'}")
    own = [r["step"] for r in rows if r["xruns_bridge_running_alone"]]
    print(f"steps with an xrun only the bridge was late for, while running: {', '.join(own) or 'none'}")
    if args.json:
        with args.json.open("a") as out:
            for r in rows:
                out.write(json.dumps({**r, "offline_mean_us": round(mean_us, 1),
                                      "offline_p99_us": round(p99_us, 1)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
