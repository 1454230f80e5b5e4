"""Soak benchmarks: does the bridge survive long runs without leaking, xrunning
or leaving a note hanging? (issue 6, "Long runs")

engine  Hours of generated, varied audio (melodies, noise, silence, clicks,
        square waves, DC, loud and soft) through one Analyzer, in random block
        splits, as fast as it goes. Generated a segment at a time, so the
        soak's own memory stays flat and any RSS growth is the engine's.
        Reports the real-time factor, RSS at start and end, event counts and
        the note-on / note-off balance.

live    `daw-bridge run` as a subprocess on a private dummy jackd for N
        minutes, fed a looping melody by `python -m bridge.player --loop` and
        recorded by a second `rust_engine.Player` (both Rust process callbacks,
        so the feed and the capture do not miss cycles the way a Python
        callback does). Every 10 s the bridge's
        RSS is read from /proc/PID/status; xruns are attributed from the
        jackd log ("JackEngine::XRun: client = daw-bridge was not finished",
        the method of bench/xruns.py). At the end every note-on must have its
        note-off, on JACK MIDI and in the recorded take.

Usage:
    python -m bench.soak engine [--hours 1] [--seed 1]
    python -m bench.soak live [--minutes 10] [--period 128]
Needs (live): jackd2 from Debian.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge import jackd

RATE = 48_000
CLIENT = "daw-bridge"
# "state = Triggered": woken but not yet run by the OS at the deadline (scheduling);
# "state = Running": still computing at the deadline (the client's own time).
XRUN_LINE = re.compile(r"JackEngine::XRun: client = (\S+) was not finished, state = (\w+)")


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size in KiB, from /proc (no psutil needed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def tone(midi: float, seconds: float, amp: float, rng: np.random.Generator, vibrato: bool = False) -> np.ndarray:
    """A harmonic tone with a short attack and release; optional vibrato."""
    n = max(int(seconds * RATE), 1)
    t = np.arange(n) / RATE
    hz = midi_hz(midi) * (1 + 0.006 * np.sin(2 * np.pi * 5.5 * t) * vibrato)
    phase = 2 * np.pi * np.cumsum(hz) / RATE
    partials = int(rng.integers(1, 8))
    x = sum(np.sin(h * phase) / h for h in range(1, partials + 1) if h * midi_hz(midi) < RATE / 2.2)
    env = np.clip(np.minimum(t / 0.005, (seconds - t) / 0.02), 0.0, 1.0)
    return (amp * env * x / max(np.max(np.abs(x)), 1e-9)).astype(np.float32)


# -- engine soak -------------------------------------------------------------------


def segments(rng: np.random.Generator) -> Iterator[tuple[str, np.ndarray]]:
    """An endless stream of (kind, audio) segments of 0.5-8 s."""
    kinds = ["melody", "legato", "noise", "silence", "clicks", "square", "dc", "soft", "loud", "mixture"]
    weights = np.array([5, 2, 1, 1, 1, 1, 0.5, 1, 1, 1], dtype=float)
    while True:
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        seconds = float(rng.uniform(0.5, 8.0))
        n = int(seconds * RATE)
        if kind in ("melody", "soft", "loud"):
            amp = {"melody": 0.3, "soft": 0.005, "loud": 0.99}[kind]
            parts = []
            while sum(map(len, parts)) < n:
                parts.append(tone(float(rng.integers(36, 90)), float(rng.uniform(0.05, 1.0)), amp, rng,
                                  vibrato=bool(rng.random() < 0.3)))
                parts.append(np.zeros(int(rng.uniform(0.0, 0.3) * RATE), np.float32))
            x = np.concatenate(parts)[:n]
        elif kind == "legato":
            parts = [tone(float(rng.integers(40, 85)), float(rng.uniform(0.1, 0.6)), 0.3, rng) for _ in range(8)]
            x = np.concatenate(parts)[:n]
        elif kind == "noise":
            x = (rng.standard_normal(n) * 10 ** rng.uniform(-4, -0.3)).astype(np.float32)
        elif kind == "silence":
            x = np.zeros(n, np.float32)
        elif kind == "clicks":
            x = np.zeros(n, np.float32)
            at = rng.integers(0, n, size=int(rng.integers(1, 60)))
            x[at] = rng.choice([-1.0, 1.0], size=len(at)) * rng.uniform(0.1, 1.0, size=len(at))
        elif kind == "square":
            hz = midi_hz(float(rng.integers(30, 100)))
            x = np.where(np.sin(2 * np.pi * hz * np.arange(n) / RATE) >= 0, 1.0, -1.0).astype(np.float32)
        elif kind == "dc":
            x = np.full(n, rng.uniform(-1.0, 1.0), np.float32)
            x += tone(float(rng.integers(40, 85)), seconds, 0.2, rng)[:n]
        else:  # a tone over noise and a DC offset
            x = tone(float(rng.integers(40, 85)), seconds, 0.3, rng)[:n]
            x += (rng.standard_normal(n) * 0.02 + rng.uniform(-0.1, 0.1)).astype(np.float32)
        yield kind, np.ascontiguousarray(x, dtype=np.float32)


@dataclass
class NoteBalance:
    """Checks that notes alternate on/off for one monophonic stream."""

    open_note: int | None = None
    ons: int = 0
    offs: int = 0
    problems: list[str] = field(default_factory=list)

    def feed(self, kind: str, note: int, where: str) -> None:
        if kind == "note_on":
            if self.open_note is not None:
                self.problems.append(f"{where}: note_on {note} while {self.open_note} is open")
            self.open_note, self.ons = note, self.ons + 1
        elif kind == "note_off":
            if self.open_note != note:
                self.problems.append(f"{where}: note_off {note} but open is {self.open_note}")
            self.open_note, self.offs = None, self.offs + 1


def engine_soak(hours: float, seed: int) -> dict[str, object]:
    import rust_engine

    rng = np.random.default_rng(seed)
    an = rust_engine.Analyzer(rust_engine.EngineConfig({"sample_rate": RATE}))
    balance = NoteBalance()
    kinds: Counter[str] = Counter()
    seconds_by_kind: Counter[str] = Counter()
    nonfinite = 0
    total = int(hours * 3600 * RATE)
    done = 0
    engine_s = 0.0
    rss_start = rss_kib()
    rss_samples: list[tuple[float, int]] = []
    next_report = 0.0
    wall0 = time.perf_counter()
    gen = segments(rng)
    while done < total:
        kind, x = next(gen)
        x = x[: total - done]
        seconds_by_kind[kind] += len(x) / RATE
        pos = 0
        while pos < len(x):
            size = int(rng.choice([0, 1, 64, 128, 256, 441, 512, 1024, 4096, 8192]))
            block = x[pos : pos + size]
            t0 = time.perf_counter()
            events = an.process(block)
            engine_s += time.perf_counter() - t0
            pos += len(block)
            for e in events:
                kinds[e.kind] += 1
                if e.kind in ("note_on", "note_off"):
                    balance.feed(e.kind, e.note, f"t={e.t:.3f}")
                elif not all(math.isfinite(v) for v in (e.hz, e.midi, e.confidence, e.strength, e.rms, e.peak, e.db, e.envelope_db)):
                    nonfinite += 1
        done += len(x)
        audio_h = done / RATE / 3600
        if audio_h >= next_report:
            rss_samples.append((round(audio_h, 3), rss_kib()))
            print(f"  {audio_h * 60:6.1f} min of audio, RSS {rss_samples[-1][1] / 1024:.1f} MiB, "
                  f"{kinds['note_on']} notes", file=sys.stderr, flush=True)
            next_report += 1 / 12
    for e in an.flush():
        kinds[e.kind] += 1
        if e.kind in ("note_on", "note_off"):
            balance.feed(e.kind, e.note, "flush")
    wall = time.perf_counter() - wall0
    audio_s = total / RATE
    rss_end = rss_kib()
    # The first sample after 5 minutes of audio is the baseline: numpy's and the
    # allocator's pools are warm by then, so later growth would be a leak.
    rss_warm = rss_samples[1][1] if len(rss_samples) > 1 else rss_samples[0][1]
    return {
        "audio_s": round(audio_s, 1),
        "seed": seed,
        "engine_wall_s": round(engine_s, 2),
        "x_real_time_engine": round(audio_s / engine_s, 1),
        "x_real_time_with_generation": round(audio_s / wall, 1),
        "rss_start_kib": rss_start,
        "rss_after_5min_audio_kib": rss_warm,
        "rss_end_kib": rss_end,
        "rss_growth_after_warmup_kib": rss_end - rss_warm,
        "events": dict(kinds),
        "note_on": balance.ons,
        "note_off": balance.offs,
        "open_after_flush": balance.open_note,
        "balance_problems": balance.problems[:10],
        "nonfinite_events": nonfinite,
        "seconds_by_kind": {k: round(v, 1) for k, v in sorted(seconds_by_kind.items())},
        "rss_samples_h_kib": rss_samples,
    }


# -- live soak -----------------------------------------------------------------------

LIVE_MELODY = [40, 45, 52, 57, 60, 64, 67, 72, 76, 79, 84, 71, 62, 55, 48, 43]


def live_melody() -> tuple[np.ndarray, list[int]]:
    """One loop of the live soak's melody: detached harmonic tones E2..C6 and back."""
    rng = np.random.default_rng(7)
    parts = [np.zeros(int(0.2 * RATE), np.float32)]
    for i, n in enumerate(LIVE_MELODY):
        parts.append(tone(n, 0.25 + 0.05 * (i % 3), 0.3 if i % 4 else 0.05, rng))
        parts.append(np.zeros(int(0.15 * RATE), np.float32))
    return np.concatenate(parts), LIVE_MELODY


def midi_balance(messages: list[tuple[int, int, int]]) -> tuple[int, int, list[str]]:
    """(note-ons, note-offs, problems) of (status, note, velocity) messages, per channel."""
    open_notes: dict[int, int | None] = {}
    ons = offs = 0
    problems: list[str] = []
    for i, (status, note, vel) in enumerate(messages):
        kind, ch = status & 0xF0, status & 0x0F
        if kind == 0x90 and vel > 0:
            if open_notes.get(ch) is not None:
                problems.append(f"#{i}: on {note} while {open_notes[ch]} open")
            open_notes[ch], ons = note, ons + 1
        elif kind == 0x80 or (kind == 0x90 and vel == 0):
            if open_notes.get(ch) != note:
                problems.append(f"#{i}: off {note} but open is {open_notes.get(ch)}")
            open_notes[ch], offs = None, offs + 1
    problems += [f"channel {ch}: {n} still open at the end" for ch, n in open_notes.items() if n is not None]
    return ons, offs, problems


def jack_cmd(server: jackd.JackServer, *cmd: str) -> str:
    return subprocess.run(cmd, env=server.env, capture_output=True, text=True, timeout=10, check=False).stdout


def wait_for_port(server: jackd.JackServer, port: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while port not in jack_cmd(server, "jack_lsp").split("\n"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not appear")
        time.sleep(0.2)


def _sigint_default() -> None:
    # Started from a background job, we inherit SIGINT ignored, and Python keeps it
    # so; the bridge must see the Ctrl-C a terminal would send it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def live_soak(minutes: float, period: int, sample_every: float, take: bool = True) -> dict[str, object]:
    import mido
    import soundfile as sf

    from bench.players import midi_recorder

    for tool in ("jackd", "jack_lsp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"soak: {tool} not found (apt-get install jackd2)")
    cli = Path(sys.executable).with_name("daw-bridge")
    work = Path(tempfile.mkdtemp(prefix="daw-bridge-soak-"))
    audio, melody = live_melody()
    sf.write(work / "melody.wav", audio, RATE, subtype="FLOAT")
    loop_s = len(audio) / RATE
    log_path = work / "jackd.log"
    server = jackd.start(jackd.unique_server_name("soak"), RATE, period, log_path=log_path, die_with_parent=True)
    procs: list[subprocess.Popen[bytes]] = []
    os.environ["JACK_DEFAULT_SERVER"] = server.name  # the recorder picks its server as libjack does
    recorder = None
    try:
        bridge_cmd = [str(cli), "run", "--connect", "^soak-player:out$"]
        if take:
            bridge_cmd += ["--record-midi", str(work / "take.mid")]
        bridge = subprocess.Popen(bridge_cmd, env=server.env, stdin=subprocess.DEVNULL,
                                  stdout=(work / "bridge.out").open("wb"), stderr=(work / "bridge.err").open("wb"),
                                  preexec_fn=_sigint_default)  # noqa: PLW1509 - one signal() call, no other way
        procs.append(bridge)
        wait_for_port(server, f"{CLIENT}:midi_out")
        recorder = midi_recorder("midi-monitor", ["input"])
        recorder.connect(f"{CLIENT}:midi_out", recorder.midi_inputs[0])
        log0 = log_path.stat().st_size
        player = subprocess.Popen(
            [sys.executable, "-m", "bridge.player", str(work / "melody.wav"), "--name", "soak-player", "--loop"],
            env=server.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(player)
        started = time.monotonic()
        rss: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - started) < minutes * 60:
            if bridge.poll() is not None:
                raise RuntimeError(f"the bridge exited with {bridge.returncode}: {(work / 'bridge.err').read_text()}")
            rss.append((round(elapsed, 1), rss_kib(bridge.pid)))
            time.sleep(max(0.0, sample_every - (time.monotonic() - started - elapsed)))
        played_s = time.monotonic() - started
        player.send_signal(signal.SIGTERM)
        player.wait(10)
        time.sleep(1.0)  # the last note's release reaches the bridge and its note-off the recorder
        log1 = log_path.stat().st_size
        bridge.send_signal(signal.SIGINT)  # Ctrl-C: every note closed, the take written
        bridge.wait(30)
        time.sleep(0.3)
    finally:
        if recorder is not None:
            recorder.close()
        # SIGTERM before SIGKILL: a client killed outright makes jackd die of SIGPIPE
        # on its way down, leaving a stale slot in JACK's eight-slot server registry.
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        server.stop()
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    with log_path.open("rb") as f:
        f.seek(log0)
        span = f.read(log1 - log0).decode(errors="replace")
    by_state = Counter(XRUN_LINE.findall(span))
    blamed = Counter(client for client, _ in by_state.elements())
    messages = [(m[0], m[1], m[2]) for _, m in recorder.midi() if len(m) == 3] if recorder is not None else []
    ons, offs, problems = midi_balance(messages)
    pitches = Counter(a for s, a, b in messages if s & 0xF0 == 0x90 and b > 0)
    take_msgs = []
    if take:
        midi_file = mido.MidiFile(work / "take.mid")
        take_msgs = [(m.type, m.note, m.velocity) for m in mido.merge_tracks(midi_file.tracks)
                     if m.type in ("note_on", "note_off")]
    take_ons, take_offs, take_problems = midi_balance(
        [(0x90 if t == "note_on" else 0x80, n, v) for t, n, v in take_msgs])
    err = (work / "bridge.err").read_text(errors="replace")
    stopped = re.search(r"stopped; (\d+) xruns", err)
    steady = [kib for t, kib in rss if t >= 60] or [kib for _, kib in rss]
    result = {
        "minutes": round(played_s / 60, 2),
        "period": period,
        "loops_played": round(played_s / loop_s, 1),
        "notes_expected_about": round(played_s / loop_s * len(melody)),
        "command": " ".join(bridge_cmd),
        "bridge_exit": bridge.returncode,
        "rss_first_kib": rss[0][1],
        "rss_at_1min_kib": steady[0],
        "rss_last_kib": rss[-1][1],
        "rss_max_kib": max(k for _, k in rss),
        "rss_growth_after_1min_kib": rss[-1][1] - steady[0],
        "xruns_blamed_on_bridge": blamed.get(CLIENT, 0),
        "xruns_blamed_on_others": {k: v for k, v in blamed.items() if k != CLIENT},
        "xruns_blamed_by_state": {f"{c} {st}": n for (c, st), n in sorted(by_state.items())},
        "xruns_driver_lines": span.count("JackTimedDriver::Process XRun"),
        "bridge_reported_xruns": int(stopped.group(1)) if stopped else None,
        "jack_midi_note_on": ons,
        "jack_midi_note_off": offs,
        "jack_midi_problems": problems[:10],
        "wrong_pitches": {p: c for p, c in pitches.items() if p not in melody},
        "take_recorded": take,
        "take_note_on": take_ons,
        "take_note_off": take_offs,
        "take_problems": take_problems[:10],
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "rss_samples_s_kib": rss,
        "work_dir": str(work),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("engine", help="hours of varied audio through the engine, offline")
    e.add_argument("--hours", type=float, default=1.0)
    e.add_argument("--seed", type=int, default=1)
    live = sub.add_parser("live", help="daw-bridge run on a dummy jackd for N minutes")
    live.add_argument("--minutes", type=float, default=10.0)
    live.add_argument("--period", type=int, default=128)
    live.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    live.add_argument("--no-take", action="store_true",
                      help="without --record-midi (the take holds every note in memory until it is written)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.what == "engine":
        result = engine_soak(args.hours, args.seed)
        ok = (result["note_on"] == result["note_off"] and not result["balance_problems"]
              and result["open_after_flush"] is None and result["nonfinite_events"] == 0)
    else:
        result = live_soak(args.minutes, args.period, args.sample_every, take=not args.no_take)
        ok = (result["jack_midi_note_on"] == result["jack_midi_note_off"] and not result["jack_midi_problems"]
              and result["take_note_on"] == result["take_note_off"] and not result["take_problems"]
              and result["xruns_blamed_on_bridge"] == 0 and result["rss_growth_after_1min_kib"] < 5 * 1024
              and result["bridge_exit"] == 0)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(f"soak {args.what}: {'PASS' if ok else 'FAIL'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
