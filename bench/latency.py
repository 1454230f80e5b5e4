"""Onset -> MIDI note-on latency through a JACK server: daw-bridge against aubionotes.

Issue 3, "Benchmarks / Latency". For each period a private dummy jackd
(realtime, 48 kHz) runs `rust_engine.LiveBridge` (default EngineConfig) and
`aubionotes -j` (default settings, and `-B 512 -H 128`) side by side. One
frame-locked player (`rust_engine.Player`, see bench/players.py) feeds the same 40 harmonic tones
(5 partials at 1/h, 5 ms attack, 250 ms long, 150 ms apart plus a random
0..255 frames so that onsets fall at every offset of a period, E2..C6, or
A2..C6 with --lowest 45, the set the issue measured aubionotes on, in a fixed
shuffled order) into every contender's input, and one recorder stamps each
contender's MIDI with JACK frame times.

How a latency is counted, in frames:

    latency = (recorder cycle's last_frame_time + event offset) - tone start frame + 1 period

The first two terms are frame-time labels: JACK runs the whole graph
(player -> contender -> recorder) inside one cycle, so the recorder sees a
note-on in the very cycle and at the very offset the contender wrote it
(the run checks this against the bridge's own `Event.frame`). A label is not
yet wall-clock time: the frames labelled T..T+n-1 reach any client only once
the whole period has been captured, so a causal analyser cannot answer
before one period after the sound. That period is the "+ one JACK period" of
the issue's physical floor, and it is added to every contender alike (the
raw label difference is printed too). Output latency of a sound card or
synth after the MIDI port is left out, as it is for the floor.

Physical floor per tone: two periods of its fundamental + one JACK period.

Usage: python -m bench.latency [--periods 128 256] [--lowest MIDI] [--no-aubio] [--details] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jack
import numpy as np
import rust_engine

from bench.players import LogSpan, frame_player, loadavg, midi_recorder, note_ons, play_locked
from bridge import addresses, jackd
from bridge.analyze import note_name
from bridge.signals import ToneSequence, midi_hz, tone_sequence

RATE = 48000
LOW, HIGH, TONES = 40, 84, 40  # E2 .. C6
ISSUE_LOW = 45  # A2: the issue measured aubionotes and set its targets on A2..C6
AUBIO_SETTINGS = {"aubionotes default": [], "aubionotes -B 512 -H 128": ["-B", "512", "-H", "128"]}
RANGES = [("-B3", 0, 59), ("C4-B4", 60, 71), ("C5-C6", 72, 84)]


def test_pitches(low: int = LOW, seed: int = 3) -> list[int]:
    """40 distinct MIDI notes spread evenly over `low`..C6, in a fixed shuffled order."""
    notes = np.unique(np.round(np.linspace(low, HIGH, TONES)).astype(int))
    assert len(notes) == TONES
    return [int(n) for n in np.random.default_rng(seed).permutation(notes)]


@dataclass
class Score:
    """One contender's result on one sequence."""

    contender: str
    period: int
    latencies: list[int | None] = field(default_factory=list)  # frames, incl. + 1 period
    detected: list[int | None] = field(default_factory=list)  # first note-on of each tone
    extra: list[list[tuple[int, int]]] = field(default_factory=list)  # further (frames after start, note)
    stray: list[tuple[int, int]] = field(default_factory=list)  # note-ons in no tone's slot

    def right(self, midis: np.ndarray) -> int:
        return sum(d == m for d, m in zip(self.detected, midis))

    def false_notes(self) -> int:
        return sum(len(e) for e in self.extra) + len(self.stray)


def score(contender: str, note_ons: list[tuple[int, int]], seq: ToneSequence, origin: int,
          period: int) -> Score:
    """Match note-ons to tones: the first note-on inside a tone's slot is its answer."""
    s = Score(contender, period)
    used = set()
    for i in range(len(seq.starts)):
        begin, end = seq.slot(i)
        start = origin + begin
        inside = [(f, n) for f, n in note_ons if 0 <= f - start < end - begin]
        used.update(inside)
        if inside:
            s.latencies.append(inside[0][0] - start + period)
            s.detected.append(inside[0][1])
            s.extra.append([(f - start, n) for f, n in inside[1:]])
        else:
            s.latencies.append(None)
            s.detected.append(None)
            s.extra.append([])
    s.stray = [e for e in note_ons if e not in used]
    return s


def ms(frames: float) -> float:
    return 1000.0 * frames / RATE


def summary(s: Score, midis: np.ndarray, floor: list[float]) -> dict[str, object]:
    lat = np.array([x for x in s.latencies if x is not None], dtype=float)
    over = [x - f for x, f in zip(s.latencies, floor) if x is not None]
    row: dict[str, object] = {
        "contender": s.contender, "period": s.period,
        "median_ms": round(ms(np.median(lat)), 1) if len(lat) else None,
        "p90_ms": round(ms(np.percentile(lat, 90)), 1) if len(lat) else None,
        "right": int(s.right(midis)), "detected": len(lat), "false_notes": s.false_notes(),
        "over_floor_ms": round(ms(float(np.median(over))), 1) if over else None,
    }
    for label, lo, hi in RANGES:
        sel = [x for x, m in zip(s.latencies, midis) if x is not None and lo <= m <= hi]
        row[f"median_ms_{label}"] = round(ms(np.median(sel)), 1) if sel else None
    return row


def start_aubio(args: list[str], server: jackd.JackServer, probe: jack.Client) -> tuple[subprocess.Popen[bytes], str]:
    """Start one aubionotes in JACK mode; returns it and its client name (aubio, aubio-01, ...)."""
    before = {p.name.split(":")[0] for p in probe.get_ports()}
    proc = subprocess.Popen(["aubionotes", "-j", *args], env=server.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = {p.name.split(":")[0] for p in probe.get_ports(is_midi=True, is_output=True)} - before
        if new:
            return proc, new.pop()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"aubionotes {' '.join(args)} did not register its JACK client")


def engine_config(settings: list[str]) -> rust_engine.EngineConfig:
    """EngineConfig from KEY=VALUE strings (e.g. notes.change_ms=15); none gives the defaults."""
    values: dict[str, object] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants KEY=VALUE, got {item!r}")
        *sections, leaf = key.split(".")
        table = values
        for section in sections:
            table = table.setdefault(section, {})  # type: ignore[assignment]
        table[leaf] = int(raw) if raw.lstrip("-").isdigit() else float(raw)  # type: ignore[index]
    return rust_engine.EngineConfig(values)


def stop_aubios(procs: list[subprocess.Popen[bytes]], probe: jack.Client) -> None:
    """SIGTERM each aubionotes (it has no other way out) and wait until jackd has dropped them.

    Stopping jackd while aubionotes clients are alive is racy: they exit on the
    server's shutdown notice and jackd, writing the next notice to a closed
    socket, dies of SIGPIPE.
    """
    for proc in procs:
        proc.terminate()
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and aubio_ports_left(probe):
        time.sleep(0.05)


def aubio_ports_left(probe: jack.Client) -> bool:
    try:
        return any(p.name.startswith("aubio") for p in probe.get_ports())
    except jack.JackError:  # a port went away between listing and lookup: still leaving
        return True


def stop_server(server: jackd.JackServer) -> None:
    """Stop our jackd; if it did not exit cleanly, free its slot in JACK's shm registry.

    A jackd that dies without unregistering keeps one of the machine's 8
    server slots until a server of the same name starts again, so one is
    started and stopped cleanly under that name.
    """
    server.stop(timeout=15)
    if server.log_path is not None:
        server.log_path.unlink(missing_ok=True)
    for sem in Path("/dev/shm").glob(f"jack_sem.*_{server.name}_*"):  # left by the SIGTERMed aubionotes
        sem.unlink(missing_ok=True)
    if server.process is not None and server.process.returncode != 0:
        print(f"warning: jackd ended with status {server.process.returncode}; freeing its registry slot",
              file=sys.stderr)
        again = jackd.start(server.name, server.rate, server.period, realtime=False, die_with_parent=True)
        again.stop(timeout=15)
        if again.log_path is not None:
            again.log_path.unlink(missing_ok=True)


def run_period(period: int, pitches: list[int], with_aubio: bool, details: bool,
               config: rust_engine.EngineConfig) -> list[dict[str, object]]:
    seq = tone_sequence(pitches, RATE)
    name = jackd.unique_server_name(f"latency-{period}")
    server = jackd.start(name, RATE, period, realtime=True, die_with_parent=True)
    os.environ["JACK_DEFAULT_SERVER"] = name  # LiveBridge picks its server as libjack does
    aubios: list[tuple[str, subprocess.Popen[bytes], str]] = []
    bridge = player = recorder = None
    probe = jack.Client("latency-probe", servername=name, no_start_server=True)
    try:
        bridge = rust_engine.LiveBridge("daw-bridge", 1, config, **addresses.port_names(1))
        if with_aubio:
            for label, extra in AUBIO_SETTINGS.items():
                proc, client = start_aubio(extra, server, probe)
                aubios.append((label, proc, client))
        contenders = ["daw-bridge"] + [label for label, _, _ in aubios]
        clients = {"daw-bridge": bridge.name, **{label: client for label, _, client in aubios}}
        recorder = midi_recorder("latency-recorder", contenders)
        player = frame_player("latency-player")
        player.connect(player.outputs[0], f"{bridge.name}:in_1")
        recorder.connect(f"{bridge.name}:midi_out", recorder.midi_inputs[0])
        for k, (label, _, client) in enumerate(aubios, start=1):
            player.connect(player.outputs[0], f"{client}:in_1")
            recorder.connect(f"{client}:midi_out_1", recorder.midi_inputs[k])
        time.sleep(1.0)
        bridge.poll()
        assert server.log_path is not None
        span = LogSpan(server.log_path)
        load_before = loadavg()
        origin = play_locked(player, seq.signal)
        end = origin + len(seq.signal) + RATE // 2
        bridge_events = []
        while (player.frame_time() - end) % (1 << 32) > (1 << 31):
            time.sleep(0.2)
            bridge_events += bridge.poll()
        time.sleep(0.2)
        bridge_events += bridge.poll()
        span.end()
        stats = bridge.stats()
        xruns = span.xruns()
    finally:
        for c in (player, recorder):
            if c is not None:
                c.close()
        if bridge is not None:
            bridge.close()
        stop_aubios([proc for _, proc, _ in aubios], probe)
        probe.close()
        stop_server(server)
        os.environ.pop("JACK_DEFAULT_SERVER", None)

    # The recorder must see the bridge's note-ons at the frames the bridge says it sent them.
    sent = [e.frame for e in bridge_events if e.kind == "note_on"]
    seen = [f for f, _ in note_ons(recorder, "daw-bridge")]
    same_cycle = sent == seen
    played, recorded = player.stats(), recorder.stats()
    print(f"\n## period {period} frames ({ms(period):.2f} ms), load average {load_before}")
    print(f"recorder saw the bridge's note-ons at the frames it sent them (same cycle): {same_cycle}"
          + ("" if same_cycle else f" (sent {sent[:5]}..., seen {seen[:5]}...)"))
    print(f"attributed xruns: {xruns or 'none'}; driver xruns: {span.driver_xruns()}; "
          f"bridge stats since open: xruns {stats['xruns']}, max_cycle_us {stats['max_cycle_us']:.0f}")
    print(f"skipped periods: player {played['skipped_periods']}, recorder {recorded['skipped_periods']}; "
          f"short cycle steps (frame time re-synced after an xrun): {recorded['short_steps']}")

    rows = []
    floor = [2 * RATE / midi_hz(m) + period for m in seq.midis]
    for label in ["daw-bridge"] + [label for label, _, _ in aubios]:
        s = score(label, note_ons(recorder, label), seq, origin, period)
        row = summary(s, seq.midis, floor)
        row.update({"raw_median_ms": round(row["median_ms"] - ms(period), 1) if row["median_ms"] else None,
                    "load_avg": load_before, "player_skipped_periods": played["skipped_periods"],
                    "xruns_attributed": xruns.get(clients[label], 0)})
        rows.append(row)
        if details:
            print_details(s, seq, floor)
        print_mistakes(s, seq)
    if bridge_events:
        stage_times(bridge_events, origin, seq)
    floor_row = {"contender": "physical floor", "period": period,
                 "median_ms": round(ms(float(np.median(floor))), 1),
                 "p90_ms": round(ms(float(np.percentile(floor, 90))), 1)}
    rows.append(floor_row)
    return rows


def print_mistakes(s: Score, seq: ToneSequence) -> None:
    wrong = [f"{note_name(int(m))}->{note_name(d) if d is not None else 'none'}"
             for d, m in zip(s.detected, seq.midis) if d != m]
    extra = [f"{note_name(int(m))}: +{','.join(f'{note_name(n)}@{ms(f):.0f}ms' for f, n in e)}"
             for e, m in zip(s.extra, seq.midis) if e]
    if wrong:
        print(f"{s.contender}: wrong/missed pitches: {' '.join(wrong)}")
    if extra:
        print(f"{s.contender}: false notes inside tones: {' | '.join(extra)}")
    if s.stray:
        print(f"{s.contender}: note-ons outside every tone: {len(s.stray)}")


def print_details(s: Score, seq: ToneSequence, floor: list[float]) -> None:
    print(f"{s.contender}, per tone in pitch order (note, latency ms, floor ms, detected):")
    order = np.argsort(seq.midis)
    cells = []
    for i in order:
        lat = f"{ms(s.latencies[i]):5.1f}" if s.latencies[i] is not None else "  -  "
        det = note_name(s.detected[i]) if s.detected[i] is not None else "-"
        cells.append(f"{note_name(int(seq.midis[i])):>3} {lat} {ms(floor[i]):4.1f} {det:>3}")
    for k in range(0, len(cells), 4):
        print("   " + "  |  ".join(cells[k:k + 4]))


def stage_times(events: list, origin: int, seq: ToneSequence) -> None:
    """Where the bridge's latency goes: per tone, the frame (raw, without the added period) at
    which the engine emitted its first onset, its first voiced pitch within 0.5 semitone of
    the tone, and the note-on; and where the note-on is placed (Event.sample, which the
    recorder uses) against the tone start."""
    firsts: dict[str, list[float]] = {"onset": [], "pitch": [], "note_on": []}
    placed = []
    for i in range(len(seq.starts)):
        begin, end = seq.slot(i)
        t0, t1 = origin + begin, origin + end
        inside = [e for e in events if 0 <= (e.frame - t0) % (1 << 32) < t1 - t0]
        onset = next((e for e in inside if e.kind == "onset"), None)
        pitch = next((e for e in inside if e.kind == "pitch" and e.voiced
                      and abs(e.midi - seq.midis[i]) < 0.5), None)
        note = next((e for e in inside if e.kind == "note_on"), None)
        for kind, e in (("onset", onset), ("pitch", pitch), ("note_on", note)):
            if e is not None:
                firsts[kind].append(ms(e.frame - t0))
        if note is not None:
            placed.append(ms(note.frame - (note.emit_sample - note.sample) - t0))
    parts = [f"{kind} {np.median(v):.1f} ms (n={len(v)})" for kind, v in firsts.items() if v]
    print(f"daw-bridge stages, median raw emit time after the tone start: {', '.join(parts)}")
    if placed:
        print(f"daw-bridge note-on placement (Event.sample vs tone start): median {np.median(placed):+.1f} ms, "
              f"range {min(placed):+.1f}..{max(placed):+.1f} ms")


COLUMNS = [("contender", 26), ("period", 6), ("median_ms", 9), ("p90_ms", 7), ("right", 9),
           ("false_notes", 11), ("xruns_attributed", 16), ("raw_median_ms", 13), ("over_floor_ms", 13),
           ("median_ms_-B3", 13), ("median_ms_C4-B4", 15), ("median_ms_C5-C6", 15)]


def print_table(rows: list[dict[str, object]]) -> None:
    print()
    print("  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(COLUMNS)))
    for r in rows:
        cells = []
        for i, (c, w) in enumerate(COLUMNS):
            v = r.get(c, "")
            if c == "right" and v != "":
                v = f"{v}/{TONES}"
            v = "" if v is None else v
            cells.append(f"{v!s:<{w}}" if i == 0 else f"{v!s:>{w}}")
        print("  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--no-aubio", action="store_true", help="measure daw-bridge only")
    parser.add_argument("--details", action="store_true", help="per-tone latency and pitch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="engine setting for the bridge (default: EngineConfig defaults)")
    parser.add_argument("--json", type=Path, help="append one JSON line per row here")
    parser.add_argument("--lowest", type=int, default=LOW, metavar="MIDI",
                        help=f"lowest tone (default {LOW}, E2; {ISSUE_LOW}, A2, is the set the issue "
                             "measured aubionotes on and set its targets for)")
    args = parser.parse_args()
    try:
        config = engine_config(args.set)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with_aubio = not args.no_aubio
    if with_aubio and shutil.which("aubionotes") is None:
        print("error: aubionotes not found (Debian: apt-get install aubio-tools)", file=sys.stderr)
        return 2
    if not 0 <= args.lowest <= HIGH - TONES + 1:
        print(f"error: --lowest must be 0..{HIGH - TONES + 1} for {TONES} distinct tones", file=sys.stderr)
        return 2
    pitches = test_pitches(args.lowest)
    print(f"# {TONES} harmonic tones {note_name(args.lowest)}..{note_name(HIGH)}, 48 kHz, "
          f"load average at start {loadavg()}; bridge settings: {' '.join(args.set) or 'defaults'}")
    rows = []
    for period in args.periods:
        try:
            rows += run_period(period, pitches, with_aubio, args.details, config)
        except (jackd.JackdError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print_table(rows)
    print("latency = recorder frame - tone start + 1 period (capture of the block); raw = without that "
          "period; floor = 2 periods of the note + 1 JACK period; over_floor = median of latency - floor per tone")
    if args.json:
        with args.json.open("a") as out:
            for r in rows:
                out.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
