"""Checks `daw-bridge run` makes before anything starts.

A bad flag must fail at once with one line, not after a JACK server was
started, a client opened and the audio began: an OSC host that does not
resolve, the same target twice, demo audio that cannot be read, or a take in
a directory that does not exist (reported even when no JACK server runs).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from bridge.errors import BridgeError

RESOLVE_TIMEOUT_S = 5.0
"""How long a host name may take to resolve: a dead resolver must not hang the start."""


def resolve(host: str, port: int, timeout: float = RESOLVE_TIMEOUT_S) -> tuple[object, ...]:
    """The first UDP socket address of `host:port`; BridgeError when it does not resolve in time.

    getaddrinfo cannot be interrupted, so it runs on a daemon thread that is
    left behind on a timeout (the process is about to exit with the error).
    """
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    result: list[tuple[object, ...]] = []
    error: list[str] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            # As the sender does: IPv4 first, receivers usually bind 127.0.0.1.
            result.append(min(infos, key=lambda i: i[0] != socket.AF_INET)[4])
        except (socket.gaierror, UnicodeError) as e:
            error.append(getattr(e, "strerror", None) or str(e))

    thread = threading.Thread(target=lookup, name="daw-bridge-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise BridgeError(f"OSC target {label}: the host did not resolve within {timeout:g} s")
    if error:
        raise BridgeError(f"OSC target {label}: cannot resolve host: {error[0]}")
    return result[0]


def check_osc_targets(targets: Sequence[tuple[str, int]]) -> None:
    """Every target resolves, and no two name the same address (`localhost:9000`
    and `127.0.0.1:9000` would get every message twice)."""
    seen: dict[tuple[object, ...], str] = {}
    for host, port in targets:
        label = f"{host}:{port}"
        address = resolve(host, port)
        if address in seen:
            same = "given twice" if seen[address] == label else f"is the same address as {seen[address]}"
            raise BridgeError(f"OSC target {label} {same}")
        seen[address] = label


def check_demo_audio(path: Path) -> None:
    """The demo player loops `path`: it must be a readable audio file with some audio in it."""
    import soundfile as sf  # here: `daw-bridge --help` does not need libsndfile

    if not path.exists():
        raise BridgeError(f"--demo: '{path}' does not exist")
    if not path.is_file():
        raise BridgeError(f"--demo: '{path}' is not a regular file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        reason = getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)
        raise BridgeError(f"--demo: cannot read '{path}' as audio: {reason.rstrip('.')}") from None
    if info.frames <= 0:
        raise BridgeError(f"--demo: '{path}' contains no audio")


def check_take_path(path: Path) -> None:
    """The take's directory exists and takes a new file (checked again when recording starts)."""
    from bridge.recorder import check_output_dir

    check_output_dir(Path(os.path.realpath(path)))
