"""Count the xruns of a Python and a Rust JACK process callback on a private dummy jackd.

The question it answers (issue 3, "Real-time rules"): can the bridge's
process callback live in Python (JACK-Client), or must it be Rust (the `jack`
crate)? Each variant runs as its own process against a private dummy jackd;
between its `READY` and `STOP` lines three counts are taken:

- attributed xruns: jackd's own "JackEngine::XRun: client = NAME was not
  finished" lines for the measured client -- the bridge-caused xruns the issue
  counts. The dummy driver does report late clients (`--late-check` proves it
  each run by sleeping 10 ms once in a Python callback);
- missed cycles: gaps in the client's `last_frame_time` (cycles it never ran);
- all xruns seen by an observer client's xrun callback (any cause, including
  the dummy driver's own timer waking late: "JackTimedDriver::Process XRun").

Usage: python -m bench.xruns [--seconds 60] [--periods 128 256] [--realtime on|off|both]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jack

ROOT = Path(__file__).resolve().parent.parent

from bridge import jackd

PYCLIENT = ROOT / "bench" / "xrun_pyclient.py"
RUST_DIR = ROOT / "bench" / "xrun_client"
RUST_BIN = RUST_DIR / "target" / "release" / "xrun_client"
SOURCE_PORT = "system:capture_1"  # the dummy's silent capture port feeds every client's input
RATE = 48000


@dataclass(frozen=True)
class Variant:
    """One measured client: how to start it and whether a busy Python process runs beside it."""

    name: str
    cmd: list[str]
    busy_process: bool = False


def variants(python: str, late_ms: float = 10.0) -> dict[str, Variant]:
    py = [python, str(PYCLIENT), "--connect", SOURCE_PORT]
    rs = [str(RUST_BIN), "--connect", SOURCE_PORT]
    return {v.name: v for v in [
        Variant("late-check", [*py, "--work", "trivial", "--late-ms", str(late_ms)]),
        Variant("py-trivial", [*py, "--work", "trivial"]),
        Variant("py-work", [*py, "--work", "work"]),
        Variant("py-work-busy", [*py, "--work", "work", "--busy"]),
        Variant("py-engine", [*py, "--work", "engine"]),
        Variant("rust-trivial", [*rs, "--work", "trivial"]),
        Variant("rust-work", [*rs, "--work", "work"]),
        Variant("rust-work-busy", [*rs, "--work", "work"], busy_process=True),
    ]}


DEFAULT_VARIANTS = ["late-check", "py-trivial", "py-work", "py-work-busy",
                    "rust-trivial", "rust-work", "rust-work-busy"]


class Observer:
    """A JACK client with no process callback that only counts xrun notifications."""

    def __init__(self, server: str) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self.client = jack.Client("xrun-observer", servername=server, no_start_server=True)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, _delay: float) -> None:
        with self._lock:
            self.count += 1

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine: the load the run shared the CPUs with."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def read_line(proc: subprocess.Popen[str], want: str, timeout: float) -> str:
    """The next stdout line of `proc`, which must be `want` (or any line if want is '')."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    line = box[0].strip() if box else ""
    if not box or (want and line != want):
        proc.kill()
        err = proc.stderr.read().strip() if proc.stderr else ""  # type: ignore[union-attr]
        raise RuntimeError(f"client did not say {want or 'its figures'!r} (got {line!r}): {err}")
    return line


def measure(group: list[Variant], server: jackd.JackServer, observer: Observer, seconds: float,
            python: str) -> list[dict[str, object]]:
    """Run the variants of `group` at the same time for `seconds`; one row of figures each.

    Run together (`--paired`), the variants share the same machine noise, so
    their attributed xruns compare fairly even while others load the CPUs.
    """
    seconds = min(seconds, 5.0) if [v.name for v in group] == ["late-check"] else seconds
    busy = ([subprocess.Popen([python, str(PYCLIENT), "--busy-only"])]
            if any(v.busy_process for v in group) else [])
    procs = {
        v.name: subprocess.Popen([*v.cmd, "--name", f"xrun-{v.name}", "--seconds", str(seconds)],
                                 env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        for v in group
    }
    assert server.log_path is not None  # we started this server, so its log is ours
    try:
        for proc in procs.values():
            read_line(proc, "READY", 30)
        log0, obs0, cpu0 = server.log_path.stat().st_size, observer.count, cpu_ticks()
        for proc in procs.values():
            read_line(proc, "STOP", seconds + 30)
        time.sleep(0.2)  # xrun notifications and log lines arrive a little after the cycle
        log1, obs1, cpu1 = server.log_path.stat().st_size, observer.count, cpu_ticks()
        figures = {name: json.loads(read_line(proc, "", 30)) for name, proc in procs.items()}
        for proc in procs.values():
            proc.wait(30)
    finally:
        for proc in [*procs.values(), *busy]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with server.log_path.open("rb") as log:
        log.seek(log0)
        span = log.read(log1 - log0).decode(errors="replace")
    attributed = re.findall(r"JackEngine::XRun: client = (\S+) was not finished", span)
    busy_ticks, total_ticks = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    rows = []
    for v in group:
        client_name = f"xrun-{v.name}"
        rows.append({
            "variant": v.name, "period": server.period, "rate": server.rate, "seconds": seconds,
            "together_with": [w.name for w in group if w is not v],
            "xruns_attributed": attributed.count(client_name),
            "xruns_other_clients": len(attributed) - attributed.count(client_name),
            "xruns_driver": span.count("JackTimedDriver::Process XRun"),
            "xruns_observer": obs1 - obs0,
            "machine_busy_pct": round(100 * busy_ticks / max(total_ticks, 1), 1),
            "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0]),
            **figures[v.name],
            "command": " ".join(procs[v.name].args),  # type: ignore[arg-type]
        })
    return rows


def sched_latency(seconds: float, period_us: float) -> str:
    """The machine's own wake-up latency for SCHED_FIFO threads, from cyclictest (rt-tests).

    No client can beat it: a wake-up later than one period is an xrun whatever
    the language of the callback.
    """
    cmd = ["cyclictest", "-m", "-p", "80", "-t", "2", "-a", "-i", "1000", "-q",
           "-D", f"{int(seconds)}", "-h", "100000"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cyclictest unavailable ({exc})"
    late = total = 0
    for line in out.splitlines():
        if line[:1].isdigit():
            us, *counts = (int(v) for v in line.split())
            total += sum(counts)
            late += sum(counts) if us >= period_us else 0
    worst = re.search(r"# Max Latencies:(.*)", out)
    return (f"cyclictest {' '.join(cmd[1:])}: max {worst.group(1).split() if worst else '?'} us, "
            f"{late} of {total} wake-ups later than one period ({period_us:.0f} us)")


def build_rust_client() -> None:
    """Build the Rust client (release) unless it is already built and newer than its source."""
    src = RUST_DIR / "src" / "main.rs"
    if RUST_BIN.exists() and RUST_BIN.stat().st_mtime >= src.stat().st_mtime:
        return
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                    str(RUST_DIR / "Cargo.toml")], check=True)


def rust_engine_importable(python: str) -> bool:
    return subprocess.run([python, "-c", "import rust_engine"], capture_output=True, check=False).returncode == 0


COLUMNS = ["variant", "period", "rt", "seconds", "xruns_attributed", "missed_cycles",
           "xruns_observer", "xruns_driver", "callback_p99_us", "callback_max_us",
           "interval_max_us", "sched_policy", "machine_busy_pct"]


def print_row(row: dict[str, object]) -> None:
    print("  ".join(f"{row.get(c, '')!s:>{max(len(c), 6)}}" for c in COLUMNS), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured span per variant")
    parser.add_argument("--periods", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--realtime", choices=["on", "off", "both"], default="on",
                        help="jackd with SCHED_FIFO (jackd's default), without, or both")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                        help=f"from {', '.join(variants(sys.executable))}")
    parser.add_argument("--paired", action="store_true",
                        help="run the variants at the same time on one server (same noise for all)")
    parser.add_argument("--cyclictest", type=float, default=0.0, metavar="SECONDS",
                        help="first measure the machine's SCHED_FIFO wake-up latency this long")
    parser.add_argument("--json", type=Path, help="append one JSON line per measurement here")
    args = parser.parse_args()
    python = sys.executable
    known = variants(python)
    unknown = [v for v in args.variants if v not in known]
    if unknown:
        print(f"error: unknown variant(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    if any(v.startswith("rust") for v in args.variants):
        build_rust_client()
    chosen = [v for v in args.variants if v != "py-engine" or rust_engine_importable(python)]
    if len(chosen) < len(args.variants):
        print("note: py-engine skipped, rust_engine is not importable", file=sys.stderr)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.realtime]
    print("  ".join(f"{c:>{max(len(c), 6)}}" for c in COLUMNS))
    for realtime in modes:
        for period in args.periods:
            name = jackd.unique_server_name(f"xrunbench-{period}-{'rt' if realtime else 'nort'}")
            try:
                server = jackd.start(name, RATE, period, realtime=realtime,
                                     die_with_parent=True)
            except jackd.JackdError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if args.cyclictest:
                print(f"# {sched_latency(args.cyclictest, period * 1e6 / RATE)}", flush=True)
            observer = Observer(name)
            try:
                checks = [[known[k]] for k in chosen if k == "late-check"]
                rest = [known[k] for k in chosen if k != "late-check"]
                groups = checks + ([rest] if args.paired else [[v] for v in rest])
                for group in groups:
                    for row in measure(group, server, observer, args.seconds, python):
                        row["rt"] = "on" if realtime else "off"
                        print_row(row)
                        if args.json:
                            with args.json.open("a") as out:
                                out.write(json.dumps(row) + "\n")
            finally:
                observer.close()
                server.stop()
                if server.log_path is not None:
                    server.log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
