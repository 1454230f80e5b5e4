"""A JACK-Client (Python) process callback under test, run by bench/xruns.py in its own process.

Each variant runs in a fresh process so one variant's garbage, threads or GIL
state cannot leak into the next. The per-block work matches the Rust client
in bench/xrun_client/ so the two differ only in the callback's language.

Protocol (shared with the Rust client): `READY` once active and connected,
`STOP` when the measured span ends (before deactivating, which the harness must
not count), then one JSON line of figures. The server is chosen by
JACK_DEFAULT_SERVER.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import jack
import numpy as np

MIDI_EVERY = 100  # blocks between two MIDI events in `work` (~0.27 s at 128 frames)
NOTE_ON, NOTE_OFF = (0x90, 60, 100), (0x80, 60, 0)
# The stand-in for TUI/OSC threads: 10 ms of Python, then 10 ms idle.
BUSY_ON_S, BUSY_OFF_S = 0.010, 0.010


def busy_python(stop: threading.Event) -> None:
    """Hold the GIL in pure-Python bursts, as a Textual redraw or an OSC encoder would.

    CPython hands the GIL to a waiting thread only every sys.getswitchinterval()
    (5 ms), so a process callback that needs the GIL can wait that long.
    """
    while not stop.is_set():
        end = time.perf_counter() + BUSY_ON_S
        while time.perf_counter() < end:
            {str(i): i * i for i in range(200)}  # the point is to burn interpreter time
        stop.wait(BUSY_OFF_S)


def make_engine(rate: int, period: int):  # no return type: rust_engine may not be built yet
    """The real analysis engine, when rust_engine is importable (the `engine` variant)."""
    from rust_engine import Analyzer, EngineConfig

    return Analyzer(EngineConfig({"sample_rate": rate, "hop": period}))


def run(args: argparse.Namespace) -> dict[str, object]:
    client = jack.Client(args.name, no_start_server=True)
    rate, period = client.samplerate, client.blocksize
    inport = client.inports.register("in")
    midi = client.midi_outports.register("midi_out")
    engine = make_engine(rate, period) if args.work == "engine" else None
    # Preallocated: the callback only stores into them.
    durations = np.zeros(int(args.seconds * rate / period) + 2048, dtype=np.int64)
    intervals = np.zeros_like(durations)
    st = {"cycles": 0, "missed": 0, "last": None, "policy": -1, "midi": 0, "xruns": 0,
          "level": 0.0, "t_prev": 0, "late_once": False}
    work = args.work

    @client.set_xrun_callback
    def _xrun(_delay: float) -> None:
        st["xruns"] += 1

    @client.set_process_callback
    def _process(frames: int) -> None:
        t0 = time.perf_counter_ns()  # after the GIL was taken: waits for it show in `intervals`
        frame = client.last_frame_time
        last = st["last"]
        if last is None:
            st["policy"] = os.sched_getscheduler(0)
        else:
            st["missed"] += ((frame - last) % 2**32) // frames - 1
        st["last"] = frame
        if st["late_once"]:
            st["late_once"] = False
            time.sleep(args.late_ms / 1e3)  # the deliberate miss of the detection check
        x = inport.get_array()
        if work != "trivial":
            if engine is None:
                st["level"] = float(np.dot(x, x))  # one call into compiled code
            else:
                engine.process(x)
            midi.clear_buffer()
            n = st["cycles"]
            if n % MIDI_EVERY == 0:
                midi.write_midi_event(0, NOTE_ON if (n // MIDI_EVERY) % 2 == 0 else NOTE_OFF)
                st["midi"] += 1
        i = st["cycles"]
        if i < len(durations):
            intervals[i] = t0 - st["t_prev"]
            durations[i] = time.perf_counter_ns() - t0
        st["t_prev"] = t0
        st["cycles"] = i + 1

    stop_busy = threading.Event()
    busy = threading.Thread(target=busy_python, args=(stop_busy,), daemon=True)
    with client:  # activates; deactivates and closes on exit
        if args.connect:
            client.connect(args.connect, inport)
        if args.busy:
            busy.start()
        time.sleep(0.5)  # let activation and connection settle
        print("READY", flush=True)
        c0, m0, x0 = st["cycles"], st["missed"], st["xruns"]
        st["late_once"] = args.late_ms > 0
        time.sleep(args.seconds)
        c1, m1, x1 = st["cycles"], st["missed"], st["xruns"]
        cpu_load = client.cpu_load()
        print("STOP", flush=True)
        stop_busy.set()
        if args.busy:
            busy.join()
    # The first interval of the span still counts: it starts inside the measured period.
    span = slice(min(c0 + 1, len(durations)), min(c1, len(durations)))
    dur, gap = durations[span] / 1e3, intervals[span] / 1e3
    return {
        "client": "python", "work": work, "busy_thread": args.busy,
        "cycles": c1 - c0, "missed_cycles": m1 - m0, "own_xruns": x1 - x0,
        "callback_p50_us": round(float(np.percentile(dur, 50)), 1) if dur.size else 0.0,
        "callback_p99_us": round(float(np.percentile(dur, 99)), 1) if dur.size else 0.0,
        "callback_max_us": round(float(dur.max()), 1) if dur.size else 0.0,
        "interval_max_us": round(float(gap.max()), 1) if gap.size else 0.0,
        "cpu_load": round(cpu_load, 3), "sched_policy": st["policy"], "midi_written": st["midi"],
        "switch_interval_s": sys.getswitchinterval(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="xrun-py")
    parser.add_argument("--work", choices=["trivial", "work", "engine"], default="trivial")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connect", help="port to feed the input from, e.g. system:capture_1")
    parser.add_argument("--busy", action="store_true", help="run a GIL-holding Python thread too")
    parser.add_argument("--late-ms", type=float, default=0.0,
                        help="sleep this long once, in the first measured cycle")
    parser.add_argument("--busy-only", action="store_true",
                        help="no JACK client: only burn Python time (CPU load beside Rust)")
    args = parser.parse_args()
    if args.busy_only:
        busy_python(threading.Event())
        return 0
    try:
        figures = run(args)
    except (jack.JackError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
