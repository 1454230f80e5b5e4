"""Child processes that never outlive their parent and always end: jackd, the
demo player, and the servers and clients the tests start."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from typing import Any

PR_SET_PDEATHSIG = 1
# Looked up here, in the parent: the forked child then makes one libc call and loads nothing.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """A ``preexec_fn``: in the forked child, ask Linux for SIGTERM when the
    parent thread dies, so a crashed run leaves nothing behind."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone within `timeout` s; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
