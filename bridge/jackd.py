"""Start, find and stop a JACK server running the dummy backend.

`make run`, the tests and the benchmarks need a JACK server on machines that
have no sound card and no session manager. The dummy backend is timer driven
and still reports clients that miss their deadline as xruns, so it is a real
server for everything but the sound itself. A server that is already running
under the requested name is used as it is and never stopped by us: a user's
own session must not be disturbed. Tests pass a private server name so they
never touch the default server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import jack

from bridge import processes

DEFAULT_RATE = 48000
DEFAULT_PERIOD = 128
MISSING_JACKD = "jackd not found: install JACK 2 (Debian: apt-get install jackd2)"
# libjack copies server names into fixed buffers and aborts the process on longer
# ones; jackd itself refuses names whose socket path gets too long (~80 bytes).
MAX_NAME_BYTES = 255


class JackdError(RuntimeError):
    """The JACK server could not be found, started or reached."""


OPEN_ATTEMPTS = 5


def open_client(name: str, servername: str | None = None) -> jack.Client:
    """A JACK-Client client of the server `servername` (default: as libjack picks), never
    starting one. jackd2 refuses a new client with "server error" when telling its other
    clients about it fails, as it does for one closing at that moment on a busy machine:
    that is retried. Raises jack.JackError."""
    attempt = 1
    while True:
        try:
            return jack.Client(name, no_start_server=True, servername=servername)
        except jack.JackOpenError as e:
            if not e.status.server_error or attempt == OPEN_ATTEMPTS:
                raise
        attempt += 1
        time.sleep(0.05)


def default_server_name() -> str:
    """The server name libjack uses when none is given (JACK_DEFAULT_SERVER or 'default')."""
    return os.environ.get("JACK_DEFAULT_SERVER") or "default"


@contextlib.contextmanager
def _quiet_libjack() -> Iterator[None]:
    """Silence libjack's messages while probing: a failed connect prints four lines."""
    jack.set_error_function(lambda _msg: None)
    jack.set_info_function(lambda _msg: None)
    try:
        yield
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)


def unique_server_name(tag: str = "test") -> str:
    """A server name no other process uses (pid plus a random part), for tests and benchmarks."""
    return f"dawbridge-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _check_name(name: str) -> None:
    if not name or len(name.encode()) > MAX_NAME_BYTES:
        raise JackdError(f"JACK server name must be 1 to {MAX_NAME_BYTES} bytes long")


def probe(name: str | None = None) -> tuple[int, int] | None:
    """Return (sample rate, period) of the server `name` if it accepts clients, else None.

    A real client registration is the only reliable test: a socket file can
    outlive a killed server.
    """
    name = name or default_server_name()
    _check_name(name)
    with _quiet_libjack():
        try:
            client = open_client("daw-bridge-probe", servername=name)
        except jack.JackError:
            return None
    try:
        return client.samplerate, client.blocksize
    finally:
        client.close()


def is_running(name: str | None = None) -> bool:
    """True if a JACK server named `name` (default: the default server) accepts clients."""
    return probe(name) is not None


def jackd_command(
    name: str, rate: int = DEFAULT_RATE, period: int = DEFAULT_PERIOD, realtime: bool = True,
    timeout_ms: int | None = None, jackd: str = "jackd",
) -> list[str]:
    """The jackd2 command line for a dummy server.

    Options before `-d` belong to the server (there `-p` would be the port
    limit), options after it to the dummy backend. jackd2 defaults to
    realtime scheduling; `-r` turns it off. `-t` is the client timeout: in
    the default asynchronous mode it only decides when the server gives up
    waiting for a stuck graph, so it is left at jackd's default unless given.
    """
    cmd = [jackd, "--name", name, "--realtime" if realtime else "--no-realtime"]
    if timeout_ms is not None:
        cmd += ["--timeout", str(timeout_ms)]
    return cmd + ["-d", "dummy", "--rate", str(rate), "--period", str(period)]


@dataclass
class JackServer:
    """A JACK server we started (`process` set) or found running (`process` None)."""

    name: str
    rate: int
    period: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    command: list[str] = field(default_factory=list)
    _slot_checked: bool = field(default=False, repr=False)

    @property
    def owned(self) -> bool:
        """True if this handle started the server and so may stop it."""
        return self.process is not None

    @property
    def env(self) -> dict[str, str]:
        """An environment that points child JACK clients at this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name}

    def log_text(self) -> str:
        """Everything jackd has written so far (empty if we did not start it)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server if we started it: SIGTERM, then SIGKILL after `timeout` s.

        A jackd that died by a signal (killed, or SIGPIPE from a client killed
        just before) keeps its slot in libjack's machine-wide registry of 8
        servers; starting and cleanly stopping one of the same name frees it.
        """
        if self.process is None:
            return
        processes.stop_process(self.process, timeout)
        if self.process.returncode not in (0, -signal.SIGTERM) and self.command and not self._slot_checked:
            self._free_slot(timeout)
        self._slot_checked = True

    def _free_slot(self, timeout: float) -> None:
        with open(os.devnull, "wb") as devnull:
            process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=devnull, stderr=devnull,
                preexec_fn=processes.die_with_parent,  # noqa: PLW1509 - prctl must run in the child
            )
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline and not is_running(self.name):
            time.sleep(0.05)
        processes.stop_process(process, timeout)

    def kill(self) -> None:
        """SIGKILL the server we started, as a crash would (for fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


BANNER = ("jackdmp ", "Copyright ", "jackdmp comes with", "This is free software", "under certain")


def _log_tail(path: Path, lines: int = 3) -> str:
    """jackd's last words without its licence banner."""
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    said = [line for line in text if line.strip() and not line.startswith(BANNER)]
    # Without -v, jackd exits silently on e.g. "Too many servers already active".
    return " | ".join(said[-lines:]) or "no reason given (jackd -v says; too many servers?)"


def start(
    name: str | None = None, rate: int = DEFAULT_RATE, period: int = DEFAULT_PERIOD,
    realtime: bool = True, timeout_ms: int | None = None, wait: float = 10.0,
    log_path: Path | None = None, die_with_parent: bool = False,
) -> JackServer:
    """Use the server `name` if it is running, else start a dummy jackd and wait for it.

    Raises JackdError if jackd is missing, exits early (e.g. the name is taken
    by a server of another user) or does not accept clients within `wait` s.
    jackd's output goes to `log_path` (a temporary file by default): a pipe
    nobody reads would fill up and stall the server on its next xrun message.
    `die_with_parent` has the kernel SIGTERM jackd when the calling thread
    exits, so a crashed test run leaves no server behind; call `start` from a
    long-lived thread then.
    """
    name = name or default_server_name()
    found = probe(name)
    if found is not None:
        return JackServer(name, rate=found[0], period=found[1])
    exe = shutil.which("jackd")
    if exe is None:
        raise JackdError(MISSING_JACKD)
    if log_path is None:
        fd, tmp = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
        os.close(fd)
        log_path = Path(tmp)
    cmd = jackd_command(name, rate, period, realtime, timeout_ms, jackd=exe)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop jackd ourselves
            # One prctl call in the child; no other way to set it before exec.
            preexec_fn=processes.die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    server = JackServer(name, rate, period, process, log_path, cmd)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            status = process.returncode
            raise JackdError(f"jackd exited with status {status}: {_log_tail(log_path)}")
        if is_running(name):
            return server
        time.sleep(0.05)
    server.stop()
    raise JackdError(f"jackd did not accept clients within {wait:g} s: {_log_tail(log_path)}")


def main(argv: list[str] | None = None) -> int:
    """Run a dummy JACK server in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bridge.jackd", description=main.__doc__)
    parser.add_argument("--name", help="server name (default: $JACK_DEFAULT_SERVER or 'default')")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE)
    parser.add_argument("--period", type=int, default=DEFAULT_PERIOD)
    parser.add_argument("--no-realtime", action="store_true", help="run jackd without SCHED_FIFO")
    args = parser.parse_args(argv)
    try:
        server = start(args.name, args.rate, args.period, realtime=not args.no_realtime)
    except JackdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if server.process is None:
        print(f"JACK server '{server.name}' already running ({server.rate} Hz, "
              f"{server.period} frames); leaving it alone")
        return 0
    print(f"JACK server '{server.name}' running ({server.rate} Hz, {server.period} frames), "
          f"log {server.log_path}; Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.process.wait()
        print(f"error: jackd exited with status {server.process.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
